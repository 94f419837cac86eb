"""Zip bombs and oversized members: a bundle's memory use does not follow what its manifest
declares. Peak memory is measured in a child process (tracemalloc's peak while loading)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.shapes import make_shapes_folder
from tests.tool.bundle_factory import make_bundle

BIG = 256 << 20  # the declared (and, unzipped, real) size of embeddings.npy
BOUND = 48 << 20  # peak memory allowed while loading
CHUNK = b"\0" * (1 << 20)

# tracemalloc, not ru_maxrss: a child's high-water mark starts at its parent's (pytest's, with
# torch loaded), which would hide the growth
MEASURE = textwrap.dedent(
    """
    import json, sys, tracemalloc
    from sslstudio.tool.bundle import BundleError, load_bundle
    tracemalloc.start()
    try:
        load_bundle(sys.argv[1])
        error = None
    except BundleError as exc:
        error = str(exc)
    print(json.dumps({"grew": tracemalloc.get_traced_memory()[1], "error": error}))
    """
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bomb")
    images = make_shapes_folder(root / "imgs", per_class=2, size=32, shapes=("circle", "square"))
    return make_bundle(root / "bundle", images)


def _manifest_with_big_embeddings(bundle: Path, right_hash: bool) -> dict:
    manifest = json.loads((bundle / "manifest.json").read_text())
    h = hashlib.sha256()
    for _ in range(BIG // len(CHUNK)):
        h.update(CHUNK)
    manifest["files"]["embeddings.npy"] = {
        "bytes": BIG,
        "sha256": h.hexdigest() if right_hash else "0" * 64,
    }
    return manifest


def _zip_bomb(bundle: Path, out: Path, right_hash: bool) -> Path:
    manifest = _manifest_with_big_embeddings(bundle, right_hash)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for p in sorted(bundle.iterdir()):
            if p.name not in ("manifest.json", "embeddings.npy"):
                zf.write(p, p.name)
        with zf.open("embeddings.npy", "w", force_zip64=True) as member:
            for _ in range(BIG // len(CHUNK)):
                member.write(CHUNK)
    return out


def _measure(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("right_hash", [False, True])  # a hash made for the bomb is no pass
def test_a_zip_bomb_is_refused_in_bounded_memory(bundle, tmp_path, right_hash):
    bomb = _zip_bomb(bundle, tmp_path / "bomb.zip", right_hash)
    assert bomb.stat().st_size < 2 << 20  # 256 MiB of zeros deflate ~1000 times
    got = _measure(bomb)
    assert got["grew"] < BOUND, got  # before: the whole declared size, then more
    assert got["error"] is not None and "\n" not in got["error"]
    assert "embeddings.npy" in got["error"] and "zip bomb" in got["error"]


def test_a_huge_file_with_a_wrong_hash_is_streamed_not_kept(bundle, tmp_path):
    import shutil

    big = shutil.copytree(bundle, tmp_path / "b")
    with open(big / "embeddings.npy", "r+b") as fh:
        fh.truncate(BIG)  # a sparse file: costs no disk, reads as zeros
    manifest = _manifest_with_big_embeddings(bundle, right_hash=False)
    (big / "manifest.json").write_text(json.dumps(manifest))
    got = _measure(big)
    assert got["error"] is not None and "sha256 differs" in got["error"]
    assert got["grew"] < BOUND, got  # before: 256 MiB kept, then joined
