import numpy as np
import pandas as pd
import pytest

from recsys_helpers.datasets import retail
from recsys_helpers.evaluation import folds
from recsys_helpers.evaluation.basket import BasketProtocol
from recsys_helpers.evaluation.next_item import NextItemProtocol
from recsys_helpers.models import baselines

BOOK_STARTS = ["2011-07-09", "2011-08-09", "2011-09-09", "2011-10-09", "2011-11-09"]


def invoices(frame):
    return sorted(frame["invoiceno"].unique())


def test_monthly_starts_end_with_validation_and_test(split):
    assert folds.monthly_starts(split) == [pd.Timestamp(d) for d in BOOK_STARTS]
    assert folds.monthly_starts(split, 2) == [split.validation_start, split.test_start]


def test_each_fold_trains_before_its_month(split):
    starts = folds.monthly_starts(split)
    for start, end in zip(starts, [*starts[1:], None], strict=True):
        fold = folds.fold_split(split, start, end)
        assert fold.train["invoicedate"].max() < start
        assert fold.validation["invoicedate"].min() >= start
        if end is not None:
            assert fold.validation["invoicedate"].max() <= end
        assert fold.n_items == split.n_items
        assert np.array_equal(fold.items.classes_, split.items.classes_)
        assert len(fold.train) + len(fold.validation) + len(fold.test) >= len(split.train)


def test_last_two_folds_are_the_book_split(split):
    *_, validation_start, test_start = folds.monthly_starts(split)
    validation = folds.fold_split(split, validation_start, test_start)
    assert invoices(validation.validation) == invoices(split.validation)
    assert invoices(validation.train) == invoices(split.train)
    assert validation.n_customers == split.n_customers
    test = folds.fold_split(split, test_start)
    assert invoices(test.validation) == invoices(split.test)
    assert test.test.empty
    assert split.test["invoicedate"].max() >= pd.Timestamp("2011-12-09")  # the month's last day


def test_invoice_at_midnight_of_the_test_start_is_not_doubled(raw):
    raw = raw.copy()
    first = raw["InvoiceNo"] == raw.loc[raw["InvoiceDate"] > "2011-11-09", "InvoiceNo"].iloc[0]
    raw.loc[first, "InvoiceDate"] = pd.Timestamp("2011-11-09")  # in validation and in test
    split = retail.time_split(retail.clean_retail(raw))
    fold = folds.fold_split(split, split.validation_start, split.test_start)
    assert fold.sizes().equals(split.sizes())


def test_summary_means_and_ranks():
    table = pd.DataFrame(
        {
            "model": ["a", "b", "c"] * 2,
            "start": [pd.Timestamp("2011-07-09")] * 3 + [pd.Timestamp("2011-08-09")] * 3,
            "value": [0.3, 0.2, 0.1, 0.1, 0.4, 0.05],
        }
    )
    summary = folds.fold_summary(table)
    assert list(summary.index) == ["a", "b", "c"]
    assert list(summary.columns[:2]) == ["2011-07-09", "2011-08-09"]
    assert summary["mean"].to_dict() == pytest.approx({"a": 0.2, "b": 0.3, "c": 0.075})
    assert summary["mean_rank"].to_dict() == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert summary["flips"].to_dict() == {"a": True, "b": True, "c": False}


def test_evaluate_folds_runs_baselines(split):
    factories = {"popularity": baselines.Popularity, "repurchase": baselines.Repurchase}
    table = folds.evaluate_folds(factories, split, BasketProtocol, n_folds=3)
    assert list(table.columns) == ["model", "start", "metric", "value", "units"]
    assert len(table) == 6 and set(table["metric"]) == {"precision"}
    assert table["start"].nunique() == 3 and (table["units"] > 0).all()
    assert table["value"].between(0, 1).all()
    # the validation month's fold is the book's validation, scored as the book scores it
    month = table[table["start"] == split.validation_start].set_index("model")["value"]
    book = BasketProtocol.from_split(split, "validation")
    for name, factory in factories.items():
        assert month[name] == pytest.approx(book.evaluate(factory().fit(split))["precision"])
    assert month["repurchase"] > month["popularity"]


def test_evaluate_folds_next_item(split):
    factories = {"transitions": baselines.Transitions}
    table = folds.evaluate_folds(factories, split, NextItemProtocol, n_folds=2)
    assert set(table["metric"]) == {"accuracy"}
    steps = NextItemProtocol.from_split(split, "validation").n_steps
    assert table["units"].iloc[0] == steps
