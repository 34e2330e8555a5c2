"""Shared pieces of the "beyond the chapter" models: positives, negatives, scoring, top-k checks.

Each of those chapters (two-tower retrieval, NCF, content-based, hybrid, LightGCN) ends with a
model that can score every item for a customer. ``ScoreRecommender`` turns such scores into the
basket contract (``recommend(customers, k)``), scoring each distinct customer once and in batches,
so the protocols of the book evaluate them like every other model.
"""

from __future__ import annotations

import numpy as np

from .data import Split
from .mf import training_pairs
from .protocols import ScoreRecommender, item_popularity, top_k  # noqa: F401  (re-exported)


def unique_pairs(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (customer, item) pairs of the training period, sorted by customer then item."""
    customers, items = training_pairs(split)
    codes = np.unique(customers.astype(np.int64) * split.n_items + items)
    return (codes // split.n_items).astype("int32"), (codes % split.n_items).astype("int32")


def sample_negatives(n_items: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random items: the usual cheap negatives (a few are in fact positives)."""
    return rng.integers(0, n_items, size=size, dtype=np.int64).astype("int32")


def true_item_ranks(scores: np.ndarray, true_items: np.ndarray) -> np.ndarray:
    """0-based rank of each row's true item among all items (ties count against it)."""
    scores = np.asarray(scores)
    true = scores[np.arange(len(scores)), true_items]
    return (scores > true[:, None]).sum(axis=1)


def factorized_top_k(model: ScoreRecommender, customers, items, ks=(1, 5, 10, 50, 100)) -> dict[str, float]:
    """TFRS-style "factorized top-k": share of (customer, item) pairs whose item ranks in the top k.

    Every item of the catalogue is a candidate (brute force), as in the retrieval metrics of
    TensorFlow Recommenders.
    """
    customers = np.asarray(customers)
    items = np.asarray(items)
    distinct, back = np.unique(customers, return_inverse=True)
    ranks = np.empty(len(customers), dtype=np.int64)
    for start in range(0, len(distinct), model.batch_size):
        chunk = distinct[start : start + model.batch_size]
        rows = np.flatnonzero((back >= start) & (back < start + len(chunk)))
        scores = np.asarray(model.scores(chunk), dtype=np.float64)
        ranks[rows] = true_item_ranks(scores[back[rows] - start], items[rows])
    return {f"top_{k}_accuracy": float((ranks < k).mean()) for k in ks}
