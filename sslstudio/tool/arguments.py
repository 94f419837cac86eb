"""Argument types both command lines share (``sslstudio`` and ``sslstudio-tool``): a bad value is
one clear line from argparse, never a traceback. Standard library only, so the studio's command
line imports it without loading the tool's numpy and onnxruntime."""

from __future__ import annotations

import argparse


def whole_number(lo: int, hi: int = 10**9):
    """An argparse type: a whole number in [lo, hi] (a count, a port), else one clear line."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be from {lo} to {hi}, got {value}")
        return value

    return parse
