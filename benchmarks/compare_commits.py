"""Time chapters run with an older commit's package and with the working tree, side by side.

A chapter's wall-clock time depends on the machine as much as on the code, so a time recorded on
one machine says little about a change measured on another. This script measures both versions
in one run on one machine: it checks the older commit out into a temporary git worktree and
executes each chapter alternately with that commit's code and with the working tree's, in fresh
kernels, ``--rounds`` times. Notebooks are executed in memory; nothing in ``chapters/`` is
written. The times go to ``benchmarks/results/compare_<commit>.json`` (shown by the benchmark
appendix), with the CPU they were measured on.

Usage::

    python benchmarks/compare_commits.py b0fb230 chapters/02_als.md chapters/03_sgd_mf.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recsys_helpers.book.execute import cpu_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: Run in a fresh interpreter: execute one MyST chapter in memory, from its own folder.
EXECUTE = """
import sys
import jupytext
from nbclient import NotebookClient
path = sys.argv[1]
nb = jupytext.read(path)
NotebookClient(nb, timeout=3600, kernel_name="python3",
               resources={"metadata": {"path": path.rsplit("/", 1)[0]}}).execute()
"""


def run_chapter(tree: Path, chapter: str) -> float:
    """Seconds to execute ``chapter`` with the package of ``tree`` (its folder first on the path)."""
    env = os.environ | {"PYTHONPATH": str(tree)}
    env.pop("RECSYS_RECORD_FILE", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", EXECUTE, str(tree / chapter)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def compare(base: str, chapters: list[str], rounds: int = 2) -> dict:
    """``{chapter: {"base": [s, ...], "current": [s, ...], "ratio": fastest base / fastest current}}``.

    The fastest of the rounds is the run least disturbed by anything else on the machine (the
    first run of a version also pays for cold file caches).
    """
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), base],
                       check=True, capture_output=True)
        try:
            for _ in range(rounds):
                for chapter in chapters:
                    times = out.setdefault(chapter, {"base": [], "current": []})
                    times["base"].append(run_chapter(tree, chapter))
                    times["current"].append(run_chapter(ROOT, chapter))
                    print(f"{chapter}: base {times['base'][-1]:.1f} s, current {times['current'][-1]:.1f} s",
                          flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)
    for times in out.values():
        times["ratio"] = min(times["base"]) / min(times["current"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the older commit")
    parser.add_argument("chapters", nargs="+", help="chapters/NAME.md, relative to the repository")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base],
                            check=True, capture_output=True, text=True).stdout.strip()
    result = {"base": commit, "cpu": cpu_model(), "rounds": args.rounds,
              "chapters": compare(commit, args.chapters, args.rounds)}
    path = RESULTS / f"compare_{commit}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
