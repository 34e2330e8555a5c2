"""Cluster-bootstrap intervals for the protocols' per-unit scores.

A unit is what a protocol scores (an invoice's precision, a step's hit, a rating's error) and its
cluster is the customer; units of one customer are not independent, so whole customers are
resampled with replacement. Each statistic is ``transform(mean of the resampled units)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 2000
_MAX_DRAWS = 4_000_000  # cluster indices drawn at once (chunk x clusters), to bound memory


@dataclass(frozen=True)
class Interval:
    """A statistic on the real data and its bootstrap percentile interval ``[lo, hi]``."""

    estimate: float
    lo: float
    hi: float
    level: float = 0.95

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the closed interval."""
        return bool(self.lo <= value <= self.hi)

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of zero."""
        return self.lo > 0 or self.hi < 0

    @property
    def width(self) -> float:
        """``hi - lo``."""
        return self.hi - self.lo


def _cluster_sums(values, clusters) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Per-cluster sums and counts of ``values``, and the values' range (checked inputs)."""
    values = np.asarray(values, dtype=float)
    clusters = np.asarray(clusters)
    if values.ndim != 1 or clusters.ndim != 1:
        raise ValueError(
            f"values and clusters must be 1-D, not {values.shape} and {clusters.shape}"
        )
    if values.size == 0:
        raise ValueError("cannot bootstrap an empty set of units")
    if values.size != clusters.size:
        raise ValueError(f"{values.size} values but {clusters.size} cluster labels")
    if not np.isfinite(values).all():
        raise ValueError("values must all be finite")
    labels, index = np.unique(clusters, return_inverse=True)
    if labels.size < 2:
        raise ValueError(f"needs at least two clusters to resample, got {labels.size}")
    counts = np.bincount(index).astype(float)
    return np.bincount(index, weights=values), counts, (values.min(), values.max())


def _means(sums, counts, bounds, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_resamples`` cluster-bootstrap means (clipped to the values' range against rounding)."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    n_clusters = sums.size
    chunk = max(1, _MAX_DRAWS // n_clusters)
    out = np.full(n_resamples, np.nan)
    for start in range(0, n_resamples, chunk):
        draws = rng.integers(0, n_clusters, (min(chunk, n_resamples - start), n_clusters))
        out[start : start + len(draws)] = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    return np.clip(out, *bounds)


def _estimate(sums, counts, bounds) -> float:
    return float(np.clip(sums.sum() / counts.sum(), *bounds))


def _interval(estimate: float, stats: np.ndarray, level: float) -> Interval:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(estimate), float(lo), float(hi), level)


def _identity(x):
    return x


Transform = Callable[[np.ndarray], np.ndarray] | None


def bootstrap(
    values, clusters, *, transform: Transform = None, n_resamples=N_RESAMPLES, seed=0, level=0.95
) -> Interval:
    """Percentile interval of ``transform(mean of values)`` resampling whole clusters.

    Parameters
    ----------
    values : 1-D array of per-unit scores (precisions, 0/1 hits, squared errors, ...).
    clusters : 1-D array of the units' cluster labels (any sortable labels: ints, strings).
    transform : vectorised function of the mean, e.g. ``np.sqrt`` for RMSE; ``None`` is identity.
    """
    f = transform or _identity
    sums, counts, bounds = _cluster_sums(values, clusters)
    stats = f(_means(sums, counts, bounds, n_resamples, np.random.default_rng(seed)))
    return _interval(f(_estimate(sums, counts, bounds)), stats, level)


def paired_difference(
    a, b, clusters, *, transform: Transform = None, n_resamples=N_RESAMPLES, seed=0, level=0.95
) -> Interval:
    """Interval of ``transform(mean a) - transform(mean b)`` for two models scored on the same
    units, both resampled with the same cluster draws."""
    f = transform or _identity
    sa, counts, bounds_a = _cluster_sums(a, clusters)
    sb, counts_b, bounds_b = _cluster_sums(b, clusters)
    mean_a = _means(sa, counts, bounds_a, n_resamples, np.random.default_rng(seed))
    mean_b = _means(sb, counts_b, bounds_b, n_resamples, np.random.default_rng(seed))
    estimate = f(_estimate(sa, counts, bounds_a)) - f(_estimate(sb, counts_b, bounds_b))
    return _interval(estimate, f(mean_a) - f(mean_b), level)


def unpaired_difference(
    a,
    clusters_a,
    b,
    clusters_b,
    *,
    transform: Transform = None,
    n_resamples=N_RESAMPLES,
    seed=0,
    level=0.95,
) -> Interval:
    """The same difference with independent resamples of ``a`` and ``b`` (ignores the pairing)."""
    f = transform or _identity
    sa, na, bounds_a = _cluster_sums(a, clusters_a)
    sb, nb, bounds_b = _cluster_sums(b, clusters_b)
    rng = np.random.default_rng(seed)
    mean_a = _means(sa, na, bounds_a, n_resamples, rng)
    mean_b = _means(sb, nb, bounds_b, n_resamples, rng)
    estimate = f(_estimate(sa, na, bounds_a)) - f(_estimate(sb, nb, bounds_b))
    return _interval(estimate, f(mean_a) - f(mean_b), level)


def verdict(interval: Interval, higher_is_better: bool = True) -> str:
    """``"better"``/``"worse"`` when a difference's interval lies wholly on one side of zero."""
    if not interval.excludes_zero:
        return "no clear difference"
    return "better" if (interval.lo > 0) == higher_is_better else "worse"
