"""MovieLens latest-small: fetch -> check -> ratings and movies -> per-user splits.

The explicit-ratings counterpart of ``retail.py``. ``load_ratings()`` is what a chapter calls; it
returns a ``RatingSplit`` (train / validation / test ratings plus the movie table). The raw files
follow the same rules as the retail data: downloaded once with a progress bar into a temporary
file that is renamed when complete, checked (columns and row counts), unpacked atomically into
the cache, never committed. ``RECSYS_MOVIELENS_DATA`` may point at the unpacked folder or the zip.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..settings import SUBSET_FRACTION, Settings, get_settings
from .download import DataError, download_file, stable_hash
from .tokens import token_ids

MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
MOVIELENS_NAME = "ml-latest-small"
RATINGS_COLUMNS = ("userId", "movieId", "rating", "timestamp")
MOVIES_COLUMNS = ("movieId", "title", "genres")
RATINGS_ROWS = 100_836
MOVIES_ROWS = 9_742
NO_GENRE = "(no genres listed)"
MIN_RATING, MAX_RATING = 0.5, 5.0  # the star scale
CONTEXT = ("daytime", "weekend")  # the context columns of ``add_context``
#: sha256 of the two tables' content (see ``movielens_fingerprint``) of the copy the book's numbers
#: come from: 100,836 ratings and 9,742 films, as documented for the original zip.
MOVIELENS_FINGERPRINT = "152b6090210e9ee17397a471ed2a21f6e9de621c4563ac6708ba40e3ff154988"
_YEAR = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")


# ---------------------------------------------------------------------------------------------
# Fetching and checking


def _read_checked_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.exists():
        raise DataError(
            f"{path} does not exist. Point RECSYS_MOVIELENS_DATA at the unpacked '{MOVIELENS_NAME}' "
            "folder (or its zip), or unset it so that the book downloads the data (`make data`)."
        )
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise DataError(
            f"{path} could not be read as CSV ({type(err).__name__}: {err}); the file is damaged."
        ) from err
    if tuple(frame.columns) != columns:
        raise DataError(
            f"{path} has columns {list(frame.columns)}, expected {list(columns)}: not MovieLens latest-small."
        )
    return frame


def read_tables(
    folder: Path, expected: bool = True, source: Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and check ratings.csv and movies.csv of MovieLens latest-small.

    Checks columns, that every rated movie is in movies.csv and that ratings lie on the 0.5-5
    star scale, and (unless ``expected=False``, for synthetic data or another release) the row
    counts: 100,836 ratings, 9,742 movies. Rows that rate an unknown movie or lie off the scale
    cannot be used by any model: they are dropped with a warning that names them, and the counts
    and the content fingerprint are checked on what remains. Content that differs from the copy
    the book was executed on gives a warning (naming ``source``, default ``folder``), not an error.

    Raises
    ------
    DataError
        If a file is missing, unreadable, has other columns, or the wrong number of good rows.
    """
    folder = Path(folder)
    ratings = _read_checked_csv(folder / "ratings.csv", RATINGS_COLUMNS)
    movies = _read_checked_csv(folder / "movies.csv", MOVIES_COLUMNS)
    stars = ratings["rating"].to_numpy(dtype="float64")
    bad = (
        ~ratings["movieId"].isin(movies["movieId"])
        | (stars < 0.5)
        | (stars > 5)
        | (stars * 2 % 1 != 0)
    )
    dropped = ratings[bad]
    ratings = ratings[~bad].reset_index(drop=True)
    for name, frame, rows in (
        ("ratings.csv", ratings, RATINGS_ROWS),
        ("movies.csv", movies, MOVIES_ROWS),
    ):
        if expected and len(frame) != rows:
            raise DataError(
                f"{folder / name} has {len(frame):,} usable rows, not the {rows:,} of MovieLens latest-small: "
                "the file is truncated or another MovieLens release. Delete it and run `make data` again."
            )
    same = movielens_fingerprint(ratings, movies) == MOVIELENS_FINGERPRINT
    if len(dropped):
        warnings.warn(
            f"{folder / 'ratings.csv'}: dropped {len(dropped)} row(s) that rate a movie missing from movies.csv "
            f"or lie off the 0.5-5 star scale, e.g. {dropped.head(3).to_dict('records')}; the copy has rows "
            "appended or edited. "
            + ("The remaining rows are exactly the original's." if expected and same else ""),
            stacklevel=2,
        )
    if expected and not same:
        warnings.warn(
            f"{source or folder} holds the expected columns and rows but its content differs from the copy this "
            "book was executed on; your numbers may differ from the text.",
            stacklevel=2,
        )
    return ratings, movies


