"""What is particular to the matrix factorisation models (the shared checks are in test_contracts)."""

import numpy as np
import pytest

from recsys_helpers.models import mf

SGD = {"factors": 8, "batch_size": 256, "learning_rate": 0.02, "progress": False}


@pytest.fixture(scope="module")
def sgd(checkerboard_split):
    return mf.SGDMF(epochs=5, **SGD).fit(checkerboard_split)


def test_scores_are_factor_products_plus_item_bias(sgd):
    customers = np.array([0, 4])
    expected = sgd.customer_factors_[customers] @ sgd.item_factors_.T + sgd.item_bias_
    np.testing.assert_allclose(sgd.scores(customers), expected)


def test_keras_save_load_round_trip(sgd, tmp_path):
    loaded = mf.SGDMF.load(sgd.save(tmp_path / "sgd.keras"))
    customers = np.arange(10)
    np.testing.assert_allclose(loaded.scores(customers), sgd.scores(customers), rtol=1e-6)
    users, items = np.array([0, 1, 2], dtype="int32"), np.array([3, 4, 5], dtype="int32")
    np.testing.assert_allclose(loaded.model([users, items]), sgd.model([users, items]), rtol=1e-6)


def test_keras_fit_is_repeatable(checkerboard_split, sgd):
    again = mf.SGDMF(epochs=5, **SGD).fit(checkerboard_split)
    np.testing.assert_array_equal(again.item_factors_, sgd.item_factors_)


def _prepared(model, split):
    model.build(split)
    return model


def test_sgd_negatives_keep_the_customer_when_asked(split):
    model = _prepared(mf.SGDMF(negatives=3, batch_size=4, random_users=False), split)
    users, items, labels = next(model.batches(np.random.default_rng(0)))
    assert len(labels) == 16 and labels.sum() == 4
    assert np.array_equal(users[4:], np.repeat(users[:4], 3))
    assert ((items >= 0) & (items < split.n_items)).all()


def test_bpr_batches_are_bootstrap_samples_of_positives(split):
    model = _prepared(mf.BPR(batch_size=100, steps_per_epoch=3), split)
    batches = list(model.batches(np.random.default_rng(0)))
    assert len(batches) == 3
    users, pos, neg = batches[0]
    bought = set(zip(model.customers_.tolist(), model.items_.tolist(), strict=True))
    assert all((u, i) in bought for u, i in zip(users.tolist(), pos.tolist(), strict=True))
    assert neg.min() >= 0 and neg.max() < split.n_items


def test_bpr_regularizer_squares_the_biases(split):
    model = _prepared(mf.BPR(l2_user=0.0, l2_item=0.0, l2_bias=1.0), split)
    bias = model.model.get_layer("item_bias").embeddings
    bias.assign(-np.ones(bias.shape, dtype="float32"))
    users, pos, neg = (np.array([0], dtype="int32"), np.array([1], dtype="int32"), np.array([2], dtype="int32"))
    assert float(model.regularization((users, pos, neg))) == pytest.approx(2.0)  # (-1)^2 + (-1)^2
