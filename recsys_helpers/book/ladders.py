"""``make ladders``: the measured path from the source chapter's configuration to each model.

A ladder starts at the source's configuration of a model, ported to Keras 3, and changes one
thing per rung, towards the configuration its chapter uses; each rung is trained (or, where the
change concerns only the recommendation, re-evaluated) on the full data and measured on
validation. A *side* rung tries a variant that the path does not take (the next rung starts again
from the last rung taken), so that every choice the chapter describes rests on a shown run. The
last rungs, the chapter's own model, are trained by the chapter itself (``Ladder.chapter``), so
that the table a chapter shows ends at the number it glues.

Rungs that train for minutes are too expensive for ``make full``; this module runs them and
writes ``benchmarks/results/ladder_<name>.json``, which the chapters display (``table``, ``plot``).

Usage: ``python -m recsys_helpers.book.ladders [sgd_mf bpr item_lstm user_lstm]``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..datasets.retail import Split, load_split
from ..evaluation.basket import BasketProtocol
from ..evaluation.next_item import NextItemProtocol
from ..models import lstm, mf
from ..settings import configure_tensorflow, get_settings
from .execute import ROOT, cpu_model

RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True, eq=False)
class Rung:
    """One change of a ladder.

    ``params`` update the previous rung's parameters (empty: the same trained model, evaluated
    another way); ``evaluation`` names how the model is measured (``EVALUATIONS``); a ``side``
    rung is measured but not taken.
    """

    change: str
    params: dict = field(default_factory=dict)
    evaluation: str = "model"
    side: bool = False


@dataclass(frozen=True)
class Ladder:
    """The rungs from ``source`` (the source chapter's configuration) to ``final``.

    ``rungs`` are run by this module, ``chapter`` by the chapter itself (its final model);
    ``published`` is the number the source chapter reports for its configuration.
    """

    name: str
    model: type
    metric: str
    source: dict
    final: dict
    published: float
    rungs: tuple[Rung, ...]
    chapter: tuple[Rung, ...]
    base: dict = field(default_factory=dict)

    def path(self) -> list[tuple[Rung, dict]]:
        """Every rung with the full parameters it trains with (side rungs branch off)."""
        params, out = self.base | self.source, []
        for rung in (*self.rungs, *self.chapter):
            current = params | rung.params
            out.append((rung, current))
            if not rung.side:
                params = current
        return out

    def end(self) -> dict:
        """The parameters at the end of the path taken (the chapter's final model)."""
        return self.path()[-1][1]


LSTM_COMMON = (
    Rung("the source's evaluation: previous item only, code 0 may be recommended", {}, "source"),
    Rung("feed the whole invoice so far, as the state should be", {}, "prefix_with_start"),
    Rung("never recommend code 0 (start and padding)", {}, "prefix"),
    Rung("no state carried across shuffled batches (stateless windows)", {"carry_state": False}, "prefix"),
    Rung("padded targets weigh 0 in the loss", {"mask_padding": True}, "prefix"),
    Rung(
        "Adam at 0.01 with a cosine decay, each weight's gradient clipped",
        {"optimizer": "adam", "learning_rate": 1e-2},
        "prefix",
    ),
    Rung(
        "windows of 16 steps without overlap (not taken)",
        {"num_steps": 16, "stride": 16, "batch_size": 64},
        "prefix",
        side=True,
    ),
    Rung("windows of 32 steps every 16, batches of 64", {"num_steps": 32, "stride": 16, "batch_size": 64}, "prefix"),
    Rung(
        "batches of 256 windows (not taken)", {"batch_size": 256}, "prefix", side=True
    ),
)
SMALL_NETWORK = {"layers": 1, "hidden": 128, "embedding_dim": 64, "dropout": 0.2, "init": "keras"}

LADDERS = {
    "sgd_mf": Ladder(
        name="sgd_mf",
        model=mf.SGDMF,
        metric="precision",
        source=mf.SGD_MF_SOURCE,
        final=mf.SGD_MF_CHOSEN,
        published=0.152,
        rungs=(
            Rung("the source's configuration", {}, "last"),
            Rung("biases start in +-sqrt(2/128), like the factors", {"source_init": False}, "last"),
            Rung("penalty 1e-6 (not taken)", {"l2": 1e-6}, "last", side=True),
            Rung("negatives keep the positive's customer", {"random_users": False}, "last"),
        ),
        chapter=(
            Rung("weaker penalty, 3e-8", {"l2": 3e-8}, "last"),
            Rung("keep the best epoch on validation", {}, "best"),
        ),
    ),
    "bpr": Ladder(
        name="bpr",
        model=mf.BPR,
        metric="precision",
        source=mf.BPR_SOURCE,
        final=mf.BPR_CHOSEN,
        published=0.154,
        rungs=(
            Rung("the source's configuration", {}, "last"),
            Rung("penalise the squared biases (the source sums them)", {"source_penalty": False}, "last"),
            Rung("biases start in +-sqrt(2/128), like the factors", {"source_init": False}, "last"),
            Rung("learning rate 0.002, 30 epochs", {"learning_rate": 0.002, "epochs": 30}, "last"),
            Rung(
                "penalties ten times stronger (not taken)",
                {"l2_user": 1e-6, "l2_item": 1e-6, "l2_bias": 1e-6},
                "last",
                side=True,
            ),
            Rung(
                "penalties ten times weaker (not taken)",
                {"l2_user": 1e-8, "l2_item": 1e-8, "l2_bias": 1e-8},
                "last",
                side=True,
            ),
        ),
        chapter=(
            Rung("256 factors", {"factors": 256}, "last"),
            Rung("keep the best epoch on validation", {}, "best"),
        ),
    ),
    "item_lstm": Ladder(
        name="item_lstm",
        model=lstm.LSTMRecommender,
        metric="accuracy",
        source=lstm.ITEM_LSTM_SOURCE,
        final=lstm.ITEM_LSTM,
        published=0.071,
        rungs=(
            *LSTM_COMMON,
            Rung(
                "one LSTM of 128 over embeddings of 64, dropout 0.2, Keras' initialisers",
                SMALL_NETWORK,
                "prefix",
            ),
            Rung(
                "twice as wide: embeddings of 128, 256 units (not taken)",
                {"embedding_dim": 128, "hidden": 256},
                "prefix",
                side=True,
            ),
            Rung(
                "learning rate 0.005, no dropout, no decay (not taken)",
                {"learning_rate": 0.005, "dropout": 0.0, "final_fraction": 1.0},
                "prefix",
                side=True,
            ),
        ),
        chapter=(
            Rung("8 epochs", {"epochs": 8}, "prefix"),
            Rung("remove items already in the invoice", {"drop_bought": True}, "model"),
        ),
    ),
    "user_lstm": Ladder(
        name="user_lstm",
        model=lstm.LSTMRecommender,
        metric="accuracy",
        base={"customers": True},
        source=lstm.USER_LSTM_SOURCE,
        final=lstm.USER_LSTM | {"customers": True},
        published=0.252,
        rungs=(
            *LSTM_COMMON,
            Rung(
                "one LSTM of 128 over embeddings of 64, customer vector of 32, dropout 0.2, "
                "Keras' initialisers",
                SMALL_NETWORK | {"customer_dim": 32},
                "prefix",
            ),
            Rung("hide the customer of 30% of the windows", {"hide_customers": 0.3}, "prefix"),
            Rung("customer vector of 128 (not taken)", {"customer_dim": 128}, "prefix", side=True),
            Rung(
                "customer vector also next to the output layer (not taken)",
                {"customer_to_output": True},
                "prefix",
                side=True,
            ),
            Rung(
                "a learned history bonus over the 64 most bought items (not taken)",
                {"history": 64},
                "prefix_history",
                side=True,
            ),
        ),
        chapter=(
            Rung("8 epochs", {"epochs": 8}, "prefix"),
            Rung("remove items already in the invoice", {"drop_bought": True}, "model"),
            Rung("purchase-history bonus at the weight chosen on validation", {"boost": 1.0}, "model"),
        ),
    ),
}


# ---------------------------------------------------------------------------------------------
# Running


def measure(ladder: Ladder, rung: Rung, model, split: Split, protocol, history: list | None) -> float:
    """The validation metric of ``model`` as ``rung.evaluation`` says."""
    if ladder.metric == "precision":
        return float(max(history) if rung.evaluation == "best" else history[-1])
    invoices = protocol.invoices
    if rung.evaluation == "source":
        recs = lstm.predict_from_previous_only(model.model, invoices, allow_start=True)
    elif rung.evaluation == "prefix_with_start":
        recs = lstm.predict_next_items(model.model, invoices, allow_start=True)
    elif rung.evaluation == "prefix":
        recs = lstm.predict_next_items(model.model, invoices)
    elif rung.evaluation == "prefix_history":  # the network reads the customer's history
        protocol = NextItemProtocol.from_split(split, "validation", history=model.history)
        recs = lstm.predict_next_items(model.model, protocol.invoices)
    elif rung.evaluation == "model":
        recs = model.next_items(invoices)
    else:
        raise ValueError(f"unknown evaluation {rung.evaluation!r}")
    return float(protocol.score(recs)["accuracy"])


def run(ladder: Ladder, split: Split, overrides: dict | None = None, progress: bool = True) -> dict:
    """Train and measure every rung of ``ladder`` (not the chapter's); ``overrides`` (for tests)
    update every rung's parameters."""
    configure_tensorflow()
    overrides = overrides or {}
    basket = ladder.metric == "precision"
    protocol = (BasketProtocol if basket else NextItemProtocol).from_split(split, "validation")
    rows, model, history = [], None, None
    main_model = main_history = None
    for index, (rung, params) in enumerate(ladder.path()[: len(ladder.rungs)]):
        params = params | overrides
        trained = bool(rung.params) or model is None
        if trained:
            model = ladder.model(**params, progress=progress)
            history = []

            def on_epoch(fitted, history=history):  # basket ladders: precision after every epoch
                history.append(protocol.evaluate(fitted)["precision"])
                return {}

            model.fit(split, callback=on_epoch if basket else None)
        value = measure(ladder, rung, model, split, protocol, history)
        rows.append({
            "rung": index, "change": rung.change, "side": rung.side, "trained": trained,
            "epochs": params.get("epochs"), "value": value,
            "fit_seconds": model.fit_seconds_ if trained else None,
            "history": list(history) if basket and trained else None,
            "params": params,
        })
        print(f"{ladder.name} {index}: {rung.change}: {value:.4f}", flush=True)
        if rung.side:  # the next rung starts from the last rung taken
            model, history = main_model, main_history
        else:
            main_model, main_history = model, history
    settings = get_settings()
    return {
        "ladder": ladder.name, "metric": ladder.metric, "published": ladder.published,
        "mode": settings.mode, "seed": settings.seed, "cpu": cpu_model(), "rungs": rows,
    }


def write(result: dict, folder: Path = RESULTS) -> Path:
    path = Path(folder) / f"ladder_{result['ladder']}.json"
    path.write_text(json.dumps(result, indent=1, default=_plain) + "\n")
    return path


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value)} is not JSON")


