"""Simple recommenders that every model in the book has to beat.

All are basket recommenders (``fit(split)``, ``recommend(customers, k)``) built on the
customer-item matrix of the training period; ``Transitions`` also predicts the next item of an
invoice from the previous one (the sequence protocol).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .data import Split
from .protocols import popular_items


def customer_item_matrix(split: Split, weights: str = "rows") -> sp.csr_matrix:
    """Known customers x items from the training period, as CSR.

    ``weights="rows"`` counts the invoice lines of each pair, ``"binary"`` marks bought or not.
    """
    train = split.train[split.train["customer"] >= 0]
    values = np.ones(len(train), dtype=np.float32)
    matrix = sp.csr_matrix(
        (values, (train["customer"].to_numpy(), train["item"].to_numpy())),
        shape=(split.n_customers, split.n_items),
    )
    if weights == "binary":
        matrix.data[:] = 1.0
    elif weights != "rows":
        raise ValueError(f"weights must be 'rows' or 'binary', not {weights!r}")
    return matrix


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores of each row, best first (ties: lower index first)."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class _ScoreRecommender:
    """Shared ``recommend``: customer scores, popularity as a tiny tie-breaker and fallback."""

    def _scores(self, customers: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _fit_popularity(self, split: Split) -> None:
        counts = np.bincount(split.train["item"], minlength=split.n_items).astype(np.float64)
        self.popularity_ = counts / max(counts.max(), 1.0)

    def recommend(self, customers, k: int = 5) -> np.ndarray:
        customers = np.atleast_1d(np.asarray(customers))
        scores = np.asarray(self._scores(customers), dtype=np.float64)
        return top_k(scores + 1e-6 * self.popularity_, k)


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
            self.matrix_ = customer_item_matrix(split, "rows")
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
        self.matrix_ = customer_item_matrix(split, "binary")
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
        self.matrix_ = customer_item_matrix(split, "binary")
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

    ``counts_[a, b]`` is how often item ``b`` came right after item ``a`` in an invoice; the
    "previous item" of an invoice's first row is the start symbol, so the first prediction is
    the most common first item. Items are shifted by one so that 0 is the start symbol.
    """

    def fit(self, split: Split) -> Transitions:
        items = split.train["item"].to_numpy() + 1
        indptr = split.indptr("train")
        previous = np.concatenate([[0], items[:-1]])
        previous[indptr[:-1]] = 0  # every invoice starts from the start symbol
        n = split.n_items + 1
        self.counts_ = sp.csr_matrix(
            (np.ones(len(items), dtype=np.float32), (previous, items)), shape=(n, n)
        )
        popularity = np.bincount(items, minlength=n).astype(np.float64)
        self.popularity_ = popularity / popularity.max()
        return self

    def next_items(self, previous, k: int = 5) -> np.ndarray:
        """Top-k next items (0-based item codes) after each previous item (-1 = start)."""
        previous = np.asarray(previous) + 1
        scores = self.counts_[previous].toarray().astype(np.float64) + 1e-6 * self.popularity_
        scores[:, 0] = -np.inf  # never predict the start symbol
        return top_k(scores, k) - 1
