"""What many models read from a split: positives, negatives, popularity, invoices as sequences.

Basket models start from the (customer, item) pairs of the training period, or from the customer x
item matrix they make; sequence models from ``Invoices``, a part of a split as one flat array of
*sequence codes* (the split's item code plus one, so that 0 is free to mean "start of the invoice"
and padding; customers likewise, 0 for anonymous and new customers) with an ``indptr``, cut into
fixed-length training windows by ``make_windows``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numba import njit

from .datasets.retail import Split

# ---------------------------------------------------------------------------------------------
# Basket models: positives, negatives, popularity


def training_pairs(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(customer, item) of every training row of a known customer, as ``int32`` arrays.

    One pair per invoice row, so an item bought often appears often (as in the source).
    """
    train = split.train[split.train["customer"] >= 0]
    return train["customer"].to_numpy("int32"), train["item"].to_numpy("int32")


def customer_item_matrix(split: Split, binary: bool = True) -> sp.csr_matrix:
    """The customers x items CSR matrix of the training period.

    With ``binary=True`` a cell is 1 if the customer ever bought the item; otherwise it counts the
    invoice rows with that item (a confidence in the sense of Hu et al.).
    """
    customers, items = training_pairs(split)
    matrix = sp.csr_matrix(
        (np.ones(len(customers), dtype=np.float32), (customers, items)),
        shape=(split.n_customers, split.n_items),
    )
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return matrix


