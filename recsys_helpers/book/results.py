"""Recorded metrics: glue names ``<model>_<split>_<metric>`` and reading them back.

Chapters call ``record`` with the metrics of one model on one split; the numbers are glued with
``myst_nb.glue`` (so the prose can cite them with ``{glue:text}``) and also returned as a table.
``read_recorded`` finds them again in executed notebooks, for the results chapter and the tests.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
from myst_nb import glue

from ..settings import get_settings

SPLITS = ("val", "test")
#: Every chapter's recorded quality metrics at the last commit before the package was restructured.
BEFORE_RESTRUCTURE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "recorded_before_restructure.json"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SPLIT_ALIASES = {"validation": "val", "val": "val", "test": "test"}


def metric_name(model: str, split: str, metric: str) -> str:
    """``model``, ``split`` and ``metric`` joined the way the book records them."""
    split = _SPLIT_ALIASES.get(split, split)
    name = f"{model}_{split}_{metric}"
    if split not in SPLITS or not _NAME.match(name):
        raise ValueError(f"bad metric name {name!r}: model/metric are lower_snake, split is val or test")
    return name


def glue_value(name: str, value, display: bool = False) -> None:
    """Glue one value (numbers as plain Python numbers, so ``{glue:text}`` can format them)."""
    if hasattr(value, "item"):
        value = value.item()
    glue(name, value, display=display)
    if isinstance(value, int | float) and not isinstance(value, bool):
        _log_glued(name, value)


def record(model: str, split: str, values: Mapping[str, float], display: bool = False) -> pd.Series:
    """Glue every metric in ``values`` as ``<model>_<split>_<metric>`` and return them."""
    out = {}
    for metric, value in values.items():
        name = metric_name(model, split, metric)
        value = float(value)
        glue_value(name, value, display=display)
        out[name] = value
    return pd.Series(out, name=model, dtype="float64")


def _log_glued(name: str, value: float) -> None:
    """Append a glued number to ``$RECSYS_RECORD_FILE`` (JSON lines), when it is set.

    ``make test`` sets it while the chapters run in subset mode, so that a test can compare
    every chapter's recorded numbers with the expected values committed beside the tests.
    """
    path = get_settings().record_file
    if path is not None:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"name": name, "value": value}) + "\n")


def read_glue(notebooks: Iterable[str | Path]) -> dict[str, object]:
    """Every glued value (as a Python literal: number, string, ...) in executed notebooks."""
    values: dict[str, object] = {}
    for path in notebooks:
        nb = json.loads(Path(path).read_text())
        for cell in nb.get("cells", []):
            for output in cell.get("outputs", []) or []:
                meta = output.get("metadata", {}).get("scrapbook")
                text = output.get("data", {}).get((meta or {}).get("mime_prefix", "") + "text/plain")
                if not meta or text is None:
                    continue
                try:
                    values[meta["name"]] = ast.literal_eval("".join(text) if isinstance(text, list) else text)
                except (ValueError, SyntaxError):
                    continue  # objects without a literal repr (figures, Markdown)
    return values


def read_recorded(notebooks: Iterable[str | Path]) -> pd.Series:
    """Every glued number in the given executed notebooks, by name."""
    numbers = {
        name: float(value)
        for name, value in read_glue(notebooks).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return pd.Series(numbers, dtype="float64").sort_index()


_RECORDED = re.compile(r"^(?P<model>[a-z0-9_]+?)_(?P<split>val|test)_(?P<metric>[a-z0-9_]+)$")


def tidy(recorded: pd.Series) -> pd.DataFrame:
    """Split recorded names into ``model``, ``split``, ``metric`` columns (other names dropped)."""
    rows = []
    for name, value in recorded.items():
        match = _RECORDED.match(name)
        if match:
            rows.append({**match.groupdict(), "value": value})
    return pd.DataFrame(rows, columns=["model", "split", "metric", "value"])


def leaderboard(
    recorded: pd.Series, key: str, columns: Iterable[str] = (), final: bool = True, lower_is_better: bool = False
) -> pd.DataFrame:
    """One row per model that recorded ``val_<key>``, best validation ``key`` first.

    Columns are ``val_<key>``, ``test_<key>`` and then ``val_<column>`` for each extra column
    (``fit_seconds`` also falls back to the plain ``<model>_fit_seconds`` value). With
    ``final=True`` only the models a chapter reported on test (its final models) are kept;
    ``final=False`` keeps only the others (ablations, variants and reference values). Errors
    such as ``mae`` sort the other way with ``lower_is_better=True``.
    """
    table = tidy(recorded)
    wide = table.pivot_table(index="model", columns=["split", "metric"], values="value", aggfunc="first")
    wide.columns = [f"{split}_{metric}" for split, metric in wide.columns]
    wanted = [f"val_{key}", f"test_{key}"] + [f"val_{c}" for c in columns]
    if f"val_{key}" not in wide:
        return pd.DataFrame(columns=wanted)
    board = wide.reindex(columns=wanted)
    board = board[board[f"val_{key}"].notna() & (board[f"test_{key}"].notna() == final)]
    if "val_fit_seconds" in board:
        plain = recorded.reindex([f"{m}_fit_seconds" for m in board.index]).to_numpy()
        board["val_fit_seconds"] = board["val_fit_seconds"].fillna(pd.Series(plain, index=board.index))
    board = board.rename(columns=lambda c: c.removeprefix("val_") if c.startswith("val_fit") else c)
    return board.sort_values(f"val_{key}", ascending=lower_is_better)


def compare_recorded(
    before: Mapping[str, float],
    after: pd.Series,
    renamed: Mapping[str, str] | None = None,
    tolerance: float = 0.002,
) -> pd.DataFrame:
    """Quality metrics recorded by two versions of the book, side by side.

    ``before`` maps names to values (an older snapshot, with ``renamed`` old names mapped to
    their new ones); ``after`` is what the chapters record now. Timings are left out. One row per
    name in either: ``before``, ``after``, ``change`` (after - before) and ``moved`` (the change
    exceeds ``tolerance``, or the name is only in one of them), indexed by the current name.
    """
    renamed = dict(renamed or {})
    old = pd.Series({renamed.get(name, name): float(v) for name, v in before.items()}, dtype="float64")
    new = after[[name for name in after.index if _RECORDED.match(name) and not name.endswith("seconds")]]
    old = old[[name for name in old.index if not name.endswith("seconds")]]
    table = pd.DataFrame({"before": old, "after": new}).sort_index()
    table["change"] = table["after"] - table["before"]
    table["moved"] = ~(table["change"].abs() <= tolerance)
    return table


def read_snapshot(path: str | Path = BEFORE_RESTRUCTURE) -> dict:
    """A committed snapshot of recorded metrics: ``commit``, ``renamed`` (old -> new) and ``metrics``."""
    return json.loads(Path(path).read_text())


def glue_before(names: Iterable[str], snapshot: Mapping | None = None) -> dict[str, float]:
    """Glue the snapshot's value of each recorded name, for prose that says what a number was.

    ``<model>_<split>_<metric>`` is glued as ``before_<model>_<metric>_on_<split>``, a name that
    does not look like a recorded metric (the leaderboards must not mistake it for one).
    """
    metrics = (snapshot or read_snapshot())["metrics"]
    out = {}
    for name in names:
        match = _RECORDED.match(name)
        if not match:
            raise ValueError(f"{name!r} is not a recorded metric name")
        glued = f"before_{match['model']}_{match['metric']}_on_{match['split']}"
        glue_value(glued, metrics[name])
        out[glued] = metrics[name]
    return out
