"""One place that writes a bench's result file: its numbers plus where, when and how."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path


def write(path: Path, result: dict) -> None:
    """``result`` as indented JSON at ``path``, with the machine, the date and the command line
    that reproduces it (``python bench/<script> <its arguments>``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    script = Path(sys.argv[0]).name
    footer = {
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": f"python bench/{script} " + " ".join(sys.argv[1:]),
    }
    path.write_text(json.dumps({**result, **footer}, indent=2, default=str))
    print(f"wrote {path}")
