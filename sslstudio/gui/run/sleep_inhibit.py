"""Keep the machine awake while a run trains, where the platform lets an app ask.

- Windows: ``SetThreadExecutionState(ES_CONTINUOUS | ES_SYSTEM_REQUIRED)`` from the GUI thread
  (the request belongs to the calling thread and ends when it is cleared or the thread ends).
- macOS: ``caffeinate -i -w <our pid>``: the assertion lasts until we end it, or until this
  process exits however it exits (a crash cannot leave the Mac awake for ever).
- Linux: ``systemd-inhibit --what=sleep:idle`` around ``tail --pid=<our pid> -f /dev/null`` for
  the same reason; without systemd-inhibit (or without logind, as in containers) it is a no-op
  and says so in the log.

The display may still turn off: only system sleep is held back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

ES_CONTINUOUS = 0x80000000
ES_SYSTEM_REQUIRED = 0x00000001
WHO = "SSL Studio"

find_binary: Callable[[str], str | None] = shutil.which  # replaced in tests


class SleepInhibitor:
    """``start()`` on RunStarted, ``release()`` when the run ends or the window closes; both
    idempotent.

    Args:
        why: the reason shown by the system (``systemd-inhibit --list``, Activity Monitor).
        platform: ``sys.platform`` by default; tests pass another.
        popen: ``subprocess.Popen`` by default; tests pass a fake.
        kernel32: Windows' kernel32 (``ctypes.windll.kernel32``) by default; tests pass a fake.
    """

    def __init__(
        self,
        why: str = "Training a model",
        *,
        platform: str | None = None,
        popen: Callable[..., Any] | None = None,
        kernel32: Any = None,
    ) -> None:
        self.why = why
        self.platform = platform or sys.platform
        self._popen = popen or subprocess.Popen
        self._kernel32 = kernel32
        self._proc: Any = None
        self.method = ""  # "windows" | "caffeinate" | "systemd-inhibit" | "none" once started
        self.active = False

    def start(self) -> bool:
        """Ask the system not to sleep; True when a request is in place (never raises)."""
        if self.active:
            return True
        try:
            if self.platform == "win32":
                self.active = self._start_windows()
            elif self.platform == "darwin":
                self.active = self._start_process("caffeinate", ["-i", "-w", str(os.getpid())])
            elif self.platform.startswith("linux"):
                self.active = self._start_process(
                    "systemd-inhibit",
                    [
                        "--what=sleep:idle",
                        f"--who={WHO}",
                        f"--why={self.why}",
                        "--mode=block",
                        "tail",
                        f"--pid={os.getpid()}",
                        "-f",
                        "/dev/null",
                    ],
                )
            else:
                log.info("keeping the machine awake is not supported on %s", self.platform)
        except (
            OSError,
            AttributeError,
            ValueError,
        ) as exc:  # a missing DLL, a binary that will not start
            log.warning("could not keep the machine awake during the run: %s", exc)
            self.active = False
        if not self.active:
            self.method = "none"
        return self.active

    def _start_windows(self) -> bool:
        kernel32 = self._kernel32
        if kernel32 is None:
            import ctypes

            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            kernel32.SetThreadExecutionState.restype = ctypes.c_uint
            self._kernel32 = kernel32
        previous = kernel32.SetThreadExecutionState(ES_CONTINUOUS | ES_SYSTEM_REQUIRED)
        if not previous:  # 0 = the call failed
            log.warning("SetThreadExecutionState refused; the machine may sleep during the run")
            return False
        self.method = "windows"
        return True

    def _start_process(self, name: str, args: list[str]) -> bool:
        binary = find_binary(name)
        if binary is None:
            log.info("%s not found: the machine may sleep during the run", name)
            return False
        self._proc = self._popen(
            [binary, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.method = name
        log.info(
            "keeping the machine awake with %s (pid %s)", name, getattr(self._proc, "pid", "?")
        )
        return True

    def release(self) -> None:
        """Let the machine sleep again."""
        if not self.active:
            return
        self.active = False
        if self.method == "windows":
            with contextlib.suppress(OSError, AttributeError):
                self._kernel32.SetThreadExecutionState(ES_CONTINUOUS)
            return
        proc, self._proc = self._proc, None
        if proc is None:
            return
        code = proc.poll()
        if code is not None:  # it ended early: e.g. no logind in a container
            err = b""
            with contextlib.suppress(OSError, ValueError, AttributeError):
                err = proc.stderr.read() if proc.stderr is not None else b""
            log.info("%s had ended (exit %s): %s", self.method, code, _text(err))
        else:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2)
        with contextlib.suppress(OSError, AttributeError):
            if proc.stderr is not None:
                proc.stderr.close()


def _text(data: bytes | str | None) -> str:
    if not data:
        return "no message"
    return (
        data.decode(errors="replace") if isinstance(data, bytes) else data
    ).strip() or "no message"
