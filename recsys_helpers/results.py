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
    from myst_nb import glue

    if hasattr(value, "item"):
        value = value.item()
    glue(name, value, display=display)


def record(model: str, split: str, values: Mapping[str, float], display: bool = False) -> pd.Series:
    """Glue every metric in ``values`` as ``<model>_<split>_<metric>`` and return them."""
    out = {}
    for metric, value in values.items():
        name = metric_name(model, split, metric)
        value = float(value)
        glue_value(name, value, display=display)
        out[name] = value
    return pd.Series(out, name=model, dtype="float64")


def read_recorded(notebooks: Iterable[str | Path]) -> pd.Series:
    """Every glued number in the given executed notebooks, by name."""
    values: dict[str, float] = {}
    for path in notebooks:
        nb = json.loads(Path(path).read_text())
        for cell in nb.get("cells", []):
            for output in cell.get("outputs", []) or []:
                meta = output.get("metadata", {}).get("scrapbook")
                if not meta:
                    continue
                data = output.get("data", {})
                text = data.get(meta.get("mime_prefix", "") + "text/plain")
                if text is None:
                    continue
                text = "".join(text) if isinstance(text, list) else text
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, int | float) and not isinstance(value, bool):
                    values[meta["name"]] = float(value)
    return pd.Series(values, dtype="float64").sort_index()
