"""The basket protocol of the source chapter: five recommendations per invoice.

A customer arrives, sees ``k`` recommendations, and buys an invoice's items. Precision is the
source's hits / (invoices x k). Customers the training period does not know (anonymous or new)
get the popularity baseline, so every model is scored on every invoice.

A basket recommender has ``fit(split) -> self`` and ``recommend(customers, k) -> (n, k)`` int array
of item codes, best first, for customer indices of ``split.customers`` (all >= 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from . import metrics
from .data import Split


class BasketRecommender(Protocol):
    def fit(self, split: Split) -> BasketRecommender: ...

    def recommend(self, customers: np.ndarray, k: int = 5) -> np.ndarray: ...


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores of each row, best first (ties: lower index first)."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype("int32")


class ScoreRecommender:
    """The basket contract on top of ``scores(customers) -> (n, n_items)``.

    Subclasses implement ``scores`` for an array of distinct customer indices and set
    ``popularity_`` (training popularity scaled to [0, 1], a tie-breaker). ``recommend`` scores
    each distinct customer once, ``batch_size`` customers at a time.
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


def item_popularity(split: Split) -> np.ndarray:
    """Training rows per item, scaled to [0, 1] (a tie-breaker for equal scores)."""
    counts = np.bincount(split.train["item"], minlength=split.n_items).astype(np.float64)
    return counts / max(counts.max(), 1.0)


def popular_items(train: pd.DataFrame, k: int = 5) -> np.ndarray:
    """The ``k`` items bought on most rows of the training period (the chapter's ``top``)."""
    return train["item"].value_counts().head(k).index.to_numpy().astype("int32")


@dataclass(frozen=True)
class BasketProtocol:
    """Ground truth of one part of a split, built once, scoring any set of recommendations."""

    part: str
    indptr: np.ndarray  # invoice t owns rows indptr[t]:indptr[t+1]
    items: np.ndarray  # the item on each row
    customers: np.ndarray  # customer index of each invoice, -1 when unknown
    popular: np.ndarray  # the popularity baseline's k items
    n_items: int
    k: int = 5

    @classmethod
    def from_split(cls, split: Split, part: str = "validation", k: int = 5) -> BasketProtocol:
        frame = split.part(part)
        indptr = split.indptr(part)
        return cls(
            part=part,
            indptr=indptr,
            items=frame["item"].to_numpy(),
            customers=frame["customer"].to_numpy()[indptr[:-1]],
            popular=popular_items(split.train, k),
            n_items=split.n_items,
            k=k,
        )

    @property
    def n_invoices(self) -> int:
        return len(self.indptr) - 1

    @property
    def known(self) -> np.ndarray:
        """Mask of invoices whose customer the model knows from training."""
        return self.customers >= 0

    def baseline(self) -> np.ndarray:
        """The popularity baseline: the same ``k`` items for every invoice."""
        return np.tile(self.popular, (self.n_invoices, 1))

    def recommendations(self, model: BasketRecommender) -> np.ndarray:
        """The model's items for known customers, the popularity baseline for the rest."""
        recs = self.baseline()
        if self.known.any():
            recs[self.known] = np.asarray(model.recommend(self.customers[self.known], self.k))[:, : self.k]
        return recs

    def score(self, recommendations: np.ndarray) -> dict[str, float]:
        """Source precision plus ``precision/recall/ndcg/mrr_at_k`` and catalogue coverage."""
        recommendations = np.asarray(recommendations)
        result = {"precision": float(metrics.precision(self.indptr, self.items, recommendations))}
        result.update(metrics.ranking_metrics(self.indptr, self.items, recommendations, self.k))
        result["coverage"] = metrics.coverage(recommendations, self.n_items)
        return result

    def evaluate(self, model: BasketRecommender) -> dict[str, float]:
        return self.score(self.recommendations(model))
