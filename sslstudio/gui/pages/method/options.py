"""A method's options as the Method page shows and saves them."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from sslstudio.gui.catalog import MethodInfo


def options_config(info: MethodInfo, saved: dict[str, Any]) -> Any:
    """The method's Config from saved options: unknown ones dropped, defaults if they do not fit."""
    known = {f.name for f in dataclasses.fields(info.config_cls)}
    try:
        return info.config_cls(**{k: v for k, v in saved.items() if k in known})
    except (TypeError, ValueError):
        return info.config_cls()


def plain_options(options: Any) -> dict[str, Any]:
    """Plain JSON values (an Enum option as its value): they are saved in config.json."""
    values = dataclasses.asdict(options)
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}
