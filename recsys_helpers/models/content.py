"""Content-based recommendation from what the items *are*: description words and price band.

An item is described by a TF-IDF vector of the words of its ``Description`` and a one-hot price
band; a customer is described by the (purchase-weighted) average of the items they bought, their
*profile*. A customer's score for an item is the cosine of profile and item features. Two matrix
products do it all, which is how the TensorFlow version in ``ContentBased.scores`` is written.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from ..datasets.retail import Split
from ..features import item_table, price_bands, tokenize
from ..interactions import customer_item_matrix, item_popularity
from .base import ScoreRecommender

#: What chapter 12's validation sweep chooses (the chapter checks that it still does).
CONTENT_CHOSEN = {"price_weight": 0.0, "weights": "rows"}


def tfidf(documents: list[list[str]], min_df: int = 2) -> tuple[sp.csr_matrix, list[str]]:
    """Binary TF-IDF with ``idf = log(n / df) + 1``, rows scaled to unit length; and the vocabulary.

    Words in fewer than ``min_df`` documents are dropped. Descriptions are a few words long, so a
    word's count within one is 0 or 1 and only the IDF weighs it.
    """
    df_counts: dict[str, int] = {}
    for doc in documents:
        for word in set(doc):
            df_counts[word] = df_counts.get(word, 0) + 1
    vocabulary = sorted(w for w, n in df_counts.items() if n >= min_df)
    index = {w: j for j, w in enumerate(vocabulary)}
    rows, cols = [], []
    for i, doc in enumerate(documents):
        for j in sorted({index[w] for w in doc if w in index}):
            rows.append(i)
            cols.append(j)
    idf = np.log(len(documents) / np.array([df_counts[w] for w in vocabulary], dtype=float)) + 1.0
    matrix = sp.csr_matrix(
        (idf[cols].astype(np.float32), (rows, cols)), shape=(len(documents), len(vocabulary))
    )
    return _unit_rows(matrix), vocabulary


def _unit_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix)


def item_features(split: Split, price_weight: float = 0.3, n_bands: int = 5, min_df: int = 2):
    """Item features ``[TF-IDF of the description | price_weight x one-hot price band]``, unit rows.

    Returns the sparse matrix, and the names of its columns.
    """
    table = item_table(split)
    words, vocabulary = tfidf([tokenize(d) for d in table["description"]], min_df=min_df)
    bands = price_bands(table["price"], n_bands)
    onehot = sp.csr_matrix(
        (np.full(len(bands), price_weight, dtype=np.float32), (np.arange(len(bands)), bands)),
        shape=(len(bands), n_bands),
    )
    names = vocabulary + [f"price_band_{b}" for b in range(n_bands)]
    return _unit_rows(sp.hstack([words, onehot]).tocsr()), names


class ContentBased(ScoreRecommender):
    """Profile = purchase-weighted mean of the bought items' features; score = cosine.

    ``weights`` is ``"rows"`` (an item bought on many invoices weighs more) or ``"binary"``.
    """

    def __init__(self, price_weight: float = 0.3, weights: str = "rows", min_df: int = 2):
        self.price_weight, self.weights, self.min_df = price_weight, weights, min_df

    def fit(self, split: Split) -> ContentBased:
        start = time.perf_counter()
        self.popularity_ = item_popularity(split)
        self.features_, self.feature_names_ = item_features(
            split, self.price_weight, min_df=self.min_df
        )
        self.history_matrix_ = customer_item_matrix(split, binary=self.weights == "binary")
        self.profiles_ = _unit_rows(sp.csr_matrix(self.history_matrix_ @ self.features_))
        self._dense_features = tf.constant(self.features_.toarray())
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def scores(self, customers):
        """``profiles[customers] @ features.T`` as a TensorFlow matmul (dense on both sides)."""
        profiles = tf.constant(self.profiles_[np.asarray(customers)].toarray())
        return tf.matmul(profiles, self._dense_features, transpose_b=True).numpy()
