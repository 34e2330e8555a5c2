"""The self-attention chapter's data (customer sequences, windows, contexts) and its network."""

import numpy as np
import pytest

from recsys_helpers.interactions import (
    START,
    customer_sequences,
    history_contexts,
    invoices_of,
    next_invoices,
    sequence_windows,
    step_windows,
)


@pytest.fixture(scope="module")
def sequences(split):
    return customer_sequences(split)


def _invoices_of_customer(train, code):
    return [train.items[train.indptr[g] : train.indptr[g + 1]].tolist() for g in np.flatnonzero(train.customers == code)]


def _joined(invoices, boundary):
    out = []
    for i, items in enumerate(invoices):
        out += ([boundary] if i else []) + items
    return out


def test_a_customer_sequence_is_their_invoices_in_time_order_with_boundaries(split, sequences):
    train = invoices_of(split, "train")
    for code in np.unique(train.customers[train.customers > 0])[:25]:
        s = sequences.of_customer[code]
        tokens = sequences.tokens[sequences.indptr[s] : sequences.indptr[s + 1]].tolist()
        assert tokens == _joined(_invoices_of_customer(train, code), sequences.boundary)
        assert sequences.customers[s] == code


def test_anonymous_invoices_stay_alone_and_every_purchase_is_kept_once(split, sequences):
    train = invoices_of(split, "train")
    anonymous = sequences.customers == 0
    assert anonymous.sum() == (train.customers == 0).sum()
    lengths = np.diff(sequences.indptr)[anonymous]
    assert sorted(lengths) == sorted(train.lengths[train.customers == 0])
    items = sequences.tokens[sequences.tokens != sequences.boundary]
    assert np.array_equal(np.sort(items), np.sort(train.items))
    alone = customer_sequences(split, history=False)
    assert np.array_equal(alone.tokens, train.items) and not (alone.of_customer >= 0).any()


def test_each_target_is_fresh_exactly_once_and_windows_know_their_source(sequences):
    X, Y, fresh, source = sequence_windows(sequences, context=16, stride=8)
    assert np.array_equal(np.sort(Y[fresh]), np.sort(sequences.tokens))
    inside = source >= 0
    assert np.array_equal(sequences.tokens[source[inside]], X[inside])
    assert (X[~inside] == START).all()


def test_a_boundary_points_at_the_next_invoice(split, sequences):
    train = invoices_of(split, "train")
    start, end = next_invoices(sequences)
    code = int(np.bincount(train.customers[train.customers > 0]).argmax())  # most invoices
    s = sequences.of_customer[code]
    invoices = _invoices_of_customer(train, code)
    boundaries = sequences.indptr[s] + np.flatnonzero(
        sequences.tokens[sequences.indptr[s] : sequences.indptr[s + 1]] == sequences.boundary
    )
    assert len(boundaries) == len(invoices) - 1 > 0
    for b, items in zip(boundaries, invoices[1:], strict=True):
        assert sequences.tokens[start[b] : end[b]].tolist() == items
    assert (start[sequences.tokens != sequences.boundary] == end[sequences.tokens != sequences.boundary]).all()


def _context_before(sequences, customer, invoice_items, step, context):
    """The reference: ``[0, history..., boundary]`` (or ``[0]``), then the invoice before ``step``."""
    s = sequences.of_customer[customer] if customer > 0 else -1
    prefix = [START]
    if s >= 0:
        prefix += sequences.tokens[sequences.indptr[s] : sequences.indptr[s + 1]].tolist() + [sequences.boundary]
    return (prefix[-context:] + invoice_items[:step])[-context:]


@pytest.mark.parametrize("context,stride", [(16, 8), (12, 12), (40, 4)])
def test_step_windows_hold_exactly_what_came_before_each_step(split, sequences, context, stride):
    validation = invoices_of(split, "validation")
    windows, window_of, column = step_windows(sequences, validation, context, stride)
    assert len(window_of) == validation.n_steps
    for g in range(0, len(validation), 7):
        items = validation.items[validation.indptr[g] : validation.indptr[g + 1]].tolist()
        for step in range(len(items)):
            i = validation.indptr[g] + step
            seen = windows[window_of[i], : column[i] + 1].tolist()
            expected = _context_before(sequences, validation.customers[g], items, step, context)
            assert seen == expected[-len(seen) :]  # the tokens just before, nothing after
            assert len(seen) >= min(len(expected), context - stride + 1)


