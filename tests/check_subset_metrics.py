"""Every chapter's recorded numbers in subset mode, against the expected values committed beside.

``make test`` executes every chapter in subset mode (nbval) with ``RECSYS_RECORD_FILE`` set, so
that each glued number is also appended to that file (``book.results.glue_value``); this module
then compares the recorded quality metrics (``<model>_<split>_<metric>``, timings left out) with
``tests/expected/subset_metrics.json``, as Microsoft Recommenders' notebook tests compare recorded
metrics with expected values. A refactor that silently breaks a model fails here, not only a
chapter that crashes.

The file is not collected by ``pytest tests`` (its name does not start with ``test_``): the
Makefile runs it after the notebooks. After a deliberate change of a model, write the new
expected values with ``make expected`` and say in the commit why they changed.
"""

import json
import math
import re
import sys
from pathlib import Path

import pytest

from recsys_helpers.settings import get_settings

EXPECTED = Path(__file__).resolve().parent / "expected" / "subset_metrics.json"
RECORDED = re.compile(r"^[a-z0-9_]+_(val|test)_[a-z0-9_]+$")
#: Within this distance of the expected value (absolute, or relative to it, whichever is larger):
#: subset-mode numbers repeat exactly on one machine; other CPUs may round TensorFlow's sums
#: differently, which moves a small model's metrics by a few thousandths.
ABS_TOL, REL_TOL = 0.01, 0.03


def is_quality_metric(name: str) -> bool:
    return bool(RECORDED.match(name)) and not name.endswith("seconds")


def read_record_file(path) -> dict[str, float]:
    """The last value glued under each quality-metric name (JSON lines ``{"name", "value"}``)."""
    values = {}
    for line in Path(path).read_text().splitlines():
        entry = json.loads(line)
        if is_quality_metric(entry["name"]):
            values[entry["name"]] = float(entry["value"])
    return values


def _recorded() -> dict[str, float]:
    path = get_settings().record_file
    if path is None or not path.exists():
        pytest.fail("RECSYS_RECORD_FILE names no file: run the chapters first (make test)")
    return read_record_file(path)


EXPECTED_VALUES = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}


def test_every_expected_metric_was_recorded():
    missing = sorted(set(EXPECTED_VALUES) - set(_recorded()))
    assert not missing, f"chapters no longer record {missing}"


def test_no_metric_is_recorded_without_an_expected_value():
    new = sorted(set(_recorded()) - set(EXPECTED_VALUES))
    assert not new, f"new recorded metrics {new}: add them with `make expected`"


@pytest.mark.parametrize("name", sorted(EXPECTED_VALUES))
def test_recorded_metric_matches_expected(name):
    recorded = _recorded()
    if name not in recorded:
        pytest.fail(f"{name} was not recorded")
    expected = EXPECTED_VALUES[name]
    tolerance = max(ABS_TOL, REL_TOL * abs(expected))
    assert math.isclose(recorded[name], expected, abs_tol=tolerance), (
        f"{name}: recorded {recorded[name]:.4f}, expected {expected:.4f} +- {tolerance:.3f}"
    )


if __name__ == "__main__":  # make expected: write the expected values from a record file
    values = read_record_file(sys.argv[1])
    EXPECTED.write_text(json.dumps(dict(sorted(values.items())), indent=1) + "\n")
    print(f"wrote {len(values)} expected values to {EXPECTED}")
