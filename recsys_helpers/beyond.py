"""Shared pieces of the "beyond the chapter" models: positives, negatives, scoring, top-k checks.

Each of those chapters (two-tower retrieval, NCF, content-based, hybrid, LightGCN) ends with a
model that can score every item for a customer. ``ScoreRecommender`` turns such scores into the
basket contract (``recommend(customers, k)``), scoring each distinct customer once and in batches,
so the protocols of the book evaluate them like every other model.
"""

from __future__ import annotations

import numpy as np

from .baselines import top_k
from .data import Split


def training_rows(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(customer, item) of every training row of a known customer, as ``int32`` arrays.

    An item bought on many invoices appears many times, so sampling rows favours what a customer
    re-orders: on wholesale data that is most of what they buy next.
    """
    train = split.train[split.train["customer"] >= 0]
    return train["customer"].to_numpy("int32"), train["item"].to_numpy("int32")


def unique_pairs(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (customer, item) pairs of the training period, sorted by customer then item."""
    customers, items = training_rows(split)
    codes = np.unique(customers.astype(np.int64) * split.n_items + items)
    return (codes // split.n_items).astype("int32"), (codes % split.n_items).astype("int32")


def sample_negatives(n_items: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random items: the usual cheap negatives (a few are in fact positives)."""
    return rng.integers(0, n_items, size=size, dtype=np.int64).astype("int32")


def item_popularity(split: Split) -> np.ndarray:
    """Training rows per item, scaled to [0, 1] (a tie-breaker for equal scores)."""
    counts = np.bincount(split.train["item"], minlength=split.n_items).astype(np.float64)
    return counts / max(counts.max(), 1.0)


class ScoreRecommender:
    """Basket contract on top of ``scores(customers) -> (n, n_items)``.

    Subclasses implement ``scores`` for an array of distinct customer indices; ``recommend``
    scores each distinct customer once, ``batch_size`` customers at a time, and breaks ties by
    popularity.
    """

    popularity_: np.ndarray
    batch_size: int = 512

    def scores(self, customers: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, customers, k: int = 5) -> np.ndarray:
        customers = np.atleast_1d(np.asarray(customers))
        distinct, back = np.unique(customers, return_inverse=True)
        out = np.empty((len(distinct), k), dtype="int32")
        for start in range(0, len(distinct), self.batch_size):
            chunk = distinct[start : start + self.batch_size]
            scores = np.asarray(self.scores(chunk), dtype=np.float64)
            out[start : start + len(chunk)] = top_k(scores + 1e-6 * self.popularity_, k)
        return out[back.ravel()]


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
