import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from recsys_helpers import settings
from recsys_helpers.datasets import retail as data
from recsys_helpers.datasets import synthetic
from recsys_helpers.datasets.download import DataError

# --- cleaning, encoding, splitting -----------------------------------------------------------


def test_clean_drops_cancellations_and_encodes_unknown_customers(raw):
    df = data.clean_retail(raw)
    assert list(df.columns) == [c.lower() for c in data.RETAIL_COLUMNS]
    assert not df["invoiceno"].str.startswith("C").any()
    assert len(df) == (~raw["InvoiceNo"].str.startswith("C")).sum()
    assert df["customerid"].dtype == np.int32
    assert (df["customerid"] == -1).sum() == raw.loc[~raw["InvoiceNo"].str.startswith("C"), "CustomerID"].isna().sum()


def test_label_encoder_sorted_codes_and_unknowns():
    enc = data.LabelEncoder().fit(["b", "a", "c", "a"])
    assert enc.transform(["a", "b", "c", "zzz"]).tolist() == [0, 1, 2, -1]
    assert len(enc) == 3
    assert enc.inverse_transform([2, 0]).tolist() == ["c", "a"]


def test_label_encoder_reserve_zero():
    enc = data.LabelEncoder(reserve_zero=True).fit([30, 10, 20])
    # all values transformed, not only the first (the source's transform returned in its loop)
    assert enc.transform([10, 20, 30, 99]).tolist() == [1, 2, 3, 0]
    assert len(enc) == 4
    with pytest.raises(ValueError):
        enc.inverse_transform([0])
    with pytest.raises(RuntimeError):
        data.LabelEncoder().transform([1])


def test_group_indptr_hand_made():
    assert data.group_indptr(["a", "a", "b", "c", "c", "c"]).tolist() == [0, 2, 3, 6]
    assert data.group_indptr(["x"]).tolist() == [0, 1]
    assert data.group_indptr([]).tolist() == [0]
    with pytest.raises(ValueError, match="contiguous"):
        data.group_indptr(["a", "b", "a"])


def test_group_indptr_matches_groupby(split):
    frame = split.validation
    indptr = split.indptr("validation")
    sizes = frame.groupby("invoiceno", sort=False).size().to_numpy()
    assert np.array_equal(np.diff(indptr), sizes)


def test_time_split_boundaries():
    raw = synthetic.make_retail(n_customers=40, seed=2)
    times = pd.to_datetime(
        ["2011-10-08 23:59", "2011-10-09 00:00", "2011-11-08 12:00", "2011-11-09 00:01"]
    )
    extra = raw.iloc[:4].copy()
    extra["InvoiceNo"] = ["900001", "900002", "900003", "900004"]
    extra["InvoiceDate"] = times
    df = data.clean_retail(pd.concat([raw, extra], ignore_index=True))
    split = data.time_split(df)
    assert (split.train["invoicedate"] < data.VALIDATION_START).all()
    assert split.validation["invoicedate"].between(data.VALIDATION_START, data.TEST_START).all()
    assert (split.test["invoicedate"] >= data.TEST_START).all()
    assert split.sizes().sum() == len(df)
    assert "900001" in set(split.train["invoiceno"]) and "900002" in set(split.validation["invoiceno"])
    assert "900004" in set(split.test["invoiceno"])


def test_split_customer_index(split):
    known = set(split.train.loc[split.train["customerid"] != -1, "customerid"])
    assert split.n_customers == len(known)
    val = split.validation
    new = ~val["customerid"].isin(known)
    assert (val.loc[new, "customer"] == -1).all()
    assert (val.loc[~new, "customer"] >= 0).all()
    back = split.customers.inverse_transform(val.loc[~new, "customer"]).astype(int)
    assert np.array_equal(back, val.loc[~new, "customerid"].to_numpy())
    with pytest.raises(ValueError):
        split.part("nope")


def test_sample_customers_keeps_whole_customers_and_is_deterministic(raw):
    df = data.clean_retail(raw)
    a = data.sample_customers(df, 0.3, seed=7)
    b = data.sample_customers(df, 0.3, seed=7)
    c = data.sample_customers(df, 0.3, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    known = a.loc[a["customerid"] != -1, "customerid"].unique()
    full_rows = df[df["customerid"].isin(known)]
    assert len(full_rows) == (a["customerid"].isin(known)).sum()  # every row of a kept customer
    assert 0.15 < len(known) / df.loc[df["customerid"] != -1, "customerid"].nunique() < 0.45
    assert set(a["invoiceno"]) <= set(df["invoiceno"])
    whole = a.groupby("invoiceno").size().eq(df[df["invoiceno"].isin(a["invoiceno"])].groupby("invoiceno").size())
    assert whole.all()


# --- reading files and clear errors ------------------------------------------------------------


@pytest.fixture
def small_raw():
    return synthetic.make_retail(n_customers=20, n_items=20, n_tastes=2, seed=4)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".xlsx"])
