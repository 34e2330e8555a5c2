"""What is particular to the two-tower model (the shared checks are in test_contracts)."""

import keras_rs
import numpy as np
import pandas as pd

from recsys_helpers.evaluation.retrieval import factorized_top_k
from recsys_helpers.models import two_tower


def test_remove_accidental_hits():
    logits = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], dtype="float32")
    labels = np.eye(3, dtype="float32")[:2]
    out = np.asarray(two_tower.remove_accidental_hits(logits, labels, np.array([7, 5, 7])))
    assert out[0, 2] < -1e8 and out[0, 0] == 1.0 and out[0, 1] == 2.0
    assert np.allclose(out[1], logits[1])
    # keras-rs 0.4.0's own layer leaves the accidental hit's logit as it was (#206)
    theirs = keras_rs.layers.RemoveAccidentalHits()(logits, labels, np.array([7, 5, 7]))
    assert np.asarray(theirs)[0, 2] == 3.0


def test_index_agrees_with_recommend_and_history(checkerboard_split):
    model = two_tower.TwoTower(dim=8, epochs=3, batch_size=64, learning_rate=0.02, progress=False)
    model.fit(checkerboard_split, callback=lambda m: {"norm": float(np.abs(m.item_factors_).sum())})
    assert isinstance(model.history_, pd.DataFrame) and len(model.history_) == 3
    assert model.history_["norm"].iloc[-1] > 0
    _, ids = model.index(k=5)(model.customer_factors_[:6])
    np.testing.assert_array_equal(np.asarray(ids), model.recommend(np.arange(6), k=5))
    top = factorized_top_k(model, [0, 1], [0, 1], ks=(1, 10))
    assert set(top) == {"top_1_accuracy", "top_10_accuracy"}


def test_batches_are_almost_equal_in_size(split):
    model = two_tower.TwoTower(batch_size=100)
    model.build(split)
    sizes = [len(c) for c, _ in model.batches(np.random.default_rng(0))]
    assert sum(sizes) == len(model.customers_) and max(sizes) - min(sizes) <= 1


def _taste_ratings(n_users=60, n_movies=40, per_user=12, seed=0):
    """Users of two tastes rate only films of their taste; titles name the taste (planted)."""
    rng = np.random.default_rng(seed)
    taste = np.arange(n_movies) % 2
    names = [f"{'Alpha' if t else 'Omega'} story {i}" for i, t in enumerate(taste)]
    movies = pd.DataFrame(
        {
            "title": [f"{n} (1999)" for n in names],
            "name": names,
            "genres": ["Drama" if t else "Comedy" for t in taste],
            "genre_list": [["Drama"] if t else ["Comedy"] for t in taste],
        }
    )
    rows = []
    for user in range(n_users):
        mine = np.flatnonzero(taste == user % 2)
        for movie in rng.choice(mine, per_user, replace=False):
            rows.append((user, int(movie), 4.0))
    return pd.DataFrame(rows, columns=["user", "movie", "rating"]), movies


def test_movielens_towers_read_titles_words_and_genres():
    frame, movies = _taste_ratings()
    data = two_tower.MovieLensTowers(movies, 60, words=True, genres=True)(frame)
    assert [f.name for f in data.candidate_features] == ["title", "words", "genres"]
    assert data.candidate_tables["words"].shape[0] == len(movies) == data.n_candidates
    assert data.n_queries == 60 and len(data.queries) == len(frame)
    assert data.popularity.max() == 1.0


def test_movielens_two_tower_learns_the_planted_tastes():
    frame, movies = _taste_ratings()
    model = two_tower.TwoTower(
        towers=two_tower.MovieLensTowers(movies, 60, words=True, genres=True),
        dim=8, epochs=30, batch_size=64, learning_rate=0.02, progress=False,
    ).fit(frame)
    top = model.recommend(np.arange(60), k=10)
    same_taste = (top % 2) == (np.arange(60)[:, None] % 2)
    assert same_taste.mean() > 0.9  # chance: 0.5


def test_seed_setup_is_a_plain_embedding_tower():
    frame, movies = _taste_ratings()
    model = two_tower.TwoTower(towers=two_tower.MovieLensTowers(movies, 60), **two_tower.ML_SEED_SETUP)
    model.build(frame)
    assert [type(layer).__name__ for layer in model.query_.layers] == ["InputLayer", "Embedding"]
    assert model.make_optimizer().__class__.__name__ == "Adagrad"
