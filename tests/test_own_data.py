"""Another table of transactions: Online Retail II's layout, or any table mapped by its columns.

The end-to-end test writes a synthetic table in the Online Retail II layout (planted tastes and
item order, as ``datasets.synthetic`` makes them), points the settings at it, and runs the
book's pipeline and a few models of both protocols on it.
"""

import numpy as np
import pandas as pd
import pytest

from recsys_helpers import settings
from recsys_helpers.datasets import retail, synthetic
from recsys_helpers.datasets.download import DataError
from recsys_helpers.evaluation.basket import BasketProtocol
from recsys_helpers.evaluation.next_item import NextItemProtocol
from recsys_helpers.models import baselines, lstm, mf

II = settings.ONLINE_RETAIL_II


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in settings.VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ii_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("ii") / "online_retail_II.csv"
    return synthetic.write_retail_ii(path, n_customers=240, n_items=60, n_tastes=5, seed=5)


def test_reads_the_online_retail_ii_layout(ii_csv):
    source = pd.read_csv(ii_csv, dtype={"Invoice": str, "StockCode": str})
    raw = retail.read_transactions(ii_csv, II)
    assert list(raw.columns) == list(retail.RETAIL_COLUMNS)
    assert len(raw) == (source["Quantity"] > 0).sum()  # returns (quantity <= 0) dropped
    assert raw["InvoiceNo"].str.startswith("C").sum() == 0  # the synthetic cancellations have -1
    assert raw["InvoiceDate"].is_monotonic_increasing
    retail.group_indptr(raw["InvoiceNo"].to_numpy())  # rows of an invoice are contiguous
    assert raw["CustomerID"].isna().sum() == source.loc[source["Quantity"] > 0, "Customer ID"].isna().sum()
    assert set(raw["StockCode"]) == set(source["StockCode"])


def test_reads_both_sheets_of_a_workbook(tmp_path):
    path = synthetic.write_retail_ii(tmp_path / "online_retail_II.xlsx", n_customers=30, n_items=20, seed=1)
    raw = retail.read_transactions(path, II)
    years = raw["InvoiceDate"].dt.year
    assert years.min() == 2009 and years.max() == 2011
    assert len(raw) == (synthetic.make_retail_ii(n_customers=30, n_items=20, seed=1)["Quantity"] > 0).sum()


def test_any_table_by_column_mapping(tmp_path):
    table = pd.DataFrame(
        {
            "order": ["o2", "o1", "o1", "o3", "o2", "o4"],
            "who": ["bob", "ann", "ann", None, "bob", "ann"],
            "sku": ["b", "a", "c", "a", "a", "d"],
            "when": ["2024-01-03 10:00", "2024-01-01 09:00", "2024-01-01 09:05", "2024-02-01", "2024-01-03 10:00",
                     "2024-03-01"],
        }
    )
    table.to_parquet(tmp_path / "t.parquet")
    columns = settings.parse_columns("invoice=order,customer=who,item=sku,time=when")
    raw = retail.read_transactions(tmp_path / "t.parquet", columns)
    assert raw["InvoiceNo"].tolist() == ["o1", "o1", "o2", "o2", "o3", "o4"]  # by time, invoices together
    assert raw["InvoiceDate"].iloc[1] == pd.Timestamp("2024-01-01 09:00")  # the invoice's first time
    assert raw["CustomerID"].tolist()[:4] == [1.0, 1.0, 2.0, 2.0] and np.isnan(raw["CustomerID"].iloc[4])
    assert (raw["Quantity"] == 1).all() and raw["UnitPrice"].isna().all()
    assert (raw["Country"] == "Unspecified").all() and raw["Description"].tolist()[0] == "a"


def test_missing_column_names_it(ii_csv):
    columns = dict(II) | {"customer": "CustomerNumber"}
    with pytest.raises(DataError, match=r"no column \['CustomerNumber'\] \(for customer\).*Customer ID"):
        retail.read_transactions(ii_csv, columns)


def test_unparseable_dates_are_reported(tmp_path):
    raw = synthetic.make_retail_ii(n_customers=20, n_items=10, seed=2)
    raw["InvoiceDate"] = raw["InvoiceDate"].astype(str)
    raw.loc[3, "InvoiceDate"] = "yesterday"
    raw.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"1 of [\d,]+ values of the time column 'InvoiceDate'.*'yesterday'"):
        retail.read_transactions(tmp_path / "t.csv", II)


