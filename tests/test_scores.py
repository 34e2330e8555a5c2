"""Per-unit scores of every protocol: their means are the protocol's metrics, clusters are customers."""

import numpy as np
import pandas as pd
import pytest

from recsys_helpers.evaluation import metrics
from recsys_helpers.evaluation.basket import BasketProtocol
from recsys_helpers.evaluation.next_item import NextItemProtocol
from recsys_helpers.evaluation.ratings import rating_scores
from recsys_helpers.evaluation.scores import Scores, clusters_of
from recsys_helpers.models import baselines


@pytest.fixture(scope="module")
def basket(split):
    return BasketProtocol.from_split(split, "validation")


def test_clusters_give_every_anonymous_unit_its_own():
    clusters = clusters_of(np.array([3, -1, 3, -1, 0]), unknown=-1)
    assert clusters[0] == clusters[2] and clusters[1] != clusters[3]
    assert len(set(clusters[[1, 3]]) & {3, 0}) == 0


def test_basket_units_average_to_the_protocol_metrics(split, basket):
    scores = basket.evaluate(baselines.Repurchase().fit(split))
    assert isinstance(scores, Scores) and len(scores.units) == basket.n_invoices
    assert scores.units["precision"].mean() == pytest.approx(scores["precision"])
    recs = basket.recommendations(baselines.Repurchase().fit(split))
    assert scores["precision"] == pytest.approx(metrics.precision(basket.indptr, basket.items, recs))
    assert scores["ndcg_at_5"] == pytest.approx(metrics.ranking_metrics(basket.indptr, basket.items, recs)["ndcg_at_5"])
    assert len(np.unique(scores.clusters)) == len(np.unique(basket.customers[basket.known])) + (~basket.known).sum()


def test_repeat_and_explore_add_up_to_precision(split, basket):
    repurchase = basket.evaluate(baselines.Repurchase().fit(split))
    popularity = basket.score(basket.baseline())
    for scores in (repurchase, popularity):
        assert scores["precision_repeat"] + scores["precision_explore"] == pytest.approx(scores["precision"])
    # repurchase recommends the history first, so it repeats far more than popularity does
    assert repurchase["repeat_share"] > popularity["repeat_share"]
    assert repurchase["precision_repeat"] > 0


def test_repeats_follow_the_training_history(split, basket):
    customer = int(basket.customers[basket.known][0])
    bought = split.train.loc[split.train["customer"] == customer, "item"].unique()
    never = np.setdiff1d(np.arange(split.n_items), bought)[:2]
    recs = basket.baseline()
    row = int(np.flatnonzero(basket.customers == customer)[0])
    recs[row] = [bought[0], never[0], bought[-1], never[1], bought[len(bought) // 2]]
    repeats = basket.repeats(recs)
    assert repeats[row].tolist() == [True, False, True, False, True]
    assert not repeats[~basket.known].any()


def test_next_item_units_and_clusters(split):
    protocol = NextItemProtocol.from_split(split, "validation")
    scores = protocol.evaluate(baselines.Transitions().fit(split))
    assert len(scores.units) == protocol.n_steps
    assert scores.units["accuracy"].mean() == pytest.approx(scores["accuracy"])
    assert scores.units["mrr_at_5"].mean() == pytest.approx(scores["mrr_at_5"])
    steps_per_cluster = pd.Series(scores.clusters).value_counts()
    assert steps_per_cluster.max() > 1  # steps of one customer share a cluster
    assert scores.interval("accuracy").contains(scores["accuracy"])


def test_rating_units_give_mae_and_rmse():
    frame = pd.DataFrame({"user": [1, 1, 2, 3], "rating": [4.0, 3.0, 5.0, 1.0]})
    scores = rating_scores(frame, [3.0, 3.0, 6.0, 2.5])  # 6 is clipped to 5
    assert scores["mae"] == pytest.approx((1 + 0 + 0 + 1.5) / 4)
    assert scores["rmse"] == pytest.approx(np.sqrt((1 + 0 + 0 + 2.25) / 4))
    interval = scores.interval("rmse")
    assert interval.lo <= scores["rmse"] <= interval.hi
    back = Scores.decode(scores.encode())
    assert back["rmse"] == pytest.approx(scores["rmse"], abs=1e-6)
    assert back["mae"] == pytest.approx(scores["mae"], abs=1e-6)


def test_union_keeps_units_and_encoding_round_trips(split, basket):
    scores = basket.evaluate(baselines.Repurchase().fit(split)) | {"fit_seconds": 1.0}
    assert isinstance(scores, Scores) and scores["fit_seconds"] == 1.0
    back = Scores.decode(scores.encode())
    assert back.protocol == "basket" and back["precision"] == pytest.approx(scores["precision"], abs=1e-6)
    again, first = back.interval("precision"), scores.interval("precision")
    assert (again.lo, again.hi) == pytest.approx((first.lo, first.hi), abs=1e-6)
    assert np.array_equal(np.unique(back.clusters, return_inverse=True)[1], np.unique(scores.clusters, return_inverse=True)[1])


def test_paired_comparison_needs_the_same_units(split, basket):
    repurchase = basket.evaluate(baselines.Repurchase().fit(split))
    popularity = basket.score(basket.baseline())
    gap = repurchase.versus(popularity, "precision")
    assert gap.estimate == pytest.approx(repurchase["precision"] - popularity["precision"])
    assert gap.lo > 0  # repurchase is clearly better on the planted data
    other = BasketProtocol.from_split(split, "test").score(BasketProtocol.from_split(split, "test").baseline())
    with pytest.raises(ValueError, match="same units"):
        repurchase.versus(other, "precision")
    with pytest.raises(ValueError, match="protocol"):
        Scores({}, pd.DataFrame({"x": [1.0]}), [0], "baskets")