def test_step_windows_without_history_see_the_invoice_alone(split, sequences):
    validation = invoices_of(split, "validation")
    windows, window_of, column = step_windows(sequences, validation, 16, 8, history=False)
    first = validation.indptr[:-1][validation.lengths > 0]
    assert (column[first] == 0).all() and (windows[window_of[first], 0] == START).all()


def test_history_contexts_end_at_a_boundary_after_the_history(split, sequences):
    codes = np.array([c for c in range(1, 40) if sequences.of_customer[c] >= 0])
    windows, column = history_contexts(sequences, codes, 24)
    for row, code in enumerate(codes):
        expected = _context_before(sequences, code, [], 0, 24)
        assert windows[row, : column[row] + 1].tolist() == expected
        assert windows[row, column[row]] == sequences.boundary
        assert (windows[row, column[row] + 1 :] == 0).all()


def test_the_network_is_causal():
    from recsys_helpers.models.attention import build_sasrec

    model = build_sasrec(n_tokens=30, context=12, dim=8, heads=2, blocks=2, dropout=0.0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 30, size=(3, 12)).astype("int32")
    changed = tokens.copy()
    changed[:, 7:] = rng.integers(1, 30, size=(3, 5))
    a, b = np.asarray(model(tokens)), np.asarray(model(changed))
    np.testing.assert_allclose(a[:, :7], b[:, :7], atol=1e-5)
    assert not np.allclose(a[:, 7:], b[:, 7:])
    np.testing.assert_allclose(np.asarray(model(tokens[:, :7])), a[:, :7], atol=1e-5)  # cut padding


def test_attention_weights_replay_the_network_and_are_causal():
    from recsys_helpers.models.attention import attention_weights, build_sasrec

    model = build_sasrec(n_tokens=30, context=12, dim=8, heads=2, blocks=2, dropout=0.0)
    tokens = np.random.default_rng(1).integers(1, 30, size=(2, 10)).astype("int32")
    weights = attention_weights(model, tokens)
    assert len(weights) == 2 and weights[0].shape == (2, 2, 10, 10)
    np.testing.assert_allclose(weights[1].sum(axis=-1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(weights[0], k=1), 0.0)


@pytest.fixture(scope="module")
def small_model(split):
    from recsys_helpers.models.attention import SASRec

    return SASRec(context=16, stride=8, dim=8, epochs=1, batch_size=32, progress=False).fit(split)


def test_next_items_never_repeat_an_item_of_the_invoice_so_far(split, small_model):
    validation = invoices_of(split, "validation")
    recs = small_model.next_items(validation, 5)
    for g in range(len(validation)):
        for i in range(validation.indptr[g], validation.indptr[g + 1]):
            assert not set(recs[i]) & set(validation.items[validation.indptr[g] : i].tolist())


def test_tune_bonuses_sets_the_best_weights_of_its_grids(split, small_model):
    from recsys_helpers.evaluation.basket import BasketProtocol
    from recsys_helpers.evaluation.next_item import NextItemProtocol
    from recsys_helpers.models.attention import both_protocols, tune_bonuses

    next_val = NextItemProtocol.from_split(split, "validation")
    basket_val = BasketProtocol.from_split(split, "validation")
    accuracy, precision = tune_bonuses(small_model, next_val, basket_val, weights=(0.0, 2.0), trends=(0.0, 0.5))
    assert small_model.boost == accuracy.idxmax()
    assert precision.loc[small_model.basket_boost, small_model.trend_boost] == precision.to_numpy().max()
    assert next_val.evaluate(small_model)["accuracy"] == pytest.approx(accuracy.max())
    assert basket_val.evaluate(small_model)["precision"] == pytest.approx(precision.to_numpy().max())
    row = both_protocols(next_val.evaluate(small_model), basket_val.evaluate(small_model))
    assert set(row) == {"accuracy", "mrr_at_5", "precision", "recall_at_5", "ndcg_at_5",
                        "precision_repeat", "precision_explore", "repeat_share"}


def test_the_defaults_are_the_chapters_model():
    from recsys_helpers.models.attention import SASREC, SASRec

    assert vars(SASRec()) == vars(SASRec(**SASREC))