def read(name: str, folder: Path = RESULTS) -> dict:
    return json.loads((Path(folder) / f"ladder_{name}.json").read_text())


# ---------------------------------------------------------------------------------------------
# Showing


def table(result: dict, chapter_values: dict[str, float] | None = None) -> pd.DataFrame:
    """The ladder as a table: one row per rung, the chapter's own rungs (``{change: value}``) last.

    Columns: ``change``, ``epochs``, ``validation`` (the ladder's metric), ``gain`` (over the last
    rung taken before it), ``taken`` and ``run by`` (``make ladders`` or ``this chapter``).
    """
    ladder = LADDERS[result["ladder"]]
    rows = [
        {"change": r["change"], "epochs": r["epochs"], "validation": r["value"], "taken": not r["side"],
         "run by": "make ladders"}
        for r in result["rungs"]
    ]
    own = ladder.path()[len(ladder.rungs) :]
    for (rung, params), (change, value) in zip(own, (chapter_values or {}).items(), strict=True):
        if rung.change != change:
            raise ValueError(f"chapter rung {change!r} is not {rung.change!r}")
        rows.append({"change": change, "epochs": params.get("epochs"), "validation": value,
                     "taken": True, "run by": "this chapter"})
    out = pd.DataFrame(rows)
    last, gains = np.nan, []
    for taken, value in zip(out["taken"], out["validation"], strict=True):
        gains.append(value - last)
        if taken:
            last = value
    out["gain"] = gains
    out.index.name = "rung"
    return out[["change", "epochs", "validation", "gain", "taken", "run by"]]


def plot(steps: pd.DataFrame, published: float, metric: str, title: str):
    """Horizontal bars of the ladder (rungs not taken hatched), the source's published number
    as a dashed line."""
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(steps) + 1.4))
    order = steps.iloc[::-1]
    colours = ["tab:blue" if taken else "white" for taken in order["taken"]]
    ax.barh(np.arange(len(order)), order["validation"], color=colours, edgecolor="tab:blue",
            hatch=[None if taken else "//" for taken in order["taken"]])
    ax.set_yticks(np.arange(len(order)), [_short(c) for c in order["change"]])
    ax.axvline(published, color="tab:red", linestyle="--", linewidth=1, label="the source's number")
    ax.set(title=title, xlabel=f"validation {metric}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def _short(text: str, width: int = 58) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def main(names: list[str]) -> None:
    split = load_split()
    for name in names or list(LADDERS):
        start = time.perf_counter()
        path = write(run(LADDERS[name], split))
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
