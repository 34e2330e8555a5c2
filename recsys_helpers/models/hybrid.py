"""A hybrid, context-aware recommender: collaborative embeddings + item content + invoice context.

The score of item ``i`` for customer ``c`` in context ``x`` (the invoice's country, hour of day and
weekday) is a dot product of two vectors plus an item bias:

    query(c, x) = e_c + W_x [country(x); hour(x); weekday(x)]
    item(i)     = e_i + W_f [mean word embedding(i); price band(i)]
    score       = query(c, x) . item(i) + b_i

The context enters the *query*, so it interacts with every item and can change the ranking. (A
context term added to the score on its own, as in the source article's hybrid model, shifts every
item of an invoice by the same amount and cannot change what is recommended.) Training is
pointwise with sampled negatives, as for NCF, each negative sharing its positive's context.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers

from ..datasets.retail import Split
from ..evaluation.metrics import top_k
from ..features import (
    CONTEXT_CODES,
    N_HOURS,
    N_WEEKDAYS,
    customer_countries,
    description_tokens,
    invoice_context,
    item_table,
    price_bands,
    row_context,
)
from ..interactions import item_popularity, sample_negatives
from .base import KerasTrainer, ScoreRecommender
from .layers import MeanOfWords

#: The hybrid model chapter 13 trains (and its variants without context or content).
HYBRID_CHOSEN = {"dim": 32, "epochs": 5, "learning_rate": 0.005}


def build_hybrid(
    n_customers: int,
    n_items: int,
    n_countries: int,
    n_words: int,
    n_bands: int,
    dim: int = 32,
    use_context: bool = True,
    use_content: bool = True,
    seed: int = 42,
) -> tuple[keras.Model, keras.Model, layers.Embedding]:
    """The query and item towers (``keras.Model`` each) and the item bias of the hybrid model."""

    def emb(n, name, size=dim):
        init = keras.initializers.RandomNormal(stddev=0.05, seed=seed + len(name))
        return layers.Embedding(n, size, embeddings_initializer=init, name=name)

    def dense(name, seed):
        glorot = keras.initializers.GlorotUniform(seed)
        return layers.Dense(dim, kernel_initializer=glorot, name=name)

    customer = keras.Input(shape=(), dtype="int32", name="customer")
    context_inputs = {n: keras.Input(shape=(), dtype="int32", name=n) for n in CONTEXT_CODES}
    query = emb(n_customers, "customer_id")(customer)
    if use_context:
        parts = [
            emb(n_countries, "country_id", 8)(context_inputs["country"]),
            emb(N_HOURS, "hour_id", 4)(context_inputs["hour"]),
            emb(N_WEEKDAYS, "weekday_id", 4)(context_inputs["weekday"]),
        ]
        context = dense("context", seed)(layers.Concatenate()(parts))
        query = layers.Add(name="query_sum")([query, context])
    query_tower = keras.Model({"customer": customer, **context_inputs}, query, name="query_tower")

    item = keras.Input(shape=(), dtype="int32", name="item")
    words = keras.Input(shape=(None,), dtype="int32", name="words")
    band = keras.Input(shape=(), dtype="int32", name="band")
    vector = emb(n_items, "item_id")(item)
    if use_content:
        text = MeanOfWords(name="mean_words")(emb(n_words, "word_id", 16)(words), words)
        price = emb(n_bands, "band_id", 4)(band)
        content = dense("content", seed + 1)(layers.Concatenate()([text, price]))
        vector = layers.Add(name="item_sum")([vector, content])
    item_inputs = {"item": item, "words": words, "band": band}
    item_tower = keras.Model(item_inputs, vector, name="item_tower")
    bias = layers.Embedding(n_items, 1, embeddings_initializer="zeros", name="item_bias")
    bias.build((None,))
    return query_tower, item_tower, bias


class Hybrid(KerasTrainer, ScoreRecommender):
    """Context-aware hybrid model; ``recommend_invoices`` uses each invoice's own context.

    ``recommend(customers, k)`` (the basket contract) fills the context with the customer's usual
    country and the training period's most common hour and weekday: a static context.

    Parameters
    ----------
    dim, use_context, use_content
        The towers (``build_hybrid``).
    n_negatives
        Random items per training row in each epoch, each with the row's context.
    epochs, batch_size, learning_rate, seed, progress
        The training loop's (``base.KerasTrainer``).
    """

    name = "hybrid"

    def __init__(
        self,
        dim: int = 32,
        epochs: int = 4,
        n_negatives: int = 4,
        batch_size: int = 4096,
        learning_rate: float = 0.003,
        use_context: bool = True,
        use_content: bool = True,
        seed: int | None = None,
        progress: bool = True,
    ):
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        self.dim, self.n_negatives = dim, n_negatives
        self.use_context, self.use_content = use_context, use_content

    def build(self, split: Split) -> list:
        self.n_items = split.n_items
        self.popularity_ = item_popularity(split)
        self.home_country_, self.country_encoder_ = customer_countries(split)
        self.words_, self.vocabulary_ = description_tokens(split)
        self.bands_ = price_bands(item_table(split)["price"])
        rows = row_context(split, self.country_encoder_)
        self.usual_hour_ = int(rows["hour"].mode().iloc[0])
        self.usual_weekday_ = int(rows["weekday"].mode().iloc[0])
        self.rows_ = [rows[name].to_numpy("int32") for name in ("customer", *CONTEXT_CODES)]
        self.positives_ = rows["item"].to_numpy("int32")
        self.query_, self.item_, self.bias_ = build_hybrid(
            split.n_customers, self.n_items, len(self.country_encoder_), len(self.vocabulary_) + 1,
            int(self.bands_.max()) + 1, self.dim, self.use_context, self.use_content, self.seed,
        )
        return [self.query_, self.item_, self.bias_]

    def batches(self, rng):
        """Every training row (label 1) and ``n_negatives`` random items in its context (label 0),
        shuffled."""
        positives, copies = self.positives_, 1 + self.n_negatives
        negatives = sample_negatives(self.n_items, len(positives) * self.n_negatives, rng)
        items = np.concatenate([positives, negatives])
        labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
        labels = labels.astype("float32")
        context = [np.tile(column, copies) for column in self.rows_]
        order = rng.permutation(len(items))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            yield (*(column[rows] for column in context), items[rows], labels[rows])

    def compute_loss(self, batch, training=True):
        """Binary cross-entropy of ``query(c, x) . item(i) + b_i`` against bought / random."""
        customers, country, hour, weekday, items, labels = batch
        context = {"customer": customers, "country": country, "hour": hour, "weekday": weekday}
        q = self.query_(context, training=training)
        words, bands = tf.gather(self.words_, items), tf.gather(self.bands_, items)
        v = self.item_({"item": items, "words": words, "band": bands}, training=training)
        logits = tf.reduce_sum(q * v, axis=1) + tf.reshape(self.bias_(items), [-1])
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))

    def on_epoch_end(self) -> None:
        items = np.arange(self.n_items, dtype="int32")
        content = {"item": items, "words": self.words_, "band": self.bands_}
        self.item_factors_ = np.asarray(self.item_(content))
        self.item_bias_ = np.asarray(self.bias_(items)).ravel()

    def query(self, context: pd.DataFrame) -> np.ndarray:
        """Query vectors for rows with ``customer``, ``country``, ``hour`` and ``weekday`` codes."""
        inputs = {n: context[n].to_numpy("int32") for n in ("customer", *CONTEXT_CODES)}
        return np.asarray(self.query_(inputs))

    def static_context(self, customers) -> pd.DataFrame:
        """The context ``recommend`` assumes: usual country, most common hour and weekday."""
        customers = np.asarray(customers, dtype="int32")
        return pd.DataFrame(
            {
                "customer": customers,
                "country": self.home_country_[customers],
                "hour": np.full(len(customers), self.usual_hour_, dtype="int32"),
                "weekday": np.full(len(customers), self.usual_weekday_, dtype="int32"),
            }
        )

    def scores_in_context(self, context: pd.DataFrame) -> np.ndarray:
        """Scores of every item for each row of ``context`` (a customer and a context)."""
        return self.query(context) @ self.item_factors_.T + self.item_bias_

    def scores(self, customers):
        return self.scores_in_context(self.static_context(customers))

    def recommend_invoices(self, context: pd.DataFrame, k: int = 5) -> np.ndarray:
        """Top-k items for each invoice, from its customer and its own context (ties broken by
        popularity, as in ``recommend``)."""
        out = np.empty((len(context), k), dtype="int32")
        for start in range(0, len(context), self.score_batch):
            scores = self.scores_in_context(context.iloc[start : start + self.score_batch])
            out[start : start + len(scores)] = top_k(scores + 1e-6 * self.popularity_, k)
        return out


def evaluate_in_context(model: Hybrid, protocol, split: Split) -> dict[str, float]:
    """Score ``model`` on a protocol's invoices, each recommended in its own context."""
    context = invoice_context(split, protocol.part, model.country_encoder_)
    recs = protocol.baseline()
    known = protocol.known
    if known.any():
        recs[known] = model.recommend_invoices(context[known].reset_index(drop=True), protocol.k)
    return protocol.score(recs)
