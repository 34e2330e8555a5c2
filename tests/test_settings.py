from pathlib import Path

import numpy as np

from recsys_helpers import settings


def test_defaults(monkeypatch):
    for name in ("RECSYS_RETAIL_DATA", "RECSYS_SUBSET", "RECSYS_SEED", "RECSYS_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    s = settings.get_settings()
    assert s.retail_data is None and not s.subset and s.seed == 42 and s.mode == "full"
    assert s.epochs(10, 2) == 10 and s.pick("a", "b") == "a"


def test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECSYS_RETAIL_DATA", str(tmp_path / "x.parquet"))
    monkeypatch.setenv("RECSYS_SUBSET", "True")
    monkeypatch.setenv("RECSYS_SEED", "7")
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(tmp_path))
    s = settings.get_settings()
    assert s.retail_data == Path(tmp_path / "x.parquet") and s.subset and s.seed == 7
    assert s.cache_dir == tmp_path and s.epochs(10, 2) == 2 and s.mode == "subset"
    monkeypatch.setenv("RECSYS_SUBSET", "0")
    assert not settings.get_settings().subset


def test_set_seeds_repeats():
    settings.set_seeds(3)
    a = np.random.rand(3)
    settings.set_seeds(3)
    assert np.array_equal(a, np.random.rand(3))
