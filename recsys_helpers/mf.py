"""Matrix factorisation recommenders for the basket protocol: ALS, SGD MF and BPR.

Every model here ends up as three arrays: user factors ``U``, item factors ``I`` and (maybe) an
item bias ``b``. A customer's score for every item is ``U[c] @ I.T + b``; the global and user
biases of the SGD model are left out because they do not change a customer's ranking.
``recommend`` is one matrix product and an ``argpartition``.

* ``ALS`` and ``ImplicitBPR`` wrap the ``implicit`` library (0.7 API: ``fit(user_items)``).
* ``SGDMF`` and ``BPR`` are Keras 3 models trained with a short ``tf.function`` step.

All follow the basket contract: ``fit(split) -> self`` and ``recommend(customers, k) -> (n, k)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .data import Split
from .protocols import top_k
from .settings import get_settings

# ---------------------------------------------------------------------------------------------
# Data: the positives of the training period


def training_pairs(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(customer, item) of every training row of a known customer, as ``int32`` arrays.

    One pair per invoice row, so an item bought often appears often (as in the source).
    """
    train = split.train[split.train["customer"] >= 0]
    return train["customer"].to_numpy("int32"), train["item"].to_numpy("int32")


def user_item_matrix(split: Split, binary: bool = True) -> sp.csr_matrix:
    """The customers x items CSR matrix of the training period.

    With ``binary=True`` a cell is 1 if the customer ever bought the item; otherwise it counts the
    invoice rows with that item (a confidence in the sense of Hu et al.).
    """
    users, items = training_pairs(split)
    matrix = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, items)),
        shape=(split.n_customers, split.n_items),
    )
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return matrix


class FactorModel:
    """Scores and recommendations from ``user_factors_``, ``item_factors_`` and ``item_bias_``."""

    user_factors_: np.ndarray
    item_factors_: np.ndarray
    item_bias_: np.ndarray | None = None
    fit_seconds_: float = float("nan")

    def scores(self, customers) -> np.ndarray:
        """(n, n_items) ranking scores of the given customer indices."""
        scores = self.user_factors_[np.asarray(customers)] @ self.item_factors_.T
        if self.item_bias_ is not None:
            scores += self.item_bias_
        return scores

    def recommend(self, customers, k: int = 5) -> np.ndarray:
        return top_k(self.scores(customers), k)

    def _fit_implicit(self, make_model: Callable, matrix: sp.csr_matrix):
        """Build and fit an ``implicit`` model (0.7: rows are users) with one BLAS thread.

        Both steps run inside the limit: ``implicit`` checks the BLAS threads when a model is made.
        """
        start = time.perf_counter()
        with _blas_single_thread():
            model = make_model()
            model.fit(matrix, show_progress=False)
        self.fit_seconds_ = time.perf_counter() - start
        self.user_factors_, self.item_factors_ = model.user_factors, model.item_factors
        return self


# ---------------------------------------------------------------------------------------------
# implicit's models


def _blas_single_thread():
    """implicit's solvers run their own threads; OpenBLAS must not (implicit warns otherwise)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, "blas")


class ALS(FactorModel):
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008) from ``implicit`` 0.7.

    Parameters
    ----------
    factors, regularization, iterations, alpha
        As in ``implicit.als.AlternatingLeastSquares``; the confidence is ``1 + alpha * cell``.
    binary
        Fit on the 0/1 matrix (as the source) or on counts of rows.
    """

    def __init__(
        self, factors=64, regularization=0.01, iterations=15, alpha=1.0, binary=True, seed=42
    ):
        self.factors, self.regularization, self.iterations = factors, regularization, iterations
        self.alpha, self.binary, self.seed = alpha, binary, seed

    def fit(self, split: Split) -> ALS:
        from implicit.als import AlternatingLeastSquares

        make_model = partial(
            AlternatingLeastSquares,
            factors=self.factors,
            regularization=self.regularization,
            iterations=self.iterations,
            alpha=self.alpha,
            random_state=self.seed,
        )
        return self._fit_implicit(make_model, user_item_matrix(split, binary=self.binary))


