"""The one place that reads environment variables: data paths, subset mode, seed, threads.

Every chapter and helper asks this module instead of reading ``os.environ`` itself, so that one
switch (``RECSYS_SUBSET=1``) puts the whole book into its fast CI mode. Every variable is checked
when it is read: a value the book does not accept (``RECSYS_SUBSET=banana``, a seed that is not
a number, a data path that does not exist) or an unknown ``RECSYS_*`` name (a typo) raises
``SettingError``, whose message names the variable, its value and what is accepted.

Environment variables
---------------------
RECSYS_RETAIL_DATA
    Local copy of UCI Online Retail (``.xlsx``, ``.parquet`` or ``.csv``), or of another table of
    transactions (with ``RECSYS_RETAIL_COLUMNS``). Unset: download Online Retail once into the
    cache.
RECSYS_RETAIL_COLUMNS
    How to read another table: ``online-retail-ii`` (UCI's Online Retail II layout) or a mapping
    ``invoice=COL,customer=COL,item=COL,time=COL[,quantity=COL,price=COL,country=COL,
    description=COL]``. Unset: the file is the book's own Online Retail (row count checked).
RECSYS_SPLIT_DATES
    ``YYYY-MM-DD,YYYY-MM-DD``: the first day of the validation and of the test period. Unset: the
    book's dates for Online Retail, proportions of the time span for another table.
RECSYS_MOVIELENS_DATA
    Local copy of MovieLens latest-small (the unpacked folder or the ``.zip``).
RECSYS_CACHE_DIR
    Where downloads and the parquet cache live (default ``~/.cache/recsys-book``).
RECSYS_SUBSET
    ``1``/``true``/``yes``/``on``: subset mode (a deterministic sample of customers, fewer
    epochs); ``0``/``false``/``no``/``off`` or unset: the full data.
RECSYS_SEED
    The seed for numpy, Python and TensorFlow (default 42; an integer from 0 to 2**32 - 1).
RECSYS_THREADS
    CPU threads for TensorFlow, numba and BLAS (default, or ``0``: all cores).
RECSYS_RECORD_FILE
    A JSON-lines file that every glued number is appended to (``make nbval`` sets it).
RECSYS_REQUIRE_BROWSER
    A true value makes a missing Chromium a failure of the rendered-book test (CI).
"""

from __future__ import annotations

import os

# Before NumPy is imported: OpenBLAS reads this when it loads. implicit warns
# (check_blas_config) when OpenBLAS runs its own thread pool alongside implicit's.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# TensorFlow's C++ start-up messages are noise on a rendered page; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import datetime  # noqa: E402
import difflib  # noqa: E402
import random  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
RETAIL_SUFFIXES = (".xlsx", ".parquet", ".csv")
#: The roles a column of another table of transactions can play; the first four are required.
COLUMN_ROLES = (
    "invoice",
    "customer",
    "item",
    "time",
    "quantity",
    "price",
    "country",
    "description",
)
REQUIRED_ROLES = COLUMN_ROLES[:4]
#: UCI's Online Retail II (id 502): its columns by role.
ONLINE_RETAIL_II = (
    ("invoice", "Invoice"),
    ("customer", "Customer ID"),
    ("item", "StockCode"),
    ("time", "InvoiceDate"),
    ("quantity", "Quantity"),
    ("price", "Price"),
    ("country", "Country"),
    ("description", "Description"),
)
LAYOUTS = {"online-retail-ii": ONLINE_RETAIL_II}
#: Every variable the book reads; any other ``RECSYS_*`` name is taken for a typo.
VARIABLES = (
    "RECSYS_RETAIL_DATA",
    "RECSYS_RETAIL_COLUMNS",
    "RECSYS_SPLIT_DATES",
    "RECSYS_MOVIELENS_DATA",
    "RECSYS_CACHE_DIR",
    "RECSYS_SUBSET",
    "RECSYS_SEED",
    "RECSYS_THREADS",
    "RECSYS_RECORD_FILE",
    "RECSYS_REQUIRE_BROWSER",
)

#: Fraction of customers (and of anonymous invoices) kept in subset mode.
SUBSET_FRACTION = 0.25


