"""The one ``recommend`` and the one training loop (``models.base``), on tiny hand-made models."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from recsys_helpers import settings
from recsys_helpers.models.base import (
    KerasTrainer,
    ScoreRecommender,
    apply_gradients,
    bucketed_batches,
    relaxed_specs,
    shuffled_batches,
)


class Fixed(ScoreRecommender):
    score_batch = 2

    def __init__(self, scores, popularity):
        self._scores, self.popularity_ = np.asarray(scores, float), np.asarray(popularity, float)

    def scores(self, customers):
        return self._scores[np.asarray(customers)]


def test_recommend_breaks_ties_by_popularity_then_index():
    model = Fixed([[1.0, 1.0, 1.0, 0.0], [0.0, 2.0, 2.0, 2.0], [5.0, 4.0, 3.0, 2.0]], [0.0, 0.5, 1.0, 0.0])
    recs = model.recommend([0, 1, 2, 0], k=3)
    assert recs.tolist() == [[2, 1, 0], [2, 1, 3], [0, 1, 2], [2, 1, 0]]


class Line(KerasTrainer):
    """y = w x + b fitted by the shared loop: the smallest model the loop can train."""

    name = "line"

    def build(self, data):
        self.x, self.y = data
        self.layer = keras.layers.Dense(1)
        self.layer.build((None, 1))
        return [self.layer]

    def batches(self, rng):
        for rows in shuffled_batches(len(self.x), self.batch_size, rng):
            yield self.x[rows], self.y[rows]

    def compute_loss(self, batch, training=True):
        x, y = batch
        return tf.reduce_mean(tf.square(self.layer(x)[:, 0] - y))


def _line_data(n=256):
    x = np.random.default_rng(0).uniform(-1, 1, (n, 1)).astype("float32")
    return x, (3.0 * x[:, 0] + 1.0).astype("float32")


def test_the_loop_trains_and_keeps_a_history():
    model = Line(epochs=30, batch_size=32, learning_rate=0.1, progress=False)
    calls = []
    model.fit(_line_data(), callback=lambda m: calls.append(m) or {"w": float(m.layer.kernel.numpy()[0, 0])})
    assert isinstance(model.history_, pd.DataFrame)
    assert list(model.history_.columns) == ["epoch", "loss", "w", "seconds"]
    assert model.history_["epoch"].tolist() == list(range(1, 31)) and len(calls) == 30
    assert model.history_["loss"].iloc[-1] < 0.01 * model.history_["loss"].iloc[0]
    assert model.history_["w"].iloc[-1] == pytest.approx(3.0, abs=0.05)
    assert model.fit_seconds_ > 0


class CountedLine(Line):
    """``Line``, counting how often its loss is traced (a Python side effect runs only then)."""

    traces = 0

    def compute_loss(self, batch, training=True):
        CountedLine.traces += 1
        return super().compute_loss(batch, training)


def test_the_last_smaller_batch_needs_no_trace_of_its_own():
    traces = []
    for n in (240, 250):  # six batches of 40; then six and one of 10, every epoch
        CountedLine.traces = 0
        CountedLine(epochs=3, batch_size=40, learning_rate=0.1, progress=False).fit(_line_data(n))
        traces.append(CountedLine.traces)
    assert traces == [1, 1]
    specs = relaxed_specs((np.zeros((4, 3), "int32"), np.zeros(4, bool), np.float32(1.0)))
    assert [(s.shape.as_list(), s.dtype) for s in specs] == [
        ([None, 3], tf.int32),
        ([None], tf.bool),
        ([], tf.float32),
    ]


def test_keep_best_restores_the_best_epoch_and_patience_stops():
    model = Line(epochs=20, batch_size=32, learning_rate=0.1, progress=False)
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.1, 0.05] + [0.0] * 20)
    weights = {}

    def callback(m):
        score = next(scores)
        weights[len(weights) + 1] = m.layer.kernel.numpy().copy()  # after epoch 1, 2, ...
        return {"score": score}

    model.fit(_line_data(), callback=callback, keep_best="score", patience=3)
    assert model.best_epoch_ == 2 and len(model.history_) == 5  # three epochs without improvement
    np.testing.assert_array_equal(model.layer.kernel.numpy(), weights[2])


def test_keep_best_lower_is_better():
    model = Line(epochs=4, batch_size=32, learning_rate=0.1, progress=False)
    errors = iter([3.0, 1.0, 2.0, 4.0])
    model.fit(_line_data(), callback=lambda m: {"mse": next(errors)}, keep_best="mse", lower_is_better=True)
    assert model.best_epoch_ == 2 and len(model.history_) == 4


def test_the_loop_is_repeatable_and_seeded_from_settings(monkeypatch):
    monkeypatch.setenv("RECSYS_SEED", "7")
    assert Line().seed == 7 == settings.get_settings().seed
    first = Line(epochs=2, batch_size=16, progress=False).fit(_line_data())
    second = Line(epochs=2, batch_size=16, progress=False).fit(_line_data())
    np.testing.assert_array_equal(first.layer.kernel.numpy(), second.layer.kernel.numpy())
    other = Line(epochs=2, batch_size=16, progress=False, seed=8).fit(_line_data())
    assert not np.array_equal(first.layer.kernel.numpy(), other.layer.kernel.numpy())


def test_shuffled_batches_cover_every_row_once():
    batches = shuffled_batches(10, 4, np.random.default_rng(0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))


def test_apply_gradients_is_textbook_adam_for_repeated_rows():
    """Rows looked up twice in a batch: Adam must square the summed gradient (Keras, fed the
    ``IndexedSlices`` directly, squares each copy and then sums)."""

    def two_steps(apply):
        variable = keras.Variable(np.ones((3, 2), np.float32))
        optimizer = keras.optimizers.Adam(learning_rate=0.1)
        grad = tf.IndexedSlices(
            tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), tf.constant([0, 0, 1]), tf.constant([3, 2])
        )
        for _ in range(2):
            apply(optimizer, grad, variable)
        return variable.numpy()

    ours = two_steps(lambda opt, g, v: apply_gradients(opt, [g], [v]))
    dense = two_steps(lambda opt, g, v: opt.apply_gradients([(tf.convert_to_tensor(g), v)]))
    np.testing.assert_allclose(ours, dense)
    # a gradient of constant sign moves Adam by the learning rate per step: 1 - 2 * 0.1
    np.testing.assert_allclose(ours, [[0.8, 0.8], [0.8, 0.8], [1.0, 1.0]], rtol=1e-5)


def test_bucketed_batches_take_every_row_once_in_batches_of_similar_length():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 100, 1000)
    batches = bucketed_batches(lengths, 10, np.random.default_rng(0), pool=20)
    rows = np.concatenate(batches)
    assert np.array_equal(np.sort(rows), np.arange(1000))
    assert all(len(batch) <= 10 for batch in batches)
    spread = np.mean([np.ptp(lengths[batch]) for batch in batches])
    shuffled = np.mean([np.ptp(lengths[batch]) for batch in shuffled_batches(1000, 10, rng)])
    assert spread < shuffled / 4, "a batch holds rows of about the same length"
    again = bucketed_batches(lengths, 10, np.random.default_rng(0), pool=20)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other = bucketed_batches(lengths, 10, np.random.default_rng(1), pool=20)
    assert not np.array_equal(np.concatenate(other), rows), "a new order each epoch"
