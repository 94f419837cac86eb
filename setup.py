"""Only one thing pyproject.toml cannot say: ship the checkout's ``resources/`` (sample images,
icons, styles) inside the package as ``sslstudio/resources`` when building a wheel, so a
non-editable install finds them. Editable installs read them from the checkout."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithResources(build_py):
    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            src = Path(__file__).resolve().parent / "resources"
            shutil.copytree(
                src, Path(self.build_lib) / "sslstudio" / "resources", dirs_exist_ok=True
            )


setup(cmdclass={"build_py": BuildWithResources})
