"""The chapters' code fits the page: every code cell is ruff-formatted at the column's width."""

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
