"""The models' side of the three protocols, the one ``recommend``, and the one Keras training loop.

Contracts (what every model of a protocol offers; ``tests/test_contracts.py`` checks each model):

* basket (``evaluation.basket``): ``fit(split) -> self``, ``recommend(customers, k) -> (n, k)``
  item codes, best first, for known customer indices;
* next item (``evaluation.next_item``): ``fit(split) -> self``, ``next_items(invoices, k) ->
  (steps, k)`` sequence codes;
* ratings (``evaluation.ratings``): ``fit(frame) -> self``, ``predict(frame) -> ratings`` and
  ``score_users(users, context) -> (n, n_movies)`` for the ranking task.

``ScoreRecommender`` turns ``scores(customers) -> (n, n_items)`` into the basket contract: it is
the book's one ``recommend``. ``KerasTrainer`` is its one training loop: a model supplies its
networks (``build``), its batches and its loss (``compute_loss``, the pattern of TensorFlow
Recommenders' ``Model``); the loop, the optimizer step, the progress bar, the history, keeping the
best epoch and the seed are shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from ..datasets.retail import Split
from ..evaluation.metrics import top_k
from ..interactions import Invoices
from ..settings import get_settings

# ---------------------------------------------------------------------------------------------
# The contracts


class BasketRecommender(Protocol):
    def fit(self, split: Split) -> BasketRecommender: ...

    def recommend(self, customers: np.ndarray, k: int = 5) -> np.ndarray: ...


class NextItemRecommender(Protocol):
    def fit(self, split: Split) -> NextItemRecommender: ...

    def next_items(self, invoices: Invoices, k: int = 5) -> np.ndarray: ...


class RatingModel(Protocol):
    def fit(self, frame: pd.DataFrame) -> RatingModel: ...

    def predict(self, frame: pd.DataFrame) -> np.ndarray: ...

    def score_users(self, users: np.ndarray, context: np.ndarray | None = None) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# The one recommend


class ScoreRecommender:
    """The basket contract on top of ``scores(customers) -> (n, n_items)``.

    Subclasses implement ``scores`` for an array of distinct customer indices and set
    ``popularity_`` (training popularity scaled to [0, 1], see ``interactions.item_popularity``),
    which breaks ties between equal scores. ``recommend`` scores each distinct customer once,
    ``score_batch`` customers at a time.
    """

    popularity_: np.ndarray
    score_batch: int = 512

    def scores(self, customers: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, customers, k: int = 5) -> np.ndarray:
        customers = np.atleast_1d(np.asarray(customers))
        distinct, back = np.unique(customers, return_inverse=True)
        out = np.empty((len(distinct), k), dtype="int32")
        for start in range(0, len(distinct), self.score_batch):
            chunk = distinct[start : start + self.score_batch]
            scores = np.asarray(self.scores(chunk), dtype=np.float64)
            out[start : start + len(chunk)] = top_k(scores + 1e-6 * self.popularity_, k)
        return out[back.ravel()]


class FactorModel(ScoreRecommender):
    """Scores from ``customer_factors_ @ item_factors_.T (+ item_bias_)``: every factor model."""

    customer_factors_: np.ndarray
    item_factors_: np.ndarray
    item_bias_: np.ndarray | None = None

    def scores(self, customers) -> np.ndarray:
        scores = self.customer_factors_[np.asarray(customers)] @ self.item_factors_.T
        if self.item_bias_ is not None:
            scores = scores + self.item_bias_
        return scores


# ---------------------------------------------------------------------------------------------
# The one training loop


def apply_gradients(optimizer, gradients, variables) -> None:
    """``optimizer.apply_gradients`` with every gradient made dense once, beforehand.

    The gradient of an embedding lookup is a ``tf.IndexedSlices`` (rows and their values).
    Keras 3's Adam turns it into a dense tensor once for each of its two moments, and each time
    that is an ``UnsortedSegmentSum`` over every looked-up row: TensorFlow's profiler put those
    sums at more than half of a BPR training step on a CPU (benchmarks appendix), and that path
    squares each duplicated row's gradient before summing (not textbook Adam). Converting once
    gives the textbook update in less time.
    """
    optimizer.apply_gradients(
        [(tf.convert_to_tensor(g), v) for g, v in zip(gradients, variables, strict=True)]
    )


class KerasTrainer:
    """The training loop every Keras model of the book shares.

    A model supplies

    * ``build(data) -> list`` of the Keras models / layers that hold its weights (and prepares
      whatever its batches need from ``data``, a split or a ratings frame);
    * ``batches(rng)``: the batches of one epoch, each a tuple of arrays;
    * ``compute_loss(batch, training)``: the mean loss of a batch (a scalar tensor), and
      optionally ``regularization(batch)``, added to the loss that is minimised but not reported;
    * optionally ``make_optimizer()`` (default Adam at ``learning_rate``) and ``on_epoch_end()``
      (for example, to cache factors for scoring).

    ``fit`` then trains ``epochs`` epochs with one compiled step, one tqdm bar and one per-epoch
    ``history_`` (a DataFrame: ``epoch``, ``loss``, the callback's metrics, ``seconds``), and sets
    ``fit_seconds_`` (training time, without the callback's evaluations).
    """

    name = "model"

    def __init__(
        self,
        epochs: int = 10,
        batch_size: int = 1024,
        learning_rate: float = 1e-3,
        seed: int | None = None,
        progress: bool = True,
    ):
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.seed = get_settings().seed if seed is None else seed
        self.progress = progress

    # -- what a model supplies ------------------------------------------------------------

    def build(self, data) -> list:
        raise NotImplementedError

    def batches(self, rng: np.random.Generator) -> Iterable[tuple]:
        raise NotImplementedError

    def compute_loss(self, batch: tuple, training: bool = True):
        raise NotImplementedError

    def regularization(self, batch: tuple):
        return 0.0

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        return keras.optimizers.Adam(learning_rate=self.learning_rate)

    def on_epoch_end(self) -> None:
        pass

    # -- the shared loop ------------------------------------------------------------------

    @property
    def variables_(self) -> list:
        """Every weight of the model's networks (trainable or not), for ``keep_best``."""
        return [v for network in self.networks_ for v in network.weights]

    def _train_step(self) -> Callable:
        variables = [v for network in self.networks_ for v in network.trainable_weights]
        optimizer = self.optimizer_
        optimizer.build(variables)  # its slots exist before the step is traced: one trace, not two

        @tf.function(reduce_retracing=True)
        def step(*batch):
            with tf.GradientTape() as tape:
                loss = self.compute_loss(batch, training=True)
                total = loss + self.regularization(batch)
            apply_gradients(optimizer, tape.gradient(total, variables), variables)
            return loss

        return step

    def fit(
        self,
        data,
        callback: Callable | None = None,
        keep_best: str | None = None,
        lower_is_better: bool = False,
        patience: int | None = None,
        epochs: int | None = None,
    ):
        """Train on ``data`` (a split, or a ratings frame); return ``self``.

        Parameters
        ----------
        callback
            ``callback(model) -> dict`` after every epoch (``model.epoch_`` is its number):
            metrics (for example on validation) that go into ``history_``.
        keep_best
            A key of the callback's dict: end with the weights of the epoch that was best on it
            (``best_epoch_`` says which); ``lower_is_better`` for errors such as ``mse``.
        patience
            With ``keep_best``, stop after this many epochs without improvement.
        epochs
            Overrides the model's ``epochs`` for this fit.
        """
        keras.utils.set_random_seed(self.seed)
        self.networks_ = self.build(data)
        self.optimizer_ = self.make_optimizer()
        step = self._train_step()
        rng = np.random.default_rng(self.seed)
        epochs = epochs or self.epochs
        sign = -1.0 if lower_is_better else 1.0
        best, best_weights, waited = -np.inf, None, 0
        self.best_epoch_, self.fit_seconds_, rows = None, 0.0, []
        bar = tqdm(total=epochs, desc=self.name, disable=not self.progress, leave=False)
        for epoch in range(1, epochs + 1):
            self.epoch_ = epoch
            start = time.perf_counter()
            losses = []
            for batch in self.batches(rng):
                if not losses and epoch == 1:  # one trace serves every batch size
                    step.get_concrete_function(*relaxed_specs(batch))
                losses.append(step(*batch))
            loss = float(np.mean([float(value) for value in losses]))
            self.on_epoch_end()
            seconds = time.perf_counter() - start
            self.fit_seconds_ += seconds
            row = {"epoch": epoch, "loss": loss}
            if callback is not None:
                row.update(callback(self) or {})
            row["seconds"] = seconds
            rows.append(row)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds")})
            bar.update(1)
            if keep_best is not None:
                if sign * row[keep_best] > best:
                    best, waited, self.best_epoch_ = sign * row[keep_best], 0, epoch
                    best_weights = [v.numpy() for v in self.variables_]
                else:
                    waited += 1
                    if patience is not None and waited >= patience:
                        break
        bar.close()
        if best_weights is not None and self.best_epoch_ != epoch:
            for variable, value in zip(self.variables_, best_weights, strict=True):
                variable.assign(value)
            self.on_epoch_end()
        self.history_ = pd.DataFrame(rows)
        return self


def relaxed_specs(batch: Sequence) -> list[tf.TensorSpec]:
    """The signature of a batch with its first dimension (the batch size) left open.

    Tracing the training step once with it lets the last, smaller batch of an epoch use the same
    graph: otherwise ``tf.function`` traces the step a second time (about 2 s for an unrolled
    LSTM). A batch of another shape still gets its own trace.
    """
    specs = []
    for array in batch:
        array = array if isinstance(array, tf.Tensor) else np.asarray(array)
        shape = tuple(array.shape)
        specs.append(tf.TensorSpec((None, *shape[1:]) if shape else (), tf.as_dtype(array.dtype)))
    return specs


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices of one epoch: a permutation of ``range(n)`` cut into batches."""
    order = rng.permutation(n)
    return [order[start : start + batch_size] for start in range(0, n, batch_size)]


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 32
) -> list[np.ndarray]:
    """Row indices of one epoch, each batch made of rows of about the same length.

    The rows are shuffled, cut into pools of ``pool`` batches, sorted by ``lengths`` within each
    pool (so a batch of short rows can be cut to its longest row), cut into batches, and the
    batches shuffled: every row once per epoch, in a new order each epoch.
    """
    order = rng.permutation(len(lengths))
    size = batch_size * pool
    batches = []
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def take(arrays: Sequence[np.ndarray], rows: np.ndarray) -> tuple:
    """The same rows of several arrays (one batch)."""
    return tuple(array[rows] for array in arrays)
