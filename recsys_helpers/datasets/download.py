"""What every data set of the book shares: downloading, atomic writes, errors, stable sampling.

A download goes to a temporary file beside its destination and is renamed only when complete;
cached tables are written the same way. ``DataError`` is the one exception a loader raises for a
missing, damaged, truncated or unexpected file, with a message that says what to do.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm


class DataError(RuntimeError):
    """A data file is missing, unreadable, truncated or not the expected data set."""


# ---------------------------------------------------------------------------------------------
# Downloading


def download_file(url: str, dest: Path, *, progress: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` atomically, with a tqdm progress bar.

    The bytes go to a temporary file beside ``dest`` which is renamed only when the download is
    complete, so an interrupted download never leaves a half-written file under the final name.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
            if total is not None and out.tell() != total:
                raise DataError(f"download of {url} stopped at {out.tell()} of {total} bytes; try again")
        os.replace(tmp, dest)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise DataError(
                f"could not download {url} ({err}). Without internet, download the file elsewhere "
                "and point the book at it (see the README, 'Using a local copy of the data')."
            ) from err
        raise
    return dest


def atomic_parquet(frame: pd.DataFrame, dest: Path) -> Path:
    """Write ``frame`` to ``dest`` as parquet through a temporary file and a rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def stable_hash(values: np.ndarray, seed: int) -> np.ndarray:
    """A fixed integer hash (splitmix64), so samples do not depend on library versions."""
    with np.errstate(over="ignore"):
        x = values.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
