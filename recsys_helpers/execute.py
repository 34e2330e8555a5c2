"""``make full``: execute chapters top to bottom and save the outputs into their paired notebooks.

The MyST text file (``chapters/NAME.md``) is the source of truth. Each chapter is read from it,
run in a fresh kernel from the ``chapters/`` folder (so execution counts are 1..n), and written
to ``chapters/NAME.ipynb`` with its outputs. Subset mode is whatever the environment says.

Usage: ``python -m recsys_helpers.execute [chapters/NAME.md ...]`` (default: every chapter).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"


def execute(source: Path, timeout: int = 3600) -> Path:
    """Execute one chapter and write its ``.ipynb``; return the notebook's path."""
    import jupytext
    from nbclient import NotebookClient

    source = Path(source).with_suffix(".md")
    nb = jupytext.read(source)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
    ).execute()
    target = source.with_suffix(".ipynb")
    jupytext.write(nb, target, fmt="ipynb")
    return target


def main(paths: list[str]) -> None:
    sources = [Path(p) for p in paths] or sorted(CHAPTERS.glob("*.md"))
    for source in sources:
        start = time.perf_counter()
        print(f"executing {source} ...", flush=True)
        target = execute(source)
        print(f"  wrote {target} in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
