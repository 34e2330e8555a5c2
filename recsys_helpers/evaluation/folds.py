"""Rolling monthly folds: each model trained before a month and scored on that month.

The book's split holds one validation and one test month; the folds step back from them month
by month, so that a leaderboard can be checked on several months instead of one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

from ..datasets import retail
from ..datasets.retail import Split


def monthly_starts(split: Split, n_folds: int = 5) -> list[pd.Timestamp]:
    """First days of ``n_folds`` consecutive months, the last two the split's validation and test."""
    month = pd.DateOffset(months=1)
    if split.validation_start + month != split.test_start:  # not a calendar month: its length
        month = split.test_start - split.validation_start
    return [split.test_start - month * back for back in range(n_folds - 1, -1, -1)]


def fold_split(split: Split, start: pd.Timestamp, end: pd.Timestamp | None = None) -> Split:
    """Train on everything before ``start``; ``validation`` holds ``start..end`` (``None``: to
    the end of the data). Same rows (and subset sample) and item codes as ``split``."""
    test = split.test[split.test["invoicedate"] > split.test_start]  # midnight rows: once
    rows = pd.concat([split.train, split.validation, test], ignore_index=True)
    rows = rows.drop(columns=["item", "customer"])
    end = pd.Timestamp.max if end is None else end
    return retail.time_split(rows, split.subset, pd.Timestamp(start), pd.Timestamp(end))


def evaluate_folds(
    factories: Mapping[str, Callable[[], object]],
    split: Split,
    protocol_cls,
    n_folds: int = 5,
    metric: str | None = None,
) -> pd.DataFrame:
    """One row per (model, fold): ``model, start, metric, value, units`` (invoices or steps).

    ``metric`` defaults to ``accuracy`` where the protocol reports it, else ``precision``."""
    starts = monthly_starts(split, n_folds)
    rows = []
    for start, end in zip(starts, [*starts[1:], None], strict=True):
        fold = fold_split(split, start, end)
        protocol = protocol_cls.from_split(fold, "validation")
        units = getattr(protocol, "n_invoices", None) or getattr(protocol, "n_steps", None)
        for name, factory in factories.items():
            scores = protocol.evaluate(factory().fit(fold))
            chosen = metric or ("accuracy" if "accuracy" in scores else "precision")
            rows.append((name, start, chosen, float(scores[chosen]), units))
    return pd.DataFrame(rows, columns=["model", "start", "metric", "value", "units"])


def fold_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: each fold's value (columns named by start date), ``mean``, ``mean_rank`` (1 =
    best within a fold) and ``flips`` (the model's rank is not the same in every fold)."""
    values = table.pivot(index="model", columns="start", values="value")
    values = values.reindex(table["model"].drop_duplicates())
    ranks = values.rank(ascending=False, method="min")
    out = values.rename(columns=lambda start: f"{pd.Timestamp(start):%Y-%m-%d}")
    out.columns.name = None
    out["mean"] = values.mean(axis=1)
    out["mean_rank"] = ranks.mean(axis=1)
    out["flips"] = ranks.nunique(axis=1) > 1
    return out
