"""Synthetic data for tests: no files, seconds to make, answers known in advance.

Retail-shaped tables (``make_retail``, ``make_checkerboard``; ``make_retail_ii`` and
``write_retail_ii`` in UCI's Online Retail II layout) and MovieLens-shaped ratings
(``make_ratings``, ``write_ratings``).

The table has the workbook's columns and types, so the whole pipeline (clean -> encode -> split)
runs on it unchanged. Its structure is planted:

* items fall into ``n_tastes`` groups; each group is a cycle of items in a fixed order;
* every customer has one taste; an invoice is a run of consecutive items along the cycle of that
  taste (so "what comes next" is learnable), with a share ``noise`` of its rows replaced by
  globally popular items (a Zipf law), so popularity is a real but weak baseline;
* some invoices are anonymous (``CustomerID`` is NaN) and some are cancellations (``C...``).

``make_checkerboard`` removes the noise and makes every invoice a whole taste group: a
recommender that learned the groups must reach precision 1 there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .movielens import (
    NO_GENRE,
    RATINGS_COLUMNS,
    RatingSplit,
    add_context,
    parse_movies,
    random_split,
)

FIRST_TIME = pd.Timestamp("2010-12-01 08:00")
LAST_TIME = pd.Timestamp("2011-12-09 12:00")
COUNTRIES = ("United Kingdom", "Germany", "France", "EIRE", "Spain")


def make_retail(
    n_customers: int = 300,
    n_items: int = 120,
    n_tastes: int = 6,
    invoices_per_customer: float = 8.0,
    basket_size: float = 8.0,
    noise: float = 0.1,
    anonymous_share: float = 0.1,
    cancel_share: float = 0.02,
    seed: int = 0,
) -> pd.DataFrame:
    """A raw table in the Online Retail schema with planted tastes and item order.

    Parameters
    ----------
    n_customers, n_items, n_tastes
        Sizes; items are dealt round-robin into ``n_tastes`` groups.
    invoices_per_customer, basket_size
        Means of the Poisson counts of invoices per customer and of rows per invoice.
    noise
        Share of rows replaced by a popular item drawn from a Zipf law over the catalogue.
    anonymous_share, cancel_share
        Share of invoices without a customer, and of invoices followed by a cancellation.
    """
    rng = np.random.default_rng(seed)
    groups = [np.arange(t, n_items, n_tastes) for t in range(n_tastes)]
    groups = [rng.permutation(g) for g in groups]  # the order within each cycle
    taste_of = rng.integers(0, n_tastes, size=n_customers)
    zipf = 1.0 / np.arange(1, n_items + 1)
    popular = rng.permutation(n_items)
    popularity = zipf / zipf.sum()

    counts = 1 + rng.poisson(invoices_per_customer - 1, size=n_customers)
    owners = np.repeat(np.arange(n_customers), counts)
    n_anonymous = int(round(anonymous_share * len(owners) / max(1e-9, 1 - anonymous_share)))
    owners = np.concatenate([owners, np.full(n_anonymous, -1)])
    tastes = np.where(owners >= 0, taste_of[np.maximum(owners, 0)], rng.integers(0, n_tastes, len(owners)))
    country_of = rng.integers(0, len(COUNTRIES), size=n_customers + 1)  # last: anonymous
    order = rng.permutation(len(owners))
    owners, tastes = owners[order], tastes[order]
    span = (LAST_TIME - FIRST_TIME).total_seconds()
    times = FIRST_TIME + pd.to_timedelta(np.sort(rng.uniform(0, span, len(owners))), unit="s")

    rows = []
    for number, (owner, taste, when) in enumerate(zip(owners, tastes, times, strict=True)):
        cycle = groups[taste]
        size = int(min(len(cycle), 1 + rng.poisson(basket_size - 1)))
        start = rng.integers(0, len(cycle))
        items = cycle[(start + np.arange(size)) % len(cycle)]
        swap = rng.random(size) < noise
        items = np.where(swap, popular[rng.choice(n_items, size=size, p=popularity)], items)
        invoice = str(536365 + number)
        customer = float(12346 + owner) if owner >= 0 else np.nan
        country = COUNTRIES[country_of[owner]]
        for item in items:
            rows.append((invoice, item, int(rng.integers(1, 13)), when, customer, country))
        if rng.random() < cancel_share:
            rows.append(("C" + invoice, items[0], -1, when + pd.Timedelta(hours=1), customer, country))

    columns = ["InvoiceNo", "item", "Quantity", "InvoiceDate", "CustomerID", "Country"]
    raw = pd.DataFrame(rows, columns=columns)
    raw["StockCode"] = [f"{20000 + i}" if i % 7 else f"{20000 + i}A" for i in raw.pop("item")]
    raw["Description"] = "SYNTHETIC ITEM " + raw["StockCode"]
    raw["UnitPrice"] = np.round(rng.gamma(2.0, 1.5, len(raw)), 2)
    raw["InvoiceNo"] = raw["InvoiceNo"].astype("str")
    raw["StockCode"] = raw["StockCode"].astype("str")
    raw["Description"] = raw["Description"].astype("str")
    raw["Country"] = raw["Country"].astype("str")
    raw["InvoiceDate"] = pd.to_datetime(raw["InvoiceDate"])
    columns = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
    return raw.sort_values("InvoiceDate", kind="stable").loc[:, columns].reset_index(drop=True)


#: Online Retail's columns -> Online Retail II's (UCI id 502).
RETAIL_II_NAMES = {
    "InvoiceNo": "Invoice",
    "StockCode": "StockCode",
    "Description": "Description",
    "Quantity": "Quantity",
    "InvoiceDate": "InvoiceDate",
    "UnitPrice": "Price",
    "CustomerID": "Customer ID",
    "Country": "Country",
}


def make_retail_ii(first: str = "2009-12-01 07:45", days: float = 738.0, **kwargs) -> pd.DataFrame:
    """``make_retail`` in the Online Retail II layout, over that data set's two years by default.

    The columns are renamed (``Invoice``, ``Price``, ``Customer ID``) and the times spread from
    ``first`` over ``days``; everything else (tastes, cancellations, anonymous invoices) is as in
    ``make_retail``, whose keyword arguments it takes.
    """
    raw = make_retail(**kwargs)
    start = raw["InvoiceDate"].min()
    scale = pd.Timedelta(days=days) / (raw["InvoiceDate"].max() - start)
    raw["InvoiceDate"] = (pd.Timestamp(first) + (raw["InvoiceDate"] - start) * scale).dt.floor("min")
    return raw.rename(columns=RETAIL_II_NAMES)


def write_retail_ii(path: Path, **kwargs) -> Path:
    """Write ``make_retail_ii`` to ``path`` (``.csv``, ``.parquet`` or ``.xlsx``, by its suffix).

    A workbook gets two sheets, split at the turn of the year as UCI's file is
    ("Year 2009-2010", "Year 2010-2011").
    """
    path = Path(path)
    raw = make_retail_ii(**kwargs)
    if path.suffix == ".csv":
        raw.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        raw.to_parquet(path, index=False)
    else:
        first = raw["InvoiceDate"] < pd.Timestamp("2010-12-01")
        with pd.ExcelWriter(path, engine="openpyxl") as book:
            raw[first].to_excel(book, sheet_name="Year 2009-2010", index=False)
            raw[~first].to_excel(book, sheet_name="Year 2010-2011", index=False)
    return path


def make_checkerboard(
    n_customers: int = 120, n_tastes: int = 4, items_per_taste: int = 6, seed: int = 0
) -> pd.DataFrame:
    """Every invoice is a customer's whole taste group; no noise, no anonymous customers.

    Any recommender that learned the groups reaches precision 1 on every split of this table
    (with k no larger than ``items_per_taste``).
    """
    return make_retail(
        n_customers=n_customers,
        n_items=n_tastes * items_per_taste,
        n_tastes=n_tastes,
        invoices_per_customer=6.0,
        basket_size=10_000.0,  # capped at the group size: whole groups
        noise=0.0,
        anonymous_share=0.0,
        cancel_share=0.0,
        seed=seed,
    )


def make_ratings(n_users: int = 80, n_movies: int = 60, per_user: int = 25, factors: int = 2, noise: float = 0.3,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw ``ratings`` and ``movies`` frames in the MovieLens schema with a planted structure.

    A rating is ``3.5 + b_u + b_i + p_u . q_i + genre effect + noise``, rounded to half stars and
    clipped to 0.5-5; genres are dealt from a small list and titles carry a year, so every step of
    the loader runs on it. Returns the raw frames (``userId``, ``movieId``, ``rating``,
    ``timestamp``) and (``movieId``, ``title``, ``genres``).
    """
    rng = np.random.default_rng(seed)
    genres = ["Action", "Comedy", "Drama", "Horror", "Romance"]
    movie_genres = [sorted(set(rng.choice(genres, size=rng.integers(1, 3)))) for _ in range(n_movies)]
    years = rng.integers(1950, 2018, n_movies)
    titles = [f"Movie {i} ({y})" for i, y in enumerate(years)]
    titles[0] = "Movie without year"
    movie_genres[1] = [NO_GENRE]
    movies = pd.DataFrame({"movieId": np.arange(1, n_movies + 1) * 3, "title": titles,
                           "genres": ["|".join(g) for g in movie_genres]})
    b_u, b_i = rng.normal(0, 0.4, n_users), rng.normal(0, 0.5, n_movies)
    p, q = rng.normal(0, 0.6, (n_users, factors)), rng.normal(0, 0.6, (n_movies, factors))
    taste = rng.normal(0, 0.5, (n_users, len(genres)))
    onehot = np.array([[g in lst for g in genres] for lst in movie_genres], dtype=float)
    rows = []
    for u in range(n_users):
        seen = rng.choice(n_movies, size=min(per_user, n_movies), replace=False)
        times = 1_000_000_000 + np.sort(rng.integers(0, 10**8, len(seen)))
        for i, t in zip(seen, times, strict=True):
            r = 3.5 + b_u[u] + b_i[i] + p[u] @ q[i] + taste[u] @ onehot[i] + rng.normal(0, noise)
            rows.append((u + 1, int(movies["movieId"][i]), float(np.clip(np.round(r * 2) / 2, 0.5, 5.0)), int(t)))
    ratings = pd.DataFrame(rows, columns=list(RATINGS_COLUMNS))
    return ratings, movies


def write_ratings(folder: Path, **kwargs) -> Path:
    """Write ``make_ratings`` as ``ratings.csv`` and ``movies.csv`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ratings, movies = make_ratings(**kwargs)
    ratings.to_csv(folder / "ratings.csv", index=False)
    movies.to_csv(folder / "movies.csv", index=False)
    return folder


def make_rating_split(seed: int = 4, **kwargs) -> RatingSplit:
    """``make_ratings`` encoded and split like MovieLens (random split), for the rating models' tests."""
    raw, movies = make_ratings(seed=seed, **kwargs)
    movies = parse_movies(movies)
    movies["movie"] = np.arange(len(movies))
    raw["movie"] = pd.Index(movies["movieId"]).get_indexer(raw["movieId"]).astype("int32")
    raw["user"] = (raw["userId"] - 1).astype("int32")
    raw["rating"] = raw["rating"].astype("float32")
    return random_split(add_context(raw), movies, seed=0)
