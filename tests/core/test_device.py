import torch

from sslstudio.core.train.device import describe, pick_device


def test_cpu_fallback_with_a_visible_notice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    device, notices = pick_device("cuda")
    assert device.type == "cpu" and notices == ["no usable CUDA GPU found: training on CPU"]
    assert pick_device("auto") == (torch.device("cpu"), [])
    assert describe(torch.device("cpu")).startswith("cpu (")


def test_broken_driver_never_crashes(monkeypatch):
    def broken():
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "is_available", broken)
    device, notices = pick_device("auto")
    assert device.type in ("cpu", "mps")
    assert any("CUDA failed to initialise (RuntimeError)" in n for n in notices)
