"""The basket protocol of the source chapter: five recommendations per invoice.

A customer arrives, sees ``k`` recommendations, and buys an invoice's items. Precision is the
source's hits / (invoices x k), the mean of each invoice's hits / k. Customers the training period does not know (anonymous or new)
get the popularity baseline, so every model is scored on every invoice.

The models' side of the protocol (``fit(split)``, ``recommend(customers, k)``) is written down in
``models.base.BasketRecommender``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import sparse

from ..datasets.retail import Split
from ..interactions import popular_items
from . import metrics
from .scores import Scores, clusters_of


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
    history: sparse.csr_matrix | None = None  # (customers, items): bought during training

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
            history=_history(split),
        )

    @property
    def n_invoices(self) -> int:
        return len(self.indptr) - 1

    @property
    def known(self) -> np.ndarray:
        """Mask of invoices whose customer the model knows from training."""
        return self.customers >= 0

    def subset(self, invoices: np.ndarray) -> BasketProtocol:
        """The same protocol on some of its invoices (a boolean mask or indices), e.g.
        ``protocol.subset(protocol.known)``: only the customers a model can personalise for."""
        chosen = np.arange(self.n_invoices)[np.asarray(invoices)]
        starts, ends = self.indptr[chosen], self.indptr[chosen + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(self.indptr.dtype)
        rows = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return replace(self, indptr=indptr, items=self.items[rows], customers=self.customers[chosen])

    def baseline(self) -> np.ndarray:
        """The popularity baseline: the same ``k`` items for every invoice."""
        return np.tile(self.popular, (self.n_invoices, 1))

    def recommendations(self, model) -> np.ndarray:
        """The model's items for known customers, the popularity baseline for the rest."""
        recs = self.baseline()
        if self.known.any():
            recs[self.known] = np.asarray(model.recommend(self.customers[self.known], self.k))[:, : self.k]
        return recs

    @property
    def clusters(self) -> np.ndarray:
        """Each invoice's cluster: its customer, or the invoice alone when it is anonymous."""
        return clusters_of(self.customers, unknown=-1)

    def repeats(self, recommendations: np.ndarray) -> np.ndarray:
        """Which recommendations the invoice's customer bought during training (``(n, k)`` bool)."""
        recommendations = np.asarray(recommendations)
        out = np.zeros(recommendations.shape, dtype=bool)
        known = self.known
        if self.history is None or not known.any():
            return out
        rows = np.repeat(self.customers[known], recommendations.shape[1])
        bought = self.history[rows, recommendations[known].ravel()]
        out[known] = np.asarray(bought).reshape(-1, recommendations.shape[1]) > 0
        return out

    def score(self, recommendations: np.ndarray) -> Scores:
        """Source precision, its repeat and explore parts, the share of repeats among the
        recommendations, ``precision/recall/ndcg/mrr_at_k`` and catalogue coverage.

        ``precision_repeat`` counts the hits on items the customer bought during training,
        ``precision_explore`` the others (they add up to ``precision``).
        """
        recommendations = np.asarray(recommendations)
        hits = metrics.position_hits(self.indptr, self.items, recommendations.astype(np.int64))
        repeats = self.repeats(recommendations)
        units = pd.DataFrame(
            {
                "precision": hits.sum(axis=1) / self.k,
                "precision_repeat": (hits * repeats).sum(axis=1) / self.k,
                "precision_explore": (hits * ~repeats).sum(axis=1) / self.k,
                "repeat_share": repeats.mean(axis=1) if repeats.size else np.zeros(len(hits)),
            }
        )
        ranking = metrics.ranking_units(self.indptr, self.items, recommendations, self.k)
        units = pd.concat([units, ranking], axis=1)
        means = {"precision": float(metrics.precision(self.indptr, self.items, recommendations))}
        means.update({c: float(units[c].mean()) for c in units.columns if c != "precision"})
        means["coverage"] = metrics.coverage(recommendations, self.n_items)
        return Scores(means, units, self.clusters, "basket")

    def evaluate(self, model) -> Scores:
        return self.score(self.recommendations(model))


def _history(split: Split) -> sparse.csr_matrix:
    """The (customer, item) pairs bought during training, as a 0/1 matrix."""
    train = split.train[split.train["customer"] >= 0]
    ones = np.ones(len(train), dtype=np.int8)
    pairs = (train["customer"].to_numpy(), train["item"].to_numpy())
    history = sparse.csr_matrix((ones, pairs), shape=(split.n_customers, split.n_items))
    history.data[:] = 1
    return history
