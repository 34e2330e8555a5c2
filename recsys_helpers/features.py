"""Side information about items, customers and invoices (content, two-tower and hybrid models).

What an item *is* (its description's words, its price band), where a customer shops from (their
usual country) and when an invoice happens (country, hour, weekday), encoded as integer codes.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .datasets.retail import LabelEncoder, Split
from .datasets.tokens import token_ids

_WORD = re.compile(r"[A-Z]{3,}")
#: Words that say nothing about what an item is.
STOP_WORDS = frozenset(
    {"THE", "AND", "FOR", "WITH", "SET", "OF", "IN", "DESIGN", "ASSORTED", "COLOUR"}
)


def tokenize(text) -> list[str]:
    """Upper-case words of three letters or more (numbers, sizes and stop words dropped)."""
    if not isinstance(text, str):
        return []
    return [w for w in _WORD.findall(text.upper()) if w not in STOP_WORDS]


def item_table(split: Split) -> pd.DataFrame:
    """One row per item code: its most frequent description and its median unit price.

    Descriptions come from every part of the split (they describe the catalogue, which is known
    when an item is listed); prices from the training period where there are any.
    """
    frames = [split.train, split.validation, split.test]
    rows = pd.concat([f[["item", "description", "unitprice"]] for f in frames], ignore_index=True)
    described = rows.dropna(subset=["description"])
    counts = described.groupby(["item", "description"], sort=False).size().reset_index(name="n")
    best = counts.sort_values(
        ["item", "n"], ascending=[True, False], kind="stable"
    ).drop_duplicates("item")
    table = pd.DataFrame(index=pd.RangeIndex(split.n_items, name="item"))
    table["description"] = best.set_index("item")["description"].reindex(table.index).fillna("")
    train_price = split.train.groupby("item")["unitprice"].median()
    any_price = rows.groupby("item")["unitprice"].median()
    table["price"] = (
        train_price.reindex(table.index).fillna(any_price.reindex(table.index)).fillna(0.0)
    )
    return table


def price_bands(prices, n_bands: int = 5) -> np.ndarray:
    """Quantile band (0 .. n_bands-1) of each price among the positive prices."""
    prices = np.asarray(prices, dtype=float)
    edges = (
        np.quantile(prices[prices > 0], np.linspace(0, 1, n_bands + 1)[1:-1])
        if (prices > 0).any()
        else []
    )
    return np.searchsorted(edges, prices, side="right").astype("int32")


def customer_countries(split: Split) -> tuple[np.ndarray, LabelEncoder]:
    """Each known customer's most frequent training country (code 0 = unknown); the encoder."""
    train = split.train[split.train["customer"] >= 0]
    countries = LabelEncoder(reserve_zero=True).fit(split.train["country"].fillna("Unspecified"))
    counts = train.groupby(["customer", "country"], sort=False).size().reset_index(name="n")
    best = counts.sort_values(
        ["customer", "n"], ascending=[True, False], kind="stable"
    ).drop_duplicates("customer")
    codes = np.zeros(split.n_customers, dtype="int32")
    codes[best["customer"].to_numpy()] = countries.transform(best["country"])
    return codes, countries


def description_tokens(
    split: Split, max_words: int = 8, min_count: int = 2
) -> tuple[np.ndarray, list[str]]:
    """(n_items, max_words) word ids of each item's description, 0 = padding; and the vocabulary.

    Word ids start at 1; words used by fewer than ``min_count`` items are dropped.
    """
    words = [tokenize(d) for d in item_table(split)["description"]]
    return token_ids(words, max_words, min_count)


N_HOURS, N_WEEKDAYS = 24, 7
#: The context codes of an invoice (besides its customer), as ``invoice_context`` gives them.
CONTEXT_CODES = ("country", "hour", "weekday")


def invoice_context(split: Split, part: str, country_encoder) -> pd.DataFrame:
    """One row per invoice of ``part`` (in the protocol's order): customer and context codes."""
    frame = split.part(part)
    first = frame.iloc[split.indptr(part)[:-1]]
    when = pd.to_datetime(first["invoicedate"])
    return pd.DataFrame(
        {
            "customer": first["customer"].to_numpy("int32"),
            "country": country_encoder.transform(first["country"].fillna("Unspecified")),
            "hour": when.dt.hour.to_numpy("int32"),
            "weekday": when.dt.day_of_week.to_numpy("int32"),
        }
    )


def row_context(split: Split, country_encoder) -> pd.DataFrame:
    """Customer, item and context codes of every training row of a known customer."""
    train = split.train[split.train["customer"] >= 0]
    when = pd.to_datetime(train["invoicedate"])
    return pd.DataFrame(
        {
            "customer": train["customer"].to_numpy("int32"),
            "item": train["item"].to_numpy("int32"),
            "country": country_encoder.transform(train["country"].fillna("Unspecified")),
            "hour": when.dt.hour.to_numpy("int32"),
            "weekday": when.dt.day_of_week.to_numpy("int32"),
        }
    )
