"""Errors a user can act on. Every message names the thing and what to do about it."""

from __future__ import annotations

import errno
import os
import re


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


_ERRNO_IN_TEXT = re.compile(r"os error (\d+)")


def as_write_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind a library's failed write, or None when ``exc`` is no write failure.

    A full disk or a file-size limit reaches us as torch's ``RuntimeError`` ("unexpected pos",
    from its zip writer, the real ``OSError`` chained as the context when it wrote to a Python
    file) or as safetensors' ``SafetensorError`` ("I/O error: ... (os error 28)"): callers that
    promise one clear line on a failed save catch these too, never other runtime errors.
    """
    if isinstance(exc, OSError):
        return exc
    context = exc.__cause__ or exc.__context__
    if isinstance(context, OSError):
        return context
    text = str(exc)
    if type(exc).__name__ == "SafetensorError" and "I/O error" in text:
        found = _ERRNO_IN_TEXT.search(text)
        code = int(found.group(1)) if found else errno.EIO
        return OSError(code, os.strerror(code))
    if isinstance(exc, RuntimeError) and (
        "unexpected pos" in text or "PytorchStreamWriter" in text
    ):
        return OSError(errno.EIO, "the file could not be written in full (disk full?)")
    return None
