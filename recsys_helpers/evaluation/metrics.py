"""Ranking metrics in numba, for both of the book's protocols.

Ground truth is given the way the data is stored: a flat array of true items and CSR-style
``indptr`` pointers, group ``g`` owning ``true_items[indptr[g]:indptr[g+1]]``. A group is an
invoice in the basket protocol and a single step (one true item) in the next-item protocol, where
``indptr = np.arange(n + 1)``. Recommendations are an ``(n_groups, k)`` integer array of distinct
items per row, best first. Every function has a plain-Python twin in ``tests/test_metrics.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit


@njit(cache=True)
def precision(indptr, true_items, predicted):
    """The source chapter's precision: hits / (groups x k), every purchased row counted.

    A row bought twice in one invoice (the same stock code on two lines) counts twice when it is
    recommended, exactly as in the source. The source's inner loop ends with ``continue`` where it
    means ``break``; with distinct recommendations the result is the same.
    """
    tp = 0
    n, m = predicted.shape
    for i in range(n):
        for item in true_items[indptr[i] : indptr[i + 1]]:
            for j in range(m):
                if item == predicted[i, j]:
                    tp += 1
                    break
    return tp / (n * m)


@njit(cache=True)
def position_hits(indptr, true_items, predicted):
    """How many purchased rows of each group match each recommendation: an ``(n, k)`` count.

    Its row sums over ``k`` are the groups' hits of ``precision`` (duplicates counted as there).
    """
    n, m = predicted.shape
    out = np.zeros((n, m), dtype=np.int64)
    for i in range(n):
        for item in true_items[indptr[i] : indptr[i + 1]]:
            for j in range(m):
                if item == predicted[i, j]:
                    out[i, j] += 1
                    break
    return out


@njit(cache=True)
def accuracy_k(y_true, y_pred):
    """Top-k accuracy: the share of steps whose true next item is among the k recommended."""
    n, k = y_pred.shape
    hits = 0
    for i in range(n):
        for j in range(k):
            if y_pred[i, j] == y_true[i]:
                hits += 1
                break
    return hits / n


@njit(cache=True)
def _per_group(indptr, true_items, predicted, k):
    """Per-group precision, recall, nDCG and reciprocal rank at k against the set of true items."""
    n = predicted.shape[0]
    k = min(k, predicted.shape[1])
    out = np.zeros((n, 4))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for g in range(n):
        truth = np.unique(true_items[indptr[g] : indptr[g + 1]])
        if truth.size == 0:
            continue
        hits = 0
        dcg = 0.0
        rr = 0.0
        for j in range(k):
            item = predicted[g, j]
            found = False
            for t in truth:
                if t == item:
                    found = True
                    break
            if found:
                hits += 1
                dcg += discounts[j]
                if rr == 0.0:
                    rr = 1.0 / (j + 1)
        ideal = discounts[: min(truth.size, k)].sum()
        out[g, 0] = hits / k
        out[g, 1] = hits / truth.size
        out[g, 2] = dcg / ideal
        out[g, 3] = rr
    return out


def _check(indptr, true_items, predicted):
    indptr = np.asarray(indptr, dtype=np.int64)
    true_items = np.asarray(true_items, dtype=np.int64)
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.int64))
    if len(indptr) != len(predicted) + 1:
        raise ValueError(f"{len(predicted)} rows of recommendations for {len(indptr) - 1} groups")
    if indptr[-1] != len(true_items):
        raise ValueError("indptr does not cover true_items")
    return indptr, true_items, predicted


RANKING = ("precision", "recall", "ndcg", "mrr")


def ranking_units(indptr, true_items, predicted, k: int = 5) -> pd.DataFrame:
    """Each group's ``precision/recall/ndcg/mrr_at_k`` (one row per group; their means are
    ``ranking_metrics``)."""
    indptr, true_items, predicted = _check(indptr, true_items, predicted)
    values = _per_group(indptr, true_items, predicted, k) if len(predicted) else np.zeros((0, 4))
    return pd.DataFrame(values, columns=[f"{name}_at_{k}" for name in RANKING])


def ranking_metrics(indptr, true_items, predicted, k: int = 5) -> dict[str, float]:
    """Mean ``precision_at_k``, ``recall_at_k``, ``ndcg_at_k`` and ``mrr_at_k`` over groups.

    Relevance is binary: an item is relevant to a group when the group contains it (duplicates
    count once). Groups without true items count as zeros.
    """
    indptr, true_items, predicted = _check(indptr, true_items, predicted)
    if len(predicted) == 0:
        return {f"{name}_at_{k}": float("nan") for name in ("precision", "recall", "ndcg", "mrr")}
    means = _per_group(indptr, true_items, predicted, k).mean(axis=0)
    names = ("precision", "recall", "ndcg", "mrr")
    return {f"{name}_at_{k}": float(v) for name, v in zip(names, means, strict=True)}


def precision_at_k(indptr, true_items, predicted, k: int = 5) -> float:
    """Share of the k recommendations that the group contains, averaged over groups."""
    return ranking_metrics(indptr, true_items, predicted, k)[f"precision_at_{k}"]


def recall_at_k(indptr, true_items, predicted, k: int = 5) -> float:
    """Share of the group's distinct items found in the top k, averaged over groups."""
    return ranking_metrics(indptr, true_items, predicted, k)[f"recall_at_{k}"]


def ndcg_at_k(indptr, true_items, predicted, k: int = 5) -> float:
    """Binary-relevance nDCG at k, averaged over groups."""
    return ranking_metrics(indptr, true_items, predicted, k)[f"ndcg_at_{k}"]


def mrr_at_k(indptr, true_items, predicted, k: int = 5) -> float:
    """Reciprocal rank of the first relevant item in the top k (0 if none), averaged."""
    return ranking_metrics(indptr, true_items, predicted, k)[f"mrr_at_{k}"]


def coverage(predicted, n_items: int) -> float:
    """Catalogue coverage: share of the ``n_items`` items recommended at least once."""
    predicted = np.asarray(predicted)
    if n_items <= 0:
        raise ValueError("n_items must be positive")
    return float(np.unique(predicted[(predicted >= 0) & (predicted < n_items)]).size / n_items)


def precision_groupby(frame, predicted, invoice="invoiceno", item="item") -> float:
    """The same precision as ``precision``, computed the slow way with pandas ``groupby``.

    Kept for the comparison in chapter 1 and the benchmarks: ``groupby`` sorts and builds a
    Python object per invoice, where ``indptr`` only slices an array.
    """
    predicted = np.asarray(predicted)
    groups = frame.groupby(invoice, sort=False)[item]
    hits = 0
    for row, (_, items) in enumerate(groups):
        hits += int(np.isin(items.to_numpy(), predicted[row]).sum())
    return hits / predicted.size


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest scores of each row, best first (ties: lower index first).

    The one top-k of the book: every recommender and every evaluation ranks with it.
    """
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(scores, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1).astype("int32")
