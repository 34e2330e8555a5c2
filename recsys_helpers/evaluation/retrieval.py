"""Retrieval metrics: where does the true item rank among every item of the catalogue?

The view of TensorFlow Recommenders' ``FactorizedTopK``: for each (customer, item) pair, score
every item for the customer and count the pair a hit at k when its item ranks in the top k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from .metrics import top_k
from .scores import Scores


def true_item_ranks(scores: np.ndarray, true_items: np.ndarray) -> np.ndarray:
    """0-based rank of each row's true item among all items (ties count against it)."""
    scores = np.asarray(scores)
    true = scores[np.arange(len(scores)), true_items]
    return (scores > true[:, None]).sum(axis=1)


def _ranks_by_row(scores: np.ndarray, rows: np.ndarray, true_items: np.ndarray) -> np.ndarray:
    """``true_item_ranks`` of many pairs that share few score rows: each row is sorted once and
    every pair's rank found by binary search (the same ranks, ties counting against the item)."""
    ranks = np.empty(len(rows), dtype=np.int64)
    true = scores[rows, true_items]
    for row in np.unique(rows):
        pairs = np.flatnonzero(rows == row)
        ascending = np.sort(scores[row])
        ranks[pairs] = len(ascending) - np.searchsorted(ascending, true[pairs], side="right")
    return ranks


def seen_matrix(customers, items, n_customers: int, n_items: int) -> sparse.csr_matrix:
    """(n_customers, n_items) 0/1 matrix of the pairs a retrieval must not return (a history)."""
    ones = np.ones(len(customers), dtype=np.int8)
    seen = sparse.csr_matrix((ones, (np.asarray(customers), np.asarray(items))), (n_customers, n_items))
    seen.data[:] = 1
    return seen


def _masked_scores(model, chunk: np.ndarray, exclude: sparse.csr_matrix | None) -> np.ndarray:
    scores = np.array(model.scores(chunk), dtype=np.float64)
    if exclude is not None:
        rows, cols = exclude[chunk].nonzero()
        scores[rows, cols] = -np.inf
    return scores


def factorized_top_k(model, customers, items, ks=(1, 5, 10, 50, 100), exclude=None) -> Scores:
    """TFRS-style "factorized top-k": share of (customer, item) pairs whose item ranks in the top k.

    Every item of the catalogue is a candidate (brute force), as in the retrieval metrics of
    TensorFlow Recommenders; with ``exclude`` (a ``seen_matrix``, e.g. of the training pairs)
    those items are not candidates for that customer. ``model`` has ``scores(customers)`` and
    ``score_batch`` (any ``models.base.ScoreRecommender``). Each pair is a unit, its customer
    the cluster.
    """
    customers = np.asarray(customers)
    items = np.asarray(items)
    distinct, back = np.unique(customers, return_inverse=True)
    ranks = np.empty(len(customers), dtype=np.int64)
    for start in range(0, len(distinct), model.score_batch):
        chunk = distinct[start : start + model.score_batch]
        rows = np.flatnonzero((back >= start) & (back < start + len(chunk)))
        scores = _masked_scores(model, chunk, exclude)
        ranks[rows] = _ranks_by_row(scores, back[rows] - start, items[rows])
    units = pd.DataFrame({f"top_{k}_accuracy": (ranks < k).astype("float64") for k in ks})
    return Scores(units.mean().to_dict(), units, customers, "retrieval")


def retrieve(model, customers, k: int = 100, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """The first stage: each customer's ``k`` best items (best first) and their scores, brute force
    over the catalogue without the ``exclude``d pairs."""
    customers = np.asarray(customers)
    ids = np.empty((len(customers), k), dtype=np.int64)
    best = np.empty((len(customers), k), dtype=np.float64)
    for start in range(0, len(customers), model.score_batch):
        chunk = customers[start : start + model.score_batch]
        scores = _masked_scores(model, chunk, exclude)
        top = top_k(scores, k)
        ids[start : start + len(chunk)] = top
        best[start : start + len(chunk)] = np.take_along_axis(scores, top, axis=1)
    return ids, best


def rerank(candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The second stage: each row's candidates reordered by ``scores`` (same shape), best first;
    ties keep the first stage's order."""
    order = np.argsort(-np.asarray(scores), axis=1, kind="stable")
    return np.take_along_axis(np.asarray(candidates), order, axis=1)


def list_top_k(lists: np.ndarray, rows, items, ks=(1, 5, 10, 50, 100)) -> dict[str, float]:
    """Share of (row, item) pairs whose item is among the first k of ``lists[row]`` (an item not
    in the list at all is a miss at every k): the factorized top-k of a retrieved and reordered list."""
    lists = np.asarray(lists)[np.asarray(rows)]
    found = lists == np.asarray(items)[:, None]
    position = np.where(found.any(axis=1), found.argmax(axis=1), lists.shape[1])
    return {f"top_{k}_accuracy": float((position < k).mean()) for k in ks}


def _standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-9)


def two_stage(
    retriever, ranker, frame, exclude=None, alphas=(0.0, 1.0, None), depth: int = 100, k: int = 10,
    liked: float = 4.0,
) -> pd.DataFrame:
    """Retrieve ``depth`` items per user of ``frame``, reorder them with a rating model, score.

    Each list is ordered by ``standardised(retrieval score) + alpha * standardised(predicted
    stars)`` (per user) for each ``alpha``; ``None`` orders by the predicted stars alone (``alpha
    = 0``: the retrieval order). ``ranker.predict`` takes a frame of ``user``, ``movie``. One row
    per alpha: ``top_<k>_accuracy`` over every (user, movie) of ``frame``, and ``liked_top_<k>_
    accuracy`` over those rated ``liked`` stars or more.
    """
    users = np.unique(frame["user"].to_numpy())
    candidates, score = retrieve(retriever, users, depth, exclude)
    pairs = pd.DataFrame({"user": np.repeat(users, depth), "movie": candidates.ravel()})
    stars = np.asarray(ranker.predict(pairs), dtype=np.float64).reshape(candidates.shape)
    rows = np.searchsorted(users, frame["user"].to_numpy())
    items = frame["movie"].to_numpy()
    good = frame["rating"].to_numpy() >= liked
    out = {}
    for alpha in alphas:
        order = stars if alpha is None else _standardised(score) + alpha * _standardised(stars)
        lists = rerank(candidates, order)
        out["stars only" if alpha is None else alpha] = {
            f"top_{k}_accuracy": list_top_k(lists, rows, items, (k,))[f"top_{k}_accuracy"],
            f"liked_top_{k}_accuracy": list_top_k(lists, rows[good], items[good], (k,))[f"top_{k}_accuracy"],
        }
    return pd.DataFrame(out).T.rename_axis("alpha")
