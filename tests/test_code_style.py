"""The chapters' code fits the page: every code cell is ruff-formatted at the column's width."""

import json
import re
from pathlib import Path

import jupytext
import pytest

from recsys_helpers.book import style

CHAPTERS = sorted((Path(__file__).resolve().parent.parent / "chapters").glob("*.md"))


def _code_cells(path: Path) -> list[str]:
    return [c.source for c in jupytext.read(path).cells if c.cell_type == "code" and c.source.strip()]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_cells_fit_the_column(path):
    for source in _code_cells(path):
        assert not style.long_lines(source), f"longer than {style.CODE_WIDTH} characters: {style.long_lines(source)}"
        assert style.format_code(source) == source, f"not ruff-formatted at {style.CODE_WIDTH}:\n{source}"


def test_the_checks_can_fail():
    wide = "x = some_function(" + ", ".join(f"argument_{i}" for i in range(12)) + ")"
    assert style.long_lines(wide) == [wide]
    formatted = style.format_code(wide)
    assert formatted != wide and not style.long_lines(formatted)
    assert style.format_code("x=1") == "x = 1"
    with pytest.raises(ValueError, match="ruff could not format"):
        style.format_code("def broken(:")


def test_format_chapter_rewrites_only_code(tmp_path):
    text = (
        "---\njupytext:\n  formats: ipynb,md:myst\n  text_representation: {extension: .md, format_name: myst}\n"
        "kernelspec: {display_name: Python 3, language: python, name: python3}\n---\n\n# T\n\nSome   prose.\n\n"
        "```{code-cell} ipython3\nx=[1,2]\n```\n"
    )
    path = tmp_path / "t.md"
    path.write_text(text)
    assert style.format_chapter(path) == 1
    cells = jupytext.read(path).cells
    assert cells[-1].source == "x = [1, 2]" and "Some   prose." in cells[0].source
    assert style.format_chapter(path) == 0


# The pages speak to readers, not to the book's makers: no development history, the sources named
# (not numbered), and every citation resolves in references.bib.

ROOT = Path(__file__).resolve().parent.parent
CHECKED_PAGES = [ROOT / "intro.md", *CHAPTERS]

HISTORY = re.compile(
    r"restructur|reorganis|previous round|this round|load average|glue_before|other engineers"
    r"|\bzen [0-9]+\b"
    r"|`(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}`",  # a commit hash in backticks
    re.IGNORECASE,
)
SOURCE_NUMBER = re.compile(r"\bseed[ _-]?00[0-9]", re.IGNORECASE)
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
BIB_KEY = re.compile(r"^@[a-z]+\{\s*([^,\s]+)\s*,", re.IGNORECASE | re.MULTILINE)


def _hits(pattern: re.Pattern, text: str) -> list[str]:
    return [line for line in text.splitlines() if pattern.search(line)]


def _cited_keys(text: str) -> set[str]:
    return {key.strip() for keys in CITE.findall(text) for key in keys.split(",") if key.strip()}


@pytest.mark.parametrize("path", CHECKED_PAGES, ids=lambda p: p.stem)
def test_pages_carry_no_development_history(path):
    hits = _hits(HISTORY, path.read_text())
    assert not hits, f"development history in {path.name}: {hits}"


@pytest.mark.parametrize("path", CHECKED_PAGES, ids=lambda p: p.stem)
def test_pages_name_their_sources(path):
    hits = _hits(SOURCE_NUMBER, path.read_text())
    assert not hits, f"a source called by its seed number in {path.name}: {hits}"


def test_package_names_its_sources():
    hits = {
        str(p.relative_to(ROOT)): _hits(SOURCE_NUMBER, p.read_text())
        for p in sorted((ROOT / "recsys_helpers").rglob("*.py"))
    }
    assert not {name: lines for name, lines in hits.items() if lines}


def test_every_citation_is_in_the_bibliography():
    known = set(BIB_KEY.findall((ROOT / "references.bib").read_text()))
    cited = {key: path.name for path in CHECKED_PAGES for key in _cited_keys(path.read_text())}
    assert cited, "no {cite} found: the pattern is broken"
    assert not {key: page for key, page in cited.items() if key not in known}


def test_the_reader_checks_can_fail():
    planted = [
        "Before the package was restructured it trained with `model.fit`.",
        "as in the previous round of this book",
        "while two other engineers' training jobs shared the machine",
        "its load average was 3.2 at the end",
        "from recsys_helpers.book.results import glue_before, glue_value",
        "on an AMD EPYC (Zen 5, AVX-512)",
        "the values recorded at `cf66927`",
    ]
    for line in planted:
        assert _hits(HISTORY, line) == [line], line
    fine = "The zenith of `precision_at_5` is 0.35 in `2011-10-09`; `deadbeef` is no hash; Zenodo."
    assert _hits(HISTORY, fine) == []
    assert _hits(SOURCE_NUMBER, "ARTICLE = {  # seed 001's printed result") != []
    assert _hits(SOURCE_NUMBER, "Seed 003 multiplies the ratings") != []
    assert _hits(SOURCE_NUMBER, "settings.seed, seed=42") == []
    assert _cited_keys("see {cite}`koren2009,hu2008` and {cite:p}` rendle2009`") == {
        "koren2009",
        "hu2008",
        "rendle2009",
    }
    known = set(BIB_KEY.findall("@misc{tina2021tfrs,\n  title = {x}\n}\n@book{ other ,\n}"))
    assert known == {"tina2021tfrs", "other"}


# One idea per page, in cells a reader can take in, and outputs that fit the column.
MAX_CELL_LINES, MAX_CHAPTER_LINES, MAX_OUTPUT_WIDTH = 30, 500, 100
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _long_cells(path: Path) -> list[int]:
    """Line counts of the chapter's code cells that are longer than ``MAX_CELL_LINES``."""
    return [n for n in (len(source.splitlines()) for source in _code_cells(path)) if n > MAX_CELL_LINES]


def _wide_output_lines(nb: dict) -> list[str]:
    """Printed or displayed text lines wider than ``MAX_OUTPUT_WIDTH`` (stderr is never shown)."""
    wide = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            if output.get("name") == "stderr" or output.get("metadata", {}).get("scrapbook"):
                continue
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            if not output.get("text") and "text/html" in output.get("data", {}):
                continue  # a table or figure: the page lays it out
            text = "".join(text) if isinstance(text, list) else text
            wide += [line for line in text.splitlines() if len(line) > MAX_OUTPUT_WIDTH]
    return wide


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_cells_are_short(path):
    assert not _long_cells(path), f"code cells over {MAX_CELL_LINES} lines: {_long_cells(path)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_hold_one_idea(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_CHAPTER_LINES, f"{path.name} has {lines} lines: split it where the ideas part"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_fit_the_column(path):
    wide = _wide_output_lines(json.loads(path.read_text()))
    assert not wide, f"output lines over {MAX_OUTPUT_WIDTH} characters: {[w[:60] for w in wide[:3]]}"


def test_the_page_checks_can_fail(tmp_path):
    long_cell = "---\njupytext: {formats: 'ipynb,md:myst'}\n---\n```{code-cell} ipython3\n" + "x = 1\n" * 31 + "```\n"
    path = tmp_path / "long.md"
    path.write_text(long_cell)
    assert _long_cells(path) == [31]
    nb = {"cells": [{"outputs": [{"name": "stdout", "text": ["y" * 101 + "\n", "ok\n"]},
                                 {"name": "stderr", "text": ["z" * 200]}]}]}
    assert _wide_output_lines(nb) == ["y" * 101]
