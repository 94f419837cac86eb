"""Which checkpoint to use at the end of a run recorded by the kNN or own-view signal (runs begun
before the colour/stain-shift verdict, :mod:`.verdict`, which calls this for them).

The trainer keeps a ``selection`` record in every checkpoint (the best step by the quality
signal, and step 0's score); :func:`recommendation` reads it against the final score.
"""

from __future__ import annotations

import math


def recommendation(
    selection: dict, final_score: float | None, final_path: str, best_path: str
) -> tuple[str, str]:
    """(checkpoint to use, why) from the best-by-signal record and the final score."""
    signal = selection.get("signal")
    if signal is None or final_score is None:
        return final_path, ""
    name = "probe kNN accuracy" if signal == "knn_top1" else "own-view retrieval (label-free)"
    ref = selection.get("reference", {}).get(signal)
    best, best_step = selection.get("best_score", -1.0), selection.get("best_step")
    # an earlier step is recommended only when it beats the end by more than the probe's noise
    # (two binomial standard errors on n probe images): the schedule ends at a low rate, and a
    # noisy probe would otherwise pick a lucky early step
    n = max(1, selection.get("n", 1))
    noise = 2 * math.sqrt(max(final_score * (1 - final_score), 1e-4) / n)
    use_best = best > final_score + noise and best_path
    path, score = (best_path, best) if use_best else (final_path, final_score)
    where = f"step {best_step}" if use_best else "the final step"
    why = f"{where} scores best on {name}: {score:.3f}"
    if not use_best and best > final_score:
        why = (
            f"the final step: {score:.3f} on {name}, "
            f"within the probe's noise of step {best_step}'s {best:.3f}"
        )
    if ref is not None:
        why += f" (same network at random init: {ref:.3f})"
        if score <= ref:
            why = (
                f"not better than random init on {name} ({score:.3f} vs {ref:.3f} at step 0): "
                "train longer, or use the untrained network's features"
            )
    return path, why