class ImplicitBPR(FactorModel):
    """``implicit``'s BPR (one thread, so that runs repeat exactly). Its item factors carry the
    item bias as an extra column, matched by a column of ones in the user factors."""

    def __init__(
        self, factors=128, learning_rate=0.01, regularization=0.01, iterations=100, seed=42
    ):
        self.factors, self.learning_rate, self.regularization = (
            factors,
            learning_rate,
            regularization,
        )
        self.iterations, self.seed = iterations, seed

    def fit(self, split: Split) -> ImplicitBPR:
        from implicit.bpr import BayesianPersonalizedRanking

        make_model = partial(
            BayesianPersonalizedRanking,
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            num_threads=1,
            random_state=self.seed,
        )
        return self._fit_implicit(make_model, user_item_matrix(split, binary=True))


# ---------------------------------------------------------------------------------------------
# Keras models


def _register():
    import keras

    @keras.saving.register_keras_serializable(package="recsys_helpers")
    class GlobalBias(keras.layers.Layer):
        """Adds one learned scalar (the global bias, mu) to its input."""

        def build(self, input_shape):
            self.bias = self.add_weight(shape=(), initializer="zeros", name="bias")

        def call(self, inputs):
            return inputs + self.bias

    return GlobalBias


_GLOBAL_BIAS = None


def _global_bias_layer():
    global _GLOBAL_BIAS
    if _GLOBAL_BIAS is None:
        _GLOBAL_BIAS = _register()
    return _GLOBAL_BIAS


def build_mf_model(
    n_users: int, n_items: int, factors: int, user_bias: bool = True, seed: int = 42
):
    """Score of (user, item): ``[mu + b_u] + b_i + p_u . q_i`` as a plain ``keras.Model``.

    The inputs are two integer vectors; the output is one logit per pair. ``user_bias=False``
    drops ``mu`` and ``b_u`` (BPR: they cancel in a difference of two items' scores). Factors
    start uniform in +-sqrt(2 / factors), as in the source.
    """
    import keras
    from keras import layers

    std = float(np.sqrt(2.0 / factors))
    init = keras.initializers.RandomUniform(-std, std, seed=seed)
    user = keras.Input(shape=(), dtype="int32", name="user")
    item = keras.Input(shape=(), dtype="int32", name="item")
    p_u = layers.Embedding(n_users, factors, embeddings_initializer=init, name="user_factors")(user)
    q_i = layers.Embedding(n_items, factors, embeddings_initializer=init, name="item_factors")(item)
    b_init = keras.initializers.RandomUniform(-std, std, seed=seed + 1)
    b_i = layers.Embedding(n_items, 1, embeddings_initializer=b_init, name="item_bias")(item)
    terms = [layers.Dot(axes=1, name="dot")([p_u, q_i]), b_i]
    if user_bias:
        terms.append(
            layers.Embedding(n_users, 1, embeddings_initializer=b_init, name="user_bias")(user)
        )
    logit = layers.Add(name="sum")(terms)
    if user_bias:
        logit = _global_bias_layer()(name="global_bias")(logit)
    logit = layers.Reshape((), name="logit")(logit)
    return keras.Model([user, item], logit, name="mf" if user_bias else "bpr")


