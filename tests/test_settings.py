import datetime
from pathlib import Path

import numpy as np
import pytest

from recsys_helpers import settings
from recsys_helpers.settings import SettingError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Each test starts without any RECSYS_* variable (the session's data paths included)."""
    for name in settings.VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    s = settings.get_settings()
    assert s.retail_data is None and not s.subset and s.seed == 42 and s.mode == "full"
    assert s.epochs(10, 2) == 10 and s.pick("a", "b") == "a"
    assert s.retail_columns is None and s.split_dates is None and s.record_file is None
    assert s.threads >= 1


def test_environment(monkeypatch, tmp_path):
    (tmp_path / "x.parquet").touch()
    monkeypatch.setenv("RECSYS_RETAIL_DATA", str(tmp_path / "x.parquet"))
    monkeypatch.setenv("RECSYS_SUBSET", "True")
    monkeypatch.setenv("RECSYS_SEED", "7")
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RECSYS_THREADS", "3")
    s = settings.get_settings()
    assert s.retail_data == Path(tmp_path / "x.parquet") and s.subset and s.seed == 7
    assert s.cache_dir == tmp_path and s.epochs(10, 2) == 2 and s.mode == "subset" and s.threads == 3
    monkeypatch.setenv("RECSYS_SUBSET", "0")
    assert not settings.get_settings().subset
    monkeypatch.setenv("RECSYS_SUBSET", " off ")
    assert not settings.get_settings().subset


def _rejected(monkeypatch, name: str, value: str, *words: str) -> str:
    """Set ``name=value``: reading the settings fails, naming the variable and its value."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as info:
        settings.get_settings()
    message = str(info.value)
    assert name in message and repr(value.strip()) in message, message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("value", ["banana", "2", "ja", "truee"])
def test_subset_rejects_anything_but_yes_or_no(monkeypatch, value):
    _rejected(monkeypatch, "RECSYS_SUBSET", value, "Accepted: 1, true, yes, on", "0, false, no, off")


@pytest.mark.parametrize("value", ["seven", "4.5", "-1", str(2**32)])
def test_seed_must_be_an_integer_in_range(monkeypatch, value):
    _rejected(monkeypatch, "RECSYS_SEED", value, "an integer from 0 to 4294967295")


@pytest.mark.parametrize("value", ["many", "-2", "1.5"])
def test_threads_must_be_a_count(monkeypatch, value):
    _rejected(monkeypatch, "RECSYS_THREADS", value, "an integer from 0 to 1024")


def test_retail_data_must_exist_and_have_a_known_type(monkeypatch, tmp_path):
    _rejected(monkeypatch, "RECSYS_RETAIL_DATA", str(tmp_path / "missing.xlsx"), "no such file", ".xlsx, .parquet, .csv")
    (tmp_path / "table.json").touch()
    _rejected(monkeypatch, "RECSYS_RETAIL_DATA", str(tmp_path / "table.json"), "unsupported file type '.json'")
    (tmp_path / "folder.csv").mkdir()
    _rejected(monkeypatch, "RECSYS_RETAIL_DATA", str(tmp_path / "folder.csv"), "no such file")


def test_movielens_data_must_be_a_folder_or_zip(monkeypatch, tmp_path):
    _rejected(monkeypatch, "RECSYS_MOVIELENS_DATA", str(tmp_path / "ml"), "no such folder", "folder or its .zip")
    (tmp_path / "ratings.csv").touch()
    _rejected(monkeypatch, "RECSYS_MOVIELENS_DATA", str(tmp_path / "ratings.csv"), "not a folder or .zip")
    monkeypatch.setenv("RECSYS_MOVIELENS_DATA", str(tmp_path))
    assert settings.get_settings().movielens_data == tmp_path


def test_cache_dir_must_not_be_a_file(monkeypatch, tmp_path):
    (tmp_path / "file").touch()
    _rejected(monkeypatch, "RECSYS_CACHE_DIR", str(tmp_path / "file"), "it is a file", "a folder")
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(tmp_path / "new"))
    assert settings.get_settings().cache_dir == tmp_path / "new"


def test_record_file_needs_an_existing_folder(monkeypatch, tmp_path):
    _rejected(monkeypatch, "RECSYS_RECORD_FILE", str(tmp_path / "no" / "r.jsonl"), "no such folder")
    _rejected(monkeypatch, "RECSYS_RECORD_FILE", str(tmp_path), "it is a folder")
    monkeypatch.setenv("RECSYS_RECORD_FILE", str(tmp_path / "r.jsonl"))
    assert settings.get_settings().record_file == tmp_path / "r.jsonl"


def test_require_browser_is_a_flag(monkeypatch):
    monkeypatch.setenv("RECSYS_REQUIRE_BROWSER", "1")
    assert settings.env_flag("RECSYS_REQUIRE_BROWSER")
    monkeypatch.setenv("RECSYS_REQUIRE_BROWSER", "sure")
    with pytest.raises(SettingError, match="RECSYS_REQUIRE_BROWSER='sure'.*Accepted: 1, true"):
        settings.env_flag("RECSYS_REQUIRE_BROWSER")
    _rejected(monkeypatch, "RECSYS_REQUIRE_BROWSER", "sure")


def test_unknown_variable_is_a_typo(monkeypatch):
    monkeypatch.setenv("RECSYS_SUBST", "1")
    with pytest.raises(SettingError, match="unknown setting RECSYS_SUBST='1'. Did you mean RECSYS_SUBSET"):
        settings.get_settings()


def test_split_dates(monkeypatch):
    monkeypatch.setenv("RECSYS_SPLIT_DATES", "2011-10-09, 2011-11-09")
    assert settings.get_settings().split_dates == (datetime.date(2011, 10, 9), datetime.date(2011, 11, 9))
    accepted = "YYYY-MM-DD,YYYY-MM-DD"
    _rejected(monkeypatch, "RECSYS_SPLIT_DATES", "2011-10-09", "not two dates", accepted)
    _rejected(monkeypatch, "RECSYS_SPLIT_DATES", "2011-10-09,2011-13-01", "month must be in 1..12", accepted)
    _rejected(monkeypatch, "RECSYS_SPLIT_DATES", "2011-11-09,2011-10-09", "must start before", accepted)


def test_retail_columns_layout_and_mapping(monkeypatch, tmp_path):
    (tmp_path / "t.csv").touch()
    monkeypatch.setenv("RECSYS_RETAIL_DATA", str(tmp_path / "t.csv"))
    monkeypatch.setenv("RECSYS_RETAIL_COLUMNS", "online-retail-ii")
    assert dict(settings.get_settings().retail_columns)["customer"] == "Customer ID"
    monkeypatch.setenv("RECSYS_RETAIL_COLUMNS", "time=ts, item=sku,customer=user id,invoice=order,price=p")
    assert settings.get_settings().retail_columns == (
        ("invoice", "order"), ("customer", "user id"), ("item", "sku"), ("time", "ts"), ("price", "p")
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("online-retail-3", "is not role=column"),
        ("invoice=a,customer=b,item=c", "no column for time"),
        ("invoice=a,customer=b,item=c,time=d,prize=e", "unknown role 'prize'; did you mean 'price'?"),
        ("invoice=a,customer=b,item=c,time=d,item=e", "role 'item' given twice"),
        ("invoice=a,customer=,item=c,time=d", "'customer=' is not role=column"),
    ],
)
def test_retail_columns_rejects_bad_mappings(monkeypatch, tmp_path, value, why):
    (tmp_path / "t.csv").touch()
    monkeypatch.setenv("RECSYS_RETAIL_DATA", str(tmp_path / "t.csv"))
    _rejected(monkeypatch, "RECSYS_RETAIL_COLUMNS", value, why, "online-retail-ii", "invoice, customer, item, time")


def test_retail_columns_need_a_table(monkeypatch):
    _rejected(monkeypatch, "RECSYS_RETAIL_COLUMNS", "online-retail-ii", "RECSYS_RETAIL_DATA is unset")


def test_set_seeds_repeats():
    settings.set_seeds(3)
    a = np.random.rand(3)
    settings.set_seeds(3)
    assert np.array_equal(a, np.random.rand(3))
