import torch

from tests.core.methods.conftest import views_for


def _train(method, cfg, steps: int, n: int = 16):
    opt = torch.optim.SGD(method.parameters(), lr=0.5)
    labels, losses = {}, []
    for step in range(steps):
        idx = torch.arange(8) + 8 * (step % 2)  # batch 8 of 16 images: an epoch is 2 steps
        loss, extra = method.training_step(views_for(method, cfg, step), indices=idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        method.on_step_end(step, steps)
        losses.append(loss.item())
        labels[step] = method.labels.clone()
    return labels, losses


def test_pseudo_labels_come_from_the_bank_and_change_between_rounds(make_method):
    method, cfg = make_method("deepcluster", n_clusters=4, recluster_every=2)
    method.on_train_start(num_images=16, total_steps=8)
    assert method.bank.shape == (16, 128) and method.labels.shape == (16,)
    labels, losses = _train(method, cfg, 6)
    assert losses[:2] == [0.0, 0.0]  # the first round needs a filled bank
    assert all(x > 0 for x in losses[2:])
    assert torch.allclose(method.bank.norm(dim=1), torch.ones(16), atol=1e-5)  # every image stored
    assert not torch.equal(labels[2], labels[4])  # rounds at steps 2 and 4 relabel the images
    assert labels[1].eq(0).all() and len(labels[2].unique()) > 1


def test_a_checkpoint_loads_without_on_train_start(make_method):
    """Embedding from a saved run builds the method fresh: the bank takes the checkpoint's size."""
    method, cfg = make_method("deepcluster", n_clusters=4, recluster_every=2)
    method.on_train_start(16, 4)
    _train(method, cfg, 3)
    fresh, _ = make_method("deepcluster", n_clusters=4, recluster_every=2)
    fresh.load_state_dict(method.state_dict(), strict=True)
    assert torch.equal(fresh.labels, method.labels) and torch.equal(fresh.bank, method.bank)
