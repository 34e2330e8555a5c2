"""How long ``make test`` took, and where: per test module and per chapter, from pytest's JUnit XML.

``make test`` writes ``.data/unit.xml`` (the unit tests) and ``.data/nbval.xml`` (every chapter
in subset mode) and then prints their summary with this module::

    python -m recsys_helpers.book.suite_times .data/unit.xml .data/nbval.xml [--save FILE --label L]

``--save`` keeps the summary as JSON, with the machine it ran on (CPU model, cores, the oneDNN
instruction-set cap ``ONEDNN_MAX_CPU_ISA`` if set, the test processes and threads), for the
maintainers' records in ``benchmarks/README.md``.

A session's wall time is the ``time`` of its ``testsuite`` element; a group's time is the sum of
its test cases' times (setup, call and teardown), so with several test processes the groups add
up to more than the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pandas as pd

from .execute import cpu_info

#: our goal for ``make test`` on a 2-core machine, seconds
MAKE_TEST_GOAL = 600


def group_of(classname: str) -> str:
    """The test module or chapter of a JUnit ``classname`` (``tests.test_lstm`` -> ``test_lstm``,
    ``chapters.06_item_lstm.ipynb`` -> ``06_item_lstm``)."""
    name = classname
    for prefix in ("tests.", "chapters."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.removesuffix(".ipynb").split(".")[0]


def read_junit(path: str | Path) -> dict:
    """``{"wall": seconds, "tests": n, "failed": n, "groups": {group: seconds}}`` of one session."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    groups: dict[str, float] = defaultdict(float)
    wall = tests = failed = 0
    for suite in suites:
        wall += float(suite.get("time", 0.0))
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        for case in suite.iter("testcase"):
            groups[group_of(case.get("classname", ""))] += float(case.get("time", 0.0))
    ordered = dict(sorted(groups.items(), key=lambda item: -item[1]))
    return {"wall": wall, "tests": tests, "failed": failed, "groups": ordered}


def machine() -> dict:
    """The CPU model, its cores, the oneDNN cap and the test processes and threads of this run."""
    return {
        "cpu": cpu_info()["name"],
        "cores": os.cpu_count(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "test_jobs": os.environ.get("TEST_JOBS"),
        "test_threads": os.environ.get("RECSYS_THREADS"),
    }


def summarise(unit: str | Path, nbval: str | Path) -> dict:
    """Both sessions of one ``make test`` and their total wall time."""
    sessions = {"unit": read_junit(unit), "nbval": read_junit(nbval)}
    total = sum(session["wall"] for session in sessions.values())
    return {"total": total, "goal": MAKE_TEST_GOAL, **sessions, "machine": machine()}


def report(summary: dict, top: int = 8) -> str:
    """The printed summary: both sessions' wall times, then the slowest modules and chapters."""
    lines = [
        f"make test: {summary['total']:.0f} s (goal {summary['goal']} s); "
        f"unit tests {summary['unit']['wall']:.0f} s ({summary['unit']['tests']} tests), "
        f"notebooks {summary['nbval']['wall']:.0f} s ({summary['nbval']['tests']} cells)"
    ]
    for name, label in (("nbval", "chapter"), ("unit", "test module")):
        lines.append(f"  slowest by {label} (seconds, summed over the test processes):")
        for group, seconds in list(summary[name]["groups"].items())[:top]:
            lines.append(f"    {seconds:7.1f}  {group}")
    return "\n".join(lines)


def runs_table(runs: list[dict]) -> pd.DataFrame:
    """One row per saved run: its label, the unit tests', the notebooks' and the total seconds,
    and whether the total meets ``MAKE_TEST_GOAL``."""
    rows = [
        {
            "run": run["label"],
            "unit tests, s": run["unit"]["wall"],
            "notebooks, s": run["nbval"]["wall"],
            "make test, s": run["total"],
            "goal, s": run["goal"],
            "met": run["total"] <= run["goal"],
        }
        for run in runs
    ]
    return pd.DataFrame(rows).set_index("run")


def chapters_table(runs: list[dict]) -> pd.DataFrame:
    """Seconds of each chapter in subset mode (summed over its cells), one column per run."""
    columns = {run["label"]: pd.Series(run["nbval"]["groups"]) for run in runs}
    return pd.DataFrame(columns).sort_values(runs[0]["label"], ascending=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("unit")
    parser.add_argument("nbval")
    parser.add_argument("--save", help="write the summary as JSON to this file")
    parser.add_argument("--label", default="", help="what this run was (kept in the JSON)")
    args = parser.parse_args(argv)
    summary = summarise(args.unit, args.nbval)
    print(report(summary))
    if args.save:
        Path(args.save).write_text(json.dumps({"label": args.label, **summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
