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

import numpy as np
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from ..evaluation.scores import LOWER_IS_BETTER, REFERENCE, Scores
from ..evaluation.uncertainty import Interval, verdict
from ..settings import get_settings

SPLITS = ("val", "test")
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


def record(
    model: str,
    split: str,
    values: Mapping[str, float],
    display: bool = False,
    units: Iterable[Scores] = (),
) -> pd.Series:
    """Glue every metric in ``values`` as ``<model>_<split>_<metric>`` and return them.

    When ``values`` is a protocol's ``Scores`` (or ``units`` gives them, for a model measured on
    two protocols), each headline metric also gets its 95% interval (``<name>_lo``,
    ``<name>_hi``), and the unit scores are glued out of sight as
    ``<model>_<split>_<protocol>_units``, so that the results chapter can pair any two models.
    """
    out = {}
    for metric, value in values.items():
        name = metric_name(model, split, metric)
        value = float(value)
        glue_value(name, value, display=display)
        out[name] = value
    for scores in [values] * isinstance(values, Scores) + list(units):
        for metric in scores.headline:
            interval = scores.interval(metric)
            for end in ("lo", "hi"):
                name = f"{metric_name(model, split, metric)}_{end}"
                glue_value(name, getattr(interval, end))
                out[name] = getattr(interval, end)
        glue(metric_name(model, split, f"{scores.protocol}_units"), scores.encode(), display=False)
    return pd.Series(out, name=model, dtype="float64")


def read_units(notebooks: Iterable[str | Path], protocol: str) -> dict[tuple[str, str], Scores]:
    """The unit scores that chapters recorded on one protocol, by (model, split)."""
    found = {}
    for name, value in read_glue(notebooks).items():
        match = _RECORDED.match(name)
        if match and match["metric"] == f"{protocol}_units" and isinstance(value, str):
            found[match["model"], match["split"]] = Scores.decode(value)
    return found


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


def glue_comparison(name: str, interval: Interval, higher_is_better: bool = True) -> str:
    """Glue a paired difference as ``name`` (with ``_lo``, ``_hi``) and its verdict as
    ``name_verdict`` ("better", "worse" or "no clear difference", for ``{glue:md}``)."""
    glue_value(name, interval.estimate)
    glue_value(f"{name}_lo", interval.lo)
    glue_value(f"{name}_hi", interval.hi)
    word = verdict(interval, higher_is_better)
    glue(f"{name}_verdict", Markdown(word), display=False)
    return word


#: The columns of ``compare_board``.
BOARD_COLUMNS = [
    "value", "low", "high", "against the best", "vs best", "vs best low", "vs best high",
    "vs reference", "vs reference low", "vs reference high",
]


def compare_board(
    models: Iterable[str],
    units: Mapping[tuple[str, str], Scores],
    split: str,
    metric: str,
    reference: str | None = None,
) -> pd.DataFrame:
    """Each model's ``metric`` on ``split`` with its interval, and paired differences.

    One row per model with unit scores (best first): the value and its 95% interval, the
    difference from the best model and its paired interval, whether the two can be told apart,
    and (with a ``reference``) the difference from the reference, glued as
    ``<model>_<split>_<metric>_vs_<reference>`` with ``_lo``/``_hi``.
    """
    lower = metric in LOWER_IS_BETTER
    scores = {m: units[m, split] for m in models if (m, split) in units}
    if not scores:
        return pd.DataFrame()
    order = sorted(scores, key=lambda m: scores[m][metric], reverse=not lower)
    best = order[0]
    rows = {}
    for model in order:
        own = scores[model].interval(metric)
        row = {"value": own.estimate, "low": own.lo, "high": own.hi}
        gap = _paired(scores[model], scores[best], metric)
        if model == best:
            row["against the best"] = "best"
        elif gap is not None:
            row |= {"vs best": gap.estimate, "vs best low": gap.lo, "vs best high": gap.hi}
            row["against the best"] = verdict(gap, not lower)
        gap = _paired(scores[model], units.get((reference, split)), metric)
        if gap is not None and model != reference:
            glue_comparison(f"{metric_name(model, split, metric)}_vs_{reference}", gap, not lower)
            row |= {"vs reference": gap.estimate, "vs reference low": gap.lo, "vs reference high": gap.hi}
        rows[model] = row
    return pd.DataFrame(rows).T.reindex(columns=BOARD_COLUMNS).infer_objects()


def _paired(scores: Scores, other: Scores | None, metric: str) -> Interval | None:
    """``scores.versus(other)``, or None when there is no other or it is on other units."""
    if other is None or len(other.units) != len(scores.units):
        return None
    if not np.array_equal(other.clusters, scores.clusters):
        return None
    return scores.versus(other, metric)


