"""Matrix factorisation recommenders for the basket protocol: ALS, SGD MF and BPR.

Every model here ends up as three arrays: customer factors ``U``, item factors ``I`` and (maybe) an
item bias ``b``. A customer's score for every item is ``U[c] @ I.T + b``; the global and user
biases of the SGD model are left out because they do not change a customer's ranking.
``recommend`` is one matrix product and an ``argpartition``.

* ``ALS`` and ``ImplicitBPR`` wrap the ``implicit`` library (0.7 API: ``fit(user_items)``).
* ``SGDMF`` and ``BPR`` are Keras 3 models trained by the book's one training loop
  (``base.KerasTrainer``): each supplies its batches, its loss and its regulariser.

All follow the basket contract: ``fit(split) -> self`` and ``recommend(customers, k) -> (n, k)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from implicit.als import AlternatingLeastSquares
from implicit.bpr import BayesianPersonalizedRanking
from keras import layers
from threadpoolctl import threadpool_limits

from ..datasets.retail import Split
from ..interactions import customer_item_matrix, item_popularity, training_pairs
from ..settings import get_settings
from .base import FactorModel, KerasTrainer, shuffled_batches
from .layers import GlobalBias


def _blas_single_thread():
    """implicit's solvers run their own threads; OpenBLAS must not (implicit warns otherwise)."""
    return threadpool_limits(1, "blas")


class ImplicitModel(FactorModel):
    """A model of the ``implicit`` library (0.7 API: rows of the matrix are customers)."""

    def _fit_implicit(self, make_model: Callable, split: Split, binary: bool):
        """Build and fit an ``implicit`` model with one BLAS thread.

        Both steps run inside the limit: ``implicit`` checks the BLAS threads when a model is made.
        """
        self.popularity_ = item_popularity(split)
        matrix = customer_item_matrix(split, binary=binary)
        start = time.perf_counter()
        with _blas_single_thread():
            model = make_model(random_state=self.seed)
            model.fit(matrix, show_progress=False)
        self.fit_seconds_ = time.perf_counter() - start
        self.customer_factors_, self.item_factors_ = model.user_factors, model.item_factors
        return self


# ---------------------------------------------------------------------------------------------
# implicit's models


