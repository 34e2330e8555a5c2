"""``make seeds``: each neural headline model of the book trained with several seeds.

A chapter trains its model once, with the book's seed (42), and records that one run. How far
another seed moves the number says how many of its digits mean something, and whether two models
that differ in the third digit differ at all. For every model in ``SEED_RUNS`` (the chapters'
recorded names) this module trains the chapter's configuration on the full data once per seed,
scores it on validation with the chapter's protocol (and any step the chapter's recorded number
includes: the user LSTM's and SASRec's bonus weights tuned on validation), and writes
``benchmarks/results/seeds_<model>.json``: every seed's metrics and fit seconds, the mean,
standard deviation (``ddof=1``), minimum and maximum of each metric, the number the chapter's
executed notebook records (seed 42, for comparison), the CPU, the library versions and the date.

The file is written after every seed, so an interrupted run keeps what it measured; a later run
with the same configuration, mode and threads reuses the seeds already in the file.

Usage: ``python -m recsys_helpers.book.seeds [--seeds 42 1 2] [names]`` (default: every model,
cheapest first, seeds ``DEFAULT_SEEDS``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..datasets import movielens, retail
from ..evaluation.basket import BasketProtocol
from ..evaluation.next_item import NextItemProtocol
from ..evaluation.ratings import RankingTask
from ..evaluation.ratings import evaluate as evaluate_ratings
from ..models import attention, lightgcn, lstm, mf, ncf, ratings, two_tower
from ..models.rerank import HistoryReranker
from ..settings import configure_tensorflow, get_settings
from .execute import CHAPTERS, cpu_info, cpu_model
from .ladders import RESULTS
from .results import glue_value, read_recorded

#: The book's seed (``RECSYS_SEED``'s default: seed 42 is the chapters' run), then two more.
DEFAULT_SEEDS = (42, 1, 2)
#: The user LSTM's bonus weights, tried on validation after training (chapter 7's grid).
USER_LSTM_BOOSTS = (0.0, 0.25, 0.5, 1.0, 2.0)
#: Chapter 20's training of its Keras models: at most 40 epochs of batches of 512, stopped early
#: on the validation MSE.
KERAS_MF_TRAINING = {"epochs": 40, "batch_size": 512}
#: The libraries whose versions each result file records.
LIBRARIES = ("tensorflow", "keras", "keras-rs", "numpy", "pandas", "scipy", "implicit")


@dataclass(frozen=True)
class SeedRun:
    """How one chapter trains and measures its model.

    ``protocol(data)`` builds the chapter's validation protocol (once, shared by the seeds);
    ``fit(data, protocol, seed, params)`` trains the chapter's model with ``params`` (``config``,
    updated by overrides in tests) and that seed; ``evaluate(model, data, protocol)`` returns the
    metrics the chapter records for validation. ``tuned`` names attributes that ``evaluate``
    chooses on validation (recorded per seed). ``data`` is ``"retail"`` or ``"movielens"``.
    """

    name: str
    chapter: str
    metric: str
    data: str
    protocol: Callable[[Any], Any]
    fit: Callable[[Any, Any, int, dict], Any]
    config: dict
    evaluate: Callable[[Any, Any, Any], Mapping] = field(
        default=lambda model, data, protocol: protocol.evaluate(model)
    )
    protocol_name: str = "BasketProtocol, validation"
    lower_is_better: bool = False
    tuned: tuple[str, ...] = ()
    note: str = ""


# ---------------------------------------------------------------------------------------------
# The chapters' protocols and models


def _basket(split):
    return BasketProtocol.from_split(split, "validation")


def _next_item(split):
    return NextItemProtocol.from_split(split, "validation")


def _both(split):
    return _next_item(split), _basket(split)


def _ranking_task(split):
    return RankingTask.build(split.train, split.validation, split.n_movies)


def _fit_sgd_mf(split, protocol, seed, params):
    model = mf.SGDMF(**params, seed=seed, progress=False)
    return model.fit(split, callback=protocol.evaluate, keep_best="precision")


def _fit_bpr(split, protocol, seed, params):
    model = mf.BPR(**params, seed=seed, progress=False)
    return model.fit(split, callback=protocol.evaluate, keep_best="precision")


def _fit_history_reranker(split, protocol, seed, params):
    return HistoryReranker(**params, seed=seed).fit(split)


def _fit_two_tower(split, protocol, seed, params):
    return two_tower.TwoTower(**params, seed=seed, progress=False).fit(
        split, callback=protocol.evaluate
    )


def _fit_ncf(split, protocol, seed, params):
    return ncf.NCF(**params, seed=seed, progress=False).fit(split, callback=protocol.evaluate)


def _fit_lightgcn(split, protocol, seed, params):
    return lightgcn.LightGCN(**params, seed=seed, progress=False).fit(
        split, callback=protocol.evaluate
    )


def _fit_item_lstm(split, protocol, seed, params):
    return lstm.ItemLSTM(**params, seed=seed, progress=False).fit(split)


def _fit_user_lstm(split, protocol, seed, params):
    return lstm.UserLSTM(**params, seed=seed, progress=False).fit(split)


def _evaluate_user_lstm(model, split, protocol):
    """Chapter 7: the bonus weight with the best validation accuracy (the first of equals)."""
    best_weight, best = None, None
    for weight in USER_LSTM_BOOSTS:
        model.boost = weight
        scores = protocol.evaluate(model)
        if best is None or scores["accuracy"] > best["accuracy"]:
            best_weight, best = weight, scores
    model.boost = best_weight
    return best


def _fit_sasrec(split, protocols, seed, params):
    return attention.SASRec.from_params(**params, seed=seed, progress=False).fit(split)


def _evaluate_sasrec(model, split, protocols):
    """Chapter 8: the three bonus weights tuned on validation, then both protocols."""
    next_val, basket_val = protocols
    attention.tune_bonuses(model, next_val, basket_val)
    return attention.both_protocols(next_val.evaluate(model), basket_val.evaluate(model))


def _fit_keras_mf(split, task, seed, params):
    model = ratings.KerasRatings(
        ratings.build_mf, split.n_users, split.n_movies, **params, seed=seed, progress=False
    )
    return model.fit(split.train, split.validation)


def _evaluate_keras_mf(model, split, task):
    return evaluate_ratings(model, split.validation, task)


_CALLBACK = "validation metrics after every epoch, as in the chapter"

#: Every neural headline model, cheapest first (about one core's minutes per seed on the full data
#: in brackets).
SEED_RUNS = {
    run.name: run
    for run in (
        SeedRun(
            "history_reranker",
            "09_simple_baselines",
            "precision",
            "retail",
            _basket,
            _fit_history_reranker,
            {},
            note="HistoryReranker() with its defaults, as chapter 9 trains it; fit seconds are the "
            "wall time of fit (features and scorer), as the chapter's Timer measures them (<1)",
        ),
        SeedRun(
            "keras_mf",
            "20_movielens_ratings",
            "rmse",
            "movielens",
            _ranking_task,
            _fit_keras_mf,
            ratings.MF_BIASES_CHOSEN | KERAS_MF_TRAINING,
            evaluate=_evaluate_keras_mf,
            protocol_name="MovieLens temporal split, validation: rating_metrics and RankingTask (top 5)",
            lower_is_better=True,
            note="MF with biases on MovieLens (chapter 20), trained with l2 = MF_BIASES_CHOSEN['l2'], the "
            "penalty the chapter's sweep chose on validation with seed 42; early stopping on the "
            "validation MSE (patience 3) keeps the best epoch (<1)",
        ),
        SeedRun(
            "two_tower",
            "10_two_tower",
            "precision",
            "retail",
            _basket,
            _fit_two_tower,
            two_tower.TWO_TOWER_CHOSEN,
            note=f"{_CALLBACK}; the chapter also records factorized top-k accuracies, not measured here (1)",
        ),
        SeedRun(
            "ncf",
            "11_ncf",
            "precision",
            "retail",
            _basket,
            _fit_ncf,
            {"kind": "neumf"} | ncf.NCF_CHOSEN,
            note=f"NeuMF; {_CALLBACK} (1)",
        ),
        SeedRun(
            "sgd_mf",
            "03_sgd_mf",
            "precision",
            "retail",
            _basket,
            _fit_sgd_mf,
            mf.SGD_MF_CHOSEN,
            note="the best of 10 epochs on validation precision (keep_best), as in the chapter (1)",
        ),
        SeedRun(
            "bpr",
            "04_bpr",
            "precision",
            "retail",
            _basket,
            _fit_bpr,
            mf.BPR_CHOSEN,
            note="the best of 30 epochs on validation precision (keep_best), as in the chapter (3)",
        ),
        SeedRun(
            "lightgcn",
            "14_lightgcn",
            "precision",
            "retail",
            _basket,
            _fit_lightgcn,
            lightgcn.LIGHTGCN_CHOSEN,
            note=f"{_CALLBACK} (3)",
        ),
        SeedRun(
            "item_lstm",
            "06_item_lstm",
            "accuracy",
            "retail",
            _next_item,
            _fit_item_lstm,
            lstm.ITEM_LSTM,
            protocol_name="NextItemProtocol, validation",
            note="trained without the chapter's per-epoch validation callback, which only records (3)",
        ),
        SeedRun(
            "user_lstm",
            "07_user_lstm",
            "accuracy",
            "retail",
            _next_item,
            _fit_user_lstm,
            lstm.USER_LSTM,
            evaluate=_evaluate_user_lstm,
            protocol_name="NextItemProtocol, validation",
            tuned=("boost",),
            note="the purchase-history bonus weight chosen per seed on validation from chapter 7's grid "
            "(USER_LSTM_BOOSTS); trained without the per-epoch callback, which only records (3)",
        ),
        SeedRun(
            "sasrec",
            "08_sasrec",
            "accuracy",
            "retail",
            _both,
            _fit_sasrec,
            attention.SASREC,
            evaluate=_evaluate_sasrec,
            protocol_name="NextItemProtocol and BasketProtocol, validation (attention.both_protocols)",
            tuned=("boost", "basket_boost", "trend_boost"),
            note="the three bonus weights tuned per seed on validation (attention.tune_bonuses), as the "
            "chapter's recorded numbers are; trained without the per-epoch callback, which only "
            "records (7)",
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# Running


def _numbers(scores: Mapping) -> dict[str, float]:
    """The numeric metrics of a protocol's result (a mapping), as plain floats."""
    out = {}
    for name, value in scores.items():
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool
        ):
            out[str(name)] = float(value)
    return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value)} is not JSON")


