"""Simple recommenders that every model in the book has to beat."""

from __future__ import annotations

import numpy as np

from .data import Split
from .protocols import popular_items


class Popularity:
    """Recommend the items bought most often in the training period, to everyone."""

    def fit(self, split: Split) -> Popularity:
        self.top_ = popular_items(split.train, k=100)
        return self

    def recommend(self, customers, k: int = 5) -> np.ndarray:
        return np.tile(self.top_[:k], (len(np.atleast_1d(customers)), 1))
