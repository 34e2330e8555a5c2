"""Tests of the "beyond the chapter" helpers: shared pieces, LightGCN, NCF."""

import numpy as np
import pytest

from recsys_helpers import beyond, metrics, mf
from recsys_helpers.protocols import BasketProtocol


def known_precision(split, model):
    """precision@5 of a model on the validation invoices of known customers only."""
    protocol = BasketProtocol.from_split(split, "validation")
    known = protocol.known
    recs = protocol.recommendations(model)[known]
    indptr = np.concatenate([[0], np.cumsum(np.diff(protocol.indptr)[known])])
    starts, ends = protocol.indptr[:-1][known], protocol.indptr[1:][known]
    items = np.concatenate([protocol.items[a:b] for a, b in zip(starts, ends, strict=True)])
    return metrics.precision_at_k(indptr, items, recs, 5)


def test_unique_pairs_and_rows(split):
    c, i = mf.training_pairs(split)
    uc, ui = beyond.unique_pairs(split)
    assert len(uc) == len(set(zip(c.tolist(), i.tolist(), strict=True)))
    assert (uc >= 0).all() and np.all(np.diff(uc) >= 0)


def test_true_item_ranks_hand_made():
    scores = np.array([[0.1, 0.9, 0.5], [3.0, 2.0, 3.0]])
    assert beyond.true_item_ranks(scores, np.array([2, 0])).tolist() == [1, 0]


class _Fixed(beyond.ScoreRecommender):
    batch_size = 2

    def __init__(self, table):
        self.table = np.asarray(table, dtype=float)
        self.popularity_ = np.zeros(self.table.shape[1])

    def scores(self, customers):
        return self.table[customers]


def test_score_recommender_batches_and_duplicates():
    model = _Fixed([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]])
    recs = model.recommend([2, 0, 2, 1, 0], k=2)
    assert recs.tolist() == [[1, 3], [3, 2], [1, 3], [0, 1], [3, 2]]
    top = beyond.factorized_top_k(model, [0, 1, 2], [3, 3, 0], ks=(1, 2))
    assert top == {"top_1_accuracy": pytest.approx(1 / 3), "top_2_accuracy": pytest.approx(1 / 3)}


def test_normalized_adjacency():
    from recsys_helpers.lightgcn import normalized_adjacency

    a = normalized_adjacency(np.array([0, 0, 1, 0]), np.array([0, 1, 1, 0]), 2, 2).toarray()
    assert a.shape == (4, 4) and np.allclose(a, a.T)
    # customer 0 (degree 2) - item 1 (degree 2): 1 / sqrt(2 * 2)
    assert a[0, 3] == pytest.approx(0.5) and a[1, 2] == 0.0


def test_lightgcn_contract_and_checkerboard(checkerboard_split):
    from recsys_helpers.lightgcn import LightGCN

    model = LightGCN(dim=16, n_layers=2, epochs=15, batch_size=512, learning_rate=0.05, progress=False)
    model.fit(checkerboard_split)
    recs = model.recommend(np.arange(10), k=5)
    assert recs.shape == (10, 5) and all(len(set(r)) == 5 for r in recs)
    assert len(model.history_) == 15 and model.history_[-1] < model.history_[0]
    assert known_precision(checkerboard_split, model) > 0.9


@pytest.mark.parametrize("kind", ["neumf", "gmf", "mlp"])
def test_ncf_contract(split, kind):
    from recsys_helpers.ncf import NCF

    model = NCF(kind=kind, gmf_dim=8, mlp_dims=(16, 8), epochs=2, batch_size=512, progress=False).fit(split)
    recs = model.recommend(np.arange(12), k=5)
    assert recs.shape == (12, 5) and ((recs >= 0) & (recs < split.n_items)).all()
    assert model.scores(np.array([0, 1])).shape == (2, split.n_items)


def test_ncf_learns_the_checkerboard(checkerboard_split):
    from recsys_helpers.ncf import NCF

    model = NCF(gmf_dim=8, mlp_dims=(16, 8), epochs=20, batch_size=256, learning_rate=0.01, progress=False)
    model.fit(checkerboard_split)
    assert known_precision(checkerboard_split, model) > 0.9


def test_pointwise_epoch():
    from recsys_helpers.ncf import pointwise_epoch

    c, i, y = pointwise_epoch(np.array([0, 1]), np.array([5, 6]), 10, 3, np.random.default_rng(0))
    assert len(c) == len(i) == len(y) == 8 and y.sum() == 2
    assert set(zip(c[y == 1].tolist(), i[y == 1].tolist(), strict=True)) == {(0, 5), (1, 6)}


