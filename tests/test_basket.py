import numpy as np
import pytest

from recsys_helpers.evaluation import metrics
from recsys_helpers.evaluation.basket import BasketProtocol
from recsys_helpers.interactions import popular_items
from recsys_helpers.models import baselines


class Oracle:
    """Knows each customer's taste group from the training period (the planted answer)."""

    def fit(self, split):
        train = split.train[split.train["customer"] >= 0]
        self.top = (
            train.groupby("customer")["item"].agg(lambda s: s.value_counts().index.to_numpy()).to_dict()
        )
        return self

    def recommend(self, customers, k=5):
        return np.array([self.top[c][:k] for c in customers])


def test_popular_items_are_most_bought(split):
    top = popular_items(split.train, 5)
    counts = split.train["item"].value_counts()
    assert counts[top].is_monotonic_decreasing
    assert counts[top[-1]] >= counts.drop(top).max()


def test_popularity_through_protocol_equals_tiled_baseline(split):
    protocol = BasketProtocol.from_split(split, "validation")
    model = baselines.Popularity().fit(split)
    recs = protocol.recommendations(model)
    assert np.array_equal(recs, protocol.baseline())
    score = protocol.score(recs)
    assert score["precision"] == pytest.approx(metrics.precision(protocol.indptr, protocol.items, recs))
    assert 0 < score["precision"] < 0.5
    assert score["coverage"] == pytest.approx(5 / split.n_items)


def test_protocol_shapes(split):
    protocol = BasketProtocol.from_split(split, "test", k=3)
    assert protocol.n_invoices == split.test["invoiceno"].nunique()
    assert protocol.baseline().shape == (protocol.n_invoices, 3)
    assert protocol.known.sum() == (protocol.customers >= 0).sum()
    assert set(protocol.evaluate(baselines.Popularity().fit(split))) >= {"precision", "ndcg_at_3"}


def test_checkerboard_oracle_is_perfect(checkerboard_split):
    protocol = BasketProtocol.from_split(checkerboard_split, "validation")
    assert protocol.known.mean() > 0.9
    recs = protocol.recommendations(Oracle().fit(checkerboard_split))
    known = protocol.known
    sub_indptr = np.concatenate([[0], np.cumsum(np.diff(protocol.indptr)[known])])
    rows = np.concatenate([protocol.items[a:b] for a, b in zip(protocol.indptr[:-1][known], protocol.indptr[1:][known], strict=True)])
    assert metrics.precision_at_k(sub_indptr, rows, recs[known], 5) == 1.0
    # and popularity cannot be: four groups share five slots
    assert protocol.score(protocol.baseline())["precision_at_5"] < 0.6


def test_synthetic_structure_beats_popularity(split):
    protocol = BasketProtocol.from_split(split, "validation")
    oracle = protocol.evaluate(Oracle().fit(split))
    popular = protocol.score(protocol.baseline())
    assert oracle["precision"] > 2 * popular["precision"]
