"""``make bench``: measured speed and memory of every stage of the book, on the full data.

Each stage runs in a fresh subprocess, so its peak memory (RSS) is its own, and repeats its timed
work several times; comparisons (the source's way vs the book's way) are measured in the same
process as a ratio. Results go to ``benchmarks/results/latest.json`` and a Markdown table
``benchmarks/results/latest.md``; the appendix chapter reads the JSON.

Usage::

    python benchmarks/run.py                 # every stage
    python benchmarks/run.py --stage data    # one stage (prints its JSON)
    python benchmarks/run.py --only matmul lstm_training --results avx2_machine.json
                                             # another machine's run, in a file of its own
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
STAGES: dict[str, Callable[[], dict]] = {}
#: Stages run twice by ``make bench``: as they are, and with ``ONEDNN_MAX_CPU_ISA=AVX2``, which
#: holds oneDNN (TensorFlow's matrix products, and the LSTM's) to the AVX2 kernels of machines
#: without AVX-512. TensorFlow's own (Eigen) kernels are built for AVX and are unaffected.
EMULATED = ("matmul", "lstm_training")

# The settings the chapters chose on validation come from the models' modules (defined once
# there); the benchmarks train only enough epochs to time one.
BENCH_EPOCHS = {"sgd_mf": 3, "bpr": 5, "lstm": 1}
#: The LSTM chapters' training before this round: the output layer over the whole catalogue at
#: every position of every window (padding weighted 0), batches of 64, eight epochs.
LSTM_BEFORE = {"targets": "all", "negatives": 0, "pack": False, "batch_size": 64, "learning_rate": 1e-2, "epochs": 8}


def stage(func: Callable[[], dict]) -> Callable[[], dict]:
    STAGES[func.__name__.removeprefix("bench_")] = func
    return func


def repeat(func: Callable[[], object], repeats: int = 5, warmup: int = 1) -> dict:
    """Median, min and max wall-clock seconds of ``func`` over ``repeats`` runs."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return summarize(times)


def summarize(times: list[float]) -> dict:
    """Median, min, max and number of some timings (seconds)."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "repeats": len(times)}


def paired(times: dict[str, list[float]], before: str, after: str) -> dict:
    """``epoch_seconds_<name>`` summaries of alternating timings and the median ratio before/after."""
    out = {f"epoch_seconds_{name}": summarize(values) for name, values in times.items()}
    out["speedup"] = statistics.median(times[before]) / statistics.median(times[after])
    return out


def cpu_seconds() -> dict:
    """User and system CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"user": usage.ru_utime, "system": usage.ru_stime}


def cpu_since(start: dict) -> dict:
    now = cpu_seconds()
    return {key: now[key] - start[key] for key in now}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# Stages


@stage
def bench_data() -> dict:
    """Reading the workbook with openpyxl vs loading the parquet cache."""
    import pandas as pd

    from recsys_helpers.datasets import retail as data
    from recsys_helpers.settings import get_settings

    settings = get_settings()
    raw = data.load_raw_retail(settings)
    cache = settings.cache_dir / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    parquet = cache / "online_retail.parquet"
    raw.to_parquet(parquet, index=False)
    workbook = cache / data.RETAIL_FILE
    if not workbook.exists():  # written once from the same rows; the original has the same layout
        raw.to_excel(workbook, index=False, engine="openpyxl")
    xlsx = repeat(lambda: data.read_retail_file(workbook), repeats=2, warmup=0)
    pq = repeat(lambda: pd.read_parquet(parquet), repeats=5)
    full = repeat(lambda: data.read_retail_file(parquet), repeats=5)
    return {
        "xlsx_read_seconds": xlsx,
        "parquet_load_seconds": pq,
        "parquet_load_checked_seconds": full,
        "speedup": xlsx["median"] / pq["median"],
    }


@stage
def bench_evaluation() -> dict:
    """The chapter's precision: pandas groupby vs indptr + numba (same number)."""
    import numpy as np

    from recsys_helpers.datasets import retail as data
    from recsys_helpers.evaluation import metrics
    from recsys_helpers.evaluation.basket import BasketProtocol

    split = data.load_split()
    protocol = BasketProtocol.from_split(split, "validation")
    recs = protocol.baseline()
    fast = metrics.precision(protocol.indptr, protocol.items, recs)
    slow = metrics.precision_groupby(split.validation, recs)
    assert np.isclose(fast, slow)
    t_slow = repeat(lambda: metrics.precision_groupby(split.validation, recs), repeats=5)
    t_fast = repeat(lambda: metrics.precision(protocol.indptr, protocol.items, recs), repeats=50)
    t_all = repeat(lambda: protocol.score(recs), repeats=20)
    return {
        "precision": fast,
        "groupby_seconds": t_slow,
        "indptr_numba_seconds": t_fast,
        "all_metrics_seconds": t_all,
        "speedup": t_slow["median"] / t_fast["median"],
    }


