"""Before the first step: the folder scanned and decoded into the cache, and what was skipped."""

from __future__ import annotations

import numpy as np

from sslstudio.config import RunConfig


def prepare(cfg: RunConfig, cancel):
    """Scan the folder and fill the decode cache in the background, yielding ``Preparing``
    events; returns (index, decoded images). Raises ScanCancelled/CacheCancelled on ``cancel``."""
    from sslstudio.core.data.cache import build_cache
    from sslstudio.core.data.indexstore import open_index
    from sslstudio.core.data.scan import require_usable
    from sslstudio.core.train.background import in_background
    from sslstudio.core.transforms.views import default_cache_size
    from sslstudio.imaging.slides import SlideOptions
    from sslstudio.paths import cache_dir

    index = yield from in_background(
        "scan",
        lambda progress: open_index(
            cfg.data_root,
            cache_dir(),
            progress=progress,
            cancel=cancel,
            tiling=SlideOptions.of(cfg),
        ),
    )
    require_usable(index)
    side = cfg.cache_size or default_cache_size(cfg.image_size, median_short_side(index))
    data = yield from in_background(
        "decode",
        lambda progress: build_cache(index, side, cache_dir(), progress=progress, cancel=cancel),
    )
    return index, data


def median_short_side(index) -> int | None:
    sizes = index.sizes(2000)  # headers of a sample are read lazily in a big folder
    return int(np.median(sizes.min(axis=1))) if len(sizes) else None


def skipped_notices(index, data) -> list[str]:
    """The notice that files were skipped (unreadable or unusable), with why; none when none."""
    skipped = index.skipped + data.failed
    return [f"{len(skipped)} file(s) skipped: " + skip_reasons(skipped)] if skipped else []


def skip_reasons(skipped) -> str:
    counts: dict[str, int] = {}
    for f in skipped:
        cat = f.reason.split(" (")[0].split(":")[0]
        counts[cat] = counts.get(cat, 0) + 1
    return ", ".join(f"{c} {r}" for r, c in sorted(counts.items(), key=lambda t: -t[1]))
