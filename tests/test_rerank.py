import numpy as np
import pandas as pd
import pytest

from recsys_helpers.evaluation.basket import BasketProtocol
from recsys_helpers.models.rerank import (
    FEATURES,
    HistoryReranker,
    candidate_features,
    next_month_labels,
)

END = pd.Timestamp("2011-06-01")


@pytest.fixture
def history():
    rows = [  # customer, item, invoice, date
        (0, 10, "a", "2011-01-01"),
        (0, 11, "a", "2011-01-01"),
        (0, 10, "b", "2011-05-25"),
        (0, 10, "b", "2011-05-25"),
        (1, 12, "c", "2011-05-20"),
    ]
    frame = pd.DataFrame(rows, columns=["customer", "item", "invoiceno", "invoicedate"])
    frame["invoicedate"] = pd.to_datetime(frame["invoicedate"])
    return frame


def test_candidate_features_by_hand(history):
    f = candidate_features(history, END, [0, 1], n_popular=1).set_index(["customer", "item"])
    assert set(FEATURES) <= set(f.columns)
    # customer 0 bought item 10 on 3 lines of 2 invoices, last 7 days before END
    row = f.loc[(0, 10)]
    assert row["bought"] == 1 and row["share"] == 1.0
    assert row["log_rows"] == pytest.approx(np.log(4))
    assert row["recency"] == pytest.approx(1 / (1 + 1))
    assert row["log_invoices_30"] == pytest.approx(np.log(2))
    assert f.loc[(0, 11), "share"] == 0.5 and f.loc[(0, 11), "log_invoices_90"] == 0
    # the most popular recent item (10) is a candidate for customer 1 although never bought
    assert f.loc[(1, 10), "bought"] == 0 and f.loc[(1, 10), "recency"] == 0
    assert f.loc[(1, 12), "log_customer_idle_days"] == pytest.approx(np.log1p(12))


def test_next_month_labels(history):
    features = candidate_features(history, END, [0, 1], n_popular=1)
    target = pd.DataFrame(
        {"customer": [0, 0, 0], "item": [10, 10, 11], "invoiceno": ["x", "y", "y"]}
    )
    y, n = next_month_labels(features, target)
    pairs = zip(features["customer"], features["item"], strict=True)
    got = dict(zip(pairs, zip(y, n, strict=True), strict=True))
    assert got[(0, 10)] == (1.0, 2.0) and got[(0, 11)] == (0.5, 2.0) and got[(1, 12)] == (0.0, 0.0)


def test_reranker_beats_popularity_on_synthetic(split):
    protocol = BasketProtocol.from_split(split, "validation")
    model = HistoryReranker(cutoffs=3, epochs=5, seed=1).fit(split)
    popularity = protocol.score(protocol.baseline())["precision"]
    assert protocol.evaluate(model)["precision"] > 1.5 * popularity
    # the scorer is trained by the shared loop
    assert list(model.scorer_.history_["epoch"]) == [1, 2, 3, 4, 5]
    assert model.model_ is model.scorer_.model_ and model.n_training_rows_ > 0
