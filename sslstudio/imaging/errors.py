"""Why an image gave no pixels: the one error every decoder in :mod:`sslstudio.imaging` raises."""

from __future__ import annotations


class DecodeError(Exception):
    """No pixels: ``reason`` for the user (category + detail), ``error`` the cause's class name."""

    def __init__(self, reason: str, *, error: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
