"""Trained models kept between chapters (``recsys_helpers.models.store``)."""

import numpy as np

from recsys_helpers.interactions import invoices_of
from recsys_helpers.models import lstm, store, two_tower

QUIET = {"progress": False}
SMALL = {"embedding_dim": 8, "hidden": 8, "num_steps": 8, "stride": 4, "epochs": 1, "batch_size": 32}


def test_a_saved_lstm_loads_into_the_same_model_and_recommends_the_same(split, tmp_path):
    trained = lstm.lstm_recommender(**SMALL, **QUIET).fit(split)
    path = store.save(trained, split, tmp_path)
    assert path.exists() and not list(tmp_path.glob("*.part")), "written whole, then renamed"
    again = lstm.lstm_recommender(**SMALL, progress=True)  # progress is not part of the key
    assert store.load(again, split, tmp_path)
    invoices = invoices_of(split, "validation")
    np.testing.assert_array_equal(again.next_items(invoices), trained.next_items(invoices))
    assert again.fit_seconds_ == trained.fit_seconds_
    assert again.history_["loss"].tolist() == trained.history_["loss"].tolist()


def test_another_parameter_or_split_is_another_model(split, tmp_path):
    store.save(lstm.lstm_recommender(**SMALL, **QUIET).fit(split), split, tmp_path)
    assert not store.load(lstm.lstm_recommender(**SMALL | {"hidden": 16}, **QUIET), split, tmp_path)
    assert not store.load(lstm.lstm_recommender(**SMALL, seed=7, **QUIET), split, tmp_path)
    fewer = type(split)(**vars(split) | {"validation": split.validation.iloc[1:]})
    assert store.key(lstm.lstm_recommender(**SMALL), fewer) != store.key(lstm.lstm_recommender(**SMALL), split)


def test_fit_or_load_trains_once(split, tmp_path):
    first = store.fit_or_load(two_tower.TwoTower(dim=8, epochs=1, **QUIET), split, tmp_path)
    second = store.fit_or_load(two_tower.TwoTower(dim=8, epochs=1, **QUIET), split, tmp_path)
    assert not first.loaded_ and second.loaded_
    np.testing.assert_array_equal(second.item_factors_, first.item_factors_)
    np.testing.assert_array_equal(second.recommend(np.arange(5)), first.recommend(np.arange(5)))
    assert store.parameters(first)["towers"] == "retail_towers"
