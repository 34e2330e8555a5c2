"""The basket contract for every matrix factorisation model, on synthetic data with a planted answer."""

import numpy as np
import pytest

from recsys_helpers import metrics, mf
from recsys_helpers.protocols import BasketProtocol

# Small, fast settings that still learn the checkerboard's taste groups.
MODELS = {
    "als": lambda: mf.ALS(factors=8, regularization=0.01, iterations=10),
    "implicit_bpr": lambda: mf.ImplicitBPR(factors=8, learning_rate=0.05, iterations=200),
    "sgd_mf": lambda: mf.SGDMF(
        factors=8, batch_size=256, learning_rate=0.02, epochs=20, progress=False
    ),
    "bpr": lambda: mf.BPR(
        factors=8, batch_size=512, steps_per_epoch=10, learning_rate=0.02, epochs=20, progress=False
    ),
}
KERAS = ("sgd_mf", "bpr")


@pytest.fixture(scope="module")
def fitted(checkerboard_split):
    return {name: make().fit(checkerboard_split) for name, make in MODELS.items()}


def _known_precision(protocol, recs):
    known = protocol.known
    bounds = zip(protocol.indptr[:-1][known], protocol.indptr[1:][known], strict=True)
    rows = np.concatenate([protocol.items[a:b] for a, b in bounds])
    sub_indptr = np.concatenate([[0], np.cumsum(np.diff(protocol.indptr)[known])])
    return metrics.precision_at_k(sub_indptr, rows, recs[known], 5)


def test_top_k_matches_full_sort():
    scores = np.random.default_rng(0).normal(size=(7, 30))
    assert np.array_equal(mf.top_k(scores, 5), np.argsort(-scores, axis=1)[:, :5])


def test_user_item_matrix(split):
    binary = mf.user_item_matrix(split)
    counts = mf.user_item_matrix(split, binary=False)
    assert binary.shape == (split.n_customers, split.n_items)
    assert set(np.unique(binary.data)) == {1.0}
    assert counts.sum() == (split.train["customer"] >= 0).sum()


@pytest.mark.parametrize("name", MODELS)
def test_recommend_shape_and_finite_scores(fitted, checkerboard_split, name):
    model = fitted[name]
    customers = np.arange(min(10, checkerboard_split.n_customers))
    recs = model.recommend(customers, 5)
    assert recs.shape == (len(customers), 5) and recs.dtype.kind == "i"
    assert all(len(set(row)) == 5 for row in recs)
    assert np.isfinite(model.scores(customers)).all()


@pytest.mark.parametrize("name", MODELS)
def test_checkerboard_is_recovered(fitted, checkerboard_split, name):
    protocol = BasketProtocol.from_split(checkerboard_split, "validation")
    recs = protocol.recommendations(fitted[name])
    assert _known_precision(protocol, recs) == 1.0
    assert protocol.score(recs)["precision"] > protocol.score(protocol.baseline())["precision"]


@pytest.mark.parametrize("name", KERAS)
def test_keras_save_load_round_trip(fitted, tmp_path, name):
    model = fitted[name]
    path = model.save(tmp_path / f"{name}.keras")
    loaded = type(model).load(path)
    customers = np.arange(10)
    np.testing.assert_allclose(loaded.scores(customers), model.scores(customers), rtol=1e-6)
    users, items = np.array([0, 1, 2], dtype="int32"), np.array([3, 4, 5], dtype="int32")
    np.testing.assert_allclose(loaded.model([users, items]), model.model([users, items]), rtol=1e-6)


@pytest.mark.parametrize("name", KERAS)
def test_keras_history_and_callback(checkerboard_split, name):
    model = MODELS[name]()
    model.fit(checkerboard_split, epochs=2, callback=lambda m: {"seen": m.item_factors_.shape[0]})
    assert [row["epoch"] for row in model.history] == [1, 2]
    assert all(
        np.isfinite(row["loss"]) and row["seen"] == checkerboard_split.n_items
        for row in model.history
    )
    assert model.fit_seconds_ > 0


def test_keras_fit_is_repeatable(checkerboard_split):
    first = MODELS["sgd_mf"]().fit(checkerboard_split, epochs=2)
    second = MODELS["sgd_mf"]().fit(checkerboard_split, epochs=2)
    np.testing.assert_array_equal(first.item_factors_, second.item_factors_)


def test_sgd_negatives_keep_the_customer_when_asked():
    model = mf.SGDMF(negatives=3, batch_size=4, random_users=False)
    users, items = np.arange(6, dtype="int32"), np.arange(6, dtype="int32")
    batch_users, batch_items, labels = next(
        model._batches(users, items, 50, 40, np.random.default_rng(0))
    )
    assert len(labels) == 16 and labels.sum() == 4
    assert np.array_equal(batch_users[4:], np.repeat(batch_users[:4], 3))


def test_bpr_batches_are_bootstrap_samples_of_positives():
    model = mf.BPR(batch_size=100, steps_per_epoch=3)
    users, items = np.arange(10, dtype="int32"), np.arange(10, dtype="int32") + 5
    batches = list(model._batches(users, items, 10, 20, np.random.default_rng(0)))
    assert len(batches) == 3
    u, pos, neg = batches[0]
    assert np.array_equal(pos, u + 5) and neg.min() >= 0 and neg.max() < 20


def test_apply_gradients_is_textbook_adam_for_repeated_rows():
    """Rows looked up twice in a batch: Adam must square the summed gradient (Keras, fed the
    ``IndexedSlices`` directly, squares each copy and then sums)."""
    keras = pytest.importorskip("keras")
    import tensorflow as tf

    def two_steps(apply):
        variable = keras.Variable(np.ones((3, 2), np.float32))
        optimizer = keras.optimizers.Adam(learning_rate=0.1)
        grad = tf.IndexedSlices(
            tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), tf.constant([0, 0, 1]), tf.constant([3, 2])
        )
        for _ in range(2):
            apply(optimizer, grad, variable)
        return variable.numpy()

    ours = two_steps(lambda opt, g, v: mf.apply_gradients(opt, [g], [v]))
    dense = two_steps(lambda opt, g, v: opt.apply_gradients([(tf.convert_to_tensor(g), v)]))
    np.testing.assert_allclose(ours, dense)
    # a gradient of constant sign moves Adam by the learning rate per step: 1 - 2 * 0.1
    np.testing.assert_allclose(ours, [[0.8, 0.8], [0.8, 0.8], [1.0, 1.0]], rtol=1e-5)
