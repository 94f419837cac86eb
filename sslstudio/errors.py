"""Errors a user can act on. Every message names the thing and what to do about it."""

from __future__ import annotations


class SSLStudioError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero, never a traceback."""


class ConfigError(SSLStudioError, ValueError):
    """A configuration was refused before training started."""


class NoUsableImagesError(SSLStudioError):
    """A folder holds nothing we can train on."""


class CheckpointError(SSLStudioError):
    """A checkpoint is damaged, incompatible or cannot be written."""


class DivergedError(SSLStudioError):
    """The loss became NaN or infinite."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(
            f"training diverged at step {step} (loss = {value}); the last finite checkpoint "
            "was kept. Lower the learning rate or check the images."
        )
        self.step = step
        self.value = value


class WeightsError(SSLStudioError):
    """A weights file could not be used (wrong format, unsafe, incompatible)."""


class StepTimingCancelled(Exception):
    """Timing a few training steps was cancelled (the settings changed, the window closed)."""
