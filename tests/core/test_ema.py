import pytest

from sslstudio.core.models.ema import MomentumSchedule, momentum_at


def test_momentum_schedule_reports_the_coming_update_and_counts_updates():
    m = MomentumSchedule(0.9, 1.0)
    m.start(total_steps=3)
    seen = []
    for step in range(3):
        seen.append(m.current())
        assert m.advance(step, 3) == seen[-1]
    assert seen == pytest.approx([0.9, 0.95, 1.0])
    assert m.updates.item() == 3


def test_momentum_schedule_resumes_from_a_state_dict():
    m = MomentumSchedule(0.99, 1.0)
    m.start(10)
    for step in range(4):
        m.advance(step, 10)
    twin = MomentumSchedule(0.99, 1.0)
    twin.start(10)
    assert twin.current() == pytest.approx(0.99)  # read before the load: must not stick
    twin.load_state_dict(m.state_dict())
    assert twin.current() == pytest.approx(momentum_at(0.99, 1.0, 4, 10)) == m.current()


def test_bad_momentum_is_refused():
    with pytest.raises(ValueError, match="momentum"):
        MomentumSchedule(0.99, 0.9)
