"""The basket protocol of the source chapter: five recommendations per invoice.

A customer arrives, sees ``k`` recommendations, and buys an invoice's items. Precision is the
source's hits / (invoices x k). Customers the training period does not know (anonymous or new)
get the popularity baseline, so every model is scored on every invoice.

The models' side of the protocol (``fit(split)``, ``recommend(customers, k)``) is written down in
``models.base.BasketRecommender``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..datasets.retail import Split
from ..interactions import popular_items
from . import metrics


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

    def score(self, recommendations: np.ndarray) -> dict[str, float]:
        """Source precision plus ``precision/recall/ndcg/mrr_at_k`` and catalogue coverage."""
        recommendations = np.asarray(recommendations)
        result = {"precision": float(metrics.precision(self.indptr, self.items, recommendations))}
        result.update(metrics.ranking_metrics(self.indptr, self.items, recommendations, self.k))
        result["coverage"] = metrics.coverage(recommendations, self.n_items)
        return result

    def evaluate(self, model) -> dict[str, float]:
        return self.score(self.recommendations(model))
