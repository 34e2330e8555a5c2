"""UCI Online Retail: fetch -> cache -> clean -> encode -> time split, and the ``indptr`` grouping.

The one loader of the book. ``load_split()`` is what a chapter calls; the other functions are the
steps it chains, each usable (and tested) on its own.

Another table of transactions (UCI's Online Retail II, or any ``.csv`` / ``.parquet`` /
``.xlsx`` with an invoice, a customer, an item and a time per row) goes through the same steps:
``read_transactions`` maps its columns onto the workbook's (``RECSYS_RETAIL_COLUMNS``), checks
them, and the time split falls at the same proportions of its time span (``split_dates``).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..settings import COLUMN_ROLES, REQUIRED_ROLES, SUBSET_FRACTION, Settings, get_settings
from .download import DataError, atomic_parquet, download_file, stable_hash

RETAIL_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/00352/Online%20Retail.xlsx"
RETAIL_FILE = "Online Retail.xlsx"
RETAIL_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
RETAIL_ROWS = 541_909
#: sha256 of the workbook's content (key columns, normalised; see ``retail_fingerprint``).
RETAIL_FINGERPRINT = "e1d3af946ca6be818c13f82b3710ee48a97d6b61dc780ad25125aeee8825c961"
VALIDATION_START = pd.Timestamp("2011-10-09")
TEST_START = pd.Timestamp("2011-11-09")
#: Shares of the time span in the validation and in the test period, for another table: the
#: book's split of Online Retail is about ten months, one month and one month.
VALIDATION_SHARE = TEST_SHARE = 1 / 12
#: The workbook's column that each role of another table is mapped onto.
ROLE_COLUMNS = dict(zip(COLUMN_ROLES, ("InvoiceNo", "CustomerID", "StockCode", "InvoiceDate", "Quantity",
                                       "UnitPrice", "Country", "Description"), strict=True))


# ---------------------------------------------------------------------------------------------
# Reading and checking the raw table


def retail_fingerprint(raw: pd.DataFrame) -> str:
    """A sha256 over the key columns of the raw table, independent of the file format."""
    digest = hashlib.sha256()
    for column in ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "CustomerID"):
        values = raw[column]
        if column == "InvoiceDate":
            values = values.dt.strftime("%Y-%m-%d %H:%M")
        elif column == "CustomerID":
            values = values.fillna(-1).astype("int64")
        digest.update("\x1f".join(values.astype(str)).encode())
    return digest.hexdigest()


def _normalise_raw(raw: pd.DataFrame, source: Path, expected_rows: int | None) -> pd.DataFrame:
    missing = [c for c in RETAIL_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(
            f"{source} does not look like UCI Online Retail: columns {missing} are missing "
            f"(found {list(raw.columns)}). Point RECSYS_RETAIL_DATA at the original workbook "
            f"'{RETAIL_FILE}', or unset it to download the data."
        )
    if expected_rows is not None and len(raw) != expected_rows:
        raise DataError(
            f"{source} has {len(raw):,} rows, not the {expected_rows:,} of UCI Online Retail: "
            "the file is truncated or a different data set. Delete it and run `make data` again, "
            "or point RECSYS_RETAIL_DATA at a complete copy."
        )
    raw = raw.loc[:, list(RETAIL_COLUMNS)].copy()
    for column in ("InvoiceNo", "StockCode", "Description", "Country"):
        raw[column] = raw[column].astype("str").where(raw[column].notna(), None)
    raw["InvoiceNo"] = raw["InvoiceNo"].astype("str")
    raw["StockCode"] = raw["StockCode"].astype("str")
    raw["Quantity"] = raw["Quantity"].astype("int64")
    raw["InvoiceDate"] = pd.to_datetime(raw["InvoiceDate"])
    raw["UnitPrice"] = raw["UnitPrice"].astype("float64")
    raw["CustomerID"] = raw["CustomerID"].astype("float64")
    return raw


def read_retail_file(path: Path, expected_rows: int | None = RETAIL_ROWS) -> pd.DataFrame:
    """Read a copy of Online Retail (``.xlsx``, ``.parquet`` or ``.csv``) and check it.

    Raises
    ------
    DataError
        If the file is missing, unreadable, truncated, or lacks the expected columns.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path} does not exist. Fix RECSYS_RETAIL_DATA, or unset it so that the book "
            "downloads the data (`make data`)."
        )
    readers: dict[str, Callable[[Path], pd.DataFrame]] = {
        ".xlsx": lambda p: pd.read_excel(p, engine="openpyxl", dtype={"InvoiceNo": str, "StockCode": str}),
        ".parquet": pd.read_parquet,
        ".csv": lambda p: pd.read_csv(p, dtype={"InvoiceNo": str, "StockCode": str}, encoding_errors="replace"),
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .xlsx, .parquet or .csv")
    try:
        raw = reader(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise DataError(
            f"{path} could not be read as {path.suffix} ({type(err).__name__}: {err}). The file is "
            "damaged or truncated: delete it and run `make data` again, or point "
            "RECSYS_RETAIL_DATA at a good copy."
        ) from err
    return _normalise_raw(raw, path, expected_rows)


def _read_table(path: Path, text_columns: list[str]) -> pd.DataFrame:
    """Any supported file as one frame; every sheet of a workbook (Online Retail II has two)."""
    dtype = dict.fromkeys(text_columns, str)
    if not path.is_file():
        raise DataError(f"{path} does not exist; fix RECSYS_RETAIL_DATA.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".xlsx":
            sheets = pd.read_excel(path, engine="openpyxl", sheet_name=None, dtype=dtype)
            return pd.concat(list(sheets.values()), ignore_index=True)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, dtype=dtype, encoding_errors="replace")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise DataError(f"{path} could not be read as {suffix} ({type(err).__name__}: {err}).") from err
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .xlsx, .parquet or .csv")


def _parse_times(values: pd.Series, column: str, source: Path) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        times = values
    else:
        try:
            times = pd.to_datetime(values)
        except (ValueError, TypeError, OverflowError):
            times = pd.to_datetime(values, format="mixed", errors="coerce")
    bad = times.isna()
    if bad.any():
        examples = sorted({str(v) for v in values[bad].head(1000)})[:3]
        raise DataError(
            f"{source}: {int(bad.sum()):,} of {len(values):,} values of the time column {column!r} are "
            f"missing or not dates (for example {examples}); fix them, or map the time role onto "
            "another column in RECSYS_RETAIL_COLUMNS."
        )
    return times.dt.tz_localize(None) if times.dt.tz is not None else times


def _numbers(values: pd.Series, column: str, source: Path) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        examples = sorted({str(v) for v in values[bad].head(1000)})[:3]
        raise DataError(f"{source}: column {column!r} holds values that are not numbers (for example {examples}).")
    return numbers


def read_transactions(path: Path, columns) -> pd.DataFrame:
    """Read another table of transactions into the workbook's schema (``RETAIL_COLUMNS``).

    ``columns`` maps roles onto the table's columns (``(role, column)`` pairs or a dict; see
    ``settings.parse_columns``): ``invoice``, ``customer``, ``item`` and ``time`` are required;
    ``quantity`` (default 1), ``price`` (default unknown), ``country`` (default
    ``Unspecified``) and ``description`` (default the item's code) are optional. Rows with a
    quantity of zero or less (returns, corrections) are dropped; invoices whose number starts with
    ``C`` are cancellations and are dropped by ``clean_retail``, as in Online Retail. Customers
    that are not numbers get numbers (in sorted order). Every row of an invoice gets the
    invoice's first time, and rows are ordered by time and invoice, as in the workbook.

    Raises
    ------
    DataError
        If the file is missing or unreadable, a mapped column is missing, a required role has no
        value anywhere, times do not parse, or numbers are not numbers.
    """
    path = Path(path)
    mapping = dict(columns)
    if missing_roles := [r for r in REQUIRED_ROLES if r not in mapping]:
        raise DataError(f"no column given for {missing_roles}; RECSYS_RETAIL_COLUMNS needs {list(REQUIRED_ROLES)}")
    text = [mapping[r] for r in ("invoice", "item", "customer")]
    raw = _read_table(path, text)
    if missing := {r: c for r, c in mapping.items() if c not in raw.columns}:
        raise DataError(
            f"{path} has no column {sorted(missing.values())} (for {', '.join(sorted(missing))}); "
            f"its columns are {list(raw.columns)}. Fix RECSYS_RETAIL_COLUMNS."
        )
    out = pd.DataFrame(index=raw.index)
    for role in ("invoice", "item"):
        values = raw[mapping[role]]
        out[ROLE_COLUMNS[role]] = values.astype("str").str.strip().where(values.notna(), None)
    out["Description"] = raw[mapping["description"]] if "description" in mapping else out["StockCode"]
    out["Description"] = out["Description"].astype("str").where(out["Description"].notna(), None)
    quantity = _numbers(raw[mapping["quantity"]], mapping["quantity"], path) if "quantity" in mapping else 1
    out["Quantity"] = quantity
    out["InvoiceDate"] = _parse_times(raw[mapping["time"]], mapping["time"], path)
    price = _numbers(raw[mapping["price"]], mapping["price"], path) if "price" in mapping else np.nan
    out["UnitPrice"] = price
    customers = raw[mapping["customer"]]
    numeric = pd.to_numeric(customers, errors="coerce")
    if (numeric.isna() & customers.notna()).any():  # names or codes: number them
        names = customers.astype("str").where(customers.notna(), None)
        order = {name: float(i + 1) for i, name in enumerate(sorted(names.dropna().unique()))}
        numeric = names.map(order).astype("float64")
    out["CustomerID"] = numeric.astype("float64")
    out["Country"] = raw[mapping["country"]].astype("str") if "country" in mapping else "Unspecified"
    for role in ("invoice", "item"):
        if out[ROLE_COLUMNS[role]].isna().all():
            raise DataError(f"{path}: the {role} column {mapping[role]!r} holds no values.")
    out = out.dropna(subset=["InvoiceNo", "StockCode"])
    out = out[out["Quantity"].fillna(1) > 0]
    if out.empty:
        raise DataError(f"{path}: no rows with an invoice, an item and a positive quantity.")
    out["Quantity"] = out["Quantity"].fillna(1).round().astype("int64")
    out["InvoiceDate"] = out.groupby("InvoiceNo")["InvoiceDate"].transform("min")
    out = out.sort_values(["InvoiceDate", "InvoiceNo"], kind="stable").reset_index(drop=True)
    return out.loc[:, list(RETAIL_COLUMNS)]


def fetch_retail(settings: Settings | None = None, *, progress: bool = True) -> Path:
    """Return the path of the cached parquet copy of Online Retail, building it if needed.

    Order of preference: the cache; the workbook already downloaded into the cache; a fresh
    download from UCI. The workbook is read once (about 40 s with openpyxl) and stored as parquet
    (well under a second to load, and unlike a pickle it is safe to load from someone else).
    """
    settings = settings or get_settings()
    cache = settings.cache_dir / "online_retail.parquet"
    if cache.exists():
        return cache
    workbook = settings.cache_dir / RETAIL_FILE
    if not workbook.exists():
        download_file(RETAIL_URL, workbook, progress=progress)
    raw = read_retail_file(workbook, expected_rows=RETAIL_ROWS)
    check_fingerprint(raw, workbook)
    return atomic_parquet(raw, cache)


def check_fingerprint(raw: pd.DataFrame, source: Path) -> bool:
    """Warn (not fail) when the content differs from the copy the book's numbers come from."""
    same = retail_fingerprint(raw) == RETAIL_FINGERPRINT
    if not same:
        warnings.warn(
            f"{source} holds the expected columns and rows but its content differs from the copy "
            "this book was executed on; your numbers may differ from the text.",
            stacklevel=2,
        )
    return same


def load_raw_retail(settings: Settings | None = None) -> pd.DataFrame:
    """The raw table with the workbook's columns, from RECSYS_RETAIL_DATA or the cache.

    With ``RECSYS_RETAIL_COLUMNS`` set, RECSYS_RETAIL_DATA is another table of transactions,
    read by ``read_transactions``; otherwise it is (a copy of) the book's Online Retail.
    """
    settings = settings or get_settings()
    if settings.retail_columns is not None:
        return read_transactions(settings.retail_data, settings.retail_columns)
    if settings.retail_data is not None:
        return read_retail_file(settings.retail_data)
    return read_retail_file(fetch_retail(settings))


# ---------------------------------------------------------------------------------------------
# Cleaning, encoding, splitting


def clean_retail(raw: pd.DataFrame) -> pd.DataFrame:
    """The chapter's cleaning: lower-case columns, drop cancellations, unknown customers -> -1."""
    df = raw.copy()
    df.columns = df.columns.str.lower()
    df["invoiceno"] = df["invoiceno"].astype("str")
    df = df[~df["invoiceno"].str.startswith("C")].reset_index(drop=True)
    df["customerid"] = df["customerid"].fillna(-1).astype("int32")
    df["stockcode"] = df["stockcode"].astype("str")
    return df


class LabelEncoder:
    """Map values to consecutive integers in sorted order, vectorised.

    With ``reserve_zero=True`` codes start at 1 and 0 stands for "unknown / padding" (the
    sequence chapters need that); otherwise codes start at 0 and unknown values get -1.
    """

    def __init__(self, reserve_zero: bool = False):
        self.reserve_zero = reserve_zero
        self.classes_: np.ndarray | None = None

    def fit(self, values) -> LabelEncoder:
        self.classes_ = np.asarray(sorted(set(pd.Series(values).astype("str"))), dtype=object)
        self._index = pd.Index(self.classes_)
        return self

    def transform(self, values) -> np.ndarray:
        if self.classes_ is None:
            raise RuntimeError("call fit before transform")
        codes = self._index.get_indexer(pd.Series(values).astype("str"))
        return (codes + 1 if self.reserve_zero else codes).astype("int32")

    def fit_transform(self, values) -> np.ndarray:
        return self.fit(values).transform(values)

    def inverse_transform(self, codes) -> np.ndarray:
        codes = np.asarray(codes) - (1 if self.reserve_zero else 0)
        if np.any(codes < 0):
            raise ValueError("code 0 (reserved) or a negative code has no value")
        return self.classes_[codes]

    def __len__(self) -> int:
        """Vocabulary size, counting the reserved 0 when there is one."""
        return len(self.classes_) + int(self.reserve_zero)


def sample_customers(df: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """A deterministic sample of whole customers with all their invoices.

    Anonymous invoices (customer -1) are sampled by invoice with the same fraction, so the share
    of unknown customers stays as in the full data.
    """
    threshold = np.uint64(int(fraction * 2**32)) << np.uint64(32)
    keep_customer = stable_hash(df["customerid"].to_numpy().astype(np.int64) + 10, seed) < threshold
    digits = pd.Index(df["invoiceno"]).str.extract(r"(\d+)")[0]
    if digits.isna().any():  # another table's invoices without digits: their sorted order
        digits = pd.Series(pd.factorize(df["invoiceno"], sort=True)[0])
    invoice_numbers = digits.astype("int64").to_numpy()
    keep_invoice = stable_hash(invoice_numbers, seed + 1) < threshold
    anonymous = df["customerid"].to_numpy() == -1
    keep = np.where(anonymous, keep_invoice, keep_customer)
    return df[keep].reset_index(drop=True)


def group_indptr(invoices) -> np.ndarray:
    """CSR-style pointers: rows ``indptr[t]:indptr[t+1]`` hold transaction ``t``.

    Rows of one invoice must be contiguous (they are, in the data's order); a non-contiguous
    invoice raises ``ValueError`` rather than silently becoming two transactions.
    """
    invoices = np.asarray(invoices)
    starts = np.flatnonzero(invoices[1:] != invoices[:-1]) + 1
    indptr = np.concatenate([[0], starts, [len(invoices)]]).astype("int32")
    if len(invoices) and len(indptr) - 1 != len(pd.unique(invoices)):
        raise ValueError("rows of an invoice are not contiguous; sort by invoice first")
    if not len(invoices):
        indptr = np.zeros(1, dtype="int32")
    return indptr


@dataclass(frozen=True)
class Split:
    """Train / validation / test frames of the time split, with encoders for items and customers.

    Each frame has the cleaned columns plus ``item`` (encoded stock code, 0-based, fitted on the
    whole catalogue as the chapter does) and ``customer`` (index of a customer known from the
    training period, -1 for anonymous or new customers).
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    items: LabelEncoder
    customers: LabelEncoder
    subset: bool = False
    #: First days of the validation and of the test period.
    validation_start: pd.Timestamp = VALIDATION_START
    test_start: pd.Timestamp = TEST_START

    PARTS = ("train", "validation", "test")

    def part(self, name: str) -> pd.DataFrame:
        if name not in self.PARTS:
            raise ValueError(f"unknown part {name!r}; use one of {self.PARTS}")
        return getattr(self, name)

    def indptr(self, name: str) -> np.ndarray:
        return group_indptr(self.part(name)["invoiceno"].to_numpy())

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_customers(self) -> int:
        return len(self.customers)

    def sizes(self) -> pd.Series:
        """Rows in each part (the numbers the chapter checks)."""
        return pd.Series({name: len(self.part(name)) for name in self.PARTS}, name="rows")


def proportional_dates(
    times: pd.Series, validation_share: float = VALIDATION_SHARE, test_share: float = TEST_SHARE
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First days of the validation and test periods at the given shares of the time span.

    The test period is the last ``test_share`` of the span from the first to the last time, the
    validation period the ``validation_share`` before it; each start is moved to the next
    midnight. On Online Retail this gives the book's own dates, 2011-10-09 and 2011-11-09.
    """
    first, last = pd.Timestamp(times.min()), pd.Timestamp(times.max())
    span = last - first
    test_start = (last - test_share * span).ceil("D")
    validation_start = (test_start - validation_share * span).ceil("D")
    return validation_start, test_start


def split_dates(times: pd.Series, settings: Settings | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The split's dates for a table with these times: RECSYS_SPLIT_DATES, else the book's for
    Online Retail, else the proportions of ``proportional_dates``."""
    settings = settings or get_settings()
    if settings.split_dates is not None:
        return tuple(pd.Timestamp(d) for d in settings.split_dates)
    if settings.retail_columns is None:
        return VALIDATION_START, TEST_START
    return proportional_dates(times)


def time_split(
    df: pd.DataFrame,
    subset: bool = False,
    validation_start: pd.Timestamp = VALIDATION_START,
    test_start: pd.Timestamp = TEST_START,
) -> Split:
    """Encode items and customers and split by time as the chapter does.

    train < validation_start <= validation <= test_start <= test (dates compare at midnight);
    by default the book's 2011-10-09 and 2011-11-09.
    """
    df = df.copy()
    items = LabelEncoder().fit(df["stockcode"])
    df["item"] = items.transform(df["stockcode"])
    dates = df["invoicedate"]
    train = df[dates < validation_start]
    validation = df[(dates >= validation_start) & (dates <= test_start)]
    test = df[dates >= test_start]
    known = train.loc[train["customerid"] != -1, "customerid"]
    customers = LabelEncoder().fit(known)
    parts = []
    for frame in (train, validation, test):
        frame = frame.reset_index(drop=True)
        codes = customers.transform(frame["customerid"])
        frame["customer"] = np.where(frame["customerid"].to_numpy() == -1, -1, codes).astype("int32")
        parts.append(frame)
    return Split(
        *parts,
        items=items,
        customers=customers,
        subset=subset,
        validation_start=validation_start,
        test_start=test_start,
    )


def make_split(df: pd.DataFrame, settings: Settings | None = None) -> Split:
    """Split a cleaned table; in subset mode keep a fixed sample of whole customers first."""
    settings = settings or get_settings()
    if settings.subset:
        df = sample_customers(df, SUBSET_FRACTION, settings.seed)
    validation_start, test_start = split_dates(df["invoicedate"], settings)
    split = time_split(df, settings.subset, validation_start, test_start)
    if settings.retail_columns is not None or settings.split_dates is not None:
        check_split(split)
    return split


def check_split(split: Split) -> None:
    """Another table, or other dates: every part has invoices, and training has known customers."""
    dates = pd.concat([split.part(name)["invoicedate"] for name in split.PARTS])
    for name in split.PARTS:
        if split.part(name).empty:
            raise DataError(
                f"the {name} period holds no invoice: the table runs from {dates.min():%Y-%m-%d} to "
                f"{dates.max():%Y-%m-%d}, the split falls on {split.validation_start:%Y-%m-%d} and "
                f"{split.test_start:%Y-%m-%d}. Give other dates in RECSYS_SPLIT_DATES."
            )
    if split.n_customers == 0:
        raise DataError("no invoice of the training period has a customer: the basket chapters need customers.")


@functools.cache
def _load_split(settings: Settings) -> Split:
    return make_split(clean_retail(load_raw_retail(settings)), settings)


def load_split(settings: Settings | None = None) -> Split:
    """Load, clean and split Online Retail: full data by default, a sample in subset mode."""
    return _load_split(settings or get_settings())
