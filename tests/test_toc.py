"""The table of contents is in reading order: every chapter once, by number, the appendices last."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [entry["file"] for part in toc["parts"] for entry in part["chapters"]]


def _title(path: Path) -> str:
    return next(line[2:] for line in path.read_text().splitlines() if line.startswith("# "))


def reading_order(chapters: list[Path]) -> list[str]:
    """Chapters by their number, then the appendices (title "Appendix: ...") by theirs."""
    def key(path: Path):
        return (_title(path).startswith("Appendix"), int(re.match(r"\d+", path.stem).group()))

    return [f"chapters/{p.stem}" for p in sorted(chapters, key=key)]


def test_every_chapter_once_in_reading_order():
    files = _toc_files()
    listed = [f for f in files if f.startswith("chapters/")]
    chapters = sorted((ROOT / "chapters").glob("*.md"))
    assert len(listed) == len(set(listed)), "a chapter is listed twice"
    assert listed == reading_order(chapters)
    assert files[-1] == "references", "the references close the book"


def test_reading_order_puts_appendices_last(tmp_path):
    for name, title in [("02_b", "B"), ("98_x", "Appendix: X"), ("99_r", "Results"), ("01_a", "A")]:
        (tmp_path / f"{name}.md").write_text(f"---\n---\n\n# {title}\n")
    order = reading_order(sorted(tmp_path.glob("*.md")))
    assert order == ["chapters/01_a", "chapters/02_b", "chapters/99_r", "chapters/98_x"]
