import numpy as np
import pytest

from recsys_helpers import baselines, metrics
from recsys_helpers.protocols import BasketProtocol, top_k

BASKET = [
    baselines.Popularity,
    baselines.Repurchase,
    lambda: baselines.Repurchase("recent"),
    lambda: baselines.ItemKNN(neighbours=10),
    lambda: baselines.EASE(l2=10.0),
]


def test_top_k_hand_made():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]


def test_max_duplicates():
    m = baselines._max_duplicates(np.array([0, 0, 1, 0]), np.array([2, 2, 0, 1]), np.array([5.0, 7.0, 1.0, 3.0]), (2, 3))
    assert m.toarray().tolist() == [[0, 3, 7], [1, 0, 0]]


@pytest.mark.parametrize("make", BASKET)
def test_basket_contract(split, make):
    model = make().fit(split)
    customers = np.arange(min(25, split.n_customers))
    recs = model.recommend(customers, k=5)
    assert recs.shape == (len(customers), 5)
    assert ((recs >= 0) & (recs < split.n_items)).all()
    assert all(len(set(row)) == 5 for row in recs)


@pytest.mark.parametrize("make", BASKET[1:])
def test_checkerboard_is_recovered(checkerboard_split, make):
    protocol = BasketProtocol.from_split(checkerboard_split, "validation")
    model = make().fit(checkerboard_split)
    known = protocol.known
    recs = protocol.recommendations(model)[known]
    indptr = np.concatenate([[0], np.cumsum(np.diff(protocol.indptr)[known])])
    starts, ends = protocol.indptr[:-1][known], protocol.indptr[1:][known]
    items = np.concatenate([protocol.items[a:b] for a, b in zip(starts, ends, strict=True)])
    assert metrics.precision_at_k(indptr, items, recs, 5) == 1.0


def test_repurchase_orders():
    from recsys_helpers import data, synthetic

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


def test_transitions_learn_the_planted_order(split):
    from recsys_helpers.sequences import NextItemProtocol, PopularityWithRemoval

    protocol = NextItemProtocol.from_split(split, "validation")
    model = baselines.Transitions().fit(split)
    recs = model.next_items(protocol.invoices, 5)
    assert recs.shape == (protocol.n_steps, 5) and (recs > 0).all()  # never the start code
    popular = protocol.evaluate(PopularityWithRemoval().fit(split))["accuracy"]
    assert protocol.evaluate(model)["accuracy"] > 2 * popular


def test_transitions_table_hand_made():
    from recsys_helpers import data, synthetic

    split = data.time_split(data.clean_retail(synthetic.make_retail(n_customers=30, seed=6)))
    model = baselines.Transitions().fit(split)
    train = split.train
    first = train.groupby("invoiceno", sort=False)["item"].first().value_counts()
    assert model.table(1)[0, 0] == first.index[0] + 1  # after "start": the commonest first item


def test_repurchase_next_prefers_history_and_skips_bought(split):
    from recsys_helpers.sequences import NextItemProtocol

    protocol = NextItemProtocol.from_split(split, "validation")
    model = baselines.RepurchaseNext().fit(split)
    recs = model.next_items(protocol.invoices, 5)
    inv = protocol.invoices
    for g in range(min(50, len(inv))):
        start, end = inv.indptr[g], inv.indptr[g + 1]
        for i in range(start, end):
            assert not set(recs[i]) & set(inv.items[start:i]), "recommended an item already in the invoice"
        history = model.history_[inv.customers[g]]
        if len(history) >= 10 and end > start:
            assert recs[start, 0] == history[0]
