"""The Train page shows the run's verdict against random init in its log, in plain words."""

from sslstudio.core.events import MonitorLogged


def test_the_train_page_logs_the_verdict_beside_the_health_line(window) -> None:  # noqa: ANN001
    page = window.train_page
    words = "WORSE than random init on colour/stain-shifted images (kNN 0.300 vs 0.400 ...)"
    common = {"std_sqrt_d": 0.9, "rankme": 40.0, "embed_dim": 64}
    page.on_event(MonitorLogged(step=0, shift_top1=0.4, **common))
    assert "random init on colour" not in page.log.toPlainText()  # step 0 is random init itself
    page.on_event(MonitorLogged(step=20, shift_top1=0.3, verdict_sign=-1, verdict=words, **common))
    assert f"step 20: {words}" in page.log.toPlainText()
