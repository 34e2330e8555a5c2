"""The ratings protocol (MovieLens): stars predicted for held-out ratings, and top-5 per user.

``rating_metrics`` gives MAE and RMSE; ``RankingTask`` ranks, for every test user, the movies they
had not rated and scores the top five against the movies they then liked; ``article_agreement`` is
the hybrid-network article's per-user view. The models' side (``fit(frame)``, ``predict(frame)``, and
``score_users(users, context)`` for ranking) is written down in ``models.base.RatingModel``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..datasets.movielens import CONTEXT, MAX_RATING, MIN_RATING
from . import metrics
from .scores import Scores


def rating_metrics(y_true, y_pred) -> dict[str, float]:
    """``mae`` and ``rmse`` of predictions clipped to the 0.5-5 star scale."""
    y_true = np.asarray(y_true, dtype="float64")
    y_pred = np.clip(np.asarray(y_pred, dtype="float64"), MIN_RATING, MAX_RATING)
    err = y_pred - y_true
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}


@dataclass
class RankingTask:
    """Rank, for every test user with a liked test movie, the movies they did not rate before.

    Candidates are the movies rated by anyone in ``history`` (a rating model knows nothing about
    the others), minus the user's own history; relevant items are the user's test movies rated at
    least ``threshold`` stars. ``context`` holds the (daytime, weekend) of each user's first test
    rating: the moment the recommendation is shown.
    """

    users: np.ndarray
    indptr: np.ndarray
    relevant: np.ndarray
    seen: list[np.ndarray]
    candidates: np.ndarray
    context: np.ndarray
    n_movies: int

    @classmethod
    def build(
        cls, history: pd.DataFrame, test: pd.DataFrame, n_movies: int, threshold: float = 4.0
    ) -> RankingTask:
        liked = test[test["rating"] >= threshold].sort_values(["user", "movie"])
        users = np.unique(liked["user"].to_numpy())
        counts = liked.groupby("user").size().reindex(users).to_numpy()
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype("int64")
        by_user = history.groupby("user")["movie"].apply(np.asarray)
        seen = [by_user.get(u, np.zeros(0, dtype="int64")) for u in users]
        candidates = np.zeros(n_movies, dtype=bool)
        candidates[history["movie"].to_numpy()] = True
        first = (
            test.sort_values(["user", "timestamp", "movie"])
            .drop_duplicates("user")
            .set_index("user")
        )
        context = first.loc[users, list(CONTEXT)].to_numpy("float32")
        return cls(
            users, indptr, liked["movie"].to_numpy("int64"), seen, candidates, context, n_movies
        )

    def recommend(self, model, k: int = 5, chunk: int = 128) -> np.ndarray:
        """(n_users, k) top movies of ``model.score_users`` among each user's candidates."""
        out = []
        for start in range(0, len(self.users), chunk):
            users = self.users[start : start + chunk]
            scores = np.array(
                model.score_users(users, self.context[start : start + chunk]), dtype="float32"
            )
            scores[:, ~self.candidates] = -np.inf
            for row, seen in enumerate(self.seen[start : start + chunk]):
                scores[row, seen] = -np.inf
            out.append(metrics.top_k(scores, k))
        return np.concatenate(out)

    def evaluate(self, model, k: int = 5) -> dict[str, float]:
        """``precision_at_k``, ``recall_at_k``, ``ndcg_at_k``, ``mrr_at_k`` averaged over users."""
        return metrics.ranking_metrics(self.indptr, self.relevant, self.recommend(model, k), k)


def article_agreement(frame: pd.DataFrame, predictions, k: int = 5) -> dict[str, float]:
    """The hybrid-network article's per-user view, averaged over users: order each user's own test movies by the
    true and by the predicted rating and compare the two top-``k`` lists.

    ``accuracy`` is sklearn's ``accuracy_score`` of the two lists (same movie at the same
    position); ``mrr`` is the article's mean over the true top-k of 1 / (rank in the predicted top-k)
    (0 if absent). Ties in the true ratings are broken by movie code, which makes both noisy.
    """
    df = pd.DataFrame(
        {
            "user": frame["user"].to_numpy(),
            "movie": frame["movie"].to_numpy(),
            "y": frame["rating"].to_numpy(),
            "yhat": np.asarray(predictions),
        }
    )
    acc, mrr = [], []
    for _, g in df.groupby("user", sort=True):
        if len(g) < k:
            continue
        truth = g.sort_values(["y", "movie"], ascending=[False, True])["movie"].to_numpy()[:k]
        pred = g.sort_values(["yhat", "movie"], ascending=[False, True])["movie"].to_numpy()[:k]
        acc.append(float(np.mean(truth == pred)))
        rank = {m: j + 1 for j, m in enumerate(pred)}
        mrr.append(float(np.mean([1.0 / rank[m] if m in rank else 0.0 for m in truth])))
    return {"accuracy": float(np.mean(acc)), "mrr": float(np.mean(mrr))}


def rating_scores(frame: pd.DataFrame, y_pred) -> Scores:
    """``rating_metrics`` of predictions for ``frame``'s ratings, with each rating's absolute
    and squared error (the units) and its user (the cluster)."""
    y_true = frame["rating"].to_numpy(dtype="float64")
    err = np.clip(np.asarray(y_pred, dtype="float64"), MIN_RATING, MAX_RATING) - y_true
    units = pd.DataFrame({"error": err, "absolute_error": np.abs(err), "squared_error": err**2})
    return Scores(rating_metrics(y_true, y_pred), units, frame["user"].to_numpy(), "ratings")


def evaluate(model, frame: pd.DataFrame, task: RankingTask | None = None, k: int = 5) -> dict[str, float]:
    """MAE/RMSE of ``model`` on ``frame`` (a ``Scores``, with each rating's errors) and, given a
    ``task``, its top-``k`` ranking metrics."""
    out = rating_scores(frame, model.predict(frame)) if hasattr(model, "predict") else {}
    if task is not None:
        out.update(task.evaluate(model, k))
    return out