class KerasFactorModel(FactorModel):
    """Shared machinery of the Keras models: the epoch loop, factors, save/load."""

    model = None
    user_bias = True

    def __init__(self, factors=128, learning_rate=0.005, epochs=10, seed=None, progress=True):
        self.factors, self.learning_rate, self.epochs = factors, learning_rate, epochs
        self.seed = get_settings().seed if seed is None else seed
        self.progress = progress
        self.history: list[dict] = []

    def _build(self, split: Split):
        import keras

        keras.utils.set_random_seed(self.seed)
        self.model = build_mf_model(
            split.n_customers, split.n_items, self.factors, self.user_bias, self.seed
        )
        self.optimizer = keras.optimizers.Adam(learning_rate=self.learning_rate)
        self._layers = {
            n: self.model.get_layer(n).embeddings
            for n in ("user_factors", "item_factors", "item_bias")
        }

    def _extract(self) -> None:
        layer = self.model.get_layer
        self.user_factors_ = np.asarray(layer("user_factors").embeddings.numpy())
        self.item_factors_ = np.asarray(layer("item_factors").embeddings.numpy())
        self.item_bias_ = np.asarray(layer("item_bias").embeddings.numpy())[:, 0]

    def fit(
        self,
        split: Split,
        epochs: int | None = None,
        callback: Callable | None = None,
        keep_best: str | None = None,
    ):
        """Train for ``epochs`` epochs; after each, ``callback(self)`` may return a dict of metrics
        that goes into ``self.history`` with the epoch's mean loss and seconds.

        With ``keep_best="precision"`` (a key of the callback's dict, higher is better) the model
        ends with the weights of its best epoch (early stopping on validation); ``best_epoch_``
        says which one.
        """
        from tqdm.auto import tqdm

        self._build(split)
        users, items = training_pairs(split)
        rng = np.random.default_rng(self.seed)
        self.history, self.fit_seconds_ = [], 0.0
        best, best_weights, self.best_epoch_ = -np.inf, None, None
        for epoch in range(1, (epochs or self.epochs) + 1):
            start = time.perf_counter()
            batches = list(self._batches(users, items, split.n_customers, split.n_items, rng))
            losses = [
                float(self._step(*batch))
                for batch in tqdm(batches, desc=f"epoch {epoch}", disable=not self.progress)
            ]
            seconds = time.perf_counter() - start
            self.fit_seconds_ += seconds
            self._extract()
            row = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": seconds}
            if callback is not None:
                row.update(callback(self) or {})
            self.history.append(row)
            if keep_best is not None and row[keep_best] > best:
                best, best_weights, self.best_epoch_ = (
                    row[keep_best],
                    self.model.get_weights(),
                    epoch,
                )
        if best_weights is not None:
            self.model.set_weights(best_weights)
            self._extract()
        return self

    def save(self, path) -> Path:
        """Save the Keras model (``.keras`` format)."""
        path = Path(path)
        self.model.save(path)
        return path

    @classmethod
    def load(cls, path) -> KerasFactorModel:
        """A recommender around a model saved with ``save``."""
        import keras

        _global_bias_layer()
        self = cls.__new__(cls)
        self.model = keras.models.load_model(path)
        self.history = []
        self._extract()
        return self


def apply_gradients(optimizer, gradients, variables) -> None:
    """``optimizer.apply_gradients`` with every gradient made dense once, beforehand.

    The gradient of an embedding lookup is a ``tf.IndexedSlices`` (rows and their values).
    Keras 3's Adam turns it into a dense tensor once for each of its two moments, and each time
    that is an ``UnsortedSegmentSum`` over every looked-up row: TensorFlow's profiler put those
    sums at more than half of a BPR training step on a CPU (benchmarks appendix). Converting
    once gives the same update in less time.
    """
    import tensorflow as tf

    optimizer.apply_gradients(
        [(tf.convert_to_tensor(g), v) for g, v in zip(gradients, variables, strict=True)]
    )