def check_folder(folder: Path, expected: bool = True, source: Path | None = None) -> Path:
    """``read_tables`` as a check: return ``folder`` if its files are usable (see there)."""
    read_tables(folder, expected, source)
    return Path(folder)


def movielens_fingerprint(ratings: pd.DataFrame, movies: pd.DataFrame) -> str:
    """sha256 of the two tables written back as CSV (independent of line endings and quoting)."""
    digest = hashlib.sha256()
    for frame in (ratings, movies):
        digest.update(frame.to_csv(index=False).encode())
    return digest.hexdigest()


def unpack_zip(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` (with its ``ml-latest-small/`` folder) into ``dest`` atomically.

    The files go to a temporary folder beside ``dest`` that is renamed only when complete.
    """
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part"))
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in ("ratings.csv", "movies.csv"):
                members = [m for m in zf.namelist() if m.rsplit("/", 1)[-1] == name]
                if not members:
                    raise DataError(
                        f"{archive} holds no {name}: not the MovieLens latest-small zip."
                    )
                with zf.open(members[0]) as src, open(tmp / name, "wb") as out:
                    shutil.copyfileobj(src, out)
        check_folder(tmp, source=archive)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except zipfile.BadZipFile as err:
        raise DataError(
            f"{archive} is not a valid zip ({err}); delete it and download it again."
        ) from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetch_movielens(settings: Settings | None = None, *, progress: bool = True) -> Path:
    """Return a checked folder with ``ratings.csv`` and ``movies.csv``, downloading if needed.

    Order of preference: ``RECSYS_MOVIELENS_DATA`` (a folder is used in place, a zip is unpacked
    into the cache); the unpacked copy in the cache; the zip in the cache; a fresh download.
    """
    settings = settings or get_settings()
    cached = settings.cache_dir / MOVIELENS_NAME
    local = settings.movielens_data
    if local is not None:
        if not local.exists():
            raise DataError(
                f"RECSYS_MOVIELENS_DATA={local} does not exist; fix it or unset it to download the data."
            )
        if local.is_dir():
            return check_folder(local)
        if (cached / "ratings.csv").exists() and (cached / "movies.csv").exists():
            return cached
        return unpack_zip(local, cached)
    if (cached / "ratings.csv").exists() and (cached / "movies.csv").exists():
        return check_folder(cached)
    archive = settings.cache_dir / (MOVIELENS_NAME + ".zip")
    if not archive.exists():
        download_file(MOVIELENS_URL, archive, progress=progress)
    return unpack_zip(archive, cached)


# ---------------------------------------------------------------------------------------------
# Tables


def parse_movies(movies: pd.DataFrame) -> pd.DataFrame:
    """Movie table with ``name`` (title without the year), ``year`` (float, NaN if absent) and
    ``genre_list``; the raw ``title`` and ``genres`` columns are kept."""
    movies = movies.copy()
    years = movies["title"].str.strip().str.extract(_YEAR)[0]
    movies["year"] = pd.to_numeric(years, errors="coerce").astype("float64")
    movies["name"] = movies["title"].str.strip().str.replace(_YEAR, "", regex=True).str.strip()
    movies["genre_list"] = (
        movies["genres"].str.split("|").map(lambda g: [x for x in g if x != NO_GENRE])
    )
    return movies


def add_context(ratings: pd.DataFrame) -> pd.DataFrame:
    """``time`` (UTC datetime), ``daytime`` (7:00-19:59, the source's 6 < hour < 20) and ``weekend``.

    MovieLens timestamps are UTC seconds and the users' time zones are unknown, so the context is
    UTC context: a rough proxy (for users in the Americas, UTC noon is early morning).
    """
    ratings = ratings.copy()
    time = pd.to_datetime(ratings["timestamp"], unit="s", utc=True)
    ratings["time"] = time
    hour = time.dt.hour
    ratings["daytime"] = ((hour > 6) & (hour < 20)).astype("int8")
    ratings["weekend"] = (time.dt.day_of_week >= 5).astype("int8")
    return ratings


def genre_matrix(movies: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """(n_movies, n_genres) 0/1 matrix in the order of ``movies`` and the genre names (sorted)."""
    genres = sorted({g for lst in movies["genre_list"] for g in lst})
    index = {g: j for j, g in enumerate(genres)}
    matrix = np.zeros((len(movies), len(genres)), dtype="float32")
    for row, lst in enumerate(movies["genre_list"]):
        for g in lst:
            matrix[row, index[g]] = 1.0
    return matrix, genres


def movie_features(movies: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Genres plus ``old`` (released before 2000, the source's flag) and a scaled ``year``.

    ``year`` is (year - 2000) / 20, missing years set to the median; the result is ``float32``.
    """
    genres, names = genre_matrix(movies)
    year = movies["year"].fillna(movies["year"].median()).to_numpy("float32")
    old = (year < 2000).astype("float32")
    return np.column_stack([genres, old, (year - 2000.0) / 20.0]).astype("float32"), [
        *names,
        "old",
        "year",
    ]


_TITLE_WORD = re.compile(r"[a-z0-9]+")
#: Title words that say nothing about a film.
TITLE_STOP_WORDS = frozenset({"the", "a", "an", "of", "and", "in", "on", "to", "le", "la", "les", "de"})


def title_codes(movies: pd.DataFrame) -> np.ndarray:
    """One code per distinct ``title`` string (films with the same title share it), in the order
    of ``movies``: what a string lookup of the title gives (the two-tower source's movie id)."""
    return pd.factorize(movies["title"], sort=True)[0].astype("int32")


def title_tokens(
    movies: pd.DataFrame, max_words: int = 8, min_count: int = 2
) -> tuple[np.ndarray, list[str]]:
    """(n_movies, max_words) word ids of each title without its year, 0 = padding; the vocabulary.

    Words are lower-case letters and digits (so "2" of a sequel counts), stop words dropped; a
    word must occur in at least ``min_count`` titles. Ids start at 1.
    """
    words = [
        [w for w in _TITLE_WORD.findall(str(name).lower()) if w not in TITLE_STOP_WORDS]
        for name in movies["name"]
    ]
    return token_ids(words, max_words, min_count)


def genre_codes(movies: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """(n_movies, most genres of a film) genre ids (1-based, 0 = padding) and the genre names:
    the genres of ``genre_matrix`` as a list of tokens per film."""
    matrix, names = genre_matrix(movies)
    width = max(1, int(matrix.sum(axis=1).max())) if len(matrix) else 1
    codes = np.zeros((len(matrix), width), dtype="int32")
    for row, cols in enumerate(matrix.astype(bool)):
        ids = np.flatnonzero(cols) + 1
        codes[row, : len(ids)] = ids
    return codes, names


def read_movielens(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings with ``user``/``movie`` codes and context, and the parsed movie table.

    ``movie`` indexes the rows of the returned movie table (the whole catalogue of movies.csv, in
    its order); ``user`` is 0-based in the order of ``userId``.
    """
    with warnings.catch_warnings():  # fetch_movielens has shown them already
        warnings.simplefilter("ignore")
        ratings, movies = read_tables(folder, expected=False)
    movies = parse_movies(movies)
    movies["movie"] = np.arange(len(movies), dtype="int32")
    codes = pd.Index(movies["movieId"]).get_indexer(ratings["movieId"])
    ratings["movie"] = codes.astype("int32")
    ratings["user"] = (
        pd.Index(np.unique(ratings["userId"])).get_indexer(ratings["userId"]).astype("int32")
    )
    ratings["rating"] = ratings["rating"].astype("float32")
    return add_context(ratings), movies


# ---------------------------------------------------------------------------------------------
# Splits


@dataclass(frozen=True)
class RatingSplit:
    """Train / validation / test ratings and the movie table.

    ``validation`` is carved from the training part (tuning happens there); ``train_full`` is
    train + validation, the history a model may use when it is finally tested.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    movies: pd.DataFrame
    n_users: int
    kind: str = "temporal"
    subset: bool = False

    @property
    def n_movies(self) -> int:
        return len(self.movies)

    @property
    def train_full(self) -> pd.DataFrame:
        return pd.concat([self.train, self.validation], ignore_index=True)

    def sizes(self) -> pd.Series:
        return pd.Series(
            {p: len(getattr(self, p)) for p in ("train", "validation", "test")}, name="ratings"
        )


def _last_fraction(ratings: pd.DataFrame, fraction: float) -> np.ndarray:
    """Boolean mask of each user's latest ``fraction`` of ratings (rounded up; at least one
    rating stays on the early side). Ties in time are broken by movie code, so it is stable."""
    order = ratings.sort_values(["user", "timestamp", "movie"], kind="stable").index
    sorted_users = ratings.loc[order, "user"].to_numpy()
    counts = np.bincount(
        sorted_users, minlength=int(sorted_users.max()) + 1 if len(sorted_users) else 0
    )
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - starts[sorted_users]
    n = counts[sorted_users]
    n_late = np.minimum(np.ceil(fraction * n), n - 1)
    late_sorted = rank >= n - n_late
    mask = np.zeros(len(ratings), dtype=bool)
    mask[ratings.index.get_indexer(order)] = late_sorted
    return mask


def _rating_split(ratings, early, val, test, movies, kind, subset) -> RatingSplit:
    """Train ``early[~val]``, validation ``early[val]`` and ``test``, each indexed from 0."""
    parts = (early[~val], early[val], test)
    n_users = int(ratings["user"].max()) + 1
    return RatingSplit(*(p.reset_index(drop=True) for p in parts), movies, n_users, kind, subset)


def temporal_split(
    ratings, movies, test_fraction=0.2, val_fraction=0.1, subset=False
) -> RatingSplit:
    """Each user's latest ``test_fraction`` of ratings is test; of the rest, the latest
    ``val_fraction`` is validation. Every user is in all three parts (given enough ratings)."""
    ratings = ratings.reset_index(drop=True)
    late = _last_fraction(ratings, test_fraction)
    early = ratings[~late].reset_index(drop=True)
    val = _last_fraction(early, val_fraction)
    return _rating_split(ratings, early, val, ratings[late], movies, "temporal", subset)


def random_split(
    ratings, movies, test_fraction=0.2, val_fraction=0.1, seed=None, subset=False
) -> RatingSplit:
    """The articles' split: a random ``test_fraction`` of all ratings is test, whatever their time;
    a random ``val_fraction`` of the rest is validation (``seed``: the settings' seed if None)."""
    ratings = ratings.reset_index(drop=True)
    rng = np.random.default_rng(get_settings().seed if seed is None else seed)
    test = rng.random(len(ratings)) < test_fraction
    early = ratings[~test].reset_index(drop=True)
    val = rng.random(len(early)) < val_fraction
    return _rating_split(ratings, early, val, ratings[test], movies, "random", subset)


def sample_users(ratings: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """A deterministic sample of whole users (all their ratings), users re-coded 0..n-1."""
    threshold = np.uint64(int(fraction * 2**32)) << np.uint64(32)
    keep = stable_hash(ratings["userId"].to_numpy().astype(np.int64) + 7, seed) < threshold
    out = ratings[keep].copy()
    out["user"] = pd.Index(np.unique(out["userId"])).get_indexer(out["userId"]).astype("int32")
    return out.reset_index(drop=True)


@functools.cache
def _load(settings: Settings, kind: str) -> RatingSplit:
    ratings, movies = read_movielens(fetch_movielens(settings))
    if settings.subset:
        ratings = sample_users(ratings, SUBSET_FRACTION, settings.seed)
    if kind == "temporal":
        return temporal_split(ratings, movies, subset=settings.subset)
    if kind == "random":
        return random_split(ratings, movies, seed=settings.seed, subset=settings.subset)
    raise ValueError(f"unknown split {kind!r}; use 'temporal' or 'random'")


def load_ratings(kind: str = "temporal", settings: Settings | None = None) -> RatingSplit:
    """MovieLens latest-small split ``kind`` ('temporal' or 'random'); a user sample in subset mode."""
    return _load(settings or get_settings(), kind)


def split_facts(split: RatingSplit) -> pd.Series:
    """The sizes of a split's parts, and what its test part asks of a model trained on the rest:
    the share (%) of test ratings older than the same user's latest training rating, the share
    (%) of test ratings of films nobody rated in training, and the test's mean rating."""
    history, test = split.train_full, split.test
    last_train = history.groupby("user")["timestamp"].max()
    older = test["timestamp"].to_numpy() < last_train.reindex(test["user"]).to_numpy()
    return pd.Series(
        {
            "train": len(split.train),
            "validation": len(split.validation),
            "test": len(test),
            "test ratings older than the user's latest training rating (%)": 100 * older.mean(),
            "test ratings of films unseen in training (%)": 100 * (~test["movie"].isin(history["movie"])).mean(),
            "test mean rating": test["rating"].mean(),
        }
    )
