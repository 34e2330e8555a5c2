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

The self-attention chapter has no source configuration: its ladder (``SASREC_LADDER``) starts
from a plain version and measures both protocols at every rung, its bonuses tuned on validation
(the ``score`` hook), and then the chapter's model without the history (``after``).

Usage: ``python -m recsys_helpers.book.ladders [sgd_mf bpr item_lstm user_lstm sasrec]``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..datasets.retail import Split, load_split
from ..evaluation.basket import BasketProtocol
from ..evaluation.next_item import NextItemProtocol
from ..models import attention, lstm, lstm_prediction, mf
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

    ``model(**params)`` builds a rung's model; ``rungs`` are run by this module, ``chapter`` by the
    chapter itself (its final model), ``after`` by this module again, each a side rung off the
    chapter's model; ``published`` is the number the source chapter reports. Hooks: ``score(rung,
    model, split, protocol, history)`` gives a trained rung's measured fields (default: ``value``,
    by ``measure``), ``columns(row)`` the table's metric columns, the first of which has its gain.
    """

    name: str
    model: Callable
    metric: str
    source: dict
    final: dict
    published: float | None
    rungs: tuple[Rung, ...]
    chapter: tuple[Rung, ...]
    base: dict = field(default_factory=dict)
    after: tuple[Rung, ...] = ()
    score: Callable | None = None
    columns: Callable = lambda row: {"validation": row["value"]}

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

    def runs(self) -> list[tuple[Rung, dict]]:
        """What this module trains and measures: ``rungs``, then ``after`` (off the final model)."""
        return [*self.path()[: len(self.rungs)], *((rung, self.end() | rung.params) for rung in self.after)]


#: The source's windows (five steps at every position), one epoch each: the source's budget.
LSTM_SOURCE_STAGE = (
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
)
#: From here on the chapters' budget: eight epochs of the longer windows, which cost less per
#: epoch than one epoch of the source's (each purchase is in about 1.5 windows instead of 5).
OUR_WINDOWS = Rung(
    "windows of 32 steps every 16, batches of 64, 8 epochs",
    {"num_steps": 32, "stride": 16, "batch_size": 64, "epochs": 8},
    "prefix",
)
SMALL_NETWORK = {"layers": 1, "hidden": 128, "embedding_dim": 64, "dropout": 0.2, "init": "keras"}
REMOVAL = Rung("remove items already in the invoice", {"drop_bought": True}, "model")
#: From a model trained at every position to the chapter's: the same network, trained with less
#: work per epoch (the cost appendix), and the epochs that buys.
ITEM_FASTER = (
    Rung("the output layer only at each purchase's first prediction", {"targets": "fresh"}, "model"),
    Rung("a sampled softmax: 512 items per batch, not the catalogue", {"negatives": 512}, "model"),
    Rung(
        "batches of windows of about the same length, cut after the longest (not taken)",
        {"buckets": True},
        "model",
        side=True,
    ),
    Rung(
        "windows packed into rows of 32, the state reset where each begins; 43 rows a batch "
        "(not taken)",
        {"pack": True, "batch_size": 43},
        "model",
        side=True,
    ),
)
USER_PURCHASES = Rung(
    "the output layer only at the purchases, not at padding", {"targets": "purchases"}, "model"
)
#: The user LSTM's last rungs: packing pays here, where the output layer is computed at every
#: purchase of every window; fewer sampled items do too, down to 1,024.
USER_FASTER = (
    Rung("a sampled softmax: 2,048 items per batch, not the catalogue", {"negatives": 2048}, "model"),
    Rung("windows packed into rows of 32, the state reset where each begins", {"pack": True}, "model"),
    Rung("512 sampled items per batch (not taken)", {"negatives": 512}, "model", side=True),
)
USER_SAMPLED = Rung("1,024 sampled items per batch", {"negatives": 1024}, "model")
#: Parameters that change only how a trained model recommends: a rung that changes only these
#: re-evaluates the model of the rung before it.
RECOMMENDATION_PARAMS = frozenset({"drop_bought", "boost", "candidates"})


def retrains(rung: Rung) -> bool:
    """Whether a rung trains a model (it changes a parameter of training)."""
    return bool(set(rung.params) - RECOMMENDATION_PARAMS)

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
        model=lstm.lstm_recommender,
        metric="accuracy",
        source=lstm.ITEM_LSTM_SOURCE,
        final=lstm.ITEM_LSTM,
        published=0.071,
        rungs=(
            *LSTM_SOURCE_STAGE,
            OUR_WINDOWS,
            Rung(
                "one LSTM of 128 over embeddings of 64, dropout 0.2, Keras' initialisers",
                SMALL_NETWORK,
                "prefix",
            ),
            REMOVAL,
            *ITEM_FASTER,
        ),
        chapter=(Rung("twelve epochs", {"epochs": 12}, "model"),),
    ),
    "user_lstm": Ladder(
        name="user_lstm",
        model=lstm.lstm_recommender,
        metric="accuracy",
        base={"customers": True},
        source=lstm.USER_LSTM_SOURCE,
        final=lstm.USER_LSTM | {"customers": True},
        published=0.252,
        rungs=(
            *LSTM_SOURCE_STAGE,
            OUR_WINDOWS,
            Rung(
                "one LSTM of 128 over embeddings of 64, customer vector of 32, dropout 0.2, "
                "Keras' initialisers",
                SMALL_NETWORK | {"customer_dim": 32},
                "prefix",
            ),
            Rung("hide the customer of 30% of the windows", {"hide_customers": 0.3}, "prefix"),
            REMOVAL,
            Rung("purchase-history bonus at the weight chosen on validation", {"boost": 1.0}, "model"),
            USER_PURCHASES,
            *USER_FASTER,
        ),
        chapter=(USER_SAMPLED,),
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
        recs = lstm_prediction.predict_from_previous_only(model.model, invoices, allow_start=True)
    elif rung.evaluation == "prefix_with_start":
        recs = lstm_prediction.predict_next_items(model.model, invoices, allow_start=True)
    elif rung.evaluation == "prefix":
        recs = lstm_prediction.predict_next_items(model.model, invoices)
    elif rung.evaluation == "prefix_history":  # the network reads the customer's history
        protocol = NextItemProtocol.from_split(split, "validation", history=model.history)
        recs = lstm_prediction.predict_next_items(model.model, protocol.invoices)
    elif rung.evaluation == "model":
        recs = model.next_items(invoices)
    else:
        raise ValueError(f"unknown evaluation {rung.evaluation!r}")
    return float(protocol.score(recs)["accuracy"])


def _reusable(ladder: Ladder, previous: dict | None, overrides: dict) -> int:
    """How many leading rungs of ``previous`` (an earlier result) ran exactly these rungs."""
    if not previous or previous.get("seed") != get_settings().seed or previous.get("mode") != get_settings().mode:
        return 0
    count = 0
    runs = ladder.runs()
    for (rung, params), row in zip(runs, previous["rungs"], strict=False):
        if row["change"] != rung.change or row["params"] != json.loads(json.dumps(params | overrides, default=_plain)):
            break
        count += 1
    # a rung that only re-evaluates needs the model of the rung before it: reuse whole groups
    while count < len(runs) and count and not retrains(runs[count][0]):
        count -= 1
    return count


def run(
    ladder: Ladder,
    split: Split,
    overrides: dict | None = None,
    progress: bool = True,
    previous: dict | None = None,
) -> dict:
    """Train and measure every rung of ``ladder`` (not the chapter's); ``overrides`` (for tests)
    update every rung's parameters. Leading rungs that ``previous`` (an earlier result of the
    same ladder, seed and mode) ran with the same parameters are taken from it, not run again."""
    configure_tensorflow()
    overrides = overrides or {}
    basket = ladder.metric == "precision"
    protocol = (BasketProtocol if basket else NextItemProtocol).from_split(split, "validation")
    reused = _reusable(ladder, previous, overrides)
    rows, model, history = [dict(row) for row in previous["rungs"][:reused]] if reused else [], None, None
    main_model = main_history = None
    for index, (rung, params) in enumerate(ladder.runs()):
        if index < reused:
            continue
        params = params | overrides
        trained = retrains(rung) or model is None
        if not trained:  # the same model, recommending another way
            for key, value in rung.params.items():
                setattr(model, key, value)
        else:
            model = ladder.model(**params, progress=progress)
            history = []

            def on_epoch(fitted, history=history):  # basket ladders: precision after every epoch
                history.append(protocol.evaluate(fitted)["precision"])
                return {}

            model.fit(split, callback=on_epoch if basket else None)
        if ladder.score is None:
            scores = {"value": measure(ladder, rung, model, split, protocol, history)}
        else:
            scores = ladder.score(rung, model, split, protocol, history)
        rows.append({
            "rung": index, "change": rung.change, "side": rung.side, "trained": trained,
            "epochs": params.get("epochs"), **scores,
            "fit_seconds": model.fit_seconds_ if trained else None,
            "history": list(history) if basket and trained else None,
            "params": params,
        })
        print(f"{ladder.name} {index}: {rung.change}: {scores}", flush=True)
        if rung.side:  # the next rung starts from the last rung taken
            model, history = main_model, main_history
        else:
            main_model, main_history = model, history
    settings = get_settings()
    return {
        "ladder": ladder.name, "metric": ladder.metric, "published": ladder.published,
        "mode": settings.mode, "seed": settings.seed, "cpu": cpu_model(), "rungs": rows,
    }


def source_spread(ladder: Ladder, split: Split, seeds, overrides: dict | None = None) -> dict:
    """The source's configuration (rung 0) trained again with other seeds: ``{seed: value}``.

    One run of a configuration is one draw; this shows how far another seed moves it.
    """
    configure_tensorflow()
    basket = ladder.metric == "precision"
    protocol = (BasketProtocol if basket else NextItemProtocol).from_split(split, "validation")
    rung, params = ladder.path()[0]
    out = {}
    for seed in seeds:
        model = ladder.model(**params | (overrides or {}), seed=seed, progress=False)
        history = []

        def on_epoch(fitted, history=history):
            history.append(protocol.evaluate(fitted)["precision"])
            return {}

        model.fit(split, callback=on_epoch if basket else None)
        out[int(seed)] = measure(ladder, rung, model, split, protocol, history)
        print(f"{ladder.name} source, seed {seed}: {out[int(seed)]:.4f}", flush=True)
    return out


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
# The self-attention chapter: both protocols at every rung

#: From a plain SASRec (two blocks of 64 over a 64-token context, the next-item loss alone) to
#: the chapter's model; every rung trains and is measured on both protocols with its bonuses at
#: their best weights on validation (``attention.tune_bonuses``). Two variants the issue
#: suggested are measured and not taken; the last rung is the chapter's own model (trained by
#: the chapter).
SASREC_PATH = (
    Rung(
        "plain: a 64-token context, the next-item loss alone, six epochs",
        {"context": 64, "stride": 32, "basket_weight": 0.0, "epochs": 6},
    ),
    Rung("a longer history: a 128-token context read every 64 (not taken)",
         {"context": 128, "stride": 64}, side=True),
    Rung("a basket loss at every boundary, weight 0.3 (not taken)", {"basket_weight": 0.3}, side=True),
)
SASREC_CHAPTER = Rung("eight epochs", {"epochs": 8})
#: The ablation of the chapter's model: every invoice on its own, as the LSTMs see it.
SASREC_INVOICE_ONLY = Rung(
    "the chapter's model without the history: every invoice on its own (not taken)",
    {"history": False},
    side=True,
)


def sasrec_scores(rung: Rung, model, split: Split, protocol=None, history=None) -> dict:
    """Validation next-item accuracy and basket precision of a fitted ``SASRec``, with its
    bonuses at their best weights on validation (``attention.tune_bonuses``), and every recorded
    metric of both protocols at those weights (``metrics``)."""
    next_val = NextItemProtocol.from_split(split, "validation")
    basket_val = BasketProtocol.from_split(split, "validation")
    accuracy, precision = attention.tune_bonuses(model, next_val, basket_val)
    metrics = attention.both_protocols(next_val.evaluate(model), basket_val.evaluate(model))
    return {
        "accuracy": float(accuracy.max()), "precision": float(precision.to_numpy().max()),
        "boost": model.boost, "basket_boost": model.basket_boost, "trend_boost": model.trend_boost,
        "metrics": {name: float(value) for name, value in metrics.items()},
    }


def _sasrec_columns(row: dict) -> dict:
    bonuses = f"{row['boost']:g}, {row['basket_boost']:g}, {row['trend_boost']:g}"
    return {"next-item accuracy": row["accuracy"], "basket precision": row["precision"],
            "bonus (next, basket, trend)": bonuses}


#: The self-attention chapter's ladder: from the plain model to the chapter's, then the
#: chapter's model without the history (``after``: the next chapter reads it).
SASREC_LADDER = Ladder(
    name="sasrec",
    model=attention.SASRec.from_params,
    metric="accuracy and precision",
    source=attention.SASREC | SASREC_PATH[0].params,
    final=attention.SASREC,
    published=None,
    rungs=SASREC_PATH,
    chapter=(SASREC_CHAPTER,),
    after=(SASREC_INVOICE_ONLY,),
    score=sasrec_scores,
    columns=_sasrec_columns,
)
#: Every ladder by name: those from a source (``LADDERS``) and the self-attention one.
EVERY_LADDER = {**LADDERS, "sasrec": SASREC_LADDER}


# ---------------------------------------------------------------------------------------------
# Showing


def table(
    result: dict, chapter_values: dict | None = None, chapter_seconds: float | None = None
) -> pd.DataFrame:
    """The ladder as a table: one row per rung, the chapter's own rungs (``{change: value}``, or
    ``{change: row}`` with the fields ``columns`` reads) last.

    Columns: ``change``, ``epochs``, the ladder's metric columns (``validation``), ``gain`` (of
    the first, over the last rung taken before it), ``taken``, ``fit seconds`` (training time of a
    trained rung; the chapter's ``chapter_seconds`` on its first rung) and ``run by``.
    """
    ladder = EVERY_LADDER[result["ladder"]]
    rows = [
        {"change": r["change"], "epochs": r["epochs"], **ladder.columns(r), "taken": not r["side"],
         "fit seconds": r["fit_seconds"], "run by": "make ladders"}
        for r in result["rungs"]
    ]
    own = ladder.path()[len(ladder.rungs) :]
    for (rung, params), (change, value) in zip(own, (chapter_values or {}).items(), strict=True):
        if rung.change != change:
            raise ValueError(f"chapter rung {change!r} is not {rung.change!r}")
        row = value if isinstance(value, dict) else {"value": value}
        seconds = row.get("fit_seconds", chapter_seconds if rung is own[0][0] else None)
        rows.append({"change": change, "epochs": row.get("epochs", params.get("epochs")),
                     **ladder.columns(row), "taken": True, "fit seconds": seconds, "run by": "this chapter"})
    out = pd.DataFrame(rows)
    metrics = list(ladder.columns(result["rungs"][0]))
    last, gains = np.nan, []
    for taken, value in zip(out["taken"], out[metrics[0]], strict=True):
        gains.append(value - last)
        if taken:
            last = value
    out["gain"] = gains
    out.index.name = "rung"
    return out[["change", "epochs", *metrics, "gain", "taken", "fit seconds", "run by"]]


def styled(steps: pd.DataFrame):
    """The table for the page: whole descriptions, gains signed, seconds rounded, blanks for
    what does not apply."""
    return steps.style.format(
        {"validation": "{:.4f}", "gain": "{:+.4f}", "fit seconds": "{:.0f}", "epochs": "{:.0f}"},
        na_rep="",
    )


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


def main(args: list[str]) -> None:
    """``[--seeds S ...] [names]``: run the ladders; with ``--seeds``, only add the spread of
    the source's configuration over those seeds to existing result files."""
    seeds = []
    if args and args[0] == "--seeds":
        args = args[1:]
        while args and args[0].isdigit():
            seeds.append(int(args.pop(0)))
    split = load_split()
    for name in args or list(EVERY_LADDER):
        start = time.perf_counter()
        previous = read(name) if (RESULTS / f"ladder_{name}.json").exists() else None
        if seeds:
            result = read(name)
            result["source_seeds"] = {str(k): v for k, v in source_spread(LADDERS[name], split, seeds).items()}
        else:
            result = run(EVERY_LADDER[name], split, previous=previous)
            if previous and "source_seeds" in previous and _reusable(LADDERS[name], previous, {}):
                result["source_seeds"] = previous["source_seeds"]  # rung 0 was not trained again
        path = write(result)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
