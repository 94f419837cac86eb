"""Method registry. Imports are explicit so packagers (PyInstaller) see every method."""

from sslstudio.core.methods import (  # noqa: F401  (each registers itself)
    barlowtwins,
    byol,
    moco,
    mocov3,
    nnclr,
    simclr,
    simsiam,
    vicreg,
    wmse,
)
from sslstudio.core.methods.base import METHODS, Method, build_method, method_config, register

__all__ = ["METHODS", "Method", "build_method", "method_config", "register"]
