"""The chapters' code, formatted to fit the page: ruff format at the width of the page's column.

At a 1280-pixel window the book's theme shows code blocks about 80 characters wide (13-pixel
monospace, ``_static/book.css``) between the navigation and the page's table of contents;
``CODE_WIDTH`` is that width. ``format_code`` formats one cell (or a helper's source shown on a
page), ``format_chapter`` every code cell of a MyST chapter in place, and ``long_lines`` lists
what still does not fit. ``tests/test_code_style.py`` checks every chapter with them.

Usage: ``python -m recsys_helpers.book.style chapters/NAME.md ...`` formats those chapters (then
``jupytext --update --to ipynb chapters/NAME.md`` carries the change into the notebook, outputs
kept).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jupytext

#: Characters of code that fit the page's column at a 1280-pixel window.
CODE_WIDTH = 80


def ruff_binary() -> str:
    """The ruff of this environment (beside the interpreter), or the one on the PATH."""
    beside = Path(sys.executable).with_name("ruff")
    found = str(beside) if beside.exists() else shutil.which("ruff")
    if found is None:
        raise FileNotFoundError("ruff is not installed (it is pinned in requirements.txt)")
    return found


def format_code(source: str, width: int = CODE_WIDTH) -> str:
    """``source`` as ruff formats it at ``width`` columns (no trailing newline).

    Raises ``ValueError`` when ruff cannot parse the code.
    """
    done = subprocess.run(
        [ruff_binary(), "format", "--line-length", str(width), "--stdin-filename", "cell.py", "-"],
        input=source,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ValueError(f"ruff could not format the code: {done.stderr.strip()}")
    return done.stdout.rstrip("\n")


def long_lines(source: str, width: int = CODE_WIDTH) -> list[str]:
    """The lines of ``source`` longer than ``width`` characters."""
    return [line for line in source.splitlines() if len(line) > width]


def format_chapter(path: Path, width: int = CODE_WIDTH) -> int:
    """Format every code cell of a MyST chapter in place; return how many cells changed."""
    path = Path(path)
    nb = jupytext.read(path)
    changed = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        formatted = format_code(cell.source, width)
        if formatted != cell.source:
            cell.source = formatted
            changed += 1
    if changed:
        jupytext.write(nb, path, fmt="md:myst")
    return changed


if __name__ == "__main__":
    for chapter in sys.argv[1:]:
        print(f"{chapter}: {format_chapter(Path(chapter))} cells formatted")
