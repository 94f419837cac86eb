"""Method registry. Imports are explicit so packagers (PyInstaller) see every method."""

from sslstudio.core.methods import simclr  # noqa: F401  (registers itself)
from sslstudio.core.methods.base import METHODS, Method, build_method, method_config, register

__all__ = ["METHODS", "Method", "build_method", "method_config", "register"]
