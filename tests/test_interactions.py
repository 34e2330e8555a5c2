"""Invoices as sequences and their training windows (``recsys_helpers.interactions``)."""

import numpy as np
import pytest

from recsys_helpers import interactions
from recsys_helpers.datasets.retail import LabelEncoder
from recsys_helpers.interactions import Invoices


def test_reserved_zero_encoding_matches_split_items_plus_one(split):
    encoder = LabelEncoder(reserve_zero=True).fit(split.items.classes_)
    codes = encoder.transform(split.validation["stockcode"])
    assert np.array_equal(codes, split.validation["item"].to_numpy() + 1)
    assert len(encoder) == split.n_items + 1
    assert encoder.transform(["no such item"])[0] == 0


def test_invoices_of_uses_sequence_codes(split):
    invoices = interactions.invoices_of(split, "validation")
    assert invoices.items.min() >= 1
    assert len(invoices) == len(split.indptr("validation")) - 1
    unknown = split.validation["customer"].to_numpy()[split.indptr("validation")[:-1]] < 0
    assert np.array_equal(invoices.customers == 0, unknown)
    packed = interactions.pack_items(invoices.items, invoices.indptr)
    assert [len(p) for p in packed] == list(invoices.lengths)


def test_previous_starts_every_invoice_with_zero():
    invoices = Invoices(
        np.array([5, 6, 7, 8, 9], np.int32), np.array([0, 3, 3, 5]), np.array([1, 0, 2])
    )
    assert invoices.previous().tolist() == [0, 5, 6, 0, 8]
    assert invoices.step_customers().tolist() == [1, 1, 1, 2, 2]
    taken = invoices.take([2, 0])
    assert taken.items.tolist() == [8, 9, 5, 6, 7] and taken.indptr.tolist() == [0, 2, 5]
    assert taken.customers.tolist() == [2, 1]


# The source chapter's worked examples for num_steps = 5.
@pytest.mark.parametrize(
    ("sequence", "X", "Y"),
    [
        ([1, 2, 3, 4, 5], [[0, 1, 2, 3, 4]], [[1, 2, 3, 4, 5]]),
        ([1, 2], [[0, 1, 2, 0, 0]], [[1, 2, 0, 0, 0]]),
        (
            [1, 2, 3, 4, 5, 6],
            [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]],
            [[1, 2, 3, 4, 5], [2, 3, 4, 5, 6]],
        ),
    ],
)
def test_windows_on_the_source_examples(sequence, X, Y):
    got_X, got_Y = interactions.make_windows(np.array(sequence), np.array([0, len(sequence)]), 5)
    assert got_X.tolist() == X and got_Y.tolist() == Y
    loop_X, loop_Y = interactions.windows_loop(sequence, 5)
    assert loop_X.tolist() == X and loop_Y.tolist() == Y


@pytest.mark.parametrize("num_steps", [1, 3, 5, 8])
def test_vectorised_windows_equal_the_loop(num_steps):
    rng = np.random.default_rng(num_steps)
    lengths = rng.integers(0, 14, size=30)
    items = rng.integers(1, 50, size=lengths.sum()).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    customers = np.arange(30)
    X, Y, U = interactions.make_windows(items, indptr, num_steps, customers=customers)
    loops = [
        interactions.windows_loop(items[a:b], num_steps)
        for a, b in zip(indptr[:-1], indptr[1:], strict=True)
    ]
    assert np.array_equal(X, np.concatenate([x for x, _ in loops]))
    assert np.array_equal(Y, np.concatenate([y for _, y in loops]))
    assert np.array_equal(U, np.repeat(customers, [len(x) for x, _ in loops]))


@pytest.mark.parametrize("stride", [2, 4, 5])
def test_strided_windows_cover_every_target(stride):
    rng = np.random.default_rng(stride)
    lengths = rng.integers(1, 20, size=25)
    items = rng.integers(1, 50, size=lengths.sum()).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    X, Y = interactions.make_windows(items, indptr, 5, stride=stride)
    full_X, full_Y = interactions.make_windows(items, indptr, 5)
    # every strided window is one of the overlapping windows, and every target is covered
    pairs = {(tuple(x), tuple(y)) for x, y in zip(full_X, full_Y, strict=True)}
    assert all((tuple(x), tuple(y)) in pairs for x, y in zip(X, Y, strict=True))
    assert (Y > 0).sum() >= lengths.sum()
    assert np.array_equal(np.unique(Y[Y > 0]), np.unique(items))
    assert np.all(X[:, 1:] == Y[:, :-1])


