"""Small display helpers for the chapters: show code that ran, time a cell's work, and round the
numbers of a table to what they mean (``significant``)."""

from __future__ import annotations

import inspect
import math
import numbers
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from pandas.io.formats.style import Styler

from .style import CODE_WIDTH, format_code


def show_source(obj) -> None:
    """Render the source of a helper as a highlighted code block, so readers see what ran.

    The code is formatted at the page's width (``style.CODE_WIDTH``), so that it fits the column
    (the package itself is formatted at 100 columns).
    """
    source = inspect.getsource(obj)
    display(Markdown(f"```python\n{page_source(source)}\n```"))


def page_source(source: str, width: int = CODE_WIDTH) -> str:
    """``source`` formatted at ``width`` columns; a method's indented source keeps its indent."""
    lines = source.rstrip().splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    body = "\n".join(line[indent:] for line in lines)
    try:
        body = format_code(body, width - indent)
    except (ValueError, OSError):
        return source.rstrip()  # not parseable on its own: show it as written
    return "\n".join((" " * indent + line) if line else line for line in body.splitlines())


def significant_text(value, digits: int = 3) -> str:
    """A number as text with ``digits`` significant digits (thousands separated); whole numbers
    and counts in full, ``True``/``False`` and text as they are, missing values blank.

    ``32.642656`` -> ``32.6``, ``0.029337`` -> ``0.0293``, ``61315.9`` -> ``61,300``, ``5.0`` -> ``5``.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return "" if value is None or value is pd.NA else str(value)
    x = float(value)
    if math.isnan(x):
        return ""
    if math.isinf(x) or x.is_integer() and abs(x) < 10**15:
        return f"{x:,.0f}" if not math.isinf(x) else str(x)
    magnitude = math.floor(math.log10(abs(x)))
    decimals = digits - 1 - magnitude
    if decimals <= 0:
        return f"{round(x, decimals):,.0f}"
    return f"{x:,.{decimals}f}"


def significant(table: pd.DataFrame | pd.Series, digits: int = 3) -> Styler:
    """The table for the page: every number with ``digits`` significant digits (seconds, rates,
    ratios), counts in full. Only the display changes; the data stay as they are."""
    frame = table.to_frame() if isinstance(table, pd.Series) else table
    return frame.style.format(lambda v: significant_text(v, digits))


class Timer:
    """Wall-clock seconds of a ``with`` block: ``with Timer() as t: ...; t.seconds``."""

    seconds: float = float("nan")

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start



def flop_table(results: dict) -> pd.DataFrame:
    """Each training stage of ``make bench``: FLOPs of an epoch, its rate, and the share of the
    same run's TensorFlow matmul rate (stage ``matmul``), with the CPU time of the stage's fit.

    ``results`` is ``benchmarks/results/latest.json``. A stage reports its rate either at its top
    level (``epoch_gflop``, ``achieved_gflops``, ``fit_cpu_seconds``) or as ``<key>_rate`` dicts
    beside ``<key>_cpu_seconds``; stages run under the AVX2 emulation (names ending ``_avx2``)
    are compared with the emulated matmul rate.
    """
    stages = results["stages"]
    rows = []
    for name, values in stages.items():
        emulated = name.endswith("_avx2")
        limit = stages.get("matmul_avx2" if emulated else "matmul", {}).get("matmul_gflops")
        found = [(name, name, values)] if "achieved_gflops" in values else []
        found += [
            (f"{name}: {key.removesuffix('_rate').replace('_', ' ')}", key.removesuffix("_rate"), value)
            for key, value in values.items()
            if key.endswith("_rate") and isinstance(value, dict)
        ]
        for label, key, flops in found:
            cpu = values.get(f"{key}_cpu_seconds") or values.get("fit_cpu_seconds") or {}
            rows.append({
                "stage": label,
                "epoch GFLOP": flops["epoch_gflop"],
                "epoch s": flops["epoch_gflop"] / flops["achieved_gflops"],
                "GFLOP/s": flops["achieved_gflops"],
                "matmul GFLOP/s": limit,
                "share of matmul": flops["achieved_gflops"] / limit if limit else np.nan,
                "user CPU s": cpu.get("user", np.nan),
                "system CPU s": cpu.get("system", np.nan),
            })
    return pd.DataFrame(rows).set_index("stage") if rows else pd.DataFrame()


def interval_plot(
    numbers: pd.DataFrame, title: str, xlabel: str, reference: float | None = None, label: str = ""
) -> None:
    """Each model's value with its 95% interval as a horizontal error bar, best on top.

    ``numbers`` has ``value``, ``low`` and ``high`` columns, one row per model, best first.
    """
    data = numbers.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(data) + 1.2))
    errors = [data["value"] - data["low"], data["high"] - data["value"]]
    ax.errorbar(data["value"], data.index, xerr=errors, fmt="o", capsize=3, color="tab:blue")
    if reference is not None:
        ax.axvline(reference, color="tab:red", linestyle="--", linewidth=1, label=label)
        ax.legend(loc="lower right")
    ax.set(title=title, xlabel=xlabel, ylabel="model")
    fig.tight_layout()


def words(name: str) -> str:
    """A metric's name as a table header: ``top_10_accuracy`` -> ``top-10 accuracy``."""
    return name.replace("top_", "top-").replace("_", " ")