def test_tokenize_and_tfidf():
    from recsys_helpers.content import tfidf, tokenize

    assert tokenize("SET OF 3 CAKE TINS PANTRY DESIGN") == ["CAKE", "TINS", "PANTRY"]
    assert tokenize(None) == []
    matrix, vocab = tfidf([["CAKE", "TINS"], ["CAKE", "HEART"], ["HEART"], ["LONELY"]], min_df=2)
    assert vocab == ["CAKE", "HEART"]
    dense = matrix.toarray()
    assert np.allclose(np.linalg.norm(dense[:3], axis=1), 1.0) and not dense[3].any()


def test_price_bands():
    from recsys_helpers.content import price_bands

    bands = price_bands([0.5, 1.0, 2.0, 4.0, 8.0, 0.0], n_bands=2)
    assert bands.tolist()[:5] == [0, 0, 1, 1, 1] and bands[5] == 0


def test_item_table_and_features(split):
    from recsys_helpers.content import item_features, item_table

    table = item_table(split)
    assert len(table) == split.n_items and table["description"].str.startswith("SYNTHETIC").all()
    features, names = item_features(split)
    assert features.shape == (split.n_items, len(names))
    assert np.allclose(np.linalg.norm(features.toarray(), axis=1), 1.0)


def test_content_based_prefers_similar_items(split):
    from recsys_helpers.content import ContentBased

    model = ContentBased().fit(split)
    recs = model.recommend(np.arange(10), k=5)
    assert recs.shape == (10, 5) and all(len(set(r)) == 5 for r in recs)
    # an item's own features are the closest to a one-item profile
    scores = model.scores(np.arange(3))
    bought = model.history_matrix_[np.arange(3)].toarray() > 0
    assert scores[bought].mean() > scores[~bought].mean()


def test_remove_accidental_hits():
    from recsys_helpers.two_tower import remove_accidental_hits

    logits = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], dtype="float32")
    labels = np.eye(3, dtype="float32")[:2]
    out = np.asarray(remove_accidental_hits(logits, labels, np.array([7, 5, 7])))
    assert out[0, 2] < -1e8 and out[0, 0] == 1.0 and out[0, 1] == 2.0
    assert np.allclose(out[1], logits[1])


def test_two_tower_contract_and_index(checkerboard_split):
    from recsys_helpers.two_tower import TwoTower

    model = TwoTower(dim=8, epochs=8, batch_size=64, learning_rate=0.02, progress=False).fit(checkerboard_split)
    recs = model.recommend(np.arange(6), k=5)
    assert recs.shape == (6, 5) and all(len(set(r)) == 5 for r in recs)
    scores, ids = model.index(k=5)(model.customer_factors_[:6])
    assert np.array_equal(np.asarray(ids), recs)
    assert known_precision(checkerboard_split, model) > 0.8
    top = beyond.factorized_top_k(model, [0, 1], [0, 1], ks=(1, 10))
    assert set(top) == {"top_1_accuracy", "top_10_accuracy"}


def test_hybrid_contract_context_and_static(split):
    from recsys_helpers import hybrid

    model = hybrid.Hybrid(dim=8, epochs=2, batch_size=512, progress=False).fit(split)
    recs = model.recommend(np.arange(8), k=5)
    assert recs.shape == (8, 5) and all(len(set(r)) == 5 for r in recs)
    protocol = BasketProtocol.from_split(split, "validation")
    context = hybrid.invoice_context(split, "validation", model.country_encoder_)
    assert len(context) == protocol.n_invoices
    assert np.array_equal(context["customer"].to_numpy(), protocol.customers)
    assert context["hour"].between(0, 23).all() and context["weekday"].between(0, 6).all()
    scores = hybrid.evaluate_in_context(model, protocol, split)
    assert 0.0 <= scores["precision"] <= 1.0
    # the context changes the query, hence (possibly) the ranking
    a = model.static_context([0])
    b = a.assign(hour=(a["hour"] + 6) % 24)
    assert not np.allclose(model.query(a), model.query(b))


def test_hybrid_without_context_ignores_it(split):
    from recsys_helpers import hybrid

    model = hybrid.Hybrid(dim=8, epochs=1, batch_size=512, use_context=False, progress=False).fit(split)
    a = model.static_context([0, 1])
    b = a.assign(hour=(a["hour"] + 6) % 24, weekday=(a["weekday"] + 1) % 7)
    assert np.allclose(model.query(a), model.query(b))


def test_hybrid_learns_the_checkerboard(checkerboard_split):
    from recsys_helpers import hybrid

    model = hybrid.Hybrid(dim=8, epochs=15, batch_size=256, learning_rate=0.02, progress=False)
    model.fit(checkerboard_split)
    assert known_precision(checkerboard_split, model) > 0.9
