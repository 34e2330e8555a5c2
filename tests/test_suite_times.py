"""``make test``'s times per test module and per chapter (``book.suite_times``)."""

import json

from recsys_helpers.book import suite_times

UNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="1" skipped="0" tests="3"
 time="12.5"><testcase classname="tests.test_lstm" name="test_a" time="4.0"/>
<testcase classname="tests.test_lstm" name="test_b[x]" time="2.5"/>
<testcase classname="tests.test_ladders" name="test_c" time="9.0"><failure message="no"/></testcase>
</testsuite></testsuites>"""
NBVAL = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="3" time="30.0">
<testcase classname="chapters.06_item_lstm.ipynb" name="Cell 0" time="3.0"/>
<testcase classname="chapters.06_item_lstm.ipynb" name="Cell 1" time="20.0"/>
<testcase classname="chapters.01_data_and_baseline.ipynb" name="Cell 0" time="1.5"/>
</testsuite></testsuites>"""


def _files(tmp_path):
    unit, nbval = tmp_path / "unit.xml", tmp_path / "nbval.xml"
    unit.write_text(UNIT)
    nbval.write_text(NBVAL)
    return unit, nbval


def test_groups_are_modules_and_chapters_slowest_first(tmp_path):
    unit, nbval = _files(tmp_path)
    assert suite_times.read_junit(unit) == {
        "wall": 12.5, "tests": 3, "failed": 1, "groups": {"test_ladders": 9.0, "test_lstm": 6.5},
    }
    chapters = suite_times.read_junit(nbval)["groups"]
    assert list(chapters) == ["06_item_lstm", "01_data_and_baseline"] and chapters["06_item_lstm"] == 23.0


def test_summary_adds_both_sessions_and_is_saved_with_the_machine(tmp_path, monkeypatch):
    unit, nbval = _files(tmp_path)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    out = tmp_path / "times.json"
    suite_times.main([str(unit), str(nbval), "--save", str(out), "--label", "emulated"])
    saved = json.loads(out.read_text())
    assert saved["total"] == 42.5 and saved["goal"] == suite_times.MAKE_TEST_GOAL
    assert saved["label"] == "emulated" and saved["machine"]["onednn_max_cpu_isa"] == "AVX2"
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["cpu"]
    text = suite_times.report(saved)
    assert text.startswith("make test: 42 s") and "06_item_lstm" in text and "test_ladders" in text


def test_tables_show_each_run_against_the_goal(tmp_path):
    unit, nbval = _files(tmp_path)
    fast = {"label": "native", **suite_times.summarise(unit, nbval)}
    slow = {**fast, "label": "AVX2", "total": 900.0}
    runs = suite_times.runs_table([fast, slow])
    assert list(runs.index) == ["native", "AVX2"] and list(runs["met"]) == [True, False]
    chapters = suite_times.chapters_table([fast, slow])
    assert list(chapters.index) == ["06_item_lstm", "01_data_and_baseline"] and list(chapters.columns) == ["native", "AVX2"]
