"""The ladders from the source's configurations to the chapters' models (``book.ladders``)."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys_helpers.book import ladders
from recsys_helpers.datasets import retail, synthetic
from recsys_helpers.models import lstm, mf


@pytest.mark.parametrize("name", sorted(ladders.LADDERS))
def test_a_ladder_starts_at_the_source_and_ends_at_the_chapters_model(name):
    ladder = ladders.LADDERS[name]
    path = ladder.path()
    assert path[0][1] == ladder.base | ladder.source
    end = ladder.end()
    assert all(end[key] == value for key, value in ladder.final.items()), "the path ends elsewhere"
    model = ladder.model(**end)
    chosen = ladder.model(**(ladder.base | ladder.final))
    assert vars(model) == vars(chosen), "same model as the chapter's configuration"


@pytest.mark.parametrize("name", sorted(ladders.LADDERS))
def test_every_rung_taken_changes_what_it_says_and_no_more(name):
    ladder = ladders.LADDERS[name]
    previous = ladder.base | ladder.source
    for rung, params in ladder.path():
        changed = {k for k in params if params[k] != previous.get(k)}
        assert changed <= set(rung.params), f"{rung.change}: {changed - set(rung.params)}"
        if not rung.side:
            previous = params


def test_the_source_configurations_are_the_sources():
    assert mf.BPR_SOURCE["factors"] == 128 and mf.BPR_SOURCE["learning_rate"] == 0.0005
    assert mf.BPR_SOURCE["epochs"] == 75 and mf.BPR_SOURCE["source_penalty"]
    assert lstm.ITEM_LSTM_SOURCE["hidden"] == 200 and lstm.ITEM_LSTM_SOURCE["layers"] == 2
    assert lstm.ITEM_LSTM_SOURCE["batch_size"] == 20 and lstm.ITEM_LSTM_SOURCE["carry_state"]


def _tiny(name):
    if name in ("sgd_mf", "bpr"):
        return {"epochs": 2, "factors": 8, "steps_per_epoch": 3, "batch_size": 256} if name == "bpr" else {
            "epochs": 2, "factors": 8, "batch_size": 256}
    return {"epochs": 1, "embedding_dim": 8, "hidden": 8, "customer_dim": 4, "batch_size": 128}


@pytest.fixture(scope="module")
def small_split():
    """Fewer customers and items than the shared fixture: each rung trains and is measured."""
    return retail.time_split(retail.clean_retail(synthetic.make_retail(n_customers=80, n_items=40, n_tastes=4, seed=1)))


@pytest.fixture(scope="module")
def tiny_runs(small_split):
    """Each ladder run once at tiny settings, on demand (the rerun test reuses the item LSTM's)."""
    runs = {}

    def run(name):
        if name not in runs:
            runs[name] = ladders.run(ladders.LADDERS[name], small_split, overrides=_tiny(name), progress=False)
        return runs[name]

    return run


@pytest.mark.parametrize("name", ["sgd_mf", "bpr", "item_lstm", "user_lstm"])
def test_run_measures_every_rung_and_the_table_ends_with_the_chapter(name, tiny_runs, tmp_path):
    ladder = ladders.LADDERS[name]
    result = tiny_runs(name)
    rungs = result["rungs"]
    assert len(rungs) == len(ladder.rungs)
    assert all(0 <= r["value"] <= 1 for r in rungs)
    assert [r["side"] for r in rungs] == [r.side for r in ladder.rungs]
    assert not rungs[1]["trained"] or name in ("sgd_mf", "bpr")  # LSTMs: rung 1 only re-evaluates
    path = ladders.write(result, tmp_path)
    again = ladders.read(name, tmp_path)
    assert again["rungs"][0]["value"] == pytest.approx(rungs[0]["value"])
    chapter = {rung.change: 0.5 for rung in ladder.chapter}
    steps = ladders.table(again, chapter)
    assert len(steps) == len(ladder.rungs) + len(ladder.chapter)
    assert steps["validation"].iloc[-1] == 0.5 and steps["run by"].iloc[-1] == "this chapter"
    taken = steps[steps["taken"]]
    assert np.allclose(taken["gain"].iloc[1:], np.diff(taken["validation"]))
    assert path.name == f"ladder_{name}.json"
    with pytest.raises(ValueError):
        ladders.table(again, {"something else": 0.1, **dict(list(chapter.items())[1:])})


def test_plot_draws_one_bar_per_rung():
    steps = pd.DataFrame({"change": ["a", "b", "c"], "validation": [0.1, 0.2, 0.15],
                          "taken": [True, True, False]})
    fig = ladders.plot(steps, published=0.12, metric="accuracy", title="t")
    assert len(fig.axes[0].patches) == 3


def test_source_spread_trains_the_source_configuration_with_other_seeds(split):
    ladder = ladders.LADDERS["sgd_mf"]
    spread = ladders.source_spread(ladder, split, [1, 2], overrides=_tiny("sgd_mf"))
    assert sorted(spread) == [1, 2] and all(0 <= v <= 1 for v in spread.values())


def test_a_rerun_reuses_the_rungs_an_earlier_result_ran_with_the_same_parameters(small_split, tiny_runs, monkeypatch):
    ladder = ladders.LADDERS["item_lstm"]
    first = tiny_runs("item_lstm")
    trained = []
    original = lstm.LSTMRecommender.fit
    monkeypatch.setattr(lstm.LSTMRecommender, "fit", lambda self, *a, **k: trained.append(1) or original(self, *a, **k))
    again = ladders.run(ladder, small_split, overrides=_tiny("item_lstm"), progress=False, previous=first)
    assert not trained and again["rungs"] == first["rungs"]
    changed = dict(first, rungs=[dict(r) for r in first["rungs"]])
    # a rung before the one that only removes bought items: that one and the rungs before stay
    at = ladder.rungs.index(ladders.REMOVAL) - 1
    changed["rungs"][at]["params"] = dict(changed["rungs"][at]["params"], hidden=999)
    ladders.run(ladder, small_split, overrides=_tiny("item_lstm"), progress=False, previous=changed)
    retrained = [i for i, rung in enumerate(ladder.rungs) if i >= at and ladders.retrains(rung)]
    assert len(trained) == len(retrained), f"rung {at} (changed) and every later rung that trains, again"
    assert len(trained) >= 3 and not ladders.retrains(ladders.REMOVAL)


def test_styled_table_keeps_whole_descriptions():
    steps = pd.DataFrame({"change": ["x" * 120], "epochs": [1], "validation": [0.1234567], "gain": [np.nan],
                          "taken": [True], "fit seconds": [12.345], "run by": ["make ladders"]})
    html = ladders.styled(steps).to_html()
    assert "x" * 120 in html and "0.1235" in html and "12" in html and "nan" not in html.lower()


def test_the_sasrec_path_ends_at_the_chapters_model():
    ladder = ladders.SASREC_LADDER
    path = ladder.path()
    assert vars(ladder.model(**ladder.end())) == vars(ladders.attention.SASRec(**ladders.attention.SASREC))
    taken = [params for rung, params in path if not rung.side]
    assert taken[-1] == dict(ladders.attention.SASREC), "the last rung taken is attention.SASREC"
    assert path[0][1]["basket_weight"] == 0.0
    previous = path[0][1]
    for rung, params in path[1:]:
        changed = {k for k in params if params[k] != previous.get(k)}
        assert changed <= set(rung.params), f"{rung.change}: {changed - set(rung.params)}"
        if not rung.side:
            previous = params


def test_run_sasrec_trains_what_it_has_not_run_and_measures_both_protocols(small_split):
    small = {"context": 16, "stride": 8, "dim": 8, "epochs": 1, "batch_size": 32}
    runs = ladders.SASREC_LADDER.runs()
    assert [rung.change for rung, _ in runs] == [
        *(r.change for r in ladders.SASREC_PATH), ladders.SASREC_INVOICE_ONLY.change
    ]
    settings = ladders.get_settings()
    earlier = {"seed": settings.seed, "mode": settings.mode, "rungs": [
        {"rung": i, "change": rung.change, "side": rung.side, "epochs": 1, "accuracy": 0.5,
         "precision": 0.2, "boost": 1.0, "basket_boost": 1.0, "trend_boost": 0.0, "fit_seconds": 1.0,
         "params": json.loads(json.dumps(params | small, default=ladders._plain))}
        for i, (rung, params) in enumerate(runs[:-1])
    ]}  # the path's rungs as an earlier run recorded them: only the ablation trains here
    result = ladders.run(ladders.SASREC_LADDER, small_split, overrides=small, progress=False, previous=earlier)
    assert result["rungs"][:-1] == earlier["rungs"], "rungs run before are taken from that run"
    row = result["rungs"][-1]
    assert row["change"] == ladders.SASREC_INVOICE_ONLY.change and row["params"]["history"] is False
    assert row["params"] == dict(ladders.attention.SASREC) | small | {"history": False}
    assert 0 < row["accuracy"] <= 1 and 0 < row["precision"] <= 1
    assert row["metrics"]["accuracy"] == pytest.approx(row["accuracy"], abs=0.01), "at the best bonuses"
    assert row["boost"] in ladders.attention.BONUS_WEIGHTS and row["fit_seconds"] > 0
    assert row["trend_boost"] in ladders.attention.TREND_WEIGHTS
    chapter = {
        "epochs": 1, "accuracy": 0.5, "precision": 0.2, "boost": 1.0, "basket_boost": 2.0,
        "trend_boost": 0.1, "fit_seconds": 3.0,
    }
    table = ladders.table(result, {ladders.SASREC_CHAPTER.change: chapter})
    assert len(table) == len(runs) + 1 and table["run by"].iloc[-1] == "this chapter"
    assert table["next-item accuracy"].iloc[-1] == 0.5 and table["fit seconds"].iloc[-1] == 3.0
    assert table["bonus (next, basket, trend)"].iloc[-1] == "1, 2, 0.1"
    saved = json.loads(json.dumps(result, default=ladders._plain))
    again = ladders.run(ladders.SASREC_LADDER, small_split, overrides=small, progress=False, previous=saved)
    assert again["rungs"] == saved["rungs"], "nothing trained again"


def test_the_recorded_sasrec_ladder_reads_as_one_of_the_ladders():
    """``benchmarks/results/ladder_sasrec.json``, written by the former SASRec-only runner, makes
    the same table through the one machinery, and a rerun would reuse every rung of it."""
    result = ladders.read("sasrec")
    steps = ladders.table(result, {ladders.SASREC_CHAPTER.change: result["rungs"][0]})
    assert list(steps["change"])[:-1] == [rung.change for rung, _ in ladders.SASREC_LADDER.runs()]
    assert steps["next-item accuracy"].tolist()[:-1] == [row["accuracy"] for row in result["rungs"]]
    assert [row["params"] for row in result["rungs"]] == [
        json.loads(json.dumps(params, default=ladders._plain)) for _, params in ladders.SASREC_LADDER.runs()]