def _jsonable(value):
    return json.loads(json.dumps(value, default=_plain))


def summarise_seeds(runs: list[dict]) -> dict[str, dict[str, float | None]]:
    """``{metric: {mean, sd, min, max, n}}`` over the runs (``sd`` with ``ddof=1``; None for one
    run); ``fit_seconds`` is summarised the same way."""
    names = [name for name in runs[0]["metrics"] if all(name in run["metrics"] for run in runs)]
    columns = {name: [run["metrics"][name] for run in runs] for name in names}
    columns["fit_seconds"] = [run["fit_seconds"] for run in runs]
    return {
        name: {
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values),
            "max": max(values),
            "n": len(values),
        }
        for name, values in columns.items()
    }


def library_versions() -> dict[str, str | None]:
    """Python's and ``LIBRARIES``' versions (None for one that is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def chapter_numbers(run: SeedRun, chapters: Path = CHAPTERS) -> dict[str, float]:
    """The validation metrics the chapter's executed notebook records for the model (seed 42)."""
    notebook = Path(chapters) / f"{run.chapter}.ipynb"
    if not notebook.exists():
        return {}
    recorded = read_recorded([notebook])
    prefix = f"{run.name}_val_"
    return {
        name.removeprefix(prefix): float(value)
        for name, value in recorded.items()
        if name.startswith(prefix)
    }


