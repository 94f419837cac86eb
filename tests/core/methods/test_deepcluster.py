import torch

from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def _train(method, cfg, steps: int, n: int = 16):
    opt = torch.optim.SGD(method.parameters(), lr=0.5)
    labels, losses = {}, []
    for step in range(steps):
        idx = torch.arange(8) + 8 * (step % 2)  # batch 8 of 16 images: an epoch is 2 steps
        loss, extra = method.training_step(Batch(views_for(method, cfg, step), idx))
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


def test_resuming_on_a_changed_folder_rebuilds_the_bank(tiny_folder, tmp_path):
    """The bank held the old folder's images in the old order: after the folder grew, it is
    resized and refilled for one round (loss 0) before clustering resumes, without an error."""
    import threading

    from PIL import Image

    from sslstudio.core.events import RunFinished, RunStopped, StepLogged
    from sslstudio.core.train.trainer import train
    from tests.shapes import tiny_config

    cfg = tiny_config(
        tiny_folder,
        tmp_path / "run",
        method="deepcluster",
        epochs=6,
        monitor_every=0,
        method_options={"n_clusters": 4, "recluster_every": 2},
    )
    stop, first = threading.Event(), []
    for ev in train(cfg, stop=stop):
        first.append(ev)
        if isinstance(ev, StepLogged) and ev.step == 4:
            stop.set()
    assert isinstance(first[-1], RunStopped) and first[-1].step == 5
    for i in range(16):  # the folder grows from 24 to 40 images
        Image.new("RGB", (24, 24), (i * 15, 80, 200 - i * 10)).save(
            tiny_folder / "circle" / f"new{i}.png"
        )
    rest = list(train(cfg, resume_from=tmp_path / "run"))
    assert isinstance(rest[-1], RunFinished), rest[-1]
    clustered = [e.extra["clustered"] for e in rest if isinstance(e, StepLogged)]
    assert clustered[:2] == [0.0, 0.0] and clustered[2:] and all(c == 1.0 for c in clustered[2:])
    saved = ckpt_state(tmp_path / "run")
    assert saved["bank"].shape[0] == 40 and int(saved["fill_start"]) == 5


def ckpt_state(run):
    from sslstudio.core.train import checkpoints as ckpt

    return ckpt.load_checkpoint(run / "checkpoints" / "final")[0]
