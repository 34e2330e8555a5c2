"""Retrieval metrics (``evaluation.retrieval``): ranks of the true item among the catalogue."""

import numpy as np
import pytest

from recsys_helpers.evaluation.retrieval import factorized_top_k, true_item_ranks
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