def _reusable(previous: dict | None, params: dict) -> dict[int, dict]:
    """The runs of ``previous`` (an earlier result) made with the same configuration, mode and
    threads, by seed."""
    settings = get_settings()
    if (
        not previous
        or previous.get("config") != _jsonable(params)
        or previous.get("mode") != settings.mode
        or previous.get("threads") != settings.threads
    ):
        return {}
    return {int(row["seed"]): row for row in previous.get("runs", [])}


def run_seeds(
    run: SeedRun,
    data,
    seeds=DEFAULT_SEEDS,
    overrides: dict | None = None,
    previous: dict | None = None,
    on_seed: Callable[[dict], None] | None = None,
    chapters: Path = CHAPTERS,
) -> dict:
    """Train and score ``run`` once per seed on ``data``; return the result (``seeds_result``).

    ``overrides`` (for tests) update the chapter's configuration; seeds that ``previous`` (an
    earlier result of the same configuration, mode and threads) measured are taken from it;
    ``on_seed(result)`` is called after every seed with the result so far.
    """
    configure_tensorflow()
    params = run.config | (overrides or {})
    earlier = _reusable(previous, params)
    chapter = chapter_numbers(run, chapters)
    protocol = run.protocol(data)
    runs, result = [], None
    for seed in (int(s) for s in seeds):
        if seed in earlier:
            runs.append(earlier[seed])
        else:
            start = time.perf_counter()
            model = run.fit(data, protocol, seed, params)
            fit_wall = time.perf_counter() - start
            metrics = _numbers(run.evaluate(model, data, protocol))
            row = {
                "seed": seed,
                "metrics": metrics,
                "fit_seconds": float(getattr(model, "fit_seconds_", fit_wall)),
                "seconds": time.perf_counter() - start,
            }
            if run.tuned:
                row["chosen"] = {name: float(getattr(model, name)) for name in run.tuned}
            runs.append(row)
            print(
                f"{run.name} seed {seed}: {run.metric} {metrics[run.metric]:.4f}, "
                f"fit {row['fit_seconds']:.0f} s, all {row['seconds']:.0f} s",
                flush=True,
            )
        result = seeds_result(run, params, runs, chapter)
        if on_seed is not None:
            on_seed(result)
    return result


