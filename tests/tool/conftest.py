"""One generated image folder and a few bundles per session: exporting ONNX costs ~0.1 s each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shapes import make_shapes_folder
from tests.tool.bundle_factory import copy_bundle, make_bundle


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> Path:
    """2 classes x 4 images at 40 px (resized to the bundle's 32)."""
    root = tmp_path_factory.mktemp("tool-images") / "shapes"
    return make_shapes_folder(root, per_class=4, size=40, shapes=("circle", "square"))


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory, images) -> Path:
    return make_bundle(tmp_path_factory.mktemp("tool-bundle") / "bundle", images)


@pytest.fixture(scope="session")
def unlabelled_bundle(tmp_path_factory, images) -> Path:
    return make_bundle(
        tmp_path_factory.mktemp("tool-bundle-nl") / "bundle", images, classifier=False
    )


@pytest.fixture
def bundle_copy(tmp_path, bundle_dir) -> Path:
    """A private copy to damage."""
    return copy_bundle(bundle_dir, tmp_path / "bundle")


@pytest.fixture(scope="session")
def model(bundle_dir):
    from sslstudio.tool.bundle import load_bundle
    from sslstudio.tool.inference import Model

    return Model(load_bundle(bundle_dir), threads=1, batch_size=3, decode_threads=2)
