"""Side information of items, customers and invoices (``recsys_helpers.features``)."""

import numpy as np

from recsys_helpers import features
from recsys_helpers.evaluation.basket import BasketProtocol


def test_tokenize_drops_numbers_short_and_stop_words():
    assert features.tokenize("SET OF 3 CAKE TINS PANTRY DESIGN") == ["CAKE", "TINS", "PANTRY"]
    assert features.tokenize(None) == []


def test_price_bands():
    bands = features.price_bands([0.5, 1.0, 2.0, 4.0, 8.0, 0.0], n_bands=2)
    assert bands.tolist()[:5] == [0, 0, 1, 1, 1] and bands[5] == 0


def test_item_table_has_one_row_per_item(split):
    table = features.item_table(split)
    assert len(table) == split.n_items and table["description"].str.startswith("SYNTHETIC").all()
    assert (table["price"] >= 0).all()


def test_description_tokens_pad_with_zero(split):
    tokens, vocabulary = features.description_tokens(split, max_words=4)
    assert tokens.shape == (split.n_items, 4)
    assert tokens.min() >= 0 and tokens.max() <= len(vocabulary)


def test_customer_countries_reserve_zero_for_unknown(split):
    codes, encoder = features.customer_countries(split)
    assert codes.shape == (split.n_customers,) and codes.min() >= 0
    assert codes.max() < len(encoder)


def test_invoice_context_follows_the_protocol(split):
    _, encoder = features.customer_countries(split)
    context = features.invoice_context(split, "validation", encoder)
    protocol = BasketProtocol.from_split(split, "validation")
    assert len(context) == protocol.n_invoices
    assert np.array_equal(context["customer"].to_numpy(), protocol.customers)
    assert context["hour"].between(0, features.N_HOURS - 1).all()
    assert context["weekday"].between(0, features.N_WEEKDAYS - 1).all()
    rows = features.row_context(split, encoder)
    assert len(rows) == int((split.train["customer"] >= 0).sum())