def test_non_numeric_quantities_are_reported(tmp_path):
    raw = synthetic.make_retail_ii(n_customers=20, n_items=10, seed=2)
    raw["Quantity"] = raw["Quantity"].astype(str)
    raw.loc[5, "Quantity"] = "a dozen"
    raw.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"column 'Quantity' holds values that are not numbers.*'a dozen'"):
        retail.read_transactions(tmp_path / "t.csv", II)


def test_proportional_dates_give_the_books_split_on_its_span():
    online_retail = pd.Series(pd.to_datetime(["2010-12-01 08:26", "2011-12-09 12:50"]))  # its first, last
    assert retail.proportional_dates(online_retail) == (retail.VALIDATION_START, retail.TEST_START)
    times = pd.Series(pd.to_datetime(["2020-01-01", "2021-01-01"]))
    validation, test = retail.proportional_dates(times)
    assert validation == pd.Timestamp("2020-11-02") and test == pd.Timestamp("2020-12-02")


def test_the_book_keeps_its_dates_and_checks(monkeypatch, tmp_path):
    """Without RECSYS_RETAIL_COLUMNS a table is the book's Online Retail: its row count is checked."""
    path = tmp_path / "copy.parquet"
    synthetic.make_retail(n_customers=20, seed=0).to_parquet(path)
    monkeypatch.setenv("RECSYS_RETAIL_DATA", str(path))
    with pytest.raises(DataError, match="not the 541,909 of UCI Online Retail"):
        retail.load_raw_retail()
    df = retail.clean_retail(synthetic.make_retail(n_customers=20, seed=0))
    assert retail.split_dates(df["invoicedate"], settings.get_settings()) == (retail.VALIDATION_START, retail.TEST_START)


def test_empty_period_says_which_dates(monkeypatch, ii_csv):
    monkeypatch.setenv("RECSYS_RETAIL_DATA", str(ii_csv))
    monkeypatch.setenv("RECSYS_RETAIL_COLUMNS", "online-retail-ii")
    monkeypatch.setenv("RECSYS_SPLIT_DATES", "2012-01-01,2012-02-01")
    with pytest.raises(DataError, match=r"the validation period holds no invoice.*RECSYS_SPLIT_DATES"):
        retail.load_split()


@pytest.mark.parametrize("subset", ["0", "1"])
def test_pipeline_and_models_run_on_online_retail_ii(monkeypatch, ii_csv, subset):
    monkeypatch.setenv("RECSYS_RETAIL_DATA", str(ii_csv))
    monkeypatch.setenv("RECSYS_RETAIL_COLUMNS", "online-retail-ii")
    monkeypatch.setenv("RECSYS_SUBSET", subset)
    split = retail.load_split()
    dates = pd.concat([split.part(p)["invoicedate"] for p in split.PARTS])
    span = dates.max() - dates.min()
    # about ten months, one month, one month: the last twelfth is test, the one before validation
    assert abs((dates.max() - split.test_start) / span - 1 / 12) < 0.01
    assert abs((split.test_start - split.validation_start) / span - 1 / 12) < 0.01
    assert (split.train["invoicedate"] < split.validation_start).all()
    assert (split.test["invoicedate"] >= split.test_start).all()
    assert min(split.sizes()) > 0 and split.n_customers > 0

    validation = BasketProtocol.from_split(split, "validation")
    popularity = validation.score(validation.baseline())["precision"]
    for model in (baselines.ItemKNN(neighbours=10), mf.ALS(factors=8, regularization=0.01, iterations=10)):
        assert validation.evaluate(model.fit(split))["precision"] > popularity, type(model).__name__

    steps = NextItemProtocol.from_split(split, "validation")
    removal = steps.evaluate(baselines.PopularityWithRemoval().fit(split))["accuracy"]
    for model in (baselines.Transitions(), lstm.ItemLSTM(epochs=3, progress=False)):
        assert steps.evaluate(model.fit(split))["accuracy"] > removal, type(model).__name__


def test_subset_sampling_of_invoices_without_digits():
    names = [chr(97 + i // 26) + chr(97 + i % 26) for i in range(60)]  # "aa", "ab", ...: no digits
    raw = synthetic.make_retail(n_customers=5, anonymous_share=0.9, cancel_share=0.0, seed=3)
    raw = raw[raw["CustomerID"].isna()].head(60).reset_index(drop=True)
    raw["InvoiceNo"] = names[: len(raw)]
    df = retail.clean_retail(raw)
    kept = retail.sample_customers(df, 0.5, seed=1)
    assert 0 < len(kept) < len(df)
    assert kept.equals(retail.sample_customers(df, 0.5, seed=1))  # deterministic