def unique_pairs(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (customer, item) pairs of the training period, sorted by customer then item."""
    customers, items = training_pairs(split)
    codes = np.unique(customers.astype(np.int64) * split.n_items + items)
    return (codes // split.n_items).astype("int32"), (codes % split.n_items).astype("int32")


def sample_negatives(n_items: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random items: the usual cheap negatives (a few are in fact positives)."""
    return rng.integers(0, n_items, size=size, dtype=np.int64).astype("int32")


def item_popularity(split: Split) -> np.ndarray:
    """Training rows per item, scaled to [0, 1] (a tie-breaker for equal scores)."""
    counts = np.bincount(split.train["item"], minlength=split.n_items).astype(np.float64)
    return counts / max(counts.max(), 1.0)


def popular_items(train: pd.DataFrame, k: int = 5) -> np.ndarray:
    """The ``k`` items bought on most rows of the training period (the chapter's ``top``)."""
    return train["item"].value_counts().head(k).index.to_numpy().astype("int32")



# ---------------------------------------------------------------------------------------------
# Sequence models: invoices as sequences of codes


START = 0  # the reserved sequence code: start of an invoice, and padding


# ---------------------------------------------------------------------------------------------
# Invoices as sequences


@dataclass(frozen=True)
class Invoices:
    """Invoices of one part: invoice ``t`` bought ``items[indptr[t]:indptr[t+1]]`` in that order.

    ``items`` are sequence codes (split item + 1), ``customers`` one code per invoice (split
    customer + 1, 0 when unknown).
    """

    items: np.ndarray
    indptr: np.ndarray
    customers: np.ndarray
    history_items: np.ndarray | None = None  # (invoices, h): the customer's earlier items
    history_weights: np.ndarray | None = None  # (invoices, h): log(1 + times bought)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def n_steps(self) -> int:
        return int(self.indptr[-1])

    def previous(self) -> np.ndarray:
        """The model's input at every step: the previous item of the invoice, 0 at its start."""
        previous = np.empty_like(self.items)
        previous[1:] = self.items[:-1]
        previous[self.indptr[:-1][self.lengths > 0]] = START
        return previous

    def step_customers(self) -> np.ndarray:
        """The customer code of every step."""
        return np.repeat(self.customers, self.lengths)

    def take(self, invoices) -> Invoices:
        """A new ``Invoices`` with the chosen invoices, in the given order."""
        invoices = np.asarray(invoices, dtype=np.int64)
        starts, ends = self.indptr[invoices], self.indptr[invoices + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        rows = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        history = {}
        if self.history_items is not None:
            history = {
                "history_items": self.history_items[invoices],
                "history_weights": self.history_weights[invoices],
            }
        return Invoices(self.items[rows], indptr, self.customers[invoices], **history)


def invoices_of(split: Split, part: str, history: int = 0) -> Invoices:
    """The invoices of ``part`` in sequence codes (item + 1, customer + 1; 0 reserved).

    With ``history > 0`` each invoice also gets its customer's ``history`` most bought items
    from *earlier* training invoices (see ``customer_history``).
    """
    frame = split.part(part)
    indptr = split.indptr(part).astype(np.int64)
    customers = frame["customer"].to_numpy()[indptr[:-1]].astype(np.int32) + 1
    invoices = Invoices(frame["item"].to_numpy().astype(np.int32) + 1, indptr, customers)
    if not history:
        return invoices
    items, weights = customer_history(split, part, history)
    return Invoices(invoices.items, indptr, customers, items, weights)


def customer_history(split: Split, part: str, size: int = 64):
    """Each invoice's customer history: the ``size`` items bought most before the invoice.

    For a training invoice only the customer's *earlier* training invoices count (so the items
    to be predicted never leak into the history); for validation and test invoices the whole
    training period counts. Unknown customers have an empty history. Returns item codes and
    weights ``log(1 + times bought)``, both ``(invoices, size)``, padded with 0.
    """
    train = invoices_of(split, "train")
    target = train if part == "train" else invoices_of(split, part)
    counters: dict[int, Counter] = {}
    items = np.zeros((len(target), size), dtype=np.int32)
    weights = np.zeros((len(target), size), dtype=np.float32)

    def fill(row, counter):
        top = counter.most_common(size)
        if top:
            codes, counts = zip(*top, strict=True)
            items[row, : len(top)] = codes
            weights[row, : len(top)] = np.log1p(counts)

    for t in range(len(train)):
        customer = int(train.customers[t])
        if customer == 0:
            continue
        counter = counters.setdefault(customer, Counter())
        if part == "train":
            fill(t, counter)
        counter.update(train.items[train.indptr[t] : train.indptr[t + 1]].tolist())
    if part != "train":
        for t, customer in enumerate(target.customers):
            if customer in counters:
                fill(t, counters[int(customer)])
    return items, weights


def pack_items(items, indptr) -> list[np.ndarray]:
    """One array per invoice (views into ``items``): what the source's ``pack_items`` builds."""
    return np.split(np.asarray(items), np.asarray(indptr)[1:-1])


# ---------------------------------------------------------------------------------------------
# Fixed-length training windows


def make_windows(items, indptr, num_steps: int, stride: int = 1, customers=None):
    """Inputs ``X`` and next-item targets ``Y`` in windows of ``num_steps``, for every invoice.

    Each invoice ``s`` becomes the padded sequence ``[0, s..., 0...]``: one 0 in front (the start
    of the invoice) and, if it is shorter than ``num_steps + 1``, zeros behind. Windows of
    ``num_steps + 1`` consecutive codes start at offsets ``0, stride, 2 * stride, ...`` (the last
    one is moved back to end with the invoice, so no item is lost); ``X`` is a window without its
    last code and ``Y`` without its first, so ``Y[:, i]`` is the item that follows ``X[:, i]``.
    ``stride=1`` gives the source chapter's overlapping windows, ``stride=num_steps`` windows
    that share nothing but one code. Target 0 marks padding (to be masked in the loss).

    Returns ``X, Y`` (int32, ``(n_windows, num_steps)``), and ``U`` (the customer code of each
    window) when ``customers`` (one code per invoice) is given.
    """
    items = np.asarray(items, dtype=np.int32)
    indptr = np.asarray(indptr, dtype=np.int64)
    offsets, invoice, starts = _window_layout(indptr, num_steps, stride)
    lengths = np.diff(indptr)
    flat = np.zeros(offsets[-1], dtype=np.int32)
    rows = np.repeat(offsets[:-1] + 1 - indptr[:-1], lengths) + np.arange(indptr[-1])
    flat[rows] = items
    window = flat[starts[:, None] + np.arange(num_steps + 1)]
    X, Y = window[:, :-1], window[:, 1:]
    if customers is None:
        return X, Y
    return X, Y, np.asarray(customers, dtype=np.int32)[invoice]


def _window_layout(indptr: np.ndarray, num_steps: int, stride: int):
    """Where ``make_windows`` puts its windows: the offset of each invoice's padded sequence in
    one flat array, and the invoice and flat start of every window."""
    if num_steps < 1 or stride < 1:
        raise ValueError("num_steps and stride must be positive")
    lengths = np.diff(indptr)
    padded = np.maximum(lengths + 1, num_steps + 1)  # length of [0, s..., 0...]
    offsets = np.concatenate([[0], np.cumsum(padded)])
    last_start = padded - num_steps - 1  # >= 0
    per_invoice = -(-last_start // stride) + 1  # ceil(last_start / stride) + 1 windows
    invoice = np.repeat(np.arange(len(lengths)), per_invoice)
    first = np.concatenate([[0], np.cumsum(per_invoice)])[:-1]
    rank = np.arange(per_invoice.sum()) - np.repeat(first, per_invoice)
    starts = offsets[invoice] + np.minimum(rank * stride, last_start[invoice])
    return offsets, invoice, starts


def fresh_targets(indptr, num_steps: int, stride: int = 1) -> np.ndarray:
    """Which targets of ``make_windows`` are predicted there for the first time: ``(n_windows,
    num_steps)`` booleans.

    Overlapping windows predict most purchases more than once: with windows of 32 every 16, the
    first half of a window repeats the second half of the one before, with less context. A
    target is *fresh* in the first window of its invoice that holds it (the one that sees most of
    the invoice before it); padding is never fresh. Every purchase is fresh exactly once.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    offsets, invoice, starts = _window_layout(indptr, num_steps, stride)
    target = starts[:, None] + 1 + np.arange(num_steps)  # flat position of each target
    ends = offsets[invoice] + 1 + np.diff(indptr)[invoice]  # one past the invoice's last item
    covered = np.full(len(starts), -1, dtype=np.int64)  # last target of the window before
    same = np.r_[False, invoice[1:] == invoice[:-1]]
    covered[1:] = np.where(same[1:], starts[:-1] + num_steps, -1)
    return (target > covered[:, None]) & (target < ends[:, None])


def pack_windows(arrays, lengths, num_steps: int, rng: np.random.Generator):
    """Windows packed end to end into rows of ``num_steps`` positions, in a new order each call.

    ``arrays`` are ``(n_windows, num_steps)`` arrays whose window ``w`` holds its content in its
    first ``lengths[w]`` positions (``make_windows``' left-aligned windows; 1 <= length <=
    ``num_steps``). The windows are shuffled, ordered from the longest to the shortest (ties stay
    shuffled) and each put in the row with the least room that still fits it (best fit
    decreasing; a new row when none does), so that rows hold several short windows instead of
    their padding. Returns the packed arrays (zeros where a row is not filled) and ``starts``,
    ``(n_rows, num_steps)`` booleans, true where a window begins: a recurrent network must start
    from a zero state there (``lstm.reset_lstm``).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and (lengths.min() < 1 or lengths.max() > num_steps):
        raise ValueError("every window holds 1 to num_steps positions")
    order = rng.permutation(len(lengths))
    order = order[np.argsort(-lengths[order], kind="stable")]
    row, offset, n_rows = _best_fit(lengths[order], num_steps)
    source = ranges(order * num_steps, lengths[order])
    target = ranges(row * num_steps + offset, lengths[order])
    packed = []
    for array in arrays:
        flat = np.zeros(n_rows * num_steps, dtype=array.dtype)
        flat[target] = np.asarray(array).reshape(-1)[source]
        packed.append(flat.reshape(n_rows, num_steps))
    starts = np.zeros(n_rows * num_steps, dtype=bool)
    starts[row * num_steps + offset] = True
    return packed, starts.reshape(n_rows, num_steps)


@njit(cache=True)
def _best_fit(lengths, capacity):
    """Row and offset of each length, placed in this order into the fullest row it fits."""
    n = len(lengths)
    rows_with_room = np.empty((capacity + 1, n), dtype=np.int64)  # a stack of rows per room left
    count = np.zeros(capacity + 1, dtype=np.int64)
    row = np.empty(n, dtype=np.int64)
    offset = np.empty(n, dtype=np.int64)
    n_rows = 0
    for w in range(n):
        size = lengths[w]
        room = capacity + 1
        for r in range(size, capacity + 1):
            if count[r] > 0:
                room = r
                break
        if room > capacity:  # no row has room: open one
            r_id, room = n_rows, capacity
            n_rows += 1
        else:
            count[room] -= 1
            r_id = rows_with_room[room, count[room]]
        row[w], offset[w] = r_id, capacity - room
        left = room - size
        rows_with_room[left, count[left]] = r_id
        count[left] += 1
    return row, offset, n_rows


def windows_loop(sequence, num_steps: int):
    """The source chapter's windows for one invoice, written as a plain loop (the reference)."""
    data = [START, *sequence]
    data += [START] * max(0, num_steps + 1 - len(data))
    X = [data[i - num_steps : i] for i in range(num_steps, len(data))]
    Y = [data[i - num_steps + 1 : i + 1] for i in range(num_steps, len(data))]
    return np.array(X, dtype=np.int32), np.array(Y, dtype=np.int32)


def purchase_counts(split: Split) -> np.ndarray:
    """``(customer codes, item codes)`` counts of training rows, in sequence codes (row and
    column 0, unknown customers and the start symbol, are zeros)."""
    counts = customer_item_matrix(split, binary=False)
    out = np.zeros((counts.shape[0] + 1, counts.shape[1] + 1), dtype=np.float32)
    out[1:, 1:] = counts.toarray()
    return out


# ---------------------------------------------------------------------------------------------
# Customers' whole histories as token sequences (the self-attention chapter)


@dataclass(frozen=True)
class CustomerSequences:
    """Training invoices joined per customer: sequence ``s`` is ``tokens[indptr[s]:indptr[s+1]]``.

    Tokens are sequence codes (item + 1) and ``boundary`` (``n_items + 1``) between two invoices
    of the same customer, in time order. Each anonymous invoice is a sequence of its own.
    ``customers`` holds each sequence's customer code (0: anonymous); ``of_customer[c]`` is the
    sequence of customer code ``c`` (-1: none).
    """

    tokens: np.ndarray
    indptr: np.ndarray
    customers: np.ndarray
    boundary: int
    of_customer: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1


def customer_sequences(split: Split, history: bool = True) -> CustomerSequences:
    """The training period as ``CustomerSequences``; ``history=False`` keeps every invoice on its
    own (what the LSTMs read), for the ablation."""
    train = invoices_of(split, "train")
    boundary = split.n_items + 1
    lengths = train.lengths
    customers = train.customers.astype(np.int32)
    if history:
        known = np.flatnonzero(customers > 0)
        known = known[np.argsort(customers[known], kind="stable")]  # by customer, in time order
        order = np.concatenate([known, np.flatnonzero(customers == 0)])
    else:
        order = np.arange(len(train))
    ordered = customers[order]
    # a boundary follows an invoice when the next one in this order has the same known customer
    follows = np.zeros(len(order), dtype=bool)
    if history:
        follows[:-1] = (ordered[1:] == ordered[:-1]) & (ordered[:-1] > 0)
    size = lengths[order] + follows
    offsets = np.concatenate([[0], np.cumsum(size)]).astype(np.int64)
    tokens = np.zeros(offsets[-1], dtype=np.int32)
    starts = train.indptr[order]
    tokens[ranges(offsets[:-1], lengths[order])] = train.items[ranges(starts, lengths[order])]
    tokens[offsets[1:][follows] - 1] = boundary
    # a new sequence starts wherever the previous invoice is not followed by a boundary
    first = np.flatnonzero(np.r_[True, ~follows[:-1]])
    indptr = np.concatenate([offsets[first], [offsets[-1]]]).astype(np.int64)
    seq_customers = ordered[first]
    of_customer = np.full(split.n_customers + 1, -1, dtype=np.int64)
    if history:
        has = seq_customers > 0
        of_customer[seq_customers[has]] = np.flatnonzero(has)
    return CustomerSequences(tokens, indptr, seq_customers, boundary, of_customer)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concat(arange(s, s + n))`` over pairs, vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    firsts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.repeat(np.asarray(starts, dtype=np.int64) - firsts, lengths) + np.arange(total)


def sequence_windows(sequences: CustomerSequences, context: int, stride: int):
    """Training windows of the customer sequences (``make_windows``) and where they come from.

    Returns ``X, Y`` (``(windows, context)``), ``fresh`` (``fresh_targets``: each target once)
    and ``source``: the index in ``sequences.tokens`` of every input token (-1 for the start
    code and padding), so that a boundary's next invoice can be found.
    """
    X, Y = make_windows(sequences.tokens, sequences.indptr, context, stride)
    fresh = fresh_targets(sequences.indptr, context, stride)
    offsets, invoice, starts = _window_layout(sequences.indptr, context, stride)
    padded = starts[:, None] + np.arange(context)  # position in the padded layout
    within = padded - offsets[invoice][:, None] - 1  # index in the sequence (-1: its start code)
    length = np.diff(sequences.indptr)[invoice][:, None]
    source = np.where((within >= 0) & (within < length), sequences.indptr[invoice][:, None] + within, -1)
    return X, Y, fresh, source


def next_invoices(sequences: CustomerSequences) -> tuple[np.ndarray, np.ndarray]:
    """For every token, the start and end (in ``tokens``) of the invoice after it, when it is a
    boundary (else ``start == end``): the basket target of that position."""
    n = len(sequences.tokens)
    is_boundary = sequences.tokens == sequences.boundary
    # the end of the invoice after each boundary: the next boundary or the end of the sequence
    stops = np.zeros(n + 1, dtype=bool)
    stops[np.flatnonzero(is_boundary)] = True
    stops[sequences.indptr[1:]] = True  # the end of every sequence
    positions = np.flatnonzero(stops)
    start = np.arange(n) + 1
    end = np.where(is_boundary, positions[np.searchsorted(positions, start)], start)
    return start, end


def _sequence_of(sequences: CustomerSequences, customers):
    """Whether each customer code has a sequence, and its start and length in ``tokens``."""
    seq = sequences.of_customer[np.asarray(customers, dtype=np.int64)]
    has = seq >= 0
    start = np.where(has, sequences.indptr[np.maximum(seq, 0)], 0)
    length = np.where(has, sequences.indptr[np.maximum(seq, 0) + 1] - start, 0)
    return has, start, length


def _tail_tokens(sequences, customers, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat tokens of the last ``keep[i]`` codes of ``[0, sequence of customers[i]..., boundary]``
    (``[0]`` alone for customers without a sequence); returns the tokens and each part's length."""
    has, start, length = _sequence_of(sequences, customers)
    full = np.where(has, length + 2, 1)  # [0, tokens..., boundary] or [0]
    keep = np.minimum(keep, full)
    parts = len(full)
    offsets = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
    local = ranges(full - keep, keep)  # index within [0, tokens..., boundary]
    owner = np.repeat(np.arange(parts), keep)
    out = np.zeros(offsets[-1], dtype=np.int32)
    inside = (local >= 1) & (local <= length[owner])
    out[inside] = sequences.tokens[start[owner][inside] + local[inside] - 1]
    out[has[owner] & (local == length[owner] + 1)] = sequences.boundary
    return out, keep


def history_contexts(sequences: CustomerSequences, customers, context: int):
    """The basket protocol's contexts: for each customer code, the last ``context`` tokens of
    ``[0, history..., boundary]`` as a right-padded ``(n, context)`` array, and the column of the
    boundary (where the next invoice is predicted)."""
    customers = np.asarray(customers, dtype=np.int64)
    tokens, keep = _tail_tokens(sequences, customers, np.full(len(customers), context))
    windows = np.zeros((len(customers), context), dtype=np.int32)
    rows = np.repeat(np.arange(len(customers)), keep)
    windows[rows, ranges(np.zeros(len(keep), np.int64), keep)] = tokens
    return windows, keep - 1


def step_windows(sequences: CustomerSequences, invoices: Invoices, context: int, stride: int, history: bool = True):
    """The next-item protocol's contexts: before each step of ``invoices``, the customer's
    history, a boundary and the invoice so far (``[0]`` and the invoice so far for anonymous
    customers, or with ``history=False``).

    The steps of an invoice are scored in chunks of ``stride``: one window of at most
    ``context`` tokens per chunk, ending just before the chunk's last step, read at the column
    before each of its steps (the network is causal, so each step sees exactly the tokens before
    it, at least ``context - stride`` of them when there are that many). Returns ``windows``
    ``(n_windows, context)`` right-padded, and for every step its window and column.
    """
    if stride > context:
        raise ValueError("stride must not exceed context")
    lengths = invoices.lengths.astype(np.int64)
    customers = invoices.customers if history else np.zeros(len(invoices), dtype=np.int64)
    prefix, p = _tail_tokens(sequences, customers, np.full(len(invoices), context))
    # the sequence of invoice g: its prefix, then its items
    m = p + lengths
    offsets = np.concatenate([[0], np.cumsum(m)]).astype(np.int64)
    flat = np.zeros(offsets[-1], dtype=np.int32)
    flat[ranges(offsets[:-1], p)] = prefix
    flat[ranges(offsets[:-1] + p, lengths)] = invoices.items
    # chunks of ``stride`` steps per invoice
    chunks = -(-lengths // stride)
    owner = np.repeat(np.arange(len(invoices)), chunks)
    rank = ranges(np.zeros(len(chunks), np.int64), chunks)
    last = np.minimum((rank + 1) * stride, lengths[owner]) - 1 + p[owner]  # last target position
    window_start = np.maximum(0, last - context)
    width = last - window_start
    cols = np.arange(context)[None, :]
    index = offsets[owner][:, None] + window_start[:, None] + cols
    windows = np.where(cols < width[:, None], flat[np.minimum(index, len(flat) - 1)], 0).astype(np.int32)
    # every step: its chunk and column
    step = ranges(np.zeros(len(lengths), np.int64), lengths)
    step_owner = np.repeat(np.arange(len(invoices)), lengths)
    first_chunk = np.concatenate([[0], np.cumsum(chunks)[:-1]])
    window_of = first_chunk[step_owner] + step // stride
    column = p[step_owner] + step - 1 - window_start[window_of]
    return windows, window_of, column
