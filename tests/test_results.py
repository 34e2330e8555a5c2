import json

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from recsys_helpers import results


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
            "from recsys_helpers.results import record, glue_value\n"
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
