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


def test_compare_recorded_flags_what_moved_and_follows_renames():
    before = {"a_val_precision": 0.100, "b_val_accuracy": 0.300, "old_val_accuracy": 0.2, "a_fit_seconds": 3.0}
    after = pd.Series({"a_val_precision": 0.1015, "b_val_accuracy": 0.310, "new_val_accuracy": 0.2,
                       "c_test_mae": 0.7, "a_val_fit_seconds": 9.0, "not_a_metric": 1.0})
    table = results.compare_recorded(before, after, renamed={"old_val_accuracy": "new_val_accuracy"})
    assert list(table.index) == ["a_val_precision", "b_val_accuracy", "c_test_mae", "new_val_accuracy"]
    assert table["moved"].to_dict() == {
        "a_val_precision": False, "b_val_accuracy": True, "c_test_mae": True, "new_val_accuracy": False,
    }
    assert table.loc["b_val_accuracy", "change"] == pytest.approx(0.010)


def test_glue_before_uses_names_the_leaderboards_ignore(tmp_path):
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(json.dumps({"commit": "x", "renamed": {}, "metrics": {"two_tower_val_precision": 0.147}}))
    glued = results.glue_before(["two_tower_val_precision"], results.read_snapshot(snapshot))
    assert glued == {"before_two_tower_precision_on_val": 0.147}
    assert results.tidy(pd.Series(glued)).empty
    with pytest.raises(ValueError):
        results.glue_before(["two_tower_fit_seconds"], results.read_snapshot(snapshot))


def test_committed_snapshot_holds_quality_metrics_only():
    snapshot = results.read_snapshot()
    assert snapshot["metrics"] and all(results.tidy(pd.Series(snapshot["metrics"]))["metric"] != "fit_seconds")
