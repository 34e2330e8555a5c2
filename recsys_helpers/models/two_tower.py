"""Two-tower retrieval with Keras 3 and keras-rs: query and candidate towers, in-batch softmax.

The query tower embeds a customer (their id and country); the candidate tower embeds an item
(its stock code and the words of its description). Their dot product is the affinity score.
Training treats the other items of a batch as negatives (in-batch softmax); a duplicate of the
positive item elsewhere in the batch is an *accidental hit* and is masked out of the softmax.
Serving is a brute-force top-k over the candidate embeddings
(``keras_rs.layers.BruteForceRetrieval``).
"""

from __future__ import annotations

import keras
import keras_rs
import numpy as np
import tensorflow as tf
from keras import layers, ops

from ..datasets.retail import Split
from ..features import customer_countries, description_tokens
from ..interactions import item_popularity, training_pairs
from .base import FactorModel, KerasTrainer
from .layers import MeanOfWords

#: The two-tower model chapter 10 trains (its settings chosen on validation).
TWO_TOWER_CHOSEN = {
    "dim": 32, "epochs": 4, "batch_size": 1024, "learning_rate": 0.01, "temperature": 0.1,
}


def remove_accidental_hits(logits, labels, candidate_ids):
    """Mask in-batch negatives that are the positive item itself (a fixed ``RemoveAccidentalHits``).

    keras-rs 0.4.0's layer adds ``smallest_normal / 100`` (about 1e-40) to those logits, which
    leaves float32 logits unchanged (keras-team/keras-rs#206); here they get a large negative value.
    ``candidate_ids`` has one id per column; ``labels`` is one-hot per row.
    """
    positive_ids = ops.take(candidate_ids, ops.argmax(labels, axis=-1), axis=0)
    same = ops.equal(positive_ids[:, None], candidate_ids[None, :])
    duplicate = ops.cast(same, logits.dtype) - labels
    return logits - 1e9 * duplicate


def build_towers(
    n_customers: int, n_countries: int, n_items: int, n_words: int, dim: int = 32, seed: int = 42
) -> tuple[keras.Model, keras.Model]:
    """The query tower ``(customer, country) -> R^dim`` and the candidate tower
    ``(item, words) -> R^dim``, each a functional ``keras.Model``."""

    def emb(n, name):
        init = keras.initializers.RandomNormal(stddev=0.05, seed=seed + len(name))
        return layers.Embedding(n, dim, embeddings_initializer=init, name=name)

    def dense(name, seed):
        glorot = keras.initializers.GlorotUniform(seed)
        return layers.Dense(dim, kernel_initializer=glorot, name=name)

    customer = keras.Input(shape=(), dtype="int32", name="customer")
    country = keras.Input(shape=(), dtype="int32", name="country")
    q = layers.Concatenate()(
        [emb(n_customers, "customer_id")(customer), emb(n_countries, "country_id")(country)]
    )
    q = dense("query_dense", seed)(q)
    query = keras.Model({"customer": customer, "country": country}, q, name="query_tower")

    item = keras.Input(shape=(), dtype="int32", name="item")
    words = keras.Input(shape=(None,), dtype="int32", name="words")
    text = MeanOfWords(name="mean_words")(emb(n_words, "word_id")(words), words)
    c = layers.Concatenate()([emb(n_items, "item_id")(item), text])
    c = dense("candidate_dense", seed + 1)(c)
    candidate = keras.Model({"item": item, "words": words}, c, name="candidate_tower")
    return query, candidate


class TwoTower(KerasTrainer, FactorModel):
    """Two-tower retrieval model trained with in-batch softmax on the invoice rows.

    Parameters
    ----------
    dim
        Size of the shared embedding space.
    temperature
        Logits are divided by it before the softmax.
    remove_hits
        Mask accidental hits (the positive item appearing again in the batch).
    sampling_correction
        Subtract the log of each in-batch candidate's sampling probability from its logit (the
        "logQ" correction of Yi et al., 2019, ``keras_rs.layers.SamplingProbabilityCorrection``).
        In-batch negatives are drawn in proportion to popularity; without the correction the
        model learns to push popular items down.
    epochs, batch_size, learning_rate, seed, progress
        The training loop's (``base.KerasTrainer``); ``batch_size`` is the number of in-batch
        candidates.
    """

    name = "two-tower"

    def __init__(
        self,
        dim: int = 32,
        epochs: int = 3,
        batch_size: int = 1024,
        learning_rate: float = 0.01,
        temperature: float = 0.1,
        remove_hits: bool = True,
        sampling_correction: bool = True,
        seed: int | None = None,
        progress: bool = True,
    ):
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        self.dim, self.temperature = dim, temperature
        self.remove_hits, self.sampling_correction = remove_hits, sampling_correction

    def build(self, split: Split) -> list:
        self.n_customers, self.n_items = split.n_customers, split.n_items
        self.popularity_ = item_popularity(split)
        self.customers_, self.items_ = training_pairs(split)
        frequency = np.bincount(self.items_, minlength=self.n_items).astype("float32")
        self.sampling_probability_ = frequency / frequency.sum()
        self.correction_ = keras_rs.layers.SamplingProbabilityCorrection()
        self.countries_, self.country_encoder_ = customer_countries(split)
        self.words_, self.vocabulary_ = description_tokens(split)
        self.query_, self.candidate_ = build_towers(
            self.n_customers, len(self.country_encoder_), self.n_items, len(self.vocabulary_) + 1,
            self.dim, self.seed,
        )
        return [self.query_, self.candidate_]

    def batches(self, rng):
        """The shuffled training rows in batches of (almost) equal size: a short last batch would
        give its queries only a few in-batch negatives."""
        order = rng.permutation(len(self.customers_))
        for rows in np.array_split(order, max(1, len(order) // self.batch_size)):
            yield self.customers_[rows], self.items_[rows]

    def compute_loss(self, batch, training=True):
        """In-batch softmax: each customer's own item against the batch's other items."""
        customers, items = batch
        countries = tf.gather(self.countries_, customers)
        q = self.query_({"customer": customers, "country": countries}, training=training)
        words = tf.gather(self.words_, items)
        v = self.candidate_({"item": items, "words": words}, training=training)
        logits = tf.matmul(q, v, transpose_b=True) / self.temperature
        if self.sampling_correction:
            probability = tf.gather(self.sampling_probability_, items)[None, :]
            logits = self.correction_(logits, probability)
        labels = tf.eye(tf.shape(customers)[0])
        if self.remove_hits:
            logits = remove_accidental_hits(logits, labels, items)
        return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels, logits))

    def on_epoch_end(self) -> None:
        """Embed every customer and every item once (the candidates of the brute-force index)."""
        customers = np.arange(self.n_customers, dtype="int32")
        query = self.query_({"customer": customers, "country": self.countries_})
        self.customer_factors_ = np.asarray(query)
        items = np.arange(self.n_items, dtype="int32")
        self.item_factors_ = np.asarray(self.candidate_({"item": items, "words": self.words_}))

    def index(self, k: int = 10) -> keras_rs.layers.BruteForceRetrieval:
        """A keras-rs brute-force top-k index over every item's candidate embedding."""
        return keras_rs.layers.BruteForceRetrieval(
            candidate_embeddings=self.item_factors_,
            candidate_ids=np.arange(self.n_items, dtype="int32"),
            k=k,
        )
