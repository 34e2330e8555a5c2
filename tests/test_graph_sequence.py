"""What is particular to the graph + LSTM rating model (the shared checks are in test_contracts)."""

import numpy as np
import pandas as pd
import pytest

from recsys_helpers.evaluation.ratings import rating_metrics
from recsys_helpers.models import graph_sequence, ratings


def test_user_sequences_are_in_time_order():
    frame = pd.DataFrame(
        {"user": [1, 0, 1, 1], "movie": [5, 3, 2, 4], "rating": [1.0, 2.0, 3.0, 4.0], "timestamp": [30, 5, 10, 10]}
    )
    indptr, movies, stars = graph_sequence.user_sequences(frame, 3)
    assert indptr.tolist() == [0, 1, 4, 4]
    assert movies.tolist() == [3, 2, 4, 5]  # user 1: time 10 (movies 2, 4 by code), then 30
    assert stars.tolist() == [2.0, 3.0, 4.0, 1.0]


@pytest.mark.parametrize("n", [1, 5, 9, 10, 23])
def test_windows_make_every_rating_a_target_once_with_context(n):
    indptr = np.array([0, n, n + 3])
    users, starts, firsts = graph_sequence.windows(indptr, length=6, context=2)
    for user, size in ((0, n), (1, 3)):
        mine = users == user
        targets = np.concatenate(
            [np.arange(f, min(s + 6, size)) for s, f in zip(starts[mine], firsts[mine], strict=True)]
        )
        assert sorted(targets.tolist()) == list(range(size))
        later = firsts[mine] > 0
        assert (firsts[mine][later] - starts[mine][later] == 2).all()  # two ratings of context


def test_windows_reject_a_context_as_long_as_the_window():
    with pytest.raises(ValueError):
        graph_sequence.windows(np.array([0, 4]), length=4, context=4)


def test_bipartite_means_average_the_neighbours():
    import tensorflow as tf

    users, movies = np.array([0, 0, 1]), np.array([0, 2, 2])
    to_user, to_movie = graph_sequence.bipartite_means(users, movies, np.ones(3), 2, 3)
    vectors = np.array([[1.0], [10.0], [3.0]], dtype="float32")
    assert tf.sparse.sparse_dense_matmul(to_user, vectors).numpy().ravel().tolist() == [2.0, 3.0]
    user_vectors = np.array([[4.0], [8.0]], dtype="float32")
    assert tf.sparse.sparse_dense_matmul(to_movie, user_vectors).numpy().ravel().tolist() == [4.0, 0.0, 6.0]


def test_the_lstm_learns_a_planted_trend(rating_split):
    """Each user's ratings drift over time: only a model that reads the order can follow them."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(40):
        drift = rng.choice([-1.0, 1.0])
        for t in range(40):
            stars = np.clip(3.0 + drift * (t - 20) / 10, 0.5, 5.0)
            rows.append((user, int(rng.integers(0, 30)), stars, t))
    frame = pd.DataFrame(rows, columns=["user", "movie", "rating", "timestamp"])
    train, test = frame[frame["timestamp"] < 32], frame[frame["timestamp"] >= 32]
    model = graph_sequence.GraphSequenceRatings(
        40, 30, dim=8, units=8, hidden=8, length=16, context=4, l2=0.0, epochs=25, batch_size=16,
        learning_rate=0.01, progress=False,
    ).fit(train)
    bias = ratings.BiasBaseline(40, 30, 1, 1).fit(train)
    ours = rating_metrics(test["rating"], model.predict(test))["mae"]
    theirs = rating_metrics(test["rating"], bias.predict(test))["mae"]
    assert ours < 0.7 * theirs, (ours, theirs)


def test_early_stopping_keeps_the_best_epoch(rating_split):
    model = graph_sequence.GraphSequenceRatings(
        rating_split.n_users, rating_split.n_movies, dim=4, units=4, hidden=4, length=8, context=2,
        epochs=3, batch_size=32, progress=False,
    ).fit(rating_split.train, rating_split.validation)
    assert 1 <= model.best_epoch_ <= 3 and "val_mse" in model.history_
    refitted = ratings.refit(model, rating_split.train_full)
    assert len(refitted.history_) == model.best_epoch_
