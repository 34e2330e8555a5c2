"""What is particular to each baseline (the shared checks are in test_contracts)."""

import numpy as np
import pytest

from recsys_helpers.datasets import retail as data
from recsys_helpers.datasets import synthetic
from recsys_helpers.evaluation.next_item import NextItemProtocol
from recsys_helpers.interactions import popular_items
from recsys_helpers.models import baselines


def test_max_duplicates():
    m = baselines._max_duplicates(np.array([0, 0, 1, 0]), np.array([2, 2, 0, 1]), np.array([5.0, 7.0, 1.0, 3.0]), (2, 3))
    assert m.toarray().tolist() == [[0, 3, 7], [1, 0, 0]]


def test_repurchase_orders():
    split = data.time_split(data.clean_retail(synthetic.make_retail(n_customers=30, seed=5)))
    frequent = baselines.Repurchase("frequent").fit(split)
    recent = baselines.Repurchase("recent").fit(split)
    c = int(split.train.loc[split.train["customer"] >= 0, "customer"].iloc[-1])
    history = split.train[split.train["customer"] == c]
    assert recent.recommend([c], 1)[0, 0] == history["item"].iloc[-1]
    most = history["item"].value_counts()
    assert frequent.recommend([c], 1)[0, 0] in most[most == most.max()].index
    with pytest.raises(ValueError):
        baselines.Repurchase("random")


def test_popularity_recommends_the_most_bought_items(split):
    recs = baselines.Popularity().fit(split).recommend([0, 1, 2], 5)
    assert (recs == popular_items(split.train, 5)).all()


def test_transitions_table_hand_made():
    split = data.time_split(data.clean_retail(synthetic.make_retail(n_customers=30, seed=6)))
    model = baselines.Transitions().fit(split)
    train = split.train
    first = train.groupby("invoiceno", sort=False)["item"].first().value_counts()
    assert model.table(1)[0, 0] == first.index[0] + 1  # after "start": the commonest first item


def test_seq_repurchase_prefers_history_and_skips_bought(split):
    protocol = NextItemProtocol.from_split(split, "validation")
    model = baselines.SeqRepurchase().fit(split)
    recs = model.next_items(protocol.invoices, 5)
    inv = protocol.invoices
    for g in range(min(50, len(inv))):
        start, end = inv.indptr[g], inv.indptr[g + 1]
        for i in range(start, end):
            assert not set(recs[i]) & set(inv.items[start:i]), "recommended an item already in the invoice"
        history = model.history_[inv.customers[g]]
        if len(history) >= 10 and end > start:
            assert recs[start, 0] == history[0]
