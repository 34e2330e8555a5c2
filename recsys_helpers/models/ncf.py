"""Neural collaborative filtering (He et al., 2017): GMF, MLP and their fusion NeuMF.

Implicit data has only positives (what a customer bought). Each epoch pairs every positive with
``n_negatives`` random items labelled 0, and the model learns to tell them apart with a binary
cross-entropy, the "pointwise" training of the NCF paper.

* GMF: the element-wise product of a customer and an item embedding, weighted by a dense layer
  (matrix factorisation when the weights are all ones);
* MLP: customer and item embeddings (separate ones) concatenated and passed through a tower;
* NeuMF: both branches side by side, concatenated into one logit.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from ..datasets.retail import Split
from ..interactions import item_popularity, sample_negatives, training_pairs, unique_pairs
from .base import KerasTrainer, ScoreRecommender

#: NeuMF as chapter 11 trains it (sizes, epochs and learning rate chosen on validation); the
#: chapter trains its GMF and MLP branches alone with the same settings.
NCF_CHOSEN = {
    "gmf_dim": 32, "mlp_dims": (64, 32, 16), "epochs": 7, "n_negatives": 4, "l2": 1e-6,
    "learning_rate": 0.002,
}


def build_neumf(
    n_customers: int,
    n_items: int,
    gmf_dim: int = 16,
    mlp_dims: tuple[int, ...] = (32, 16, 8),
    kind: str = "neumf",
    l2: float = 0.0,
    seed: int = 42,
) -> keras.Model:
    """NeuMF (or only its ``"gmf"`` / ``"mlp"`` branch) as a ``keras.Model`` returning a logit.

    Inputs are ``{"customer": (batch,), "item": (batch,)}`` integer indices. The MLP embeddings
    have ``mlp_dims[0] // 2`` dimensions each, so that their concatenation feeds the first layer.
    ``l2`` penalises the squared norms of the embedding tables (their ``model.losses``).
    """
    if kind not in ("neumf", "gmf", "mlp"):
        raise ValueError("kind must be 'neumf', 'gmf' or 'mlp'")
    init = keras.initializers.RandomNormal(stddev=0.01, seed=seed)
    reg = keras.regularizers.L2(l2) if l2 else None

    def embedding(n, dim, name):
        return layers.Embedding(
            n, dim, embeddings_initializer=init, embeddings_regularizer=reg, name=name
        )

    customer = keras.Input(shape=(), dtype="int32", name="customer")
    item = keras.Input(shape=(), dtype="int32", name="item")
    branches = []
    if kind in ("neumf", "gmf"):
        gmf_c = embedding(n_customers, gmf_dim, "gmf_customer")(customer)
        gmf_i = embedding(n_items, gmf_dim, "gmf_item")(item)
        branches.append(layers.Multiply(name="gmf")([gmf_c, gmf_i]))
    if kind in ("neumf", "mlp"):
        half = mlp_dims[0] // 2
        mlp_c = embedding(n_customers, half, "mlp_customer")(customer)
        mlp_i = embedding(n_items, half, "mlp_item")(item)
        x = layers.Concatenate(name="mlp_input")([mlp_c, mlp_i])
        for n, units in enumerate(mlp_dims[1:]):
            glorot = keras.initializers.GlorotUniform(seed + n)
            dense = layers.Dense(units, "relu", kernel_initializer=glorot, name=f"mlp_{n}")
            x = dense(x)
        branches.append(x)
    joined = branches[0] if len(branches) == 1 else layers.Concatenate(name="neumf")(branches)
    glorot = keras.initializers.GlorotUniform(seed + 99)
    logit = layers.Dense(1, kernel_initializer=glorot, name="logit")(joined)
    return keras.Model({"customer": customer, "item": item}, layers.Reshape(())(logit), name=kind)


def pointwise_epoch(customers, items, n_items: int, n_negatives: int, rng: np.random.Generator):
    """One epoch of pointwise training data: every positive plus ``n_negatives`` random items.

    Returns shuffled ``(customer, item, label)`` arrays.
    """
    neg_items = sample_negatives(n_items, len(items) * n_negatives, rng)
    all_c = np.concatenate([customers, np.repeat(customers, n_negatives)])
    all_i = np.concatenate([items, neg_items])
    labels = np.concatenate([np.ones(len(items)), np.zeros(len(neg_items))]).astype("float32")
    order = rng.permutation(len(all_c))
    return all_c[order], all_i[order], labels[order]


class NCF(KerasTrainer, ScoreRecommender):
    """NeuMF / GMF / MLP trained pointwise with sampled negatives, as a basket recommender.

    Parameters
    ----------
    kind, gmf_dim, mlp_dims, l2
        The network (``build_neumf``).
    n_negatives
        Random items per positive in each epoch (``pointwise_epoch``).
    positives
        ``"rows"``: one positive per training row (an item re-ordered often counts often);
        ``"pairs"``: one per distinct (customer, item) pair.
    epochs, batch_size, learning_rate, seed, progress
        The training loop's (``base.KerasTrainer``).
    """

    name = "NCF"
    score_batch = 64  # customers scored at once: 64 x n_items pairs through the network

    def __init__(
        self,
        kind: str = "neumf",
        gmf_dim: int = 16,
        mlp_dims: tuple[int, ...] = (32, 16, 8),
        epochs: int = 5,
        n_negatives: int = 4,
        batch_size: int = 4096,
        learning_rate: float = 0.002,
        l2: float = 0.0,
        positives: str = "rows",
        seed: int | None = None,
        progress: bool = True,
    ):
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        self.kind, self.gmf_dim, self.mlp_dims = kind, gmf_dim, tuple(mlp_dims)
        self.n_negatives, self.l2, self.positives = n_negatives, l2, positives

    def build(self, split: Split) -> list:
        self.n_items = split.n_items
        self.popularity_ = item_popularity(split)
        pairs = training_pairs(split) if self.positives == "rows" else unique_pairs(split)
        self.customers_, self.items_ = pairs
        self.model_ = build_neumf(
            split.n_customers, split.n_items, self.gmf_dim, self.mlp_dims, self.kind, self.l2,
            self.seed,
        )
        self._predict = tf.function(
            lambda inputs: self.model_(inputs, training=False), reduce_retracing=True
        )
        return [self.model_]

    def batches(self, rng):
        customers, items, labels = pointwise_epoch(
            self.customers_, self.items_, self.n_items, self.n_negatives, rng
        )
        for start in range(0, len(labels), self.batch_size):
            rows = slice(start, start + self.batch_size)
            yield customers[rows], items[rows], labels[rows]

    def compute_loss(self, batch, training=True):
        """Binary cross-entropy of the logits against bought (1) / random (0)."""
        customers, items, labels = batch
        logits = self.model_({"customer": customers, "item": items}, training=training)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))

    def regularization(self, batch):
        """The L2 penalties of the embedding tables (``l2``; none when it is 0)."""
        return tf.add_n(self.model_.losses) if self.model_.losses else 0.0

    def scores(self, customers):
        customers = np.asarray(customers, dtype="int32")
        c = np.repeat(customers, self.n_items)
        i = np.tile(np.arange(self.n_items, dtype="int32"), len(customers))
        logits = self._predict({"customer": c, "item": i})
        return np.asarray(logits).reshape(len(customers), self.n_items)
