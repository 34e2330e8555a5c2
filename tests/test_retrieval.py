"""Retrieval metrics (``evaluation.retrieval``): ranks of the true item among the catalogue."""

import numpy as np
import pandas as pd
import pytest

from recsys_helpers.evaluation import retrieval
from recsys_helpers.evaluation.retrieval import (
    factorized_top_k,
    list_top_k,
    rerank,
    retrieve,
    seen_matrix,
    true_item_ranks,
)
from recsys_helpers.models.base import ScoreRecommender


def test_true_item_ranks_hand_made():
    scores = np.array([[0.1, 0.9, 0.5], [3.0, 2.0, 3.0]])
    assert true_item_ranks(scores, np.array([2, 0])).tolist() == [1, 0]


class Fixed(ScoreRecommender):
    score_batch = 2

    def __init__(self, table):
        self.table = np.asarray(table, dtype=float)
        self.popularity_ = np.zeros(self.table.shape[1])

    def scores(self, customers):
        return self.table[customers]


def test_factorized_top_k_scores_in_batches():
    model = Fixed([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]])
    top = factorized_top_k(model, [0, 1, 2], [3, 3, 0], ks=(1, 2))
    assert top == {"top_1_accuracy": pytest.approx(1 / 3), "top_2_accuracy": pytest.approx(1 / 3)}


def test_sorted_ranks_equal_the_direct_ranks():
    rng = np.random.default_rng(0)
    table = rng.integers(0, 5, (6, 30)).astype(float)  # many ties
    model = Fixed(table)
    customers = rng.integers(0, 6, 200)
    items = rng.integers(0, 30, 200)
    direct = true_item_ranks(table[customers], items)
    for k in (1, 3, 10):
        got = factorized_top_k(model, customers, items, ks=(k,))[f"top_{k}_accuracy"]
        assert got == pytest.approx((direct < k).mean())


def test_excluded_items_are_no_candidates():
    model = Fixed([[5, 4, 3, 2]])
    seen = seen_matrix([0, 0], [0, 1], 1, 4)
    assert factorized_top_k(model, [0], [2], ks=(1,))["top_1_accuracy"] == 0.0
    assert factorized_top_k(model, [0], [2], ks=(1,), exclude=seen)["top_1_accuracy"] == 1.0
    ids, scores = retrieve(model, np.array([0]), 2, seen)
    assert ids.tolist() == [[2, 3]] and scores.tolist() == [[3.0, 2.0]]


def test_rerank_and_list_top_k():
    lists = rerank(np.array([[7, 8, 9]]), np.array([[0.1, 0.9, 0.5]]))
    assert lists.tolist() == [[8, 9, 7]]
    top = list_top_k(lists, [0, 0, 0], [8, 7, 3], ks=(1, 3))
    assert top == {"top_1_accuracy": pytest.approx(1 / 3), "top_3_accuracy": pytest.approx(2 / 3)}


class Stars:
    """A rating model that predicts the movie code as the stars."""

    def predict(self, frame):
        return frame["movie"].to_numpy(dtype=float)


def test_two_stage_orders_by_retrieval_by_stars_and_by_a_blend():
    model = Fixed([[4.0, 3.0, 2.0, 1.0]])  # retrieval prefers low codes, the stars high ones
    frame = pd.DataFrame({"user": [0, 0], "movie": [0, 3], "rating": [2.0, 5.0]})
    table = retrieval.two_stage(model, Stars(), frame, alphas=(0.0, None), depth=4, k=1)
    assert table.loc[0.0].tolist() == [0.5, 0.0]  # movie 0 first: one of two hits, not the liked one
    assert table.loc["stars only"].tolist() == [0.5, 1.0]  # movie 3 first: the liked one
