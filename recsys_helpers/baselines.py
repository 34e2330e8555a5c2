"""Simple recommenders that every model in the book has to beat.

All are basket recommenders (``fit(split)``, ``recommend(customers, k)``) built on the
customer-item matrix of the training period; ``Transitions`` also predicts the next item of an
invoice from the previous one (the sequence protocol).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .data import Split
from .mf import user_item_matrix
from .protocols import ScoreRecommender, item_popularity, popular_items, top_k


class _ScoreRecommender(ScoreRecommender):
    """Baselines score customers from a customer-item matrix (``_scores``)."""

    def _fit_popularity(self, split: Split) -> None:
        self.popularity_ = item_popularity(split)

    def scores(self, customers: np.ndarray) -> np.ndarray:
        return self._scores(customers)


class Popularity:
    """Recommend the items bought most often in the training period, to everyone."""

    def fit(self, split: Split) -> Popularity:
        self.top_ = popular_items(split.train, k=100)
        return self

    def recommend(self, customers, k: int = 5) -> np.ndarray:
        return np.tile(self.top_[:k], (len(np.atleast_1d(customers)), 1))


class Repurchase(_ScoreRecommender):
    """Recommend what the customer bought before: most frequent first, or most recent first."""

    def __init__(self, order: str = "frequent"):
        if order not in ("frequent", "recent"):
            raise ValueError("order must be 'frequent' or 'recent'")
        self.order = order

    def fit(self, split: Split) -> Repurchase:
        self._fit_popularity(split)
        if self.order == "frequent":
            self.matrix_ = user_item_matrix(split, binary=False)
        else:  # score = position of the last purchase in time, so later is better
            train = split.train[split.train["customer"] >= 0]
            when = np.arange(1, len(train) + 1, dtype=np.float64)
            self.matrix_ = _max_duplicates(
                train["customer"].to_numpy(), train["item"].to_numpy(), when,
                (split.n_customers, split.n_items),
            )
        return self

    def _scores(self, customers):
        return self.matrix_[customers].toarray()


def _max_duplicates(rows, cols, values, shape) -> sp.csr_matrix:
    """A CSR matrix keeping the largest value of each duplicated (row, col) pair."""
    order = np.lexsort((values, cols, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return sp.csr_matrix((values[last], (rows[last], cols[last])), shape=shape)


class ItemKNN(_ScoreRecommender):
    """Item-based CF: score items by cosine similarity to the customer's past items.

    Similarities come from co-purchase by the same customer; each item keeps its ``neighbours``
    most similar items. The item itself is kept (similarity 1), so re-ordering is possible.
    """

    def __init__(self, neighbours: int = 100):
        self.neighbours = neighbours

    def fit(self, split: Split) -> ItemKNN:
        self._fit_popularity(split)
        self.matrix_ = user_item_matrix(split, binary=True)
        norms = np.sqrt(np.asarray(self.matrix_.sum(axis=0)).ravel()) + 1e-9
        sim = (self.matrix_.T @ self.matrix_).toarray() / norms[:, None] / norms[None, :]
        if self.neighbours < sim.shape[1]:
            cut = np.argpartition(-sim, self.neighbours - 1, axis=1)[:, self.neighbours :]
            np.put_along_axis(sim, cut, 0.0, axis=1)
        self.similarity_ = sim.astype(np.float32)
        return self

    def _scores(self, customers):
        return self.matrix_[customers] @ self.similarity_


class EASE(_ScoreRecommender):
    """EASE (Steck, 2019): a closed-form item-item linear model with a zero diagonal.

    ``B = -P / diag(P)`` with ``P = (X'X + lambda I)^-1`` and ``diag(B) = 0``; scores ``X B``.
    The zero diagonal means an item is never recommended because of itself: EASE finds *other*
    items, which on re-ordering data is a handicap that ``Repurchase`` does not have.
    """

    def __init__(self, l2: float = 200.0):
        self.l2 = l2

    def fit(self, split: Split) -> EASE:
        self._fit_popularity(split)
        self.matrix_ = user_item_matrix(split, binary=True)
        gram = (self.matrix_.T @ self.matrix_).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights_ = weights.astype(np.float32)
        return self

    def _scores(self, customers):
        return self.matrix_[customers] @ self.weights_


class Transitions:
    """Next item = what most often followed the previous item within training invoices.

    ``counts_[a, b]`` is how often sequence code ``b`` came right after ``a`` in a training
    invoice, with the start of an invoice as code 0 (``sequences.START``), so the first step of
    an invoice gets the most common first items. Follows the next-item contract of
    ``sequences.NextItemProtocol``: ``next_items(invoices, k)`` in sequence codes.
    """

    def fit(self, split: Split) -> Transitions:
        from .sequences import invoices_of

        train = invoices_of(split, "train")
        n = split.n_items + 1
        self.counts_ = sp.csr_matrix(
            (np.ones(train.n_steps, dtype=np.float32), (train.previous(), train.items)), shape=(n, n)
        )
        popularity = np.bincount(train.items, minlength=n).astype(np.float64)
        self.popularity_ = popularity / popularity.max()
        return self

    def table(self, k: int = 5) -> np.ndarray:
        """The top-k successors of every code: one row per previous item."""
        scores = self.counts_.toarray() + 1e-6 * self.popularity_
        scores[:, 0] = -np.inf  # never recommend the start symbol
        return top_k(scores, k)

    def next_items(self, invoices, k: int = 5) -> np.ndarray:
        return self.table(k)[invoices.previous()]


class RepurchaseNext:
    """The next-item version of ``Repurchase``: the customer's most bought items that are not in
    the invoice yet, then the most popular ones (the source's popularity-with-removal for
    unknown customers)."""

    def fit(self, split: Split) -> RepurchaseNext:
        from .sequences import PopularityWithRemoval

        self.popular_ = PopularityWithRemoval().fit(split)
        counts = user_item_matrix(split, binary=False).tocsr()
        # per customer code (index + 1; 0 = unknown): items by count, then by first appearance
        self.history_ = [np.zeros(0, dtype=np.int32)]
        for row in range(counts.shape[0]):
            items = counts.indices[counts.indptr[row] : counts.indptr[row + 1]]
            values = counts.data[counts.indptr[row] : counts.indptr[row + 1]]
            self.history_.append((items[np.argsort(-values, kind="stable")] + 1).astype(np.int32))
        return self

    def next_items(self, invoices, k: int = 5) -> np.ndarray:
        from .sequences import _popular_not_bought

        ranking = self.popular_.ranking_
        out = np.empty((invoices.n_steps, k), dtype=np.int32)
        for g in range(len(invoices)):
            start, end = invoices.indptr[g], invoices.indptr[g + 1]
            own = self.history_[invoices.customers[g]]
            rank = np.concatenate([own, ranking[~np.isin(ranking, own)]]).astype(np.int32)
            out[start:end] = _popular_not_bought(
                rank, invoices.items[start:end], np.array([0, end - start]), k, self.popular_.n_codes_
            )
        return out
