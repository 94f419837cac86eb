"""Method registry. Imports are explicit so packagers (PyInstaller) see every method."""

from sslstudio.core.methods import (  # noqa: F401  (each registers itself)
    barlowtwins,
    byol,
    colorization,
    cpc,
    deepcluster,
    dino,
    mae,
    moco,
    mocov3,
    nnclr,
    rotnet,
    simclr,
    simsiam,
    swav,
    vicreg,
    wmse,
)
from sslstudio.core.methods.base import (
    METHODS,
    Batch,
    Method,
    build_method,
    check_backbone,
    check_run_config,
    method_config,
    method_optim,
    register,
)

__all__ = [
    "METHODS",
    "Batch",
    "Method",
    "build_method",
    "check_backbone",
    "check_run_config",
    "method_config",
    "method_optim",
    "register",
]