def interval_text(value: float, lo: float, hi: float, digits: int = 3, sign: bool = False) -> str:
    """``0.182 [0.171, 0.193]``: a value and its interval as the page shows them."""
    if any(pd.isna(x) for x in (value, lo, hi)):
        return ""
    form = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{form.format(value)} [{form.format(lo)}, {form.format(hi)}]"


def protocol_board(
    recorded: pd.Series,
    units: Mapping[tuple[str, str], Scores],
    metric: str,
    reference: str,
    digits: int = 3,
    prefix: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One protocol's leaderboard for the page, and the validation numbers behind it.

    The final models (those a chapter reported on test), best validation ``metric`` first: the
    value and its 95% interval on validation and test, the paired difference from the best and
    from the ``reference`` (glued as ``<model>_<split>_<metric>_vs_<reference>``), and whether
    each can be told apart from the best. ``prefix`` keeps only the models whose name starts
    with it (the MovieLens models' ``ml_``).
    """
    final = leaderboard(recorded, metric, lower_is_better=metric in LOWER_IS_BETTER).index
    final = [model for model in final if model.startswith(prefix)]
    val = compare_board(final, units, "val", metric, reference)
    test = compare_board(final, units, "test", metric, reference)
    page = pd.DataFrame(index=val.index)

    def texts(table, prefix, sign=False):
        columns = [prefix, f"{prefix} low", f"{prefix} high"] if prefix != "value" else ["value", "low", "high"]
        rows = table.reindex(index=val.index, columns=columns)
        return [interval_text(*row, digits=digits, sign=sign) for row in rows.itertuples(index=False)]

    page["validation"] = texts(val, "value")
    page["against the best"] = val["against the best"]
    page["difference from the best"] = texts(val, "vs best", sign=True)
    page[f"difference from {reference}"] = texts(val, "vs reference", sign=True)
    page["test"] = texts(test, "value")
    page.index.name = "model"
    return page, val


def recorded_json(recorded: pd.Series) -> str:
    """The recorded numbers as one JSON text (the results chapter keeps what it was built from)."""
    return json.dumps(recorded.round(12).to_dict(), sort_keys=True)


def glue_board(prefix: str, numbers: pd.DataFrame) -> None:
    """Glue a leaderboard's leader (``<prefix>_leader``, ``_leader_value``, ``_leader_lo``,
    ``_leader_hi``) and the models with no clear difference from it (``_tied``, ``_tied_names``,
    out of ``_others``)."""
    leader = numbers.index[0]
    glue(f"{prefix}_leader", Markdown(f"**{leader}**"), display=False)
    for column, suffix in (("value", "value"), ("low", "lo"), ("high", "hi")):
        glue_value(f"{prefix}_leader_{suffix}", float(numbers.loc[leader, column]))
    tied = numbers.index[numbers["against the best"] == "no clear difference"].tolist()
    glue_value(f"{prefix}_others", len(numbers) - 1)
    glue_value(f"{prefix}_tied", len(tied))
    names = ", ".join(f"`{name}`" for name in tied) or "none"
    glue(f"{prefix}_tied_names", Markdown(names), display=False)


#: The recorded basket metrics behind the repeat / explore table, and their headers on the page.
PARTS = {
    "precision": "precision",
    "precision_repeat": "from repeats",
    "precision_explore": "from new items",
    "repeat_share": "recommendations that repeat",
}


def repeat_explore(recorded: pd.Series, models: Iterable[str], split: str = "val") -> pd.DataFrame:
    """Each basket model's precision split into its repeat and explore parts, and the share of
    its recommendations that the customer bought before (best precision first)."""
    rows = {
        model: {header: recorded.get(metric_name(model, split, m)) for m, header in PARTS.items()}
        for model in models
    }
    table = pd.DataFrame(rows).T.astype("float64").dropna()
    table.index.name = "model"
    return table.sort_values("precision", ascending=False).round(3)


def glue_parts(parts: pd.DataFrame, history_models: Iterable[str]) -> None:
    """Glue each model's share of its precision that comes from repeats (``<model>_repeat_part``),
    and, over the other models (those that do not rank the history itself), the range of that
    share (``learned_repeat_part_low``/``_high``), of the share of their recommendations that
    repeat (``learned_repeat_share_low``/``_high``) and the largest explore part of any model
    (``explore_high``)."""
    share = parts["from repeats"] / parts["precision"]
    for model, value in share.items():
        glue_value(f"{model}_repeat_part", float(value))
    learned = parts.drop(index=[m for m in history_models if m in parts.index])
    for name, values in (("repeat_part", share[learned.index]), ("repeat_share", learned["recommendations that repeat"])):
        glue_value(f"learned_{name}_low", float(values.min()))
        glue_value(f"learned_{name}_high", float(values.max()))
    glue_value("explore_high", float(parts["from new items"].max()))


def versus(model: str, scores: Scores, reference: Scores, split: str = "val") -> None:
    """Glue ``model``'s paired difference from the protocol's reference model in each headline
    metric, as ``<model>_<split>_<metric>_vs_<reference>`` (with ``_lo``, ``_hi``, ``_verdict``)."""
    for metric in scores.headline:
        gap = scores.versus(reference, metric)
        name = f"{metric_name(model, split, metric)}_vs_{REFERENCE[scores.protocol]}"
        glue_comparison(name, gap, metric not in LOWER_IS_BETTER)


def versus_table(scores: Mapping[str, Scores], split: str) -> pd.DataFrame:
    """``versus`` for every model of ``scores`` against the protocol's reference (also a key of
    ``scores``): one column of verdicts per headline metric, one row per model."""
    reference = REFERENCE[next(iter(scores.values())).protocol]
    rows = {}
    for model, own in scores.items():
        if model == reference or not isinstance(own, Scores):
            continue
        versus(model, own, scores[reference], split)
        rows[model] = {
            f"against {reference} ({metric.upper()})": verdict(
                own.versus(scores[reference], metric), metric not in LOWER_IS_BETTER
            )
            for metric in own.headline
        }
    return pd.DataFrame(rows).T


_FOLD = re.compile(r"^(?P<model>[a-z0-9_]+?)_fold(?P<fold>[0-9]+)_(?P<metric>[a-z0-9_]+)$")


def fold_table(recorded: pd.Series, metric: str) -> pd.DataFrame:
    """Each model's ``metric`` in every monthly fold (recorded as ``<model>_fold<i>_<metric>``),
    its mean and its mean rank over the folds (1 = best in a month), best mean first."""
    rows = [
        (match["model"], int(match["fold"]), value)
        for name, value in recorded.items()
        if (match := _FOLD.match(name)) and match["metric"] == metric
    ]
    table = pd.DataFrame(rows, columns=["model", "fold", "value"])
    values = table.pivot(index="model", columns="fold", values="value")
    values.columns = [f"month {fold}" for fold in values.columns]
    ranks = values.rank(ascending=False, method="min")
    values["mean"] = values.mean(axis=1)
    values["mean rank"] = ranks.mean(axis=1)
    values["same rank every month"] = ranks.nunique(axis=1) == 1
    values.index.name = "model"
    return values.sort_values("mean", ascending=False)


def glue_folds(recorded: pd.Series, metrics: Iterable[str]) -> None:
    """Glue what the monthly folds say: ``folds_count``, each model's lowest and highest value
    (``<model>_folds_low``/``_high``) and whether the order of the models ``folds_order`` holds
    in every month."""
    tables = [fold_table(recorded, metric) for metric in metrics]
    glue_value("folds_count", int(recorded["folds_count"]))
    for table in tables:
        months = table.filter(like="month ")
        for model, row in months.iterrows():
            glue_value(f"{model}_folds_low", float(row.min()))
            glue_value(f"{model}_folds_high", float(row.max()))
    stable = all(table["same rank every month"].all() for table in tables)
    words = "holds in every month" if stable else "changes between months"
    glue("folds_order", Markdown(words), display=False)


def rung_steps(rungs: Mapping[str, Scores], metric: str, prefix: str) -> pd.Series:
    """Each rung of a path against the rung before it, paired on the same units.

    ``rungs`` maps each rung's key to its scores, in the path's order. For every rung after the
    first, the difference from the one before and its 95% interval are glued as
    ``<prefix>_<key>_step`` (with ``_lo``, ``_hi``, ``_verdict``); the result is a column for the
    path's table: ``+0.012 [+0.004, +0.020], better`` (a rung within noise reads "no clear
    difference").
    """
    keys = list(rungs)
    out = {keys[0]: "(first rung)"}
    higher = metric not in LOWER_IS_BETTER
    for before, key in zip(keys[:-1], keys[1:], strict=True):
        gap = rungs[key].versus(rungs[before], metric)
        word = glue_comparison(f"{prefix}_{key}_step", gap, higher)
        out[key] = f"{interval_text(gap.estimate, gap.lo, gap.hi, sign=True)}, {word}"
    return pd.Series(out, name="against the rung before")