class ALS(ImplicitModel):
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008) from ``implicit`` 0.7.

    Parameters
    ----------
    factors, regularization, iterations, alpha
        As in ``implicit.als.AlternatingLeastSquares``; the confidence is ``1 + alpha * cell``.
    binary
        Fit on the 0/1 matrix (as the source) or on counts of rows.
    """

    def __init__(
        self, factors=64, regularization=0.01, iterations=15, alpha=1.0, binary=True, seed=None
    ):
        self.factors, self.regularization, self.iterations = factors, regularization, iterations
        self.alpha, self.binary = alpha, binary
        self.seed = get_settings().seed if seed is None else seed

    def fit(self, split: Split) -> ALS:
        make_model = partial(
            AlternatingLeastSquares,
            factors=self.factors,
            regularization=self.regularization,
            iterations=self.iterations,
            alpha=self.alpha,
        )
        return self._fit_implicit(make_model, split, binary=self.binary)


class ImplicitBPR(ImplicitModel):
    """``implicit``'s BPR (one thread, so that runs repeat exactly). Its item factors carry the
    item bias as an extra column, matched by a column of ones in the user factors."""

    def __init__(
        self, factors=128, learning_rate=0.01, regularization=0.01, iterations=100, seed=None
    ):
        self.factors, self.learning_rate, self.regularization = factors, learning_rate, regularization
        self.iterations = iterations
        self.seed = get_settings().seed if seed is None else seed

    def fit(self, split: Split) -> ImplicitBPR:
        make_model = partial(
            BayesianPersonalizedRanking,
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            num_threads=1,
        )
        return self._fit_implicit(make_model, split, binary=True)


# ---------------------------------------------------------------------------------------------
# The configurations of the chapters (read there and by ``make bench``)

#: ALS as chapter 2's grid chooses it on validation (the chapter checks that it still does).
ALS_CHOSEN = {"factors": 256, "regularization": 10.0}
#: The source chapter's SGD MF, and the one chapter 3 chooses on validation.
SGD_MF_SOURCE = {
    "factors": 128, "l2": 1e-7, "negatives": 5, "batch_size": 5000, "learning_rate": 0.005,
    "random_users": True, "epochs": 10, "source_init": True,
}
SGD_MF_CHOSEN = SGD_MF_SOURCE | {"l2": 3e-8, "random_users": False, "source_init": False}
#: The source chapter's BPR (its "penalty" on the raw biases and its bias initialisation), and
#: BPR as chapter 4 trains it.
BPR_SOURCE = {
    "factors": 128, "l2_user": 1e-7, "l2_item": 1e-7, "l2_bias": 1e-7, "batch_size": 15_000,
    "steps_per_epoch": 30, "learning_rate": 0.0005, "epochs": 75, "source_init": True,
    "source_penalty": True,
}
BPR_CHOSEN = BPR_SOURCE | {
    "factors": 256, "learning_rate": 0.002, "epochs": 30, "source_init": False,
    "source_penalty": False,
}


# ---------------------------------------------------------------------------------------------
# Keras models


def build_mf_model(
    n_users: int,
    n_items: int,
    factors: int,
    user_bias: bool = True,
    seed: int = 42,
    source_init: bool = False,
) -> keras.Model:
    """Score of (user, item): ``[mu + b_u] + b_i + p_u . q_i`` as a plain ``keras.Model``.

    The inputs are two integer vectors; the output is one logit per pair. ``user_bias=False``
    drops ``mu`` and ``b_u`` (BPR: they cancel in a difference of two items' scores). Factors
    start uniform in +-sqrt(2 / factors), as in the source. So do the biases, where the source's
    ``embed(..., dim=1)`` starts them in +-sqrt(2 / 1), about +-1.4 (``source_init=True``).
    """
    std = float(np.sqrt(2.0 / factors))
    init = keras.initializers.RandomUniform(-std, std, seed=seed)
    b_std = float(np.sqrt(2.0)) if source_init else std
    user = keras.Input(shape=(), dtype="int32", name="user")
    item = keras.Input(shape=(), dtype="int32", name="item")
    p_u = layers.Embedding(n_users, factors, embeddings_initializer=init, name="user_factors")(user)
    q_i = layers.Embedding(n_items, factors, embeddings_initializer=init, name="item_factors")(item)
    b_init = keras.initializers.RandomUniform(-b_std, b_std, seed=seed + 1)
    b_i = layers.Embedding(n_items, 1, embeddings_initializer=b_init, name="item_bias")(item)
    terms = [layers.Dot(axes=1, name="dot")([p_u, q_i]), b_i]
    if user_bias:
        terms.append(
            layers.Embedding(n_users, 1, embeddings_initializer=b_init, name="user_bias")(user)
        )
    logit = layers.Add(name="sum")(terms)
    if user_bias:
        logit = GlobalBias(name="global_bias")(logit)
    logit = layers.Reshape((), name="logit")(logit)
    return keras.Model([user, item], logit, name="mf" if user_bias else "bpr")


class KerasFactorModel(KerasTrainer, FactorModel):
    """A factor model trained by the book's training loop: the network of ``build_mf_model``,
    whose factors are copied out after every epoch for scoring."""

    user_bias = True

    def __init__(
        self,
        factors=128,
        batch_size=5000,
        learning_rate=0.005,
        epochs=10,
        source_init=False,
        seed=None,
        progress=True,
    ):
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        self.factors, self.source_init = factors, source_init

    def build(self, split: Split) -> list:
        self.popularity_ = item_popularity(split)
        self.n_customers, self.n_items = split.n_customers, split.n_items
        self.customers_, self.items_ = training_pairs(split)
        self.model = build_mf_model(
            split.n_customers, split.n_items, self.factors, self.user_bias, self.seed, self.source_init
        )
        self._embeddings = {
            n: self.model.get_layer(n).embeddings
            for n in ("user_factors", "item_factors", "item_bias")
        }
        return [self.model]

    def on_epoch_end(self) -> None:
        self.customer_factors_ = self._embeddings["user_factors"].numpy()
        self.item_factors_ = self._embeddings["item_factors"].numpy()
        self.item_bias_ = self._embeddings["item_bias"].numpy()[:, 0]

    def save(self, path) -> Path:
        """Save the Keras model (``.keras`` format)."""
        path = Path(path)
        self.model.save(path)
        return path

    @classmethod
    def load(cls, path) -> KerasFactorModel:
        """A recommender around a model saved with ``save`` (ties broken by item index: the
        training popularity is not part of the saved model)."""
        self = cls.__new__(cls)
        self.model = keras.models.load_model(path)
        self._embeddings = {
            n: self.model.get_layer(n).embeddings
            for n in ("user_factors", "item_factors", "item_bias")
        }
        self.on_epoch_end()
        self.popularity_ = np.zeros(len(self.item_factors_))
        return self


class SGDMF(KerasFactorModel):
    """Matrix factorisation as binary classification with negative sampling (the source's model).

    ``sigmoid(mu + b_u + b_i + p_u . q_i)`` is the probability that the customer bought the item;
    log loss plus ``l2`` times the squared norms of the factors looked up in the batch; Adam. Each
    epoch shuffles the positive pairs into batches of ``batch_size`` and adds ``negatives``
    random pairs per positive. With ``random_users=True`` (the source) a negative is a random
    customer with a random item, so it may by chance be a pair that was bought; with ``False`` it
    keeps the positive's customer and draws only the item.
    """

    name = "SGD MF"

    def __init__(
        self,
        factors=128,
        l2=1e-7,
        negatives=5,
        batch_size=5000,
        learning_rate=0.005,
        epochs=10,
        random_users=True,
        source_init=False,
        seed=None,
        progress=True,
    ):
        super().__init__(factors, batch_size, learning_rate, epochs, source_init, seed, progress)
        self.l2, self.negatives, self.random_users = l2, negatives, random_users

    def batches(self, rng):
        users, items = self.customers_, self.items_
        for idx in shuffled_batches(len(users), self.batch_size, rng):
            n_neg = len(idx) * self.negatives
            neg_users = (
                rng.integers(0, self.n_customers, n_neg, dtype="int32")
                if self.random_users
                else np.repeat(users[idx], self.negatives)
            )
            neg_items = rng.integers(0, self.n_items, n_neg, dtype="int32")
            labels = np.concatenate([np.ones(len(idx)), np.zeros(n_neg)]).astype("float32")
            yield (
                np.concatenate([users[idx], neg_users]),
                np.concatenate([items[idx], neg_items]),
                labels,
            )

    def compute_loss(self, batch, training=True):
        users, items, labels = batch
        logits = self.model([users, items], training=training)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))

    def regularization(self, batch):
        users, items, _ = batch
        p_u = tf.gather(self._embeddings["user_factors"], users)
        q_i = tf.gather(self._embeddings["item_factors"], items)
        return self.l2 * (tf.reduce_sum(p_u * p_u) + tf.reduce_sum(q_i * q_i))


class BPR(KerasFactorModel):
    """BPR-Opt (Rendle et al. 2009): ``-log sigmoid(x_ui - x_uj)`` with ``x_ui = b_i + p_u . q_i``.

    Each step draws ``batch_size`` (customer, bought item) pairs uniformly with replacement
    (bootstrap sampling) and a uniformly random item ``j`` for each; an epoch is
    ``steps_per_epoch`` steps. The regulariser is ``l2_user ||p_u||^2 + l2_item (||q_i||^2 +
    ||q_j||^2) + l2_bias (b_i^2 + b_j^2)`` over the batch: squares of the biases, where the source
    summed the raw biases, which rewards negative biases instead of shrinking them
    (``source_penalty=True`` reproduces it).
    """

    name = "BPR"
    user_bias = False

    def __init__(
        self,
        factors=128,
        l2_user=1e-7,
        l2_item=1e-7,
        l2_bias=1e-7,
        batch_size=15000,
        steps_per_epoch=30,
        learning_rate=0.0005,
        epochs=75,
        source_init=False,
        source_penalty=False,
        seed=None,
        progress=True,
    ):
        super().__init__(factors, batch_size, learning_rate, epochs, source_init, seed, progress)
        self.l2_user, self.l2_item, self.l2_bias = l2_user, l2_item, l2_bias
        self.steps_per_epoch, self.source_penalty = steps_per_epoch, source_penalty

    def batches(self, rng):
        for _ in range(self.steps_per_epoch):
            idx = rng.integers(0, len(self.customers_), self.batch_size)
            negatives = rng.integers(0, self.n_items, self.batch_size, dtype="int32")
            yield self.customers_[idx], self.items_[idx], negatives

    def compute_loss(self, batch, training=True):
        users, pos, neg = batch
        x_uij = self.model([users, pos], training=training) - self.model([users, neg], training=training)
        return -tf.reduce_mean(tf.math.log_sigmoid(x_uij))

    def regularization(self, batch):
        users, pos, neg = batch
        both = tf.concat([pos, neg], 0)
        p_u = tf.gather(self._embeddings["user_factors"], users)
        q = tf.gather(self._embeddings["item_factors"], both)
        b = tf.gather(self._embeddings["item_bias"], both)
        bias_penalty = tf.reduce_sum(b) if self.source_penalty else tf.reduce_sum(b * b)
        return (
            self.l2_user * tf.reduce_sum(p_u * p_u)
            + self.l2_item * tf.reduce_sum(q * q)
            + self.l2_bias * bias_penalty
        )
