"""Retrieval metrics: where does the true item rank among every item of the catalogue?

The view of TensorFlow Recommenders' ``FactorizedTopK``: for each (customer, item) pair, score
every item for the customer and count the pair a hit at k when its item ranks in the top k.
"""

from __future__ import annotations

import numpy as np


def true_item_ranks(scores: np.ndarray, true_items: np.ndarray) -> np.ndarray:
    """0-based rank of each row's true item among all items (ties count against it)."""
    scores = np.asarray(scores)
    true = scores[np.arange(len(scores)), true_items]
    return (scores > true[:, None]).sum(axis=1)


def factorized_top_k(model, customers, items, ks=(1, 5, 10, 50, 100)) -> dict[str, float]:
    """TFRS-style "factorized top-k": share of (customer, item) pairs whose item ranks in the top k.

    Every item of the catalogue is a candidate (brute force), as in the retrieval metrics of
    TensorFlow Recommenders. ``model`` has ``scores(customers)`` and ``score_batch`` (any
    ``models.base.ScoreRecommender``).
    """
    customers = np.asarray(customers)
    items = np.asarray(items)
    distinct, back = np.unique(customers, return_inverse=True)
    ranks = np.empty(len(customers), dtype=np.int64)
    for start in range(0, len(distinct), model.score_batch):
        chunk = distinct[start : start + model.score_batch]
        rows = np.flatnonzero((back >= start) & (back < start + len(chunk)))
        scores = np.asarray(model.scores(chunk), dtype=np.float64)
        ranks[rows] = true_item_ranks(scores[back[rows] - start], items[rows])
    return {f"top_{k}_accuracy": float((ranks < k).mean()) for k in ks}
