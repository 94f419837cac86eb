"""The one check a run's config passes before any work starts: the CLI, the window and the
trainer all call :func:`check_run_config`, so they refuse the same configs with the same words."""

from __future__ import annotations

from sslstudio.config import RunConfig, validate
from sslstudio.core.methods.base import check_backbone, method_config


def check_run_config(cfg: RunConfig) -> None:
    """Raise ``ConfigError`` (one message a user can act on) for a config no run can start from:
    a bad field or cross-field rule, an unknown method or option, a backbone the method cannot
    use, or progressive resizing on a backbone fixed to one input size."""
    validate(cfg)
    method_config(cfg.method, cfg.method_options)
    check_backbone(cfg.method, cfg.backbone, cfg.progressive_from)