def test_read_each_format(tmp_path, small_raw, suffix):
    path = tmp_path / f"retail{suffix}"
    if suffix == ".parquet":
        small_raw.to_parquet(path)
    elif suffix == ".csv":
        small_raw.to_csv(path, index=False)
    else:
        small_raw.to_excel(path, index=False, engine="openpyxl")
    back = data.read_retail_file(path, expected_rows=len(small_raw))
    assert list(back.columns) == list(data.RETAIL_COLUMNS)
    assert back["InvoiceNo"].tolist() == small_raw["InvoiceNo"].tolist()
    assert back["StockCode"].tolist() == small_raw["StockCode"].tolist()
    assert data.retail_fingerprint(back) == data.retail_fingerprint(small_raw)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="does not exist.*RECSYS_RETAIL_DATA"):
        data.read_retail_file(tmp_path / "nothing.xlsx")


def test_wrong_columns(tmp_path, small_raw):
    path = tmp_path / "other.parquet"
    small_raw.drop(columns=["StockCode"]).to_parquet(path)
    with pytest.raises(DataError, match=r"columns \['StockCode'\] are missing"):
        data.read_retail_file(path, expected_rows=None)


def test_truncated_rows(tmp_path, small_raw):
    path = tmp_path / "short.parquet"
    small_raw.to_parquet(path)
    with pytest.raises(DataError, match="truncated"):
        data.read_retail_file(path)  # expects the real 541,909 rows


def test_damaged_workbook(tmp_path, small_raw):
    good = tmp_path / "good.xlsx"
    small_raw.to_excel(good, index=False, engine="openpyxl")
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # cut in half
    with pytest.raises(DataError, match="damaged or truncated"):
        data.read_retail_file(bad, expected_rows=None)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match="could not be read"):
        data.read_retail_file(junk, expected_rows=None)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "retail.json"
    path.write_text("{}")
    with pytest.raises(DataError, match="unsupported"):
        data.read_retail_file(path)


# --- downloading and the cache -------------------------------------------------------------


def _settings(tmp_path, **kw):
    base = dict(retail_data=None, movielens_data=None, cache_dir=tmp_path / "cache", subset=False, seed=1, threads=1)
    base.update(kw)
    return settings.Settings(**base)


def test_fetch_downloads_once_and_caches_parquet(tmp_path, small_raw, monkeypatch):
    source = tmp_path / "Online Retail.xlsx"
    small_raw.to_excel(source, index=False, engine="openpyxl")
    monkeypatch.setattr(data, "RETAIL_URL", source.as_uri())
    monkeypatch.setattr(data, "RETAIL_ROWS", len(small_raw))
    s = _settings(tmp_path)
    with pytest.warns(UserWarning, match="content differs"):
        cache = data.fetch_retail(s, progress=False)
    assert cache.name == "online_retail.parquet" and cache.exists()
    assert not list(s.cache_dir.glob("*.part"))
    source.unlink()  # a second call must not download again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.fetch_retail(s, progress=False) == cache
    assert len(pd.read_parquet(cache)) == len(small_raw)


def test_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "RETAIL_URL", (tmp_path / "missing.xlsx").as_uri())
    s = _settings(tmp_path)
    with pytest.raises(DataError, match="could not download"):
        data.fetch_retail(s, progress=False)
    assert list(s.cache_dir.iterdir()) == []


def test_truncated_download_is_rejected_without_cache(tmp_path, small_raw, monkeypatch):
    good = tmp_path / "good.xlsx"
    small_raw.to_excel(good, index=False, engine="openpyxl")
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(good.read_bytes()[:4000])
    monkeypatch.setattr(data, "RETAIL_URL", cut.as_uri())
    s = _settings(tmp_path)
    with pytest.raises(DataError, match="damaged or truncated"):
        data.fetch_retail(s, progress=False)
    assert not (s.cache_dir / "online_retail.parquet").exists()
    assert zipfile.is_zipfile(good)


def test_local_path_from_settings(tmp_path, small_raw, monkeypatch):
    path = tmp_path / "local.parquet"
    small_raw.to_parquet(path)
    monkeypatch.setattr(data, "RETAIL_ROWS", len(small_raw))
    with pytest.raises(DataError, match="truncated"):  # default check is the real row count
        data.load_raw_retail(_settings(tmp_path, retail_data=path))


def test_load_split_subset_mode(tmp_path, raw, monkeypatch):
    path = tmp_path / "local.parquet"
    raw.to_parquet(path)
    monkeypatch.setattr(data, "read_retail_file", lambda p, expected_rows=None: pd.read_parquet(p))
    full = data.load_split(_settings(tmp_path, retail_data=path))
    sub = data.load_split(_settings(tmp_path, retail_data=path, subset=True))
    assert sub.subset and not full.subset
    assert 0.1 < sub.sizes().sum() / full.sizes().sum() < 0.5
