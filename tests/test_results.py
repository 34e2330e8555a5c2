import json

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from recsys_helpers.book import results


def test_metric_name_contract():
    assert results.metric_name("als", "validation", "precision") == "als_val_precision"
    assert results.metric_name("item_lstm", "test", "accuracy") == "item_lstm_test_accuracy"
    for bad in (("ALS", "val", "precision"), ("als", "train", "precision"), ("als", "val", "p@5")):
        with pytest.raises(ValueError):
            results.metric_name(*bad)


def test_record_glues_and_read_recorded_reads_back(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np\n"
            "from recsys_helpers.book.results import record, glue_value\n"
            "s = record('toy', 'val', {'precision': np.float64(0.25), 'ndcg_at_5': 0.5})\n"
            "glue_value('toy_count', np.int64(7))\n"
            "s"
        )
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "toy.ipynb"
    path.write_text(json.dumps(nb))
    got = results.read_recorded([path])
    assert got.to_dict() == {"toy_count": 7.0, "toy_val_ndcg_at_5": 0.5, "toy_val_precision": 0.25}


def test_tidy_and_leaderboard():
    recorded = pd.Series(
        {
            "als_val_precision": 0.14,
            "als_test_precision": 0.13,
            "als_val_ndcg_at_5": 0.2,
            "als_fit_seconds": 3.0,
            "repurchase_recent_val_precision": 0.18,
            "repurchase_recent_val_fit_seconds": 0.5,
            "item_lstm_val_accuracy": 0.3,
            "raw_rows": 10.0,
        }
    )
    t = results.tidy(recorded)
    assert set(t["model"]) == {"als", "repurchase_recent", "item_lstm"}
    assert "raw_rows" not in set(t["model"])
    board = results.leaderboard(recorded, "precision", ["ndcg_at_5", "fit_seconds"])
    assert board.index.tolist() == ["als"]  # the final models: reported on test
    assert board.loc["als", "fit_seconds"] == 3.0 and board.loc["als", "test_precision"] == 0.13
    variants = results.leaderboard(recorded, "precision", ["fit_seconds"], final=False)
    assert variants.index.tolist() == ["repurchase_recent"]
    assert variants.loc["repurchase_recent", "fit_seconds"] == 0.5
    assert np.isnan(variants.loc["repurchase_recent", "test_precision"])
    assert results.leaderboard(recorded, "accuracy", final=False).index.tolist() == ["item_lstm"]
    assert results.leaderboard(recorded, "mae").empty


def _basket_scores(hits_per_invoice, clusters):
    from recsys_helpers.evaluation.scores import Scores

    units = pd.DataFrame({"precision": np.asarray(hits_per_invoice, dtype=float) / 5})
    return Scores({"precision": float(units["precision"].mean())}, units, np.asarray(clusters), "basket")


def test_record_glues_intervals_and_units_that_read_back(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np, pandas as pd\n"
            "from recsys_helpers.book.results import record\n"
            "from recsys_helpers.evaluation.scores import Scores\n"
            "units = pd.DataFrame({'precision': np.arange(40) % 3 / 5})\n"
            "s = Scores({'precision': units['precision'].mean()}, units, np.arange(40) // 2, 'basket')\n"
            "record('toy', 'val', s | {'fit_seconds': 2.0})"
        )
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "toy.ipynb"
    path.write_text(json.dumps(nb))
    got = results.read_recorded([path])
    assert got["toy_val_precision_lo"] < got["toy_val_precision"] < got["toy_val_precision_hi"]
    assert "toy_val_fit_seconds" in got
    units = results.read_units([path], "basket")
    assert list(units) == [("toy", "val")]
    assert units["toy", "val"]["precision"] == pytest.approx(got["toy_val_precision"])
    assert results.read_units([path], "next_item") == {}


def test_compare_board_pairs_models_and_says_ties():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(300), 3)
    base = rng.integers(0, 3, clusters.size)
    strong = base + (rng.random(clusters.size) < 0.5)
    flips = (rng.random(clusters.size) < 0.05) * rng.choice([-1, 1], clusters.size)
    close = np.clip(strong + flips, 0, 5) - (np.arange(clusters.size) == 0)  # as good, give or take
    units = {
        ("strong", "val"): _basket_scores(strong, clusters),
        ("close", "val"): _basket_scores(close, clusters),
        ("repurchase", "val"): _basket_scores(base, clusters),
    }
    board = results.compare_board(["repurchase", "close", "strong"], units, "val", "precision", "repurchase")
    assert board.index.tolist() == ["strong", "close", "repurchase"]
    assert board.loc["strong", "against the best"] == "best"
    assert board.loc["close", "against the best"] == "no clear difference"
    assert board.loc["repurchase", "against the best"] == "worse"
    assert board.loc["strong", "vs reference low"] > 0
    assert (board["low"] <= board["value"]).all() and (board["value"] <= board["high"]).all()
    # a model scored on other units is shown without a paired comparison
    units["other", "val"] = _basket_scores(base[:30], clusters[:30])
    board = results.compare_board(["strong", "other"], units, "val", "precision", "repurchase")
    assert pd.isna(board.loc["other", "vs best"])
    assert results.interval_text(0.18, 0.17, 0.19) == "0.180 [0.170, 0.190]"
    assert results.interval_text(0.01, -0.002, 0.02, sign=True) == "+0.010 [-0.002, +0.020]"


def test_repeat_explore_table_reads_recorded_parts():
    recorded = pd.Series(
        {"a_val_precision": 0.2, "a_val_precision_repeat": 0.15, "a_val_precision_explore": 0.05,
         "a_val_repeat_share": 0.6, "b_val_precision": 0.1}
    )
    table = results.repeat_explore(recorded, ["a", "b"])
    assert table.index.tolist() == ["a"]
    assert table.loc["a", "from repeats"] + table.loc["a", "from new items"] == pytest.approx(0.2)


def test_fold_table_ranks_models_within_months():
    recorded = pd.Series(
        {"a_fold1_precision": 0.3, "a_fold2_precision": 0.1, "b_fold1_precision": 0.2,
         "b_fold2_precision": 0.2, "a_fold1_accuracy": 0.9, "a_folds_precision_mean": 0.2}
    )
    table = results.fold_table(recorded, "precision")
    assert table.index.tolist() == ["a", "b"] or table.index.tolist() == ["b", "a"]
    assert table.loc["a", "mean"] == pytest.approx(0.2) and table.loc["a", "mean rank"] == 1.5
    assert not table.loc["a", "same rank every month"]
    assert list(table.columns[:2]) == ["month 1", "month 2"]


def test_rung_steps_pair_each_rung_with_the_one_before():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(200), 4)
    base = rng.integers(0, 2, clusters.size)
    better = np.maximum(base, rng.random(clusters.size) < 0.3)  # strictly more hits
    flips = (rng.random(clusters.size) < 0.05) * rng.choice([-1, 1], clusters.size)
    same = np.clip(better + flips, 0, 5)
    rungs = {"a": _basket_scores(base, clusters), "b": _basket_scores(better, clusters),
             "c": _basket_scores(same, clusters)}
    steps = results.rung_steps(rungs, "precision", "toy")
    assert steps["a"] == "(first rung)"
    assert steps["b"].endswith("better") and steps["c"].endswith("no clear difference")
    assert steps["b"].startswith("+")
