"""What is particular to NCF (the shared checks are in test_contracts)."""

import numpy as np
import pandas as pd
import pytest

from recsys_helpers.models import ncf

SMALL = {"gmf_dim": 8, "mlp_dims": (16, 8), "batch_size": 512, "progress": False}


def test_pointwise_epoch():
    rng = np.random.default_rng(0)
    c, i, y = ncf.pointwise_epoch(np.array([0, 1]), np.array([5, 6]), 10, 3, rng)
    assert len(c) == len(i) == len(y) == 8 and y.sum() == 2
    assert set(zip(c[y == 1].tolist(), i[y == 1].tolist(), strict=True)) == {(0, 5), (1, 6)}


@pytest.mark.parametrize("kind", ["gmf", "mlp"])
def test_each_branch_alone_is_a_recommender(split, kind):
    model = ncf.NCF(kind=kind, epochs=2, **SMALL).fit(split)
    names = {layer.name for layer in model.model_.layers}
    assert ("gmf" in names) == (kind == "gmf") and ("mlp_input" in names) == (kind == "mlp")
    recs = model.recommend(np.arange(12), k=5)
    assert recs.shape == (12, 5) and ((recs >= 0) & (recs < split.n_items)).all()


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="kind"):
        ncf.build_neumf(3, 4, kind="dot")


def test_trained_by_the_shared_loop(split):
    seen = []
    model = ncf.NCF(epochs=3, l2=1e-4, **SMALL)
    model.fit(split, callback=lambda m: seen.append(m.epoch_) or {"epoch_seen": m.epoch_})
    assert isinstance(model.history_, pd.DataFrame) and seen == [1, 2, 3]
    assert list(model.history_.columns) == ["epoch", "loss", "epoch_seen", "seconds"]
    assert model.history_["loss"].iloc[-1] < model.history_["loss"].iloc[0]
    assert model.fit_seconds_ > 0 and model.score_batch == 64
    assert len(model.model_.losses) == 4  # the L2 penalty of each embedding table


def test_scores_are_the_network_logits(split):
    model = ncf.NCF(epochs=1, **SMALL).fit(split)
    scores = model.scores(np.array([0, 3]))
    items = np.arange(split.n_items, dtype="int32")
    logits = model.model_({"customer": np.full(split.n_items, 3, "int32"), "item": items})
    np.testing.assert_allclose(scores[1], np.asarray(logits), rtol=1e-5, atol=1e-6)
