"""Every chapter is a paired MyST text + notebook, in sync, executed top to bottom without errors."""

import json
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
TEXTS = sorted(CHAPTERS.glob("*.md"))
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))
GLUE_NAME = re.compile(r"^[a-z0-9_]+$")
RECORDED = re.compile(r"^[a-z0-9_]+_(val|test)_[a-z0-9_]+$")
SUMMARY_CHAPTERS = {"98_benchmarks", "99_results"}  # they read other chapters' numbers
#: What a summary chapter may record: paired differences and spreads over seeds of others' numbers.
DERIVED = re.compile(r"_vs_[a-z0-9_]+$|_seed_(mean|sd)$")
GUIDE_CHAPTERS = {"24_your_own_data"}  # runs on a synthetic table: records no number of the book


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_chapters():
    assert TEXTS, "no chapter sources found"


@pytest.mark.parametrize("text", TEXTS, ids=lambda p: p.stem)
def test_each_text_has_its_notebook(text):
    assert text.with_suffix(".ipynb").exists(), f"{text.name} has no executed .ipynb beside it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_and_in_sync(path):
    text = path.with_suffix(".md")
    assert text.exists(), f"{path.name} has no paired MyST text file"
    nb = jupytext.read(path)
    assert "md:myst" in nb.metadata.get("jupytext", {}).get("formats", ""), "pairing missing from metadata"
    assert _cells(nb) == _cells(jupytext.read(text)), f"{path.name} is out of sync with {text.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_top_to_bottom_without_errors(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), f"execution counts {counts}"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"error outputs: {[e.get('ename') for e in errors]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_glued_names_follow_the_contract_and_are_cited(path):
    nb = json.loads(path.read_text())
    glued = {
        o["metadata"]["scrapbook"]["name"]
        for c in nb["cells"]
        for o in c.get("outputs", [])
        if o.get("metadata", {}).get("scrapbook")
    }
    assert all(GLUE_NAME.match(name) for name in glued), glued
    cited = set(re.findall(r"\{glue:?[a-z]*\}`([a-z0-9_]+)", path.with_suffix(".md").read_text()))
    missing = cited - glued
    assert not missing, f"prose cites numbers the notebook does not glue: {sorted(missing)}"
    recorded = [n for n in glued if RECORDED.match(n)]
    if path.stem in GUIDE_CHAPTERS:
        assert not glued, "a guide glues no number: its numbers are of a synthetic table, not the book's"
    elif path.stem not in SUMMARY_CHAPTERS:
        assert recorded, "a chapter records at least one <model>_<split>_<metric> number"
    else:
        own = [n for n in recorded if not DERIVED.search(n)]
        assert not own, f"summary chapters record only comparisons and seed spreads: {own}"


def test_results_chapter_is_current():
    """The leaderboard was built from the chapters' current outputs (re-run it after a chapter)."""
    from recsys_helpers.book.results import read_glue, read_recorded

    results = CHAPTERS / "99_results.ipynb"
    if not results.exists():
        pytest.skip("no results chapter yet")
    others = [p for p in NOTEBOOKS if p != results]
    stored = json.loads(read_glue([results])["recorded_metrics_json"])
    current = read_recorded(others).round(12).to_dict()
    assert stored == current, "chapters changed since 99_results was executed: re-run it"


@pytest.mark.parametrize("name, key", [("latest", "bench_results_json"), ("avx2_machine", "bench_avx2_machine_json")])
def test_benchmark_appendix_matches_results_file(name, key):
    """The appendix shows the numbers of benchmarks/results/latest.json, and of the run on a
    machine without AVX-512 (re-execute it after make bench)."""
    from recsys_helpers.book.results import read_glue

    appendix = CHAPTERS / "98_benchmarks.ipynb"
    results = ROOT / "benchmarks" / "results" / f"{name}.json"
    if not appendix.exists():
        pytest.skip("no benchmark appendix yet")
    shown = json.loads(read_glue([appendix])[key])
    assert shown == json.loads(results.read_text()), "make bench ran since the appendix: re-execute it"