@dataclass(frozen=True)
class Settings:
    """A snapshot of the book's settings, read from the environment."""

    retail_data: Path | None
    movielens_data: Path | None
    cache_dir: Path
    subset: bool
    seed: int
    threads: int
    #: ``(role, column)`` pairs for another table of transactions; None: the book's Online Retail.
    retail_columns: tuple[tuple[str, str], ...] | None = None
    #: First days of the validation and the test period; None: the default split.
    split_dates: tuple[datetime.date, datetime.date] | None = None
    record_file: Path | None = None
    require_browser: bool = False

    def epochs(self, full: int, subset: int) -> int:
        """Number of epochs to train: ``full`` on the full data, ``subset`` in subset mode."""
        return subset if self.subset else full

    def pick(self, full, subset):
        """Any setting that differs between the two modes (sizes, sample counts, ...)."""
        return subset if self.subset else full

    @property
    def book_numbers(self) -> bool:
        """True when a run should repeat the numbers of the text: the book's own Online Retail,
        in full, split at the book's dates (the chapters check those numbers only then)."""
        return not self.subset and self.retail_columns is None and self.split_dates is None

    @property
    def mode(self) -> str:
        return "subset" if self.subset else "full"


class SettingError(ValueError):
    """A ``RECSYS_*`` environment variable has a value the book does not accept."""


def _reject(name: str, value: str, accepted: str, why: str = "") -> SettingError:
    reason = f" ({why})" if why else ""
    return SettingError(f"{name}={value!r} is not accepted{reason}. Accepted: {accepted}.")


def _raw(name: str) -> str:
    return os.environ.get(name, "").strip()


def env_flag(name: str) -> bool:
    """A yes/no variable: true for ``1/true/yes/on``, false for ``0/false/no/off`` or unset."""
    value = _raw(name)
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _reject(
        name,
        value,
        "1, true, yes, on (subset mode) or 0, false, no, off, unset (full data)"
        if name == "RECSYS_SUBSET"
        else "1, true, yes, on or 0, false, no, off, unset",
    )