def test_windows_reject_empty_steps():
    with pytest.raises(ValueError, match="positive"):
        interactions.make_windows(np.array([1, 2]), np.array([0, 2]), 0)


def test_customer_history_uses_only_earlier_invoices(split):
    train = interactions.invoices_of(split, "train", history=500)
    seen: dict[int, set] = {}
    for t in range(len(train)):
        customer = int(train.customers[t])
        history = set(train.history_items[t][train.history_weights[t] > 0].tolist())
        assert history == (seen.get(customer, set()) if customer else set())
        if customer:
            seen.setdefault(customer, set()).update(
                train.items[train.indptr[t] : train.indptr[t + 1]].tolist()
            )
    validation = interactions.invoices_of(split, "validation", history=500)
    for t in range(len(validation)):
        customer = int(validation.customers[t])
        history = set(validation.history_items[t][validation.history_weights[t] > 0].tolist())
        assert history == (seen.get(customer, set()) if customer else set())


def test_purchase_counts_are_in_sequence_codes(split):
    counts = interactions.purchase_counts(split)
    assert counts.shape == (split.n_customers + 1, split.n_items + 1)
    assert not counts[0].any() and not counts[:, 0].any()  # unknown customers, the start code
    train = split.train[split.train["customer"] >= 0]
    pairs = train.groupby(["customer", "item"]).size()
    assert np.count_nonzero(counts) == len(pairs)
    for (customer, item), n in list(pairs.items())[:20]:
        assert counts[customer + 1, item + 1] == n


@pytest.mark.parametrize("num_steps,stride", [(5, 1), (32, 16), (8, 8), (6, 4)])
def test_every_purchase_is_a_fresh_target_exactly_once(num_steps, stride):
    rng = np.random.default_rng(num_steps)
    lengths = rng.integers(1, 60, 40)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, 50, indptr[-1]).astype(np.int32)
    X, Y = interactions.make_windows(items, indptr, num_steps, stride=stride)
    fresh = interactions.fresh_targets(indptr, num_steps, stride)
    assert fresh.shape == Y.shape
    assert fresh.sum() == len(items), "one fresh target per purchase"
    assert np.all(Y[fresh] > 0), "padding is never fresh"
    # the fresh targets, window by window, are the invoices' items in order
    assert np.array_equal(Y[fresh], items)
    # and each fresh target has at least as much context as any repeat of it
    if stride < num_steps:
        assert not fresh.all()


def test_packing_keeps_every_window_whole_and_fills_the_rows():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 9, size=200)
    windows = np.zeros((200, 8), dtype=np.int32)
    for w, n in enumerate(lengths):
        windows[w, :n] = 1000 * (w + 1) + np.arange(n)  # unique codes: window and position
    (packed,), starts = interactions.pack_windows([windows], lengths, 8, np.random.default_rng(0))
    assert packed.shape == starts.shape and packed.shape[1] == 8
    assert lengths.sum() / packed.size > 0.98, "best fit decreasing leaves rows nearly full"
    found = []
    for row, begin in zip(packed, starts, strict=True):
        bounds = [*np.flatnonzero(begin), int(np.count_nonzero(row))]
        assert bounds[0] == 0 and (row[bounds[-1] :] == 0).all(), "content first, then zeros"
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            w = row[a] // 1000 - 1
            assert row[a:b].tolist() == windows[w, : lengths[w]].tolist()
            found.append(w)
    assert sorted(found) == list(range(200)), "every window exactly once"
    (again,), _ = interactions.pack_windows([windows], lengths, 8, np.random.default_rng(1))
    assert not np.array_equal(again, packed), "a new packing for another draw"
    with pytest.raises(ValueError):
        interactions.pack_windows([windows], lengths + 8, 8, rng)
