"""``sslstudio-tool embed/classify`` say which subfolders they did not look at, as the studio's
scan does: a link to a folder, a folder it may not read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sslstudio.tool.__main__ import main as tool_main
from tests.shapes import make_shapes_folder
from tests.tool.bundle_factory import make_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("tool-folders")
    images = make_shapes_folder(root / "imgs", per_class=2, size=32, shapes=("circle", "square"))
    return make_bundle(root / "bundle", images), images


@pytest.mark.parametrize("command", ["embed", "classify"])
def test_a_linked_subfolder_is_reported_not_silently_dropped(bundle, tmp_path, capsys, command):
    path, images = bundle
    data = tmp_path / "data"
    make_shapes_folder(data, per_class=2, size=32, shapes=("circle",))
    (data / "more").symlink_to(images / "square", target_is_directory=True)
    out = tmp_path / ("f.npy" if command == "embed" else "p.csv")
    assert tool_main([command, str(path), str(data), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"skipped folder {data / 'more'}: a link to a folder: not followed" in err, err


@pytest.mark.skipif(not hasattr(os, "setuid") or os.geteuid() != 0, reason="needs to drop root")
def test_an_unreadable_subfolder_is_reported(tmp_path):
    data = tmp_path / "data"
    make_shapes_folder(data, per_class=2, size=16, shapes=("circle", "square"))
    os.chmod(data / "square", 0)
    for p in (tmp_path, data, data / "circle"):
        os.chmod(p, 0o755)
    code = (
        "import json, sys; from sslstudio.tool.inference import list_images; s = []; "
        "n = list_images(sys.argv[1], s); print(json.dumps([len(n), s]))"
    )
    try:
        done = subprocess.run(  # as nobody: root reads any folder
            [sys.executable, "-c", code, str(data)],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)),
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
    except PermissionError:
        pytest.skip("nobody may not run this Python (a venv under a private home)")
    if done.returncode != 0 and "Permission denied" in done.stderr:
        pytest.skip("the checkout is not readable by nobody")
    assert done.returncode == 0, done.stderr
    count, skipped = json.loads(done.stdout)
    assert count == 2
    assert skipped == [[str(data / "square"), "unreadable folder (PermissionError)"]]
