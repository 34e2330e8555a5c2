"""One model's scores on one part of a protocol: the means, and every unit's score and cluster.

A protocol's ``score`` returns a ``Scores``: a plain ``dict`` of mean metrics (what the chapters
print and record) that also keeps the score of each unit (an invoice, a step, a rating, a
retrieval pair) and the unit's cluster (the customer or user; an anonymous invoice is a cluster
of its own). Intervals resample the clusters (``uncertainty.bootstrap``), and two models scored
on the same units are compared with the paired difference, all from what the protocol already
computed: nothing recomputes a prediction.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import numpy as np
import pandas as pd

from . import uncertainty

#: The metrics each protocol reports with an interval, and the simple model it is compared with.
HEADLINE = {
    "basket": ("precision",),
    "next_item": ("accuracy",),
    "ratings": ("rmse", "mae"),
    "retrieval": ("top_10_accuracy", "top_100_accuracy"),
}
REFERENCE = {
    "basket": "repurchase",
    "next_item": "transitions",
    "ratings": "bias_baseline",
    "retrieval": "ml_most_rated",
}
#: Metrics that are not the plain mean of a unit column: (column, transform of the mean).
DERIVED = {"rmse": ("squared_error", np.sqrt), "mae": ("absolute_error", None)}
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
#: Rating errors are glued in thousandths of a star.
ERROR_SCALE = 1000


def clusters_of(customers: np.ndarray, unknown: int) -> np.ndarray:
    """Cluster labels from customer codes: the code itself, and a label of its own for every
    unit whose code is ``unknown`` (an anonymous invoice is its own customer)."""
    customers = np.asarray(customers, dtype=np.int64)
    anonymous = customers == unknown
    out = customers.copy()
    out[anonymous] = customers.max(initial=0) + 1 + np.arange(anonymous.sum())
    return out


class Scores(dict):
    """Mean metrics (a ``dict``) of one model on one part, with ``units`` and ``clusters``.

    ``units`` is a DataFrame with one row per unit and one column per per-unit score (their
    means are the metrics of the same name); ``clusters`` labels each row's cluster;
    ``protocol`` names the protocol (a key of ``HEADLINE``).
    """

    def __init__(self, means: Mapping[str, float], units: pd.DataFrame, clusters, protocol: str):
        super().__init__(means)
        if protocol not in HEADLINE:
            raise ValueError(f"unknown protocol {protocol!r}; use one of {sorted(HEADLINE)}")
        clusters = np.asarray(clusters)
        if len(clusters) != len(units):
            raise ValueError(f"{len(clusters)} clusters for {len(units)} units")
        self.units = units.reset_index(drop=True)
        self.clusters = clusters
        self.protocol = protocol

    def __or__(self, other: Mapping) -> Scores:
        """``scores | {"fit_seconds": ...}`` keeps the units."""
        return Scores({**self, **other}, self.units, self.clusters, self.protocol)

    @property
    def headline(self) -> tuple[str, ...]:
        return HEADLINE[self.protocol]

    def _column(self, metric: str):
        column, transform = DERIVED.get(metric, (metric, None))
        if column not in self.units:
            raise KeyError(f"no per-unit {column!r} in these scores (columns: {list(self.units)})")
        return self.units[column].to_numpy(dtype="float64"), transform

    def interval(self, metric: str, **options) -> uncertainty.Interval:
        """The 95% cluster-bootstrap interval of ``metric``."""
        values, transform = self._column(metric)
        return uncertainty.bootstrap(values, self.clusters, transform=transform, **options)

    def versus(self, other: Scores, metric: str, **options) -> uncertainty.Interval:
        """The paired difference ``self - other`` in ``metric`` on the same units, and its interval."""
        if len(other.units) != len(self.units) or not np.array_equal(other.clusters, self.clusters):
            raise ValueError("the two scores are not on the same units: compare models on one protocol")
        mine, transform = self._column(metric)
        theirs, _ = other._column(metric)
        return uncertainty.paired_difference(mine, theirs, self.clusters, transform=transform, **options)

    def encode(self) -> str:
        """The headline metrics' unit scores and the clusters as one compact text (for gluing).

        Ratings keep each signed error in thousandths of a star (16 bits), other protocols their
        unit scores in 32-bit floats: the means they give agree to about 1e-6.
        """
        _, clusters = np.unique(self.clusters, return_inverse=True)
        if "error" in self.units:
            arrays = {"error": np.round(self.units["error"].to_numpy() * ERROR_SCALE).astype("int16")}
        else:
            columns = sorted({DERIVED.get(m, (m, None))[0] for m in self.headline})
            arrays = {c: self.units[c].to_numpy("float32") for c in columns}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, clusters=clusters.astype("int32"), **arrays)
        return f"{self.protocol}:{base64.b64encode(buffer.getvalue()).decode('ascii')}"

    @classmethod
    def decode(cls, text: str) -> Scores:
        """The ``Scores`` that ``encode`` wrote: the headline metrics and their unit scores."""
        protocol, _, data = text.partition(":")
        with np.load(io.BytesIO(base64.b64decode(data))) as arrays:
            clusters = arrays["clusters"]
            units = pd.DataFrame({c: arrays[c].astype("float64") for c in arrays.files if c != "clusters"})
        if "error" in units:
            error = units["error"] / ERROR_SCALE
            units = pd.DataFrame({"error": error, "absolute_error": error.abs(), "squared_error": error**2})
        scores = cls({}, units, clusters, protocol)
        for metric in scores.headline:
            values, transform = scores._column(metric)
            scores[metric] = float(transform(values.mean()) if transform else values.mean())
        return scores
