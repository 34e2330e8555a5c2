"""``make bench``: measured speed and memory of every stage of the book, on the full data.

Each stage runs in a fresh subprocess, so its peak memory (RSS) is its own, and repeats its timed
work several times; comparisons (the source's way vs the book's way) are measured in the same
process as a ratio. Results go to ``benchmarks/results/latest.json`` and a Markdown table
``benchmarks/results/latest.md``; the appendix chapter reads the JSON.

Usage::

    python benchmarks/run.py                 # every stage
    python benchmarks/run.py --stage data    # one stage (prints its JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
STAGES: dict[str, Callable[[], dict]] = {}


def stage(func: Callable[[], dict]) -> Callable[[], dict]:
    STAGES[func.__name__.removeprefix("bench_")] = func
    return func


def repeat(func: Callable[[], object], repeats: int = 5, warmup: int = 1) -> dict:
    """Median, min and max wall-clock seconds of ``func`` over ``repeats`` runs."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "repeats": repeats}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# Stages


@stage
def bench_data() -> dict:
    """Reading the workbook with openpyxl vs loading the parquet cache."""
    import pandas as pd

    from recsys_helpers import data
    from recsys_helpers.settings import get_settings

    settings = get_settings()
    raw = data.load_raw_retail(settings)
    cache = settings.cache_dir / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    parquet = cache / "online_retail.parquet"
    raw.to_parquet(parquet, index=False)
    workbook = cache / data.RETAIL_FILE
    if not workbook.exists():  # written once from the same rows; the original has the same layout
        raw.to_excel(workbook, index=False, engine="openpyxl")
    xlsx = repeat(lambda: data.read_retail_file(workbook), repeats=2, warmup=0)
    pq = repeat(lambda: pd.read_parquet(parquet), repeats=5)
    full = repeat(lambda: data.read_retail_file(parquet), repeats=5)
    return {
        "xlsx_read_seconds": xlsx,
        "parquet_load_seconds": pq,
        "parquet_load_checked_seconds": full,
        "speedup": xlsx["median"] / pq["median"],
    }


@stage
def bench_evaluation() -> dict:
    """The chapter's precision: pandas groupby vs indptr + numba (same number)."""
    import numpy as np

    from recsys_helpers import data, metrics
    from recsys_helpers.protocols import BasketProtocol

    split = data.load_split()
    protocol = BasketProtocol.from_split(split, "validation")
    recs = protocol.baseline()
    fast = metrics.precision(protocol.indptr, protocol.items, recs)
    slow = metrics.precision_groupby(split.validation, recs)
    assert np.isclose(fast, slow)
    t_slow = repeat(lambda: metrics.precision_groupby(split.validation, recs), repeats=5)
    t_fast = repeat(lambda: metrics.precision(protocol.indptr, protocol.items, recs), repeats=50)
    t_all = repeat(lambda: protocol.score(recs), repeats=20)
    return {
        "precision": fast,
        "groupby_seconds": t_slow,
        "indptr_numba_seconds": t_fast,
        "all_metrics_seconds": t_all,
        "speedup": t_slow["median"] / t_fast["median"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=sorted(STAGES))
    parser.add_argument("--only", nargs="*", help="run these stages (default: all)")
    args = parser.parse_args()
    if args.stage:
        start = time.perf_counter()
        result = STAGES[args.stage]()
        result["stage_seconds"] = time.perf_counter() - start
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    from tabulate import tabulate  # noqa: F401  (checked early: the report needs it)

    results = {"machine": machine(), "stages": {}}
    for name in args.only or list(STAGES):
        print(f"benchmark {name} ...", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--stage", name], capture_output=True, text=True, env=os.environ.copy()
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"stage {name} failed")
        results["stages"][name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {results['stages'][name]['stage_seconds']:.1f} s", flush=True)
    RESULTS.mkdir(exist_ok=True)
    previous = RESULTS / "latest.json"
    if args.only and previous.exists():  # keep the stages that were not re-run
        old = json.loads(previous.read_text())
        results["stages"] = old.get("stages", {}) | results["stages"]
    previous.write_text(json.dumps(results, indent=1, sort_keys=True))
    (RESULTS / "latest.md").write_text(report(results))
    print(f"wrote {previous} and latest.md")


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def report(results: dict) -> str:
    """A Markdown table of every timed quantity: median, min, max, and speed-up ratios."""
    from tabulate import tabulate

    rows = []
    for name, values in results["stages"].items():
        for key, value in values.items():
            if isinstance(value, dict) and "median" in value:
                rows.append([name, key, value["median"], value["min"], value["max"], value["repeats"]])
            elif key in ("speedup", "peak_rss_mb") or key.endswith(("_ratio", "_speedup")):
                rows.append([name, key, value, "", "", ""])
    header = ["stage", "quantity", "median", "min", "max", "repeats"]
    return tabulate(rows, header, tablefmt="github", floatfmt=".4g") + "\n"


if __name__ == "__main__":
    main()