def _integer(name: str, default: int, low: int, high: int) -> int:
    value = _raw(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _reject(
            name, value, f"an integer from {low} to {high}, or unset (default {default})"
        ) from None
    if not low <= number <= high:
        raise _reject(name, value, f"an integer from {low} to {high}, or unset (default {default})")
    return number


def _path(name: str) -> Path | None:
    value = _raw(name)
    return Path(value).expanduser() if value else None


def _existing_file(name: str, suffixes: tuple[str, ...]) -> Path | None:
    path = _path(name)
    accepted = f"the path of an existing {', '.join(suffixes)} file, or unset"
    if path is None:
        return None
    if path.suffix.lower() not in suffixes:
        raise _reject(name, str(path), accepted, f"unsupported file type {path.suffix!r}")
    if not path.is_file():
        raise _reject(name, str(path), accepted, "no such file")
    return path


def _movielens_path() -> Path | None:
    name = "RECSYS_MOVIELENS_DATA"
    path = _path(name)
    accepted = "the unpacked ml-latest-small folder or its .zip, or unset (download)"
    if path is None:
        return None
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip"):
        return path
    raise _reject(
        name, str(path), accepted, "no such folder" if not path.exists() else "not a folder or .zip"
    )


def _folder(name: str, default: Path) -> Path:
    path = _path(name) or default
    if path.exists() and not path.is_dir():
        raise _reject(
            name, str(path), "a folder (it is created if missing), or unset", "it is a file"
        )
    return path


def _record_file() -> Path | None:
    name = "RECSYS_RECORD_FILE"
    path = _path(name)
    if path is not None and (path.is_dir() or not path.parent.is_dir()):
        raise _reject(
            name,
            str(path),
            "a file path in an existing folder, or unset",
            "no such folder" if not path.parent.is_dir() else "it is a folder",
        )
    return path


def parse_columns(value: str, name: str = "RECSYS_RETAIL_COLUMNS") -> tuple[tuple[str, str], ...]:
    """``online-retail-ii`` or ``role=column,...`` as ``(role, column)`` pairs, checked."""
    accepted = (
        f"{' or '.join(LAYOUTS)}, or a mapping role=column separated by commas with the roles "
        f"{', '.join(REQUIRED_ROLES)} (required) and {', '.join(COLUMN_ROLES[4:])} (optional), "
        "e.g. invoice=order_id,customer=user_id,item=sku,time=ordered_at"
    )
    if value.lower() in LAYOUTS:
        return LAYOUTS[value.lower()]
    pairs = []
    for part in value.split(","):
        role, sep, column = (p.strip() for p in part.partition("="))
        if not sep or not role or not column:
            raise _reject(name, value, accepted, f"{part.strip()!r} is not role=column")
        if role not in COLUMN_ROLES:
            close = difflib.get_close_matches(role, COLUMN_ROLES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _reject(name, value, accepted, f"unknown role {role!r}{hint}")
        pairs.append((role, column))
    roles = [r for r, _ in pairs]
    if duplicated := sorted({r for r in roles if roles.count(r) > 1}):
        raise _reject(name, value, accepted, f"role {duplicated[0]!r} given twice")
    if missing := [r for r in REQUIRED_ROLES if r not in roles]:
        raise _reject(name, value, accepted, f"no column for {', '.join(missing)}")
    return tuple(sorted(pairs, key=lambda pair: COLUMN_ROLES.index(pair[0])))


def _split_dates() -> tuple[datetime.date, datetime.date] | None:
    name = "RECSYS_SPLIT_DATES"
    value = _raw(name)
    accepted = (
        "two dates YYYY-MM-DD,YYYY-MM-DD (first day of validation, first day of test), or unset"
    )
    if not value:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2:
        raise _reject(name, value, accepted, "not two dates")
    try:
        validation, test = (datetime.date.fromisoformat(p) for p in parts)
    except ValueError as err:
        raise _reject(name, value, accepted, str(err)) from None
    if not validation < test:
        raise _reject(
            name, value, accepted, "the validation period must start before the test period"
        )
    return validation, test


def _check_names() -> None:
    for name in sorted(n for n in os.environ if n.startswith("RECSYS_")):
        if name not in VARIABLES:
            close = difflib.get_close_matches(name, VARIABLES, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise SettingError(
                f"unknown setting {name}={os.environ[name]!r}.{hint} Known: {', '.join(VARIABLES)}."
            )


def get_settings() -> Settings:
    """Read and check the settings from the environment (cheap; call it whenever you need them).

    Raises
    ------
    SettingError
        If a ``RECSYS_*`` variable has a value the book does not accept, or is not one the book
        knows (a typo).
    """
    _check_names()
    retail_data = _existing_file("RECSYS_RETAIL_DATA", RETAIL_SUFFIXES)
    columns = _raw("RECSYS_RETAIL_COLUMNS")
    if columns and retail_data is None:
        raise _reject(
            "RECSYS_RETAIL_COLUMNS",
            columns,
            "a layout or mapping together with "
            "RECSYS_RETAIL_DATA (the table it describes), or unset",
            "RECSYS_RETAIL_DATA is unset",
        )
    return Settings(
        retail_data=retail_data,
        movielens_data=_movielens_path(),
        cache_dir=_folder("RECSYS_CACHE_DIR", Path.home() / ".cache" / "recsys-book"),
        subset=env_flag("RECSYS_SUBSET"),
        seed=_integer("RECSYS_SEED", 42, 0, 2**32 - 1),
        threads=_integer("RECSYS_THREADS", 0, 0, 1024) or (os.cpu_count() or 1),
        retail_columns=parse_columns(columns) if columns else None,
        split_dates=_split_dates(),
        record_file=_record_file(),
        require_browser=env_flag("RECSYS_REQUIRE_BROWSER"),
    )


def set_seeds(seed: int | None = None) -> int:
    """Seed Python, numpy and (if it is imported) Keras/TensorFlow; return the seed used."""
    seed = get_settings().seed if seed is None else seed
    random.seed(seed)
    np.random.seed(seed)
    import sys

    if "keras" in sys.modules or "tensorflow" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)
    return seed


def configure_tensorflow(deterministic: bool = True) -> None:
    """Threads and determinism for TensorFlow on a laptop CPU.

    ``enable_op_determinism`` makes repeated runs give the same numbers on CPU; it costs little
    for the models in this book. Call it before building any model.
    """
    import tensorflow as tf

    configure_threads()
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    set_seeds(get_settings().seed)


def configure_threads() -> None:
    """TensorFlow's thread pools sized by ``RECSYS_THREADS`` (inter-op at most 2); a no-op once
    TensorFlow has started in this process, whose pools are then fixed."""
    import tensorflow as tf

    threads = get_settings().threads
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:  # already initialised: the threads are fixed for this process
        pass
