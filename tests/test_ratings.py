"""Rating models, their metrics and the ranking task, on synthetic ratings (no files).

The shared checks of every rating model (shapes, beating the global mean) are in
``test_contracts.py``; these test what each model or helper does in particular.
"""

import numpy as np
import pandas as pd
import pytest

from recsys_helpers.evaluation import ratings as ev
from recsys_helpers.models import ratings as rt


def _rmse(model, frame):
    return ev.rating_metrics(frame["rating"], model.predict(frame))["rmse"]


def test_rating_metrics_clip_to_the_star_scale():
    out = ev.rating_metrics([1.0, 5.0, 3.0], [0.0, 6.0, 4.0])
    assert out["mae"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert out["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 1) / 3))


def test_bias_baseline_recovers_planted_biases():
    rng = np.random.default_rng(0)
    users, movies = rng.integers(0, 30, 5000), rng.integers(0, 20, 5000)
    b_u, b_i = rng.normal(0, 0.5, 30), rng.normal(0, 0.5, 20)
    frame = pd.DataFrame({"user": users, "movie": movies, "rating": 3 + b_u[users] + b_i[movies]})
    model = rt.BiasBaseline(30, 21, l2_user=0.0, l2_item=0.0, sweeps=50).fit(frame)
    pred = model.predict(frame)
    assert np.abs(pred - frame["rating"]).max() < 1e-3
    assert model.item_bias_[20] == 0.0  # a movie without ratings has no bias
    assert model.score_users([0, 1]).shape == (2, 21)


def test_baselines_order(rating_split):
    mean = rt.GlobalMean(rating_split.n_users, rating_split.n_movies).fit(rating_split.train)
    bias = rt.BiasBaseline(rating_split.n_users, rating_split.n_movies).fit(rating_split.train)
    assert _rmse(bias, rating_split.test) < _rmse(mean, rating_split.test)
    assert mean.score_users([0, 3]).shape == (2, rating_split.n_movies)


def test_content_based_learns_planted_genre_tastes(rating_split, rating_features):
    bias = rt.BiasBaseline(rating_split.n_users, rating_split.n_movies).fit(rating_split.train)
    content = rt.ContentRatings(rating_features, rating_split.n_users, l2=3.0).fit(
        rating_split.train
    )
    assert _rmse(content, rating_split.test) < _rmse(bias, rating_split.test)
    scores = content.score_users(np.array([0, 1]))
    assert np.allclose(
        scores[0, rating_split.test["movie"][:3]],
        content.predict(pd.DataFrame({"user": 0, "movie": rating_split.test["movie"][:3]})),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "build, kwargs",
    [
        (rt.build_mf, {"factors": 3}),
        (rt.build_mf, {"factors": 3, "biases": True, "l2": 1e-5}),
        (rt.build_cf, {"factors": 4}),
        (rt.build_ncf, {"factors": 4, "hidden": 4}),
    ],
)
def test_keras_models_train_and_predict(rating_split, build, kwargs):
    model = rt.KerasRatings(
        build,
        rating_split.n_users,
        rating_split.n_movies,
        epochs=3,
        batch_size=64,
        learning_rate=0.01,
        progress=False,
        **kwargs,
    )
    model.fit(rating_split.train, rating_split.validation)
    assert 1 <= model.best_epoch_ <= 3 and len(model.history_) <= 3
    pred = model.predict(rating_split.test)
    assert pred.shape == (len(rating_split.test),) and np.isfinite(pred).all()
    first = rating_split.test.iloc[:1]
    user, movie = int(first["user"].iloc[0]), int(first["movie"].iloc[0])
    scores = model.score_users(np.array([user, 0]))
    assert scores.shape == (2, rating_split.n_movies)
    assert scores[0, movie] == pytest.approx(float(model.predict(first)[0]), abs=1e-4)


def test_mf_with_biases_beats_the_mean_and_is_reproducible(rating_split):
    def fit():
        return rt.KerasRatings(
            rt.build_mf,
            rating_split.n_users,
            rating_split.n_movies,
            factors=2,
            biases=True,
            l2=1e-5,
            epochs=8,
            learning_rate=0.02,
            progress=False,
        ).fit(rating_split.train, epochs=8)

    a, b = fit(), fit()
    mean = rt.GlobalMean(rating_split.n_users, rating_split.n_movies).fit(rating_split.train)
    assert _rmse(a, rating_split.test) < _rmse(mean, rating_split.test)
    assert np.allclose(a.predict(rating_split.test), b.predict(rating_split.test), atol=1e-5)
    assert a.embeddings("movie_factors").shape == (rating_split.n_movies, 2)


def test_hybrid_takes_context(rating_split, rating_features):
    model = rt.KerasRatings(
        rt.build_hybrid_ratings,
        rating_split.n_users,
        rating_split.n_movies,
        features=rating_features,
        factors=4,
        hidden=4,
        epochs=2,
        progress=False,
    ).fit(rating_split.train)
    assert {t.name for t in model.model.inputs} == {"user", "movie", "context"}
    ctx = np.array([[1, 0], [0, 1]], dtype="float32")
    assert model.score_users(np.array([0, 1]), ctx).shape == (2, rating_split.n_movies)
    without = rt.build_hybrid_ratings(
        rating_split.n_users,
        rating_split.n_movies,
        rating_features,
        factors=4,
        hidden=4,
        context=False,
    )
    assert {t.name for t in without.inputs} == {"user", "movie"}
    assert not without.get_layer("movie_features").trainable


def test_ranking_task_excludes_history_and_scores_hits():
    history = pd.DataFrame({"user": [0, 0, 1], "movie": [0, 1, 2]})
    test = pd.DataFrame(
        {
            "user": [0, 0, 1, 1],
            "movie": [2, 3, 3, 4],
            "rating": [5.0, 2.0, 4.0, 1.0],
            "timestamp": [1, 2, 3, 4],
            "daytime": [1, 0, 0, 1],
            "weekend": [0, 0, 1, 1],
        }
    )
    task = ev.RankingTask.build(history, test, n_movies=6)
    assert task.users.tolist() == [0, 1] and task.relevant.tolist() == [2, 3]
    assert task.candidates.tolist() == [True, True, True, False, False, False]
    assert task.context.tolist() == [[1, 0], [0, 1]]

    class Fixed:
        def score_users(self, users, context=None):
            return np.tile(
                np.arange(6, dtype=float)[::-1], (len(users), 1)
            )  # prefers low movie codes

    recs = task.recommend(Fixed(), k=2)
    assert recs[0, 0] == 2  # movies 0 and 1 were rated by user 0; 3-5 are not candidates
    assert recs[1, 0] == 0
    out = task.evaluate(Fixed(), k=1)
    assert out["precision_at_1"] == pytest.approx(0.5)


def test_popularity_counts_ratings():
    pop = rt.MoviePopularity(4).fit(pd.DataFrame({"movie": [1, 1, 3]}))
    assert pop.score_users([0, 1]).tolist() == [[0, 2, 0, 1]] * 2


def test_article_agreement_on_a_perfect_and_a_reversed_model():
    frame = pd.DataFrame({"user": 0, "movie": np.arange(6), "rating": [5, 4.5, 4, 3, 2, 1.0]})
    perfect = ev.article_agreement(frame, frame["rating"])
    assert perfect == {"accuracy": 1.0, "mrr": pytest.approx(np.mean(1 / np.arange(1, 6)))}
    reverse = ev.article_agreement(frame, -frame["rating"])
    assert reverse["accuracy"] == 0.0  # true top 5: movies 0-4; predicted: 5, 4, 3, 2, 1
    assert reverse["mrr"] == pytest.approx((1 / 5 + 1 / 4 + 1 / 3 + 1 / 2) / 5)


def test_evaluate_and_refit_a_baseline(rating_split):
    task = ev.RankingTask.build(rating_split.train, rating_split.validation, rating_split.n_movies)
    bias = rt.BiasBaseline(rating_split.n_users, rating_split.n_movies).fit(rating_split.train)
    out = ev.evaluate(bias, rating_split.validation, task)
    assert set(out) == {"mae", "rmse", "precision_at_5", "recall_at_5", "ndcg_at_5", "mrr_at_5"}
    before = bias.mu_
    rt.refit(bias, rating_split.train_full)
    assert (
        bias.mu_ == pytest.approx(rating_split.train_full["rating"].mean()) and bias.mu_ != before
    )
    assert set(
        ev.evaluate(
            rt.MoviePopularity(rating_split.n_movies).fit(rating_split.train),
            rating_split.validation,
            task,
        )
    ) == {"precision_at_5", "recall_at_5", "ndcg_at_5", "mrr_at_5"}


def test_refit_uses_the_best_epoch(rating_split):
    model = rt.KerasRatings(
        rt.build_mf,
        rating_split.n_users,
        rating_split.n_movies,
        factors=2,
        epochs=3,
        progress=False,
    )
    model.fit(rating_split.train, rating_split.validation)
    best = model.best_epoch_
    rt.refit(model, rating_split.train_full)
    assert len(model.history_) == best == model.best_epoch_


def test_nearest_and_projection():
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    order, cos = rt.nearest(vectors, 0, k=2)
    assert order.tolist() == [1, 2] and cos[0] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    order, _ = rt.nearest(vectors, 0, k=1, allowed=np.array([True, False, True, True]))
    assert order.tolist() == [2]
    xy = rt.project_2d(np.random.default_rng(0).normal(size=(20, 5)))
    assert xy.shape == (20, 2) and np.allclose(xy.mean(axis=0), 0, atol=1e-9)
