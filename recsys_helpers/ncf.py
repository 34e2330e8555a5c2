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

import time

import numpy as np

from .beyond import ScoreRecommender, item_popularity, sample_negatives, unique_pairs
from .data import Split
from .mf import training_pairs
from .settings import get_settings


def build_neumf(
    n_customers: int,
    n_items: int,
    gmf_dim: int = 16,
    mlp_dims: tuple[int, ...] = (32, 16, 8),
    kind: str = "neumf",
    l2: float = 0.0,
    seed: int = 42,
):
    """NeuMF (or only its ``"gmf"`` / ``"mlp"`` branch) as a ``keras.Model`` returning a logit.

    Inputs are ``{"customer": (batch,), "item": (batch,)}`` integer indices. The MLP embeddings
    have ``mlp_dims[0] // 2`` dimensions each, so that their concatenation feeds the first layer.
    """
    import keras
    from keras import layers

    if kind not in ("neumf", "gmf", "mlp"):
        raise ValueError("kind must be 'neumf', 'gmf' or 'mlp'")
    init = keras.initializers.RandomNormal(stddev=0.01, seed=seed)
    reg = keras.regularizers.L2(l2) if l2 else None
    customer = keras.Input(shape=(), dtype="int32", name="customer")
    item = keras.Input(shape=(), dtype="int32", name="item")
    branches = []
    if kind in ("neumf", "gmf"):
        gmf_c = layers.Embedding(n_customers, gmf_dim, embeddings_initializer=init, embeddings_regularizer=reg, name="gmf_customer")(customer)
        gmf_i = layers.Embedding(n_items, gmf_dim, embeddings_initializer=init, embeddings_regularizer=reg, name="gmf_item")(item)
        branches.append(layers.Multiply(name="gmf")([gmf_c, gmf_i]))
    if kind in ("neumf", "mlp"):
        half = mlp_dims[0] // 2
        mlp_c = layers.Embedding(n_customers, half, embeddings_initializer=init, embeddings_regularizer=reg, name="mlp_customer")(customer)
        mlp_i = layers.Embedding(n_items, half, embeddings_initializer=init, embeddings_regularizer=reg, name="mlp_item")(item)
        x = layers.Concatenate(name="mlp_input")([mlp_c, mlp_i])
        for n, units in enumerate(mlp_dims[1:]):
            x = layers.Dense(units, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed + n), name=f"mlp_{n}")(x)
        branches.append(x)
    joined = branches[0] if len(branches) == 1 else layers.Concatenate(name="neumf")(branches)
    logit = layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed + 99), name="logit")(joined)
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


class NCF(ScoreRecommender):
    """NeuMF / GMF / MLP trained pointwise with sampled negatives, as a basket recommender."""

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
        self.kind, self.gmf_dim, self.mlp_dims = kind, gmf_dim, tuple(mlp_dims)
        self.epochs, self.n_negatives, self.train_batch = epochs, n_negatives, batch_size
        self.learning_rate, self.l2, self.positives = learning_rate, l2, positives
        self.seed = get_settings().seed if seed is None else seed
        self.progress = progress
        self.batch_size = 64  # customers scored at once: 64 x n_items pairs
        self.history_: list[float] = []

    def fit(self, split: Split, callback=None) -> NCF:
        import keras
        from tqdm.auto import tqdm

        start = time.perf_counter()
        self.n_items = split.n_items
        self.popularity_ = item_popularity(split)
        self.model_ = build_neumf(
            split.n_customers, split.n_items, self.gmf_dim, self.mlp_dims, self.kind, self.l2, self.seed
        )
        self.model_.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
        )
        customers, items = training_pairs(split) if self.positives == "rows" else unique_pairs(split)
        rng = np.random.default_rng(self.seed)
        for epoch in tqdm(range(self.epochs), desc=f"{self.kind} epochs", disable=not self.progress):
            c, i, y = pointwise_epoch(customers, items, self.n_items, self.n_negatives, rng)
            history = self.model_.fit(
                {"customer": c, "item": i}, y, batch_size=self.train_batch, epochs=1, shuffle=False, verbose=0
            )
            self.history_.append(float(history.history["loss"][-1]))
            if callback is not None:
                callback(epoch, self)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def scores(self, customers):
        customers = np.asarray(customers, dtype="int32")
        c = np.repeat(customers, self.n_items)
        i = np.tile(np.arange(self.n_items, dtype="int32"), len(customers))
        logits = self._predict({"customer": c, "item": i})
        return np.asarray(logits).reshape(len(customers), self.n_items)

    def _predict(self, inputs):
        if not hasattr(self, "_predict_fn"):
            import tensorflow as tf

            self._predict_fn = tf.function(lambda x: self.model_(x, training=False), reduce_retracing=True)
        return self._predict_fn(inputs)
