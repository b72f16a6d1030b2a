"""Bootstrap resampling shared by every task's intervals and comparisons: seeded draws of item positions and
percentile intervals of the values a metric takes over them."""

from __future__ import annotations

import numpy as np

BOOTSTRAP_LEVEL = 0.95


def bootstrap_indices(n_items: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_items) item positions drawn with replacement, reproducible from `seed`."""
    return np.random.default_rng(seed).integers(0, n_items, size=(resamples, n_items))


def percentile_interval(values: np.ndarray, level: float = BOOTSTRAP_LEVEL) -> list[float]:
    """The central `level` share of bootstrap values: [low, high] percentiles (linear interpolation)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def median_centred_interval(values: np.ndarray, estimate: float, level: float = BOOTSTRAP_LEVEL,
                            bounds: tuple[float, float] = (-np.inf, np.inf)) -> list[float]:
    """The percentile interval of `values` moved by the resamples' median bias (their median less `estimate`):
    [estimate - (median - low), estimate + (high - median)], within `bounds` (the metric's range). For a metric
    whose resamples are biased (average precision: a clip drawn twice lifts its own precision) the plain percentile
    interval can miss the estimate; this one always holds it, and equals it when the median is the estimate."""
    low, high = percentile_interval(values, level)
    median = float(np.median(values))
    return [float(max(estimate - (median - low), bounds[0])), float(min(estimate + (high - median), bounds[1]))]
