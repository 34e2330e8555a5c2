"""The one place that reads environment variables: data paths, subset mode, seed, threads.

Every chapter and helper asks this module instead of reading ``os.environ`` itself, so that one
switch (``RECSYS_SUBSET=1``) puts the whole book into its fast CI mode.

Environment variables
---------------------
RECSYS_RETAIL_DATA
    Local copy of UCI Online Retail (``.xlsx``, ``.parquet`` or ``.csv``). Unset: download once
    into the cache.
RECSYS_MOVIELENS_DATA
    Local copy of MovieLens latest-small (the unpacked folder or the ``.zip``).
RECSYS_CACHE_DIR
    Where downloads and the parquet cache live (default ``~/.cache/recsys-book``).
RECSYS_SUBSET
    ``1``/``true``/``yes``: subset mode (a deterministic sample of customers, fewer epochs).
RECSYS_SEED
    The seed for numpy, Python and TensorFlow (default 42).
RECSYS_THREADS
    CPU threads for TensorFlow, numba and BLAS (default: all cores).
"""

from __future__ import annotations

import os

# Before NumPy is imported: OpenBLAS reads this when it loads. implicit warns
# (check_blas_config) when OpenBLAS runs its own thread pool alongside implicit's.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# TensorFlow's C++ start-up messages are noise on a rendered page; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import random  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

_TRUE = {"1", "true", "yes", "on"}

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

    def epochs(self, full: int, subset: int) -> int:
        """Number of epochs to train: ``full`` on the full data, ``subset`` in subset mode."""
        return subset if self.subset else full

    def pick(self, full, subset):
        """Any setting that differs between the two modes (sizes, sample counts, ...)."""
        return subset if self.subset else full

    @property
    def mode(self) -> str:
        return "subset" if self.subset else "full"


def _path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def get_settings() -> Settings:
    """Read the settings from the environment (cheap; call it whenever you need them)."""
    cache = _path("RECSYS_CACHE_DIR") or Path.home() / ".cache" / "recsys-book"
    threads = int(os.environ.get("RECSYS_THREADS", "0") or 0) or (os.cpu_count() or 1)
    return Settings(
        retail_data=_path("RECSYS_RETAIL_DATA"),
        movielens_data=_path("RECSYS_MOVIELENS_DATA"),
        cache_dir=cache,
        subset=os.environ.get("RECSYS_SUBSET", "").strip().lower() in _TRUE,
        seed=int(os.environ.get("RECSYS_SEED", "42")),
        threads=threads,
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

    settings = get_settings()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(settings.threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, settings.threads))
    except RuntimeError:  # already initialised: the threads are fixed for this process
        pass
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    set_seeds(settings.seed)
