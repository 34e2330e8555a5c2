"""``make full``: execute chapters top to bottom and save the outputs into their paired notebooks.

The MyST text file (``chapters/NAME.md``) is the source of truth. Each chapter is read from it,
run in a fresh kernel from the ``chapters/`` folder (so execution counts are 1..n), and written
to ``chapters/NAME.ipynb`` with its outputs. Subset mode is whatever the environment says.

Usage: ``python -m recsys_helpers.book.execute [--out DIR] [chapters/NAME.md ...]`` (default:
every chapter). With ``--out DIR`` the executed notebooks go to ``DIR/NAME.ipynb`` instead, and
the book's own notebooks stay as they are: the way to run the chapters on your own data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jupytext
import pandas as pd
from nbclient import NotebookClient

from ..settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
#: Wall-clock seconds of the last full-data execution of each chapter (read by the benchmarks).
TIMINGS = ROOT / "benchmarks" / "results" / "execution.json"


def execute(source: Path, timeout: int = 3600, out: Path | None = None) -> Path:
    """Execute one chapter and write its ``.ipynb`` (beside it, or into ``out``); return the path."""
    source = Path(source).with_suffix(".md")
    nb = jupytext.read(source)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
    ).execute()
    target = source.with_suffix(".ipynb") if out is None else Path(out) / f"{source.stem}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, target, fmt="ipynb")
    return target


def cpu_info() -> dict:
    """The CPU as ``/proc/cpuinfo`` describes its first core: ``name`` (the model name, else the
    processor type), ``family_model`` (``"family/model"``) and ``avx512`` (its ``avx512f`` flag)."""
    info = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    for line in info.read_text().splitlines() if info.exists() else []:
        if not line.strip():
            break  # the first core's block ends here
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return {
        "name": fields.get("model name") or platform.processor() or platform.machine(),
        "family_model": f"{fields.get('cpu family', '?')}/{fields.get('model', '?')}",
        "avx512": "avx512f" in fields.get("flags", "").split(),
    }


def cpu_model() -> str:
    """The CPU's model name, its cores and whether it has AVX-512 (``cpu_info``).

    Timings depend on the machine; results files say which one they were measured on.
    """
    info = cpu_info()
    if not Path("/proc/cpuinfo").exists():
        return f"{info['name']}, {os.cpu_count()} cores"
    return f"{info['name']}, {os.cpu_count()} cores, {'AVX-512' if info['avx512'] else 'no AVX-512'}"


def record_timing(chapter: str, seconds: float, path: Path = TIMINGS) -> None:
    """Keep the latest full-data execution time of a chapter in a small JSON file."""
    if get_settings().subset:
        return
    timings = json.loads(path.read_text()) if path.exists() else {}
    timings[chapter] = round(seconds, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(timings.items())), indent=1) + "\n")


def cell_times(notebooks) -> pd.DataFrame:
    """How long each code cell of executed notebooks took: a profile of ``make full`` by cell.

    Reads the ``execution`` timestamps that the executor writes into each cell's metadata
    (from the kernel starting the cell to its reply). One row per code cell: ``chapter``,
    ``cell`` (execution count), ``seconds`` and ``code`` (the cell's first line).
    """
    rows = []
    for path in notebooks:
        nb = json.loads(Path(path).read_text())
        for cell in nb["cells"]:
            stamps = cell.get("metadata", {}).get("execution", {})
            if cell["cell_type"] != "code" or "shell.execute_reply" not in stamps:
                continue
            start, end = (pd.Timestamp(stamps[key]) for key in ("iopub.execute_input", "shell.execute_reply"))
            source = "".join(cell["source"]).strip()
            rows.append((Path(path).stem, cell["execution_count"], (end - start).total_seconds(),
                         source.splitlines()[0] if source else ""))
    return pd.DataFrame(rows, columns=["chapter", "cell", "seconds", "code"])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapters/NAME.md (default: every chapter)")
    parser.add_argument("--out", type=Path, help="write the executed notebooks here, not beside the texts")
    args = parser.parse_args(argv)
    sources = [Path(p) for p in args.chapters] or sorted(CHAPTERS.glob("*.md"))
    for source in sources:
        start = time.perf_counter()
        print(f"executing {source} ...", flush=True)
        target = execute(source, out=args.out)
        seconds = time.perf_counter() - start
        if args.out is None:
            record_timing(Path(source).stem, seconds)
        print(f"  wrote {target} in {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
