"""Simple recommenders that every model in the book has to beat, for both retail protocols.

Basket protocol (``fit(split)``, ``recommend(customers, k)``): ``Popularity``, ``Repurchase``,
``ItemKNN`` and ``EASE``, built on the customer-item matrix of the training period.
Next-item protocol (``fit(split)``, ``next_items(invoices, k)``): ``PopularityWithRemoval`` (the
source chapter's baseline), ``Transitions`` and ``SeqRepurchase``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from ..datasets.retail import Split
from ..evaluation.metrics import top_k
from ..interactions import (
    START,
    Invoices,
    customer_item_matrix,
    invoices_of,
    item_popularity,
)
from .base import ScoreRecommender

# ---------------------------------------------------------------------------------------------
# The basket protocol


class Popularity(ScoreRecommender):
    """Recommend the items bought most often in the training period, to everyone.

    Scores are the training popularity, so ``recommend`` gives the source chapter's ``top``
    items (``interactions.popular_items``) to every customer.
    """

    def fit(self, split: Split) -> Popularity:
        self.popularity_ = item_popularity(split)
        return self

    def scores(self, customers) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(np.atleast_1d(customers)), len(self.popularity_)))


class Repurchase(ScoreRecommender):
    """Recommend what the customer bought before: most frequent first, or most recent first."""

    def __init__(self, order: str = "frequent"):
        if order not in ("frequent", "recent"):
            raise ValueError("order must be 'frequent' or 'recent'")
        self.order = order

    def fit(self, split: Split) -> Repurchase:
        self.popularity_ = item_popularity(split)
        if self.order == "frequent":
            self.matrix_ = customer_item_matrix(split, binary=False)
        else:  # score = position of the last purchase in time, so later is better
            train = split.train[split.train["customer"] >= 0]
            when = np.arange(1, len(train) + 1, dtype=np.float64)
            self.matrix_ = _max_duplicates(
                train["customer"].to_numpy(), train["item"].to_numpy(), when,
                (split.n_customers, split.n_items),
            )
        return self

    def scores(self, customers):
        return self.matrix_[customers].toarray()


def _max_duplicates(rows, cols, values, shape) -> sp.csr_matrix:
    """A CSR matrix keeping the largest value of each duplicated (row, col) pair."""
    order = np.lexsort((values, cols, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return sp.csr_matrix((values[last], (rows[last], cols[last])), shape=shape)


class ItemKNN(ScoreRecommender):
    """Item-based CF: score items by cosine similarity to the customer's past items.

    Similarities come from co-purchase by the same customer; each item keeps its ``neighbours``
    most similar items. The item itself is kept (similarity 1), so re-ordering is possible.
    """

    def __init__(self, neighbours: int = 100):
        self.neighbours = neighbours

    def fit(self, split: Split) -> ItemKNN:
        self.popularity_ = item_popularity(split)
        self.matrix_ = customer_item_matrix(split, binary=True)
        norms = np.sqrt(np.asarray(self.matrix_.sum(axis=0)).ravel()) + 1e-9
        sim = (self.matrix_.T @ self.matrix_).toarray() / norms[:, None] / norms[None, :]
        if self.neighbours < sim.shape[1]:
            cut = np.argpartition(-sim, self.neighbours - 1, axis=1)[:, self.neighbours :]
            np.put_along_axis(sim, cut, 0.0, axis=1)
        self.similarity_ = sim.astype(np.float32)
        return self

    def scores(self, customers):
        return self.matrix_[customers] @ self.similarity_


class EASE(ScoreRecommender):
    """EASE (Steck, 2019): a closed-form item-item linear model with a zero diagonal.

    ``B = -P / diag(P)`` with ``P = (X'X + lambda I)^-1`` and ``diag(B) = 0``; scores ``X B``.
    The zero diagonal means an item is never recommended because of itself: EASE finds *other*
    items, which on re-ordering data is a handicap that ``Repurchase`` does not have.
    """

    def __init__(self, l2: float = 200.0):
        self.l2 = l2

    def fit(self, split: Split) -> EASE:
        self.popularity_ = item_popularity(split)
        self.matrix_ = customer_item_matrix(split, binary=True)
        gram = (self.matrix_.T @ self.matrix_).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights_ = weights.astype(np.float32)
        return self

    def scores(self, customers):
        return self.matrix_[customers] @ self.weights_


# ---------------------------------------------------------------------------------------------
# The next-item protocol


@njit(cache=True)
def popular_not_bought(ranking, items, indptr, k, n_codes):
    """At every step of every invoice, the first ``k`` codes of ``ranking`` not yet bought in it."""
    out = np.zeros((indptr[-1], k), dtype=np.int32)
    bought = np.zeros(n_codes, dtype=np.bool_)
    for g in range(len(indptr) - 1):
        for i in range(indptr[g], indptr[g + 1]):
            j = 0
            for item in ranking:
                if not bought[item]:
                    out[i, j] = item
                    j += 1
                    if j == k:
                        break
            bought[items[i]] = True
        for i in range(indptr[g], indptr[g + 1]):
            bought[items[i]] = False
    return out


class PopularityWithRemoval:
    """The most bought training items, minus those already bought in the current invoice.

    Ties in the training counts are broken by first appearance in the training data, as the
    source's ``Counter.most_common`` does.
    """

    def fit(self, split: Split) -> PopularityWithRemoval:
        train = invoices_of(split, "train").items
        codes, first = np.unique(train, return_index=True)
        counts = np.bincount(train, minlength=split.n_items + 1)[codes]
        order = np.lexsort((first, -counts))
        self.ranking_ = codes[order].astype(np.int32)
        self.n_codes_ = split.n_items + 1
        return self

    def next_items(self, invoices: Invoices, k: int = 5) -> np.ndarray:
        return popular_not_bought(self.ranking_, invoices.items, invoices.indptr, k, self.n_codes_)


class Transitions:
    """Next item = what most often followed the previous item within training invoices.

    ``counts_[a, b]`` is how often sequence code ``b`` came right after ``a`` in a training
    invoice, with the start of an invoice as code 0 (``interactions.START``), so the first step of
    an invoice gets the most common first items. Follows the next-item contract of
    ``sequences.NextItemProtocol``: ``next_items(invoices, k)`` in sequence codes.
    """

    def fit(self, split: Split) -> Transitions:
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
        scores[:, START] = -np.inf  # never recommend the start symbol
        return top_k(scores, k)

    def next_items(self, invoices: Invoices, k: int = 5) -> np.ndarray:
        return self.table(k)[invoices.previous()]


class SeqRepurchase:
    """The next-item version of ``Repurchase``: the customer's most bought items that are not in
    the invoice yet, then the most popular ones (the source's popularity-with-removal for
    unknown customers)."""

    def fit(self, split: Split) -> SeqRepurchase:
        self.popular_ = PopularityWithRemoval().fit(split)
        counts = customer_item_matrix(split, binary=False).tocsr()
        # per customer code (index + 1; 0 = unknown): items by count, then by first appearance
        self.history_ = [np.zeros(0, dtype=np.int32)]
        for row in range(counts.shape[0]):
            items = counts.indices[counts.indptr[row] : counts.indptr[row + 1]]
            values = counts.data[counts.indptr[row] : counts.indptr[row + 1]]
            self.history_.append((items[np.argsort(-values, kind="stable")] + 1).astype(np.int32))
        return self

    def next_items(self, invoices: Invoices, k: int = 5) -> np.ndarray:
        ranking = self.popular_.ranking_
        out = np.empty((invoices.n_steps, k), dtype=np.int32)
        for g in range(len(invoices)):
            start, end = invoices.indptr[g], invoices.indptr[g + 1]
            own = self.history_[invoices.customers[g]]
            rank = np.concatenate([own, ranking[~np.isin(ranking, own)]]).astype(np.int32)
            out[start:end] = popular_not_bought(
                rank, invoices.items[start:end], np.array([0, end - start]), k, self.popular_.n_codes_
            )
        return out