@stage
def bench_matmul() -> dict:
    """The machine's own limit: float32 matrix products in TensorFlow and NumPy, GFLOP/s.

    A product of two ``n x n`` matrices is ``2 n^3`` floating-point operations. The training
    stages report their rate against the best of these (``matmul_gflops``).
    """
    import tensorflow as tf

    from recsys_helpers import settings

    settings.configure_tensorflow()
    out = {}
    for n in (512, 1024, 2048):
        a = tf.random.uniform((n, n), seed=1)
        b = tf.random.uniform((n, n), seed=2)
        tf_time = repeat(lambda a=a, b=b: tf.matmul(a, b).numpy(), repeats=5)
        an, bn = a.numpy(), b.numpy()
        np_time = repeat(lambda an=an, bn=bn: an @ bn, repeats=5)
        out[f"tf_{n}_gflops"] = 2 * n**3 / tf_time["min"] / 1e9
        out[f"numpy_{n}_gflops"] = 2 * n**3 / np_time["min"] / 1e9
    out["matmul_gflops"] = max(v for k, v in out.items() if k.startswith("tf_"))
    out["numpy_matmul_gflops"] = max(v for k, v in out.items() if k.startswith("numpy_"))
    return out


def mf_epoch_flops(model) -> float:
    """Matrix-multiply FLOPs of one epoch of SGD MF or BPR, counted from the shapes.

    Each scored (customer, item) pair is a dot product of ``factors`` (``2 f`` FLOPs forward,
    about twice that backward); SGD MF scores ``1 + negatives`` pairs per positive, BPR two per
    sampled triple. The dense Adam update of the tables (about 10 operations per weight per
    step) is counted too, since it is what an epoch of these models mostly does.
    """
    f = model.factors
    tables = (model.n_customers + 2 * model.n_items) * f  # factors and biases, roughly
    if hasattr(model, "negatives"):
        pairs = len(model.customers_) * (1 + model.negatives)
        steps = -(-len(model.customers_) // model.batch_size)
    else:
        pairs = 2 * model.batch_size * model.steps_per_epoch
        steps = model.steps_per_epoch
    return 3 * 2 * f * pairs + 10 * tables * steps


def lstm_epoch_flops(recommender) -> float:
    """Matrix-multiply FLOPs of one epoch of an LSTM recommender, counted from the shapes.

    Per position of a batch, each LSTM layer multiplies its input and its state by its four
    gates' weights, ``2 * 4 * units * (inputs + units)`` FLOPs, and the output layer multiplies
    the last output by the catalogue, ``2 * units_out * n_items``; the backward pass costs about
    twice the forward pass (gradients of inputs and of weights), so an epoch is three times the
    forward FLOPs. The LSTM counts the positions it runs over (with ``buckets``, each batch cut
    after its longest window); the output layer counts only the positions whose logits are
    computed (every position, or the fresh targets alone), against the whole catalogue or, with
    ``negatives``, against the target and the batch's sampled items.
    """
    import numpy as np

    batches = list(recommender.batches(np.random.default_rng(0)))
    positions = sum(batch[0].size for batch in batches)
    inputs = recommender.embedding_dim + (recommender.customer_dim if recommender.customers else 0)
    lstm_flops = 0
    for _ in range(recommender.layers):
        lstm_flops += 2 * 4 * recommender.hidden * (inputs + recommender.hidden) * positions
        inputs = recommender.hidden
    head_in = recommender.hidden + (recommender.customer_dim if recommender.customer_to_output else 0)
    n_items = recommender.model.output.shape[-1]
    scored = positions
    if recommender.targets != "all":
        scored = int(recommender.windows_[recommender.input_names_.index("scored") + 1].sum())
    columns = 1 + recommender.negatives if recommender.negatives else n_items
    return 3 * (lstm_flops + 2 * head_in * columns * scored)


def rate(flops: float, seconds: float) -> dict:
    return {"epoch_gflop": flops / 1e9, "achieved_gflops": flops / seconds / 1e9}


def _epochs(history: list[dict]) -> dict:
    return summarize([row["seconds"] for row in history])


@stage
def bench_als() -> dict:
    """ALS fit (implicit, one BLAS thread) and scoring every validation customer."""
    from recsys_helpers.datasets import retail as data
    from recsys_helpers.evaluation.basket import BasketProtocol
    from recsys_helpers.models import mf

    split = data.load_split()
    protocol = BasketProtocol.from_split(split, "validation")
    models = []
    fit = repeat(lambda: models.append(mf.ALS(**mf.ALS_CHOSEN).fit(split)), repeats=3)
    predict = repeat(lambda: protocol.recommendations(models[-1]), repeats=5)
    return {"fit_seconds": fit, "predict_seconds": predict, "precision": protocol.evaluate(models[-1])["precision"]}


def _keras_mf(model) -> dict:
    from recsys_helpers.datasets import retail as data
    from recsys_helpers.evaluation.basket import BasketProtocol

    split = data.load_split()
    protocol = BasketProtocol.from_split(split, "validation")
    start = cpu_seconds()
    model.fit(split)
    cpu = cpu_since(start)
    predict = repeat(lambda: protocol.recommendations(model), repeats=5)
    epoch = summarize(model.history_["seconds"].tolist())
    return {
        "epoch_seconds": epoch,
        "epochs": len(model.history_),
        "fit_seconds_total": float(model.history_["seconds"].sum()),
        "fit_cpu_seconds": cpu,
        "predict_seconds": predict,
        **rate(mf_epoch_flops(model), epoch["median"]),
    }


@stage
def bench_sgd_mf() -> dict:
    """SGD MF in TensorFlow: seconds per epoch (K negatives per positive)."""
    from recsys_helpers import settings
    from recsys_helpers.models import mf

    settings.configure_tensorflow()
    return _keras_mf(mf.SGDMF(**mf.SGD_MF_CHOSEN | {"epochs": BENCH_EPOCHS["sgd_mf"]}, progress=False))


@stage
def bench_bpr() -> dict:
    """BPR in TensorFlow: seconds per epoch of bootstrap-sampled triples."""
    from recsys_helpers import settings
    from recsys_helpers.models import mf

    settings.configure_tensorflow()
    return _keras_mf(mf.BPR(**mf.BPR_CHOSEN | {"epochs": BENCH_EPOCHS["bpr"]}, progress=False))


def _lstm(customers: bool) -> dict:
    import numpy as np

    from recsys_helpers import settings
    from recsys_helpers.datasets import retail as data
    from recsys_helpers.interactions import invoices_of
    from recsys_helpers.models import lstm, lstm_prediction

    settings.configure_tensorflow()
    split = data.load_split()
    # the chapter's configuration (lstm.ITEM_LSTM / USER_LSTM); one epoch is enough to time one
    recommender = (lstm.UserLSTM if customers else lstm.ItemLSTM)(progress=False)
    start = cpu_seconds()
    recommender.fit(split, epochs=BENCH_EPOCHS["lstm"])
    cpu = cpu_since(start)
    model = recommender.model
    val = invoices_of(split, "validation")
    batched = repeat(lambda: lstm_prediction.predict_next_items(model, val), repeats=3)
    sample = val.take(np.arange(0, len(val), max(1, len(val) // 100)))  # every ~100th invoice
    stepwise = repeat(lambda: lstm_prediction.predict_stepwise(model, sample), repeats=1)
    same = np.array_equal(
        np.sort(lstm_prediction.predict_stepwise(model, sample), axis=1),
        np.sort(lstm_prediction.predict_next_items(model, sample), axis=1),
    )
    per_step_stepwise = stepwise["median"] / sample.n_steps
    per_step_batched = batched["median"] / val.n_steps
    epoch = summarize(recommender.history_["seconds"].tolist())
    return {
        "windows": len(recommender.windows_[0]),
        "epoch_seconds": epoch,
        "fit_cpu_seconds": cpu,
        **rate(lstm_epoch_flops(recommender), epoch["median"]),
        "validation_steps": val.n_steps,
        "batched_predict_seconds": batched,
        "stepwise_sample_steps": sample.n_steps,
        "stepwise_sample_seconds": stepwise,
        "stepwise_full_seconds_estimate": per_step_stepwise * val.n_steps,
        "batched_steps_per_second": 1 / per_step_batched,
        "stepwise_steps_per_second": 1 / per_step_stepwise,
        "batched_speedup": per_step_stepwise / per_step_batched,
        "same_top_k": bool(same),
    }


@stage
def bench_item_lstm() -> dict:
    """Item LSTM: seconds per epoch; batched vs step-by-step prediction (same top-k)."""
    return _lstm(customers=False)


@stage
def bench_user_lstm() -> dict:
    """User LSTM: seconds per epoch; batched vs step-by-step prediction (same top-k)."""
    return _lstm(customers=True)


def op_profile(func: Callable[[], object], top: int = 6) -> list[dict]:
    """Run ``func`` under TensorFlow's profiler; the ops with the most self time, with shares.

    Reads the trace with TensorFlow's own converter (the ``framework_op_stats`` tool of the
    profiler plugin, what TensorBoard's profile tab shows). Idle time is left out of the shares.
    """
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        func()
        tf.profiler.experimental.stop()
        paths = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        raw, _ = _pywrap_profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    table = json.loads(raw)[0]
    names = [col["label"] for col in table["cols"]]
    rows = [dict(zip(names, [c.get("v") if c else None for c in row["c"]], strict=True)) for row in table["rows"]]
    rows = [row for row in rows if row["Operation Type"] != "IDLE"]
    total = sum(row["Total self-time (us)"] for row in rows)
    rows.sort(key=lambda row: -row["Total self-time (us)"])
    return [
        {
            "type": row["Operation Type"],
            "op": row["Operation Name"].split("/")[-1],
            "in": "/".join(row["Operation Name"].split("/")[-4:-1]),
            "share": row["Total self-time (us)"] / total,
        }
        for row in rows[:top]
    ]


@stage
def bench_lstm_loss() -> dict:
    """The profiled hot spot of LSTM training: Keras' sparse cross-entropy vs ``next_item_loss``.

    The item LSTM trained as before this round (``LSTM_BEFORE``: the full softmax at every
    position, where this loss is used) with each loss of one position (``position_loss``):
    the op profile of a few batches with each, then whole epochs (shuffled windows, as the
    chapters train) with each loss in turn, and the ratio.
    """
    import itertools

    import keras

    from recsys_helpers import settings
    from recsys_helpers.datasets import retail as data
    from recsys_helpers.models import losses as losses_module
    from recsys_helpers.models import lstm

    class FewBatches(lstm.ItemLSTM):
        """The item LSTM with its epochs cut to ``count`` batches, for the op profile."""

        count = 30

        def batches(self, rng):
            return itertools.islice(super().batches(rng), self.count)

    settings.configure_tensorflow()
    split = data.load_split()
    losses = {
        "keras_sparse_cross_entropy": keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None),
        "next_item_loss": losses_module.next_item_loss,
    }

    def make(name: str, kind=lstm.ItemLSTM):
        model = kind(progress=False, **LSTM_BEFORE)
        model.position_loss = losses[name]  # the loss of every position, masked and averaged as usual
        return model

    out: dict = {}
    for name in losses:
        make(name, FewBatches).fit(split, epochs=1)  # warm up (data, first trace)
        out[f"profile_{name}"] = op_profile(lambda name=name: make(name, FewBatches).fit(split, epochs=1))
    times: dict[str, list[float]] = {name: [] for name in losses}
    models = {name: make(name) for name in losses}
    for _ in range(3):  # whole epochs as the chapters train them, alternating the two losses
        for name, model in models.items():
            times[name].append(float(model.fit(split, epochs=1).history_["seconds"].iloc[0]))
    out |= {"batch_size": models["next_item_loss"].batch_size, "windows": len(models["next_item_loss"].windows_[0])}
    out |= paired(times, "keras_sparse_cross_entropy", "next_item_loss")
    out["loss_speedup"] = out.pop("speedup")
    return out


@stage
def bench_lstm_training() -> dict:
    """The LSTM chapters' training before this round and now, side by side in one process.

    For the item and the user LSTM: ``LSTM_BEFORE`` and the chapter's configuration
    (``lstm.ITEM_LSTM`` / ``USER_LSTM``), two epochs each in turn, twice. The first epoch of a
    fit also traces the training step (a few seconds for an unrolled LSTM), so the epoch times
    are the second epochs' (``epoch_seconds``), the first epochs' are kept apart
    (``first_epoch_seconds``), and a whole training is the first epoch plus the configuration's
    other epochs at the second epoch's time. Also each epoch's FLOPs and rate, and the CPU time
    of a second epoch.
    """
    from recsys_helpers import settings
    from recsys_helpers.datasets import retail as data
    from recsys_helpers.models import lstm

    settings.configure_tensorflow()
    split = data.load_split()
    out = {}
    for kind, model in (("item", lstm.ItemLSTM), ("user", lstm.UserLSTM)):
        configs = {"before": LSTM_BEFORE, "now": {}}
        models = {name: model(progress=False, **params) for name, params in configs.items()}
        times: dict[str, list[float]] = {name: [] for name in models}
        first: dict[str, list[float]] = {name: [] for name in models}
        cpu: dict[str, dict] = {}
        for _ in range(2):
            for name, recommender in models.items():
                marks = []  # CPU time at the end of each epoch
                recommender.fit(split, epochs=2, callback=lambda _, marks=marks: marks.append(cpu_seconds()))
                seconds = recommender.history_["seconds"]
                first[name].append(float(seconds.iloc[0]))
                times[name].append(float(seconds.iloc[1]))
                cpu[name] = {key: marks[1][key] - marks[0][key] for key in marks[0]}
        pair = paired(times, "before", "now")
        out[f"{kind}_epoch_speedup"] = pair["speedup"]
        training = {}
        for name, recommender in models.items():
            epoch = statistics.median(times[name])
            out[f"{kind}_{name}_epoch_seconds"] = pair[f"epoch_seconds_{name}"]
            out[f"{kind}_{name}_first_epoch_seconds"] = summarize(first[name])
            out[f"{kind}_{name}_epochs"] = recommender.epochs
            out[f"{kind}_{name}_cpu_seconds"] = cpu[name]  # of the last fit's second epoch
            out[f"{kind}_{name}_rate"] = rate(lstm_epoch_flops(recommender), epoch)
            training[name] = statistics.median(first[name]) + (recommender.epochs - 1) * epoch
            out[f"{kind}_{name}_training_seconds"] = training[name]
        out[f"{kind}_training_speedup"] = training["before"] / training["now"]
    return out


@stage
def bench_adam_dense() -> dict:
    """The profiled hot spot of BPR training: Keras' Adam fed ``IndexedSlices`` vs dense once.

    Same BPR settings in one process: the op profile of an epoch with each way of applying the
    gradients (``base.apply_gradients`` or Keras' own), then epochs with each in turn.
    """
    from recsys_helpers import settings
    from recsys_helpers.datasets import retail as data
    from recsys_helpers.models import base, mf

    settings.configure_tensorflow()
    split = data.load_split()
    dense = base.apply_gradients
    params = mf.BPR_CHOSEN | {"epochs": 1}

    def keras_slices(optimizer, gradients, variables):
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

    ways = {"keras_indexed_slices": keras_slices, "dense_once": dense}
    models = {}
    out: dict = {}
    for name, apply in ways.items():
        base.apply_gradients = apply  # read when the training step is traced, in fit
        models[name] = mf.BPR(**params, progress=False).fit(split)  # warm-up
        out[f"profile_{name}"] = op_profile(lambda name=name: models[name].fit(split))
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(3):
        for name, apply in ways.items():
            base.apply_gradients = apply  # each fit builds and traces its step anew
            times[name].append(float(models[name].fit(split).history_["seconds"].iloc[0]))
    base.apply_gradients = dense
    out |= paired(times, "keras_indexed_slices", "dense_once")
    out["dense_speedup"] = out.pop("speedup")
    return out


@stage
def bench_scaling() -> dict:
    """Fit and predict time against data size: 25/50/100% of customers and a synthetic 4x."""
    from recsys_helpers import settings
    from recsys_helpers.datasets import retail as data
    from recsys_helpers.datasets import synthetic
    from recsys_helpers.evaluation.basket import BasketProtocol
    from recsys_helpers.models import mf

    settings.configure_tensorflow()
    base = get_settings_replace(subset=False)
    df = data.clean_retail(data.load_raw_retail(base))
    sizes = {}
    for fraction in (0.25, 0.5, 1.0):
        sample = data.sample_customers(df, fraction, base.seed) if fraction < 1 else df
        sizes[f"{int(fraction * 100)}%"] = data.time_split(sample)
    n = sizes["100%"].n_customers
    big = synthetic.make_retail(
        n_customers=4 * n, n_items=sizes["100%"].n_items, n_tastes=60,
        invoices_per_customer=6.0, basket_size=20.0, seed=base.seed,
    )
    sizes["synthetic 4x"] = data.time_split(data.clean_retail(big))
    out = {}
    for name, split in sizes.items():
        protocol = BasketProtocol.from_split(split, "validation")
        als = mf.ALS(**mf.ALS_CHOSEN)
        fit = repeat(lambda als=als, split=split: als.fit(split), repeats=1, warmup=0)
        predict = repeat(lambda p=protocol, m=als: p.recommendations(m), repeats=3)
        sgd = mf.SGDMF(**mf.SGD_MF_CHOSEN | {"epochs": 1}, progress=False).fit(split)
        out[name] = {
            "customers": split.n_customers,
            "train_rows": len(split.train),
            "als_fit_seconds": fit["median"],
            "als_predict_seconds": predict["median"],
            "sgd_mf_epoch_seconds": float(sgd.history_["seconds"].iloc[0]),
        }
    return {"sizes": out}


def get_settings_replace(**changes):
    from dataclasses import replace

    from recsys_helpers.settings import get_settings

    return replace(get_settings(), **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=sorted(STAGES))
    parser.add_argument("--only", nargs="*", help="run these stages (default: all)")
    parser.add_argument(
        "--results",
        default="latest.json",
        help="file name under benchmarks/results (default latest.json; with another name the "
        "run is kept whole in that file, not merged into the stages of an earlier run)",
    )
    args = parser.parse_args()
    if args.stage:
        start = time.perf_counter()
        result = STAGES[args.stage]()
        result["stage_seconds"] = time.perf_counter() - start
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    from tabulate import tabulate  # noqa: F401  (checked early: the report needs it)

    results = {"machine": machine(), "stages": {}}
    emulate = results["machine"]["avx512"]  # without AVX-512 the native run is the AVX2 run
    if not emulate:
        print("this CPU has no AVX-512: the stages run natively only, with its AVX2 kernels")
    runs = []
    for name in args.only or list(STAGES):
        runs.append((name, name, {}))
        if name in EMULATED and emulate:  # again with oneDNN held to AVX2 (see EMULATED)
            runs.append((f"{name}_avx2", name, {"ONEDNN_MAX_CPU_ISA": "AVX2"}))
    failed = None
    for key, name, extra in runs:
        print(f"benchmark {key} ...", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--stage", name],
            capture_output=True,
            text=True,
            env=os.environ.copy() | extra,
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            failed = key
            break
        results["stages"][key] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {results['stages'][key]['stage_seconds']:.1f} s", flush=True)
    if failed and not results["stages"]:
        raise SystemExit(f"stage {failed} failed")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / Path(args.results).name
    if args.only and path.exists() and path.name == "latest.json":  # keep the stages not re-run
        old = json.loads(path.read_text())
        results["stages"] = old.get("stages", {}) | results["stages"]
    path.write_text(json.dumps(results, indent=1, sort_keys=True))
    markdown = path.with_suffix(".md")
    markdown.write_text(report(results) + "\n" + flop_report(results))
    print(flop_report(results))
    print(f"wrote {path} and {markdown.name}")
    if failed:  # the stages that ran are kept; say which one did not
        raise SystemExit(f"stage {failed} failed (the stages before it were written)")


def machine() -> dict:
    """Where a run was measured: the CPU's model, cores and whether it has AVX-512."""
    from recsys_helpers.book.execute import cpu_info, cpu_model

    info = cpu_info()
    return {
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_model(),
        "cpu_family_model": info["family_model"],
        "avx512": info["avx512"],
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def flop_report(results: dict) -> str:
    """The training stages' FLOP rates against the machine's matmul rate, as Markdown."""
    from tabulate import tabulate

    from recsys_helpers.book.display import flop_table

    table = flop_table(results)
    if table.empty:
        return ""
    return tabulate(table, "keys", tablefmt="github", floatfmt=".3g", missingval="") + "\n"


def report(results: dict) -> str:
    """A Markdown table of every timed quantity: median, min, max, and speed-up ratios."""
    from tabulate import tabulate

    rows = []
    for name, values in results["stages"].items():
        for key, value in values.items():
            if isinstance(value, dict) and "median" in value:
                rows.append([name, key, value["median"], value["min"], value["max"], value["repeats"]])
            elif key in ("speedup", "peak_rss_mb") or key.endswith(("_ratio", "_speedup")):
                rows.append([name, key, value, "", "", ""])
    header = ["stage", "quantity", "median", "min", "max", "repeats"]
    return tabulate(rows, header, tablefmt="github", floatfmt=".4g") + "\n"


if __name__ == "__main__":
    main()
