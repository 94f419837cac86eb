"""Guard against PySide6 builds that drop references to None and True on Python < 3.12.

PySide6 6.12.0 returns ``None`` from every void method (``label.setText(...)``) and ``True``
from ``Signal.emit`` without taking a reference. On Python >= 3.12 these objects are immortal
(PEP 683) and nothing happens; on 3.11 each call lowers their count by one, and after some tens
of thousands of calls (a few hundred training steps in this window) CPython aborts with
"Fatal Python error: none_dealloc" or "bool_dealloc". PySide6 6.11 does not have the bug.

:func:`apply` measures the leak once and only when it is there raises the counts of ``None``,
``True`` and ``False`` out of reach (2**40 calls), which is what Python 3.12 does for every
program. The real fix is a PySide6 without the bug (or Python >= 3.12); this keeps the window
alive until then.
"""

from __future__ import annotations

import ctypes
import logging
import sys

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)

BALLAST = 1 << 40
_applied = False


class _Probe(QObject):
    ping = Signal()


def leaked_references(calls: int = 64) -> dict[str, int]:
    """References to None and True lost over ``calls`` void calls and signal emits."""
    probe = _Probe()
    none0, true0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(calls):
        probe.setObjectName("probe")  # a void method
    for _ in range(calls):
        probe.ping.emit()  # emit() returns True
    return {"None": none0 - sys.getrefcount(None), "True": true0 - sys.getrefcount(True)}


def apply() -> bool:
    """Make None/True/False effectively immortal when this PySide6 leaks them; True if it did."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    lost = leaked_references()
    if max(lost.values()) < 32:  # a healthy build loses nothing; allow a little noise
        return False
    for obj in (None, True, False):
        # ob_refcnt is the object's first field in every release build of CPython 3.x; the
        # read-modify-write happens under the GIL, as every other change of these counts
        ctypes.c_ssize_t.from_address(id(obj)).value += BALLAST
    _applied = True
    import PySide6

    log.info(
        "PySide6 %s drops references to None/True on Python %s (lost %s in 64 calls); "
        "protected them. Use PySide6 6.11 or Python >= 3.12 to avoid this.",
        PySide6.__version__,
        sys.version.split()[0],
        lost,
    )
    return True
