"""A torture folder: every bad file of RELIABILITY.md items 1-13 beside a few good images.

:func:`write_torture_folder` builds on ``tests/image_factory.py`` (the catalogue's writers) and
adds what a folder on a real disk holds besides: a slide named ``.svs``, a self-referencing
symlink, a file name that is not UTF-8, OS junk. Run it as a script to get a folder to drop
into the app by hand::

    python tests/reliability/torture.py OUTDIR
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tests`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sslstudio.imaging.decode import MIN_SIDE  # noqa: E402
from tests import image_factory as f  # noqa: E402

IGNORED = "ignored"  # OS junk: counted as ignored by the scan, never reported as a failure

# A name the file system stores as bytes that are not UTF-8 (Latin-1 "é"), as old archives do.
NON_UTF8_NAME = os.fsdecode(b"caf\xe9.png")

GOOD_EXTRA = ("good/red.png", "good/green.jpg", "good/blue.bmp", "good/eight.png")


def write_torture_folder(folder: Path) -> dict[str, str]:
    """Write the folder; return {relative POSIX path: expected reason category} of the bad files.

    The category is what ``SkippedFile.category`` reports (``imaging.reason_category``), or
    ``"ignored"`` for OS junk. Every other file written is a good image: the decodable catalogue
    fixtures (16-bit, CMYK, EXIF, animated, odd names ...) and :data:`GOOD_EXTRA`.
    """
    folder = Path(folder)
    expected = f.build_torture_folder(folder)  # catalogue 1-13, odd names, junk, bad links
    bad = {rel: category for rel, category in expected.items() if category is not None}
    bad.update(dict.fromkeys(f.JUNK_NAMES, IGNORED))
    f.write_whole_slide_tiff(folder, "scanner.svs")  # item 4 under the scanner's own extension
    bad["scanner.svs"] = "whole-slide image"
    f.write_self_symlink(folder)
    bad["self_link.jpg"] = "symlink loop"
    with contextlib.suppress(OSError, UnicodeEncodeError):  # macOS, Windows refuse such names
        f.write_image(folder, NON_UTF8_NAME, f.GREEN, fmt="PNG")
    good = folder / "good"
    f.write_image(good, "red.png", f.RED)
    f.write_image(good, "green.jpg", f.GREEN)
    f.write_image(good, "blue.bmp", f.BLUE)
    f.write_image(good, "eight.png", f.RED, size=(MIN_SIDE, MIN_SIDE))
    return bad


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/reliability/torture.py OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    bad = write_torture_folder(out)
    for rel, category in sorted(bad.items()):
        print(f"{category:20} {rel}")
    print(f"{len(bad)} bad files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
