"""The next-item protocol: after each purchase of an invoice, recommend ``k`` items for the next one.

A step is a hit when the next item is among the ``k`` (top-k accuracy). Items are sequence codes
(``interactions.Invoices``). The models' side of the protocol (``fit(split)``,
``next_items(invoices, k)``) is written down in ``models.base.NextItemRecommender``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..datasets.retail import Split
from ..interactions import Invoices, invoices_of
from . import metrics
from .scores import Scores, clusters_of


@dataclass(frozen=True)
class NextItemProtocol:
    """Every step of every invoice of one part: recommend ``k`` items for the next purchase.

    Built once from a split; ``evaluate(model)`` calls ``model.next_items(invoices, k)`` (an
    ``(n_steps, k)`` array of sequence codes) and returns ``accuracy`` (top-k accuracy) with
    ``precision/recall/ndcg/mrr_at_k`` of the one true next item.
    """

    part: str
    invoices: Invoices
    k: int = 5

    @classmethod
    def from_split(
        cls, split: Split, part: str = "validation", k: int = 5, history: int = 0
    ) -> NextItemProtocol:
        """``history > 0`` adds the customers' histories, for models that read them."""
        return cls(part=part, invoices=invoices_of(split, part, history), k=k)

    @property
    def n_steps(self) -> int:
        return self.invoices.n_steps

    @property
    def clusters(self) -> np.ndarray:
        """Each step's cluster: its invoice's customer, or the invoice alone when anonymous."""
        invoices = self.invoices
        return np.repeat(clusters_of(invoices.customers, unknown=0), invoices.lengths)

    def score(self, recommendations: np.ndarray) -> Scores:
        """Top-k ``accuracy`` and ``precision/recall/ndcg/mrr_at_k``, with every step's score."""
        recommendations = np.asarray(recommendations)
        truth = self.invoices.items
        hit = (recommendations == np.asarray(truth)[:, None]).any(axis=1)
        units = pd.concat(
            [
                pd.DataFrame({"accuracy": hit.astype("float64")}),
                metrics.ranking_units(np.arange(len(truth) + 1), truth, recommendations, self.k),
            ],
            axis=1,
        )
        means = {"accuracy": float(metrics.accuracy_k(truth, recommendations))}
        means.update({c: float(units[c].mean()) for c in units.columns if c != "accuracy"})
        return Scores(means, units, self.clusters, "next_item")

    def evaluate(self, model) -> Scores:
        return self.score(model.next_items(self.invoices, self.k))
