"""Each numba metric against a plain-Python twin, on hand-made cases and random inputs."""

import math

import numpy as np
import pytest

from recsys_helpers.evaluation import metrics


def py_precision(indptr, true_items, predicted):
    n, k = predicted.shape
    hits = sum(
        1 for g in range(n) for item in true_items[indptr[g] : indptr[g + 1]] if item in set(predicted[g])
    )
    return hits / (n * k)


def py_ranking(indptr, true_items, predicted, k):
    rows = []
    for g in range(len(predicted)):
        truth = set(true_items[indptr[g] : indptr[g + 1]].tolist())
        top = predicted[g, :k].tolist()
        if not truth:
            rows.append((0, 0, 0, 0))
            continue
        hits = [i for i, item in enumerate(top) if item in truth]
        dcg = sum(1 / math.log2(i + 2) for i in hits)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(truth), k)))
        rows.append((len(hits) / k, len(hits) / len(truth), dcg / idcg, 1 / (hits[0] + 1) if hits else 0))
    return dict(zip(("precision", "recall", "ndcg", "mrr"), np.mean(rows, axis=0), strict=True))


def random_case(rng, n_groups=50, n_items=30, k=5):
    sizes = rng.integers(0, 12, n_groups)
    indptr = np.concatenate([[0], np.cumsum(sizes)])
    true_items = rng.integers(0, n_items, indptr[-1])
    predicted = np.array([rng.choice(n_items, k, replace=False) for _ in range(n_groups)])
    return indptr, true_items, predicted


def test_precision_hand_made():
    indptr = np.array([0, 3, 5])
    true_items = np.array([1, 2, 2, 7, 8])  # invoice 0 has item 2 on two rows
    predicted = np.array([[2, 9, 9, 9, 9], [8, 7, 1, 0, 3]])
    # invoice 0: rows 2 and 2 hit -> 2; invoice 1: 7 and 8 -> 2; 4 / (2 * 5)
    assert metrics.precision(indptr, true_items, predicted) == pytest.approx(0.4)


def test_accuracy_hand_made():
    y = np.array([3, 4, 5, 6])
    pred = np.array([[3, 1], [1, 4], [0, 0], [1, 2]])
    assert metrics.accuracy_k(y, pred) == 0.5


def test_ranking_hand_made():
    indptr = np.array([0, 2, 3])
    true_items = np.array([5, 6, 9])
    predicted = np.array([[1, 6, 5], [9, 2, 3]])
    m = metrics.ranking_metrics(indptr, true_items, predicted, k=3)
    ideal2 = 1 + 1 / math.log2(3)
    assert m["precision_at_3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["recall_at_3"] == pytest.approx(1.0)
    assert m["ndcg_at_3"] == pytest.approx(((1 / math.log2(3) + 1 / 2) / ideal2 + 1) / 2)
    assert m["mrr_at_3"] == pytest.approx((1 / 2 + 1) / 2)
    assert metrics.mrr_at_k(indptr, true_items, predicted, 3) == m["mrr_at_3"]


def test_perfect_and_empty():
    indptr = np.array([0, 5])
    truth = np.arange(5)
    perfect = np.arange(5)[None, :]
    for name in ("precision", "recall", "ndcg", "mrr"):
        assert metrics.ranking_metrics(indptr, truth, perfect)[f"{name}_at_5"] == pytest.approx(1.0)
    assert metrics.precision(indptr, truth, perfect) == 1.0
    empty = metrics.ranking_metrics(np.array([0, 0]), np.array([], dtype=int), np.zeros((1, 5), int))
    assert empty["recall_at_5"] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_against_python_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    indptr, true_items, predicted = random_case(rng)
    assert metrics.precision(indptr, true_items, predicted) == pytest.approx(
        py_precision(indptr, true_items, predicted)
    )
    for k in (1, 3, 5):
        got = metrics.ranking_metrics(indptr, true_items, predicted, k)
        want = py_ranking(indptr, true_items, predicted, k)
        for name, value in want.items():
            assert got[f"{name}_at_{k}"] == pytest.approx(value), (name, k)
    y = rng.integers(0, 30, 200)
    pred = np.array([rng.choice(30, 5, replace=False) for _ in range(200)])
    py_acc = np.mean([y[i] in pred[i] for i in range(200)])
    assert metrics.accuracy_k(y, pred) == pytest.approx(py_acc)
    # the sequence protocol's MRR: one true item per step
    steps = np.arange(201)
    py_mrr = np.mean([1 / (list(pred[i]).index(y[i]) + 1) if y[i] in pred[i] else 0 for i in range(200)])
    assert metrics.mrr_at_k(steps, y, pred, 5) == pytest.approx(py_mrr)


def test_coverage():
    assert metrics.coverage(np.array([[0, 1], [1, 2]]), 10) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        metrics.coverage(np.array([[0]]), 0)


def test_shape_checks():
    with pytest.raises(ValueError, match="rows of recommendations"):
        metrics.ranking_metrics(np.array([0, 1, 2]), np.array([1, 2]), np.zeros((3, 5), int))
    with pytest.raises(ValueError, match="cover"):
        metrics.ranking_metrics(np.array([0, 1]), np.array([1, 2]), np.zeros((1, 5), int))


def test_precision_groupby_matches_numba(split):
    from recsys_helpers.evaluation.basket import BasketProtocol

    protocol = BasketProtocol.from_split(split, "validation")
    rng = np.random.default_rng(0)
    recs = np.array([rng.choice(split.n_items, 5, replace=False) for _ in range(protocol.n_invoices)])
    assert metrics.precision_groupby(split.validation, recs) == pytest.approx(
        metrics.precision(protocol.indptr, protocol.items, recs)
    )


def test_top_k_is_a_full_sort_with_ties_to_the_lower_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert metrics.top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2], [0, 1, 2]]
    random = np.random.default_rng(0).normal(size=(7, 30))
    assert np.array_equal(metrics.top_k(random, 5), np.argsort(-random, axis=1)[:, :5])
    assert metrics.top_k(random, 50).shape == (7, 30)  # k larger than the catalogue
