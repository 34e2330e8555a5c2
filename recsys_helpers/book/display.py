"""Small display helpers for the chapters: show code that ran, time a cell's work."""

from __future__ import annotations

import inspect
import time

from IPython.display import Markdown, display


def show_source(obj) -> None:
    """Render the source of a helper as a highlighted code block, so readers see what ran."""
    display(Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```"))


class Timer:
    """Wall-clock seconds of a ``with`` block: ``with Timer() as t: ...; t.seconds``."""

    seconds: float = float("nan")

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start