class SGDMF(KerasFactorModel):
    """Matrix factorisation as binary classification with negative sampling (the source's model).

    ``sigmoid(mu + b_u + b_i + p_u . q_i)`` is the probability that the customer bought the item;
    log loss plus ``l2`` times the squared norms of the factors looked up in the batch; Adam. Each
    epoch shuffles the positive pairs into batches of ``batch_size`` and adds ``negatives``
    random pairs per positive. With ``random_users=True`` (the source) a negative is a random
    customer with a random item, so it may by chance be a pair that was bought; with ``False`` it
    keeps the positive's customer and draws only the item.
    """

    def __init__(
        self,
        factors=128,
        l2=1e-7,
        negatives=5,
        batch_size=5000,
        learning_rate=0.005,
        epochs=10,
        random_users=True,
        seed=None,
        progress=True,
    ):
        super().__init__(factors, learning_rate, epochs, seed, progress)
        self.l2, self.negatives, self.batch_size, self.random_users = (
            l2,
            negatives,
            batch_size,
            random_users,
        )

    def _batches(self, users, items, n_users, n_items, rng):
        order = rng.permutation(len(users))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            n_neg = len(idx) * self.negatives
            neg_users = (
                rng.integers(0, n_users, n_neg, dtype="int32")
                if self.random_users
                else np.repeat(users[idx], self.negatives)
            )
            neg_items = rng.integers(0, n_items, n_neg, dtype="int32")
            labels = np.concatenate([np.ones(len(idx)), np.zeros(n_neg)]).astype("float32")
            yield (
                np.concatenate([users[idx], neg_users]),
                np.concatenate([items[idx], neg_items]),
                labels,
            )

    def _build(self, split):
        import tensorflow as tf

        super()._build(split)
        model, opt, emb, l2 = self.model, self.optimizer, self._layers, self.l2

        @tf.function(reduce_retracing=True)
        def step(users, items, labels):
            with tf.GradientTape() as tape:
                logits = model([users, items], training=True)
                loss = tf.reduce_mean(
                    tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
                )
                p_u = tf.gather(emb["user_factors"], users)
                q_i = tf.gather(emb["item_factors"], items)
                total = loss + l2 * (tf.reduce_sum(p_u * p_u) + tf.reduce_sum(q_i * q_i))
            variables = model.trainable_variables
            apply_gradients(opt, tape.gradient(total, variables), variables)
            return loss

        self._step = step


class BPR(KerasFactorModel):
    """BPR-Opt (Rendle et al. 2009): ``-log sigmoid(x_ui - x_uj)`` with ``x_ui = b_i + p_u . q_i``.

    Each step draws ``batch_size`` (customer, bought item) pairs uniformly with replacement
    (bootstrap sampling) and a uniformly random item ``j`` for each; an epoch is
    ``steps_per_epoch`` steps. The regulariser is ``l2_user ||p_u||^2 + l2_item (||q_i||^2 +
    ||q_j||^2) + l2_bias (b_i^2 + b_j^2)`` over the batch: squares of the biases, where the source
    summed the raw biases (which rewards negative biases instead of shrinking them).
    """

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
        seed=None,
        progress=True,
    ):
        super().__init__(factors, learning_rate, epochs, seed, progress)
        self.l2_user, self.l2_item, self.l2_bias = l2_user, l2_item, l2_bias
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch

    def _batches(self, users, items, n_users, n_items, rng):
        for _ in range(self.steps_per_epoch):
            idx = rng.integers(0, len(users), self.batch_size)
            yield users[idx], items[idx], rng.integers(0, n_items, self.batch_size, dtype="int32")

    def _build(self, split):
        import tensorflow as tf

        super()._build(split)
        model, opt, emb = self.model, self.optimizer, self._layers
        l2_user, l2_item, l2_bias = self.l2_user, self.l2_item, self.l2_bias

        @tf.function(reduce_retracing=True)
        def step(users, pos, neg):
            with tf.GradientTape() as tape:
                x_uij = model([users, pos], training=True) - model([users, neg], training=True)
                loss = -tf.reduce_mean(tf.math.log_sigmoid(x_uij))
                p_u = tf.gather(emb["user_factors"], users)
                q = tf.gather(emb["item_factors"], tf.concat([pos, neg], 0))
                b = tf.gather(emb["item_bias"], tf.concat([pos, neg], 0))
                reg = (
                    l2_user * tf.reduce_sum(p_u * p_u)
                    + l2_item * tf.reduce_sum(q * q)
                    + l2_bias * tf.reduce_sum(b * b)
                )
                total = loss + reg
            variables = model.trainable_variables
            apply_gradients(opt, tape.gradient(total, variables), variables)
            return loss

        self._step = step
