import torch
import torch.nn.functional as F

from sslstudio.core.models.queue import FeatureQueue


def _rows(n: int, start: int, dim: int = 4) -> torch.Tensor:
    return torch.eye(dim)[torch.arange(start, start + n) % dim] * (
        start + 1
    )  # distinct, not unit length


def test_enqueue_overwrites_the_oldest_rows_and_wraps_around():
    q = FeatureQueue(size=8, dim=4)
    q.cap(5)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    q.enqueue(a)
    assert q.ptr.item() == 3 and q.filled.item() == 3
    assert q.valid().tolist() == [True, True, True, False, False]
    q.enqueue(b)
    # b fills rows 3, 4 and wraps round to row 0; rows 1, 2 still hold a's newest two
    expected = torch.cat([b[2:], a[1:], b[:2]])
    assert torch.allclose(q.contents(), F.normalize(expected, dim=1))
    assert q.ptr.item() == 1 and q.filled.item() == 5 and q.valid().all()


def test_a_batch_longer_than_the_queue_keeps_its_newest_rows():
    q = FeatureQueue(size=6, dim=4)
    q.cap(3)
    x = torch.randn(5, 4)
    q.enqueue(x)
    assert torch.allclose(q.contents(), F.normalize(x[2:], dim=1)) and q.ptr.item() == 0


def test_cap_is_clamped_and_a_shorter_cap_after_resume_keeps_working():
    q = FeatureQueue(size=4, dim=2)
    q.cap(100)
    assert q.length == 4
    q.enqueue(torch.randn(3, 2))  # ptr 3
    q.cap(2)  # the folder shrank: ptr now lies past the end
    q.enqueue(torch.randn(1, 2))
    assert q.ptr.item() == 0 and q.filled.item() == 2


def test_queue_travels_in_the_state_dict():
    torch.manual_seed(0)
    q = FeatureQueue(size=5, dim=3)
    q.enqueue(torch.randn(2, 3))
    twin = FeatureQueue(size=5, dim=3)
    twin.load_state_dict(q.state_dict())
    assert torch.equal(twin.rows, q.rows) and twin.ptr.item() == 2 and twin.filled.item() == 2
