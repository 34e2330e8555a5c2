"""The MovieLens loader and splits, on synthetic ratings written by the package."""

import warnings
import zipfile
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recsys_helpers.datasets import movielens as ml
from recsys_helpers.datasets.download import DataError
from recsys_helpers.datasets.synthetic import write_ratings
from recsys_helpers.settings import get_settings

# The synthetic copies are not the book's copy: that warning has its own test below.
pytestmark = pytest.mark.filterwarnings("ignore:.*content differs:UserWarning")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_ratings(tmp_path_factory.mktemp("ml") / "ml-latest-small", seed=2)


@pytest.fixture(scope="module")
def tables(folder):
    return ml.read_movielens(folder)


def _settings(tmp_path, local=None):
    return replace(get_settings(), movielens_data=local, cache_dir=tmp_path / "cache", subset=False)


def test_check_folder_counts_rows(folder):
    assert ml.check_folder(folder, expected=False) == folder
    with pytest.raises(DataError, match="rows, not the 100,836"):
        ml.check_folder(folder)


def test_check_folder_rejects_foreign_rows_and_missing_files(tmp_path, folder):
    bad = tmp_path / "bad"
    bad.mkdir()
    ratings = pd.read_csv(folder / "ratings.csv")
    extra = pd.DataFrame([{"userId": 999, "movieId": 999999, "rating": 5.0, "timestamp": 1}])
    pd.concat([ratings, extra]).to_csv(bad / "ratings.csv", index=False)
    with pytest.raises(DataError, match="movies.csv does not exist"):
        ml.check_folder(bad, expected=False)
    (bad / "movies.csv").write_text((folder / "movies.csv").read_text())
    with pytest.warns(UserWarning, match="dropped 1 row"):
        kept, _ = ml.read_tables(bad, expected=False)
    assert len(kept) == len(ratings) and 999999 not in set(kept["movieId"])
    assert len(ml.read_movielens(bad)[0]) == len(ratings)  # the models never see the foreign row
    (bad / "ratings.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="columns"):
        ml.check_folder(bad, expected=False)


def test_fetch_uses_a_local_folder_and_unpacks_a_local_zip(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(ml, "RATINGS_ROWS", len(pd.read_csv(folder / "ratings.csv")))
    monkeypatch.setattr(ml, "MOVIES_ROWS", len(pd.read_csv(folder / "movies.csv")))
    assert ml.fetch_movielens(_settings(tmp_path, folder)) == folder
    archive = tmp_path / "ml.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("ratings.csv", "movies.csv"):
            zf.write(folder / name, f"ml-latest-small/{name}")
    out = ml.fetch_movielens(_settings(tmp_path, archive))
    assert out == tmp_path / "cache" / "ml-latest-small"
    assert sorted(p.name for p in out.iterdir()) == ["movies.csv", "ratings.csv"]
    assert not list(out.parent.glob("*.part"))  # the temporary folder was renamed or removed


def test_fetch_downloads_into_the_cache(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(ml, "RATINGS_ROWS", len(pd.read_csv(folder / "ratings.csv")))
    monkeypatch.setattr(ml, "MOVIES_ROWS", len(pd.read_csv(folder / "movies.csv")))
    calls = []

    def fake_download(url, dest, progress=True):
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest, "w") as zf:
            for name in ("ratings.csv", "movies.csv"):
                zf.write(folder / name, f"ml-latest-small/{name}")
        return dest

    monkeypatch.setattr(ml, "download_file", fake_download)
    settings = _settings(tmp_path)
    first = ml.fetch_movielens(settings)
    again = ml.fetch_movielens(settings)
    assert first == again and calls == [ml.MOVIELENS_URL]


def test_bad_zip_and_missing_local_path(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        ml.fetch_movielens(_settings(tmp_path, bad))
    with pytest.raises(DataError, match="does not exist"):
        ml.fetch_movielens(_settings(tmp_path, tmp_path / "nowhere"))


def test_movies_are_parsed():
    movies = ml.parse_movies(
        pd.DataFrame(
            {
                "movieId": [1, 2, 3],
                "title": ["Toy Story (1995)", "Babylon 5", "Dead Snow 2: Red vs. Dead (2014) "],
                "genres": ["Animation|Comedy", "(no genres listed)", "Horror"],
            }
        )
    )
    assert movies["name"].tolist() == ["Toy Story", "Babylon 5", "Dead Snow 2: Red vs. Dead"]
    assert (
        movies["year"].tolist()[0] == 1995
        and np.isnan(movies["year"][1])
        and movies["year"][2] == 2014
    )
    assert movies["genre_list"].tolist() == [["Animation", "Comedy"], [], ["Horror"]]
    matrix, genres = ml.genre_matrix(movies)
    assert genres == ["Animation", "Comedy", "Horror"]
    assert matrix.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    features, names = ml.movie_features(movies)
    assert names[-2:] == ["old", "year"] and features.shape == (3, 5)
    assert features[:, -2].tolist() == [1, 0, 0]  # the missing year takes the median (2004.5)


def test_context_is_utc_daytime_and_weekend():
    stamps = pd.to_datetime(
        ["2018-09-22 06:59", "2018-09-22 07:00", "2018-09-24 19:59", "2018-09-24 20:00"], utc=True
    )
    out = ml.add_context(
        pd.DataFrame({"timestamp": (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)})
    )
    assert out["daytime"].tolist() == [0, 1, 1, 0]
    assert out["weekend"].tolist() == [1, 1, 0, 0]  # 2018-09-22 was a Saturday


def test_codes_are_consecutive(tables):
    ratings, movies = tables
    assert ratings["user"].min() == 0 and ratings["user"].max() == ratings["userId"].nunique() - 1
    assert (
        movies.loc[ratings["movie"], "movieId"].to_numpy() == ratings["movieId"].to_numpy()
    ).all()


def test_temporal_split_takes_each_users_latest_ratings(tables):
    ratings, movies = tables
    split = ml.temporal_split(ratings, movies)
    assert split.sizes().sum() == len(ratings)
    for user, test in split.test.groupby("user"):
        history = split.train_full[split.train_full["user"] == user]
        n = len(history) + len(test)
        assert len(test) == int(np.ceil(0.2 * n))
        assert history["timestamp"].max() <= test["timestamp"].min()
        train = split.train[split.train["user"] == user]
        val = split.validation[split.validation["user"] == user]
        assert train["timestamp"].max() <= val["timestamp"].min()
    assert split.n_users == ratings["user"].nunique() and split.kind == "temporal"


def test_last_fraction_keeps_one_early_rating():
    frame = pd.DataFrame({"user": [0, 1, 1], "movie": [0, 1, 2], "timestamp": [5, 1, 2]})
    assert ml._last_fraction(frame, 0.9).tolist() == [False, False, True]


def test_random_split_is_reproducible(tables):
    ratings, movies = tables
    a, b = ml.random_split(ratings, movies, seed=1), ml.random_split(ratings, movies, seed=1)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert a.sizes().sum() == len(ratings) and 0.1 < len(a.test) / len(ratings) < 0.3


def test_split_facts_say_what_the_test_asks(tables):
    ratings, movies = tables
    temporal = ml.split_facts(ml.temporal_split(ratings, movies))
    random = ml.split_facts(ml.random_split(ratings, movies, seed=1))
    older = "test ratings older than the user's latest training rating (%)"
    assert temporal[["train", "validation", "test"]].sum() == len(ratings)
    assert temporal[older] == 0  # the temporal test asks only about each user's future
    assert random[older] > 0
    assert 0 <= random["test ratings of films unseen in training (%)"] <= 100
    split = ml.temporal_split(ratings, movies)
    assert temporal["test mean rating"] == pytest.approx(split.test["rating"].mean())


def test_sample_users_keeps_whole_users(tables):
    ratings, _ = tables
    sample = ml.sample_users(ratings, 0.5, seed=3)
    kept = sample["userId"].unique()
    assert 0 < len(kept) < ratings["userId"].nunique()
    assert len(sample) == ratings["userId"].isin(kept).sum()
    assert sample["user"].max() == len(kept) - 1


def test_load_ratings_in_subset_mode(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(ml, "RATINGS_ROWS", len(pd.read_csv(folder / "ratings.csv")))
    monkeypatch.setattr(ml, "MOVIES_ROWS", len(pd.read_csv(folder / "movies.csv")))
    settings = replace(_settings(tmp_path, folder), subset=True)
    split = ml.load_ratings("temporal", settings)
    assert split.subset and split.n_users < 80
    assert ml.load_ratings("random", settings).kind == "random"
    with pytest.raises(ValueError, match="unknown split"):
        ml.load_ratings("other", settings)


def test_fingerprint_warns_on_other_content(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(ml, "RATINGS_ROWS", len(pd.read_csv(folder / "ratings.csv")))
    monkeypatch.setattr(ml, "MOVIES_ROWS", len(pd.read_csv(folder / "movies.csv")))
    with pytest.warns(UserWarning, match="content differs"):
        ml.check_folder(folder)
    ratings, movies = pd.read_csv(folder / "ratings.csv"), pd.read_csv(folder / "movies.csv")
    monkeypatch.setattr(ml, "MOVIELENS_FINGERPRINT", ml.movielens_fingerprint(ratings, movies))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ml.check_folder(folder)


def test_title_tokens_genre_codes_and_title_codes():
    movies = ml.parse_movies(
        pd.DataFrame(
            {
                "movieId": [1, 2, 3, 4],
                "title": ["Toy Story (1995)", "Toy Story 2 (1999)", "The Story of Us (1999)", "Toy Story (1995)"],
                "genres": ["Animation|Children", "Animation", ml.NO_GENRE, "Children"],
            }
        )
    )
    tokens, vocabulary = ml.title_tokens(movies, max_words=3, min_count=2)
    assert vocabulary == ["story", "toy"]  # "2" and "us" occur once; "the", "of" are stop words
    assert tokens.tolist() == [[2, 1, 0], [2, 1, 0], [1, 0, 0], [2, 1, 0]]
    codes, names = ml.genre_codes(movies)
    assert names == ["Animation", "Children"]
    assert codes.tolist() == [[1, 2], [1, 0], [0, 0], [2, 0]]
    titles = ml.title_codes(movies)
    assert titles[0] == titles[3] and len(set(titles)) == 3
