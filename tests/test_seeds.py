"""``make seeds``: the chapters' models trained with several seeds (``book.seeds``)."""

import dataclasses
import json
import statistics

import pandas as pd
import pytest

from recsys_helpers.book import seeds

#: NeuMF at a tiny size: two seeds train in a few seconds on the synthetic split.
TINY_NCF = {"epochs": 2, "gmf_dim": 4, "mlp_dims": (8, 4), "batch_size": 512}


@pytest.fixture(scope="module")
def two_seeds(split, tmp_path_factory):
    """NeuMF trained with seeds 1 and 2, the file written after each seed, and read back."""
    folder = tmp_path_factory.mktemp("seeds")
    written = []

    def on_seed(result):
        written.append(result["seeds"])
        seeds.write_seeds(result, folder)

    result = seeds.run_seeds(
        seeds.SEED_RUNS["ncf"], split, (1, 2), overrides=TINY_NCF, on_seed=on_seed
    )
    return result, seeds.read_seeds("ncf", folder), written


def test_the_file_holds_every_field(two_seeds):
    result, read, _ = two_seeds
    assert read == result
    for key in (
        "model",
        "metric",
        "seeds",
        "runs",
        "mean",
        "sd",
        "summary",
        "headline",
        "config",
        "cpu",
        "versions",
        "date",
        "chapter_recorded",
    ):
        assert key in read, key
    assert read["model"] == "ncf" and read["metric"] == "precision"
    assert read["config"]["gmf_dim"] == 4 and read["config"]["l2"] == seeds.ncf.NCF_CHOSEN["l2"]
    assert read["cpu"]["name"] and read["versions"]["tensorflow"]
    # the chapter's committed notebook: the number seed 42 gave there
    assert read["headline"]["chapter_seed_42"] == pytest.approx(
        read["chapter_recorded"]["precision"]
    )


def test_each_seed_is_a_run_of_its_own(two_seeds):
    result, _, written = two_seeds
    assert result["seeds"] == [1, 2]
    assert [run["seed"] for run in result["runs"]] == [1, 2]
    assert written == [[1], [1, 2]], "the file is written after every seed"
    first, second = (run["metrics"] for run in result["runs"])
    assert {"precision", "ndcg_at_5", "mrr_at_5"} <= set(first)
    assert first != second, "another seed trains another model"
    assert all(run["fit_seconds"] > 0 for run in result["runs"])


def test_mean_and_sd_come_from_the_seeds(two_seeds):
    result, _, _ = two_seeds
    for metric in ("precision", "ndcg_at_5", "fit_seconds"):
        values = [
            run[metric] if metric == "fit_seconds" else run["metrics"][metric]
            for run in result["runs"]
        ]
        assert result["mean"][metric] == pytest.approx(statistics.fmean(values))
        assert result["sd"][metric] == pytest.approx(statistics.stdev(values))
        assert result["summary"][metric]["min"] == min(values)
        assert result["summary"][metric]["max"] == max(values)
    assert result["headline"]["mean"] == result["mean"]["precision"]


def test_seeds_already_measured_are_not_trained_again(two_seeds, split):
    result, _, _ = two_seeds

    def fail(*args):
        raise AssertionError("trained again")

    again = dataclasses.replace(seeds.SEED_RUNS["ncf"], fit=fail)
    rerun = seeds.run_seeds(again, split, (2, 1), overrides=TINY_NCF, previous=result)
    assert rerun["seeds"] == [2, 1] and rerun["runs"][0] == result["runs"][1]
    with pytest.raises(AssertionError, match="trained again"):  # another configuration trains
        seeds.run_seeds(again, split, (1,), overrides=TINY_NCF | {"epochs": 1}, previous=result)


def test_every_model_is_a_chapters_recorded_name():
    for name, run in seeds.SEED_RUNS.items():
        recorded = seeds.chapter_numbers(run)
        assert run.metric in recorded, f"{run.chapter} records no {name}_val_{run.metric}"
    assert json.dumps(seeds.DEFAULT_SEEDS) == "[42, 1, 2]"


def test_seed_table_sets_spread_beside_interval(tmp_path):
    for model, values in {"a": [0.20, 0.22, 0.21], "b": [0.10, 0.10, 0.13]}.items():
        head = {
            "metric": "precision",
            "mean": sum(values) / 3,
            "sd": 0.01 if model == "a" else 0.02,
            "min": min(values),
            "max": max(values),
        }
        (tmp_path / f"seeds_{model}.json").write_text(
            json.dumps(
                {"model": model, "metric": "precision", "seeds": [42, 1, 2], "headline": head}
            )
        )
    recorded = pd.Series(
        {"a_val_precision": 0.2, "a_val_precision_lo": 0.18, "a_val_precision_hi": 0.23}
    )
    table = seeds.seed_table(recorded, tmp_path)
    assert table.index.tolist() == ["a", "b"]
    assert table.loc["a", "interval low"] == 0.18 and pd.isna(table.loc["b", "interval low"])
    assert table.loc["b", "sd over seeds"] == 0.02 and table.loc["a", "seeds"] == 3