def seeds_result(run: SeedRun, params: dict, runs: list[dict], chapter: dict[str, float]) -> dict:
    """The result file's content for ``runs`` (one row per seed) of ``run``."""
    settings = get_settings()
    summary = summarise_seeds(runs)
    by_seed = {row["seed"]: row for row in runs}
    headline = summary[run.metric]
    recorded = chapter.get(run.metric)
    at_42 = by_seed.get(42, {}).get("metrics", {}).get(run.metric)
    return _jsonable(
        {
            "model": run.name,
            "chapter": f"chapters/{run.chapter}.md",
            "metric": run.metric,
            "lower_is_better": run.lower_is_better,
            "protocol": run.protocol_name,
            "config": params,
            "note": run.note,
            "mode": settings.mode,
            "threads": settings.threads,
            "seeds": [row["seed"] for row in runs],
            "runs": runs,
            "mean": {name: value["mean"] for name, value in summary.items()},
            "sd": {name: value["sd"] for name, value in summary.items()},
            "summary": summary,
            "headline": {
                "metric": run.metric,
                "mean": headline["mean"],
                "sd": headline["sd"],
                "min": headline["min"],
                "max": headline["max"],
                "chapter_seed_42": recorded,
                "seed_42": at_42,
                "seed_42_minus_chapter": None
                if recorded is None or at_42 is None
                else at_42 - recorded,
            },
            "chapter_recorded": chapter,
            "cpu": cpu_info() | {"description": cpu_model()},
            "versions": library_versions(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
    )


def seeds_path(name: str, folder: Path = RESULTS) -> Path:
    return Path(folder) / f"seeds_{name}.json"


def write_seeds(result: dict, folder: Path = RESULTS) -> Path:
    path = seeds_path(result["model"], folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def read_seeds(name: str, folder: Path = RESULTS) -> dict | None:
    """The result file of model ``name``, or None when there is none."""
    path = seeds_path(name, folder)
    return json.loads(path.read_text()) if path.exists() else None


def load_data(kind: str):
    """The full data (or the subset, in subset mode) a model trains on."""
    return retail.load_split() if kind == "retail" else movielens.load_ratings("temporal")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help=f"models (default, cheapest first: {' '.join(SEED_RUNS)})"
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), help="seeds to train with"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SEED_RUNS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {' '.join(SEED_RUNS)}")
    data: dict[str, Any] = {}
    for name in args.names or list(SEED_RUNS):
        run = SEED_RUNS[name]
        if run.data not in data:
            data[run.data] = load_data(run.data)
        start = time.perf_counter()
        result = run_seeds(
            run, data[run.data], args.seeds, previous=read_seeds(name), on_seed=write_seeds
        )
        head = result["headline"]
        sd = "" if head["sd"] is None else f" +- {head['sd']:.4f}"
        print(
            f"wrote {seeds_path(name)} in {time.perf_counter() - start:.0f} s: {run.metric} "
            f"{head['mean']:.4f}{sd} over seeds {result['seeds']} (chapter: {head['chapter_seed_42']})",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])


def seed_table(recorded, folder: Path = RESULTS):
    """Every model with a seeds file: the chapter's number and its 95% interval (customers
    resampled) beside the mean, standard deviation, lowest and highest over seeds."""
    rows = {}
    for path in sorted(Path(folder).glob("seeds_*.json")):
        result = json.loads(path.read_text())
        model, metric, head = result["model"], result["metric"], result["headline"]
        name = f"{model}_val_{metric}"
        rows[model] = {
            "metric": metric,
            "chapter (seed 42)": recorded.get(name),
            "interval low": recorded.get(f"{name}_lo"),
            "interval high": recorded.get(f"{name}_hi"),
            "seeds": len(result["seeds"]),
            "mean over seeds": head["mean"],
            "sd over seeds": head["sd"],
            "lowest": head["min"],
            "highest": head["max"],
        }
    table = pd.DataFrame(rows).T.infer_objects()
    table.index.name = "model"
    return table


def glue_spreads(table: pd.DataFrame) -> None:
    """Glue each model's mean and standard deviation over seeds as
    ``<model>_val_<metric>_seed_mean`` / ``_seed_sd``, and the range of the standard deviations
    and of the interval widths over the models (``seeds_sd_low``/``_high``,
    ``seeds_width_low``/``_high``, out of ``seeds_models``)."""
    for model, row in table.iterrows():
        glue_value(f"{model}_val_{row['metric']}_seed_mean", float(row["mean over seeds"]))
        glue_value(f"{model}_val_{row['metric']}_seed_sd", float(row["sd over seeds"]))
    widths = (table["interval high"] - table["interval low"]).astype(float)
    glue_value("seeds_models", len(table))
    glue_value("seeds_sd_low", float(table["sd over seeds"].min()))
    glue_value("seeds_sd_high", float(table["sd over seeds"].max()))
    glue_value("seeds_width_low", float(widths.min()))
    glue_value("seeds_width_high", float(widths.max()))
