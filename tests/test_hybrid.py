"""What is particular to the hybrid model (the shared checks are in test_contracts)."""

import numpy as np
import pytest

from recsys_helpers.evaluation.basket import BasketProtocol
from recsys_helpers.models import hybrid

SMALL = {"dim": 8, "batch_size": 512, "progress": False}


@pytest.fixture(scope="module")
def model(split):
    return hybrid.Hybrid(epochs=2, **SMALL).fit(split)


def test_evaluates_each_invoice_in_its_context(model, split):
    protocol = BasketProtocol.from_split(split, "validation")
    scores = hybrid.evaluate_in_context(model, protocol, split)
    assert 0.0 <= scores["precision"] <= 1.0
    # the basket contract is the same model in a static context
    static = model.static_context(np.arange(4))
    in_context = model.recommend_invoices(static, 5)
    np.testing.assert_array_equal(in_context, model.recommend(np.arange(4), 5))


def test_context_changes_the_query(model):
    a = model.static_context([0])
    b = a.assign(hour=(a["hour"] + 6) % 24)
    assert not np.allclose(model.query(a), model.query(b))


def test_without_context_the_query_ignores_it(split):
    model = hybrid.Hybrid(epochs=1, use_context=False, **SMALL).fit(split)
    a = model.static_context([0, 1])
    b = a.assign(hour=(a["hour"] + 6) % 24, weekday=(a["weekday"] + 1) % 7)
    assert np.allclose(model.query(a), model.query(b))


def test_negatives_share_their_positive_context(split):
    model = hybrid.Hybrid(n_negatives=2, batch_size=10**6)
    model.build(split)
    (customers, country, hour, weekday, items, labels), = model.batches(np.random.default_rng(0))
    assert len(labels) == 3 * len(model.positives_) and labels.sum() == len(model.positives_)
    context = np.stack([customers, country, hour, weekday], axis=1)
    rows = {tuple(row) for row in np.stack(model.rows_, axis=1)}
    assert all(tuple(row) in rows for row in context[labels == 0])
