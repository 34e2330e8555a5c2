"""Next items from a trained LSTM network (``lstm.build_lstm``): exact, batched, and the loops
it replaces.

* ``lstm_inputs``: the networks' input dictionary;
* ``predict_next_items``: exact batched prediction of every step of every invoice, and
  ``predict_stepwise``, the one-call-per-purchase loop it replaces (kept as the reference), on
  ``step_model``, the network with its LSTM states as inputs and outputs;
* ``predict_from_previous_only``: the source's evaluation (its state bug), kept to measure it;
* ``drop_bought`` and ``history_boost``: the recommendation policies the chapters add on top.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf
from numba import njit
from tqdm.auto import tqdm

from ..datasets.retail import Split
from ..interactions import START, Invoices, purchase_counts


def lstm_inputs(X, U=None, history=None) -> dict:
    """The input dictionary of ``build_lstm``'s models (customers repeated along the steps).

    ``history`` is ``(items, weights)``, one row per row of ``X``.
    """
    X = np.asarray(X, dtype=np.int32)
    inputs = {"items": X}
    if U is not None:
        inputs["customers"] = np.repeat(np.asarray(U, dtype=np.int32)[:, None], X.shape[1], axis=1)
    if history is not None:
        inputs["history_items"] = np.asarray(history[0], dtype=np.int32)
        inputs["history_weights"] = np.asarray(history[1], dtype=np.float32)
    return inputs


def uses_customers(model) -> bool:
    return "customers" in model.input


def uses_history(model) -> bool:
    return "history_items" in model.input


def _invoice_inputs(model, X, invoices: Invoices, rows) -> dict:
    """Inputs for ``X``, row ``r`` of which belongs to invoice ``rows[r]``."""
    U = invoices.customers[rows] if uses_customers(model) else None
    history = None
    if uses_history(model):
        if invoices.history_items is None:
            raise ValueError("the model reads customer histories: use invoices_of(..., history=h)")
        history = (invoices.history_items[rows], invoices.history_weights[rows])
    return lstm_inputs(X, U, history)


def length_batches(lengths, max_tokens: int = 32768, max_invoices: int = 512) -> list[np.ndarray]:
    """Invoices sorted by length and cut into batches of at most ``max_tokens`` padded steps."""
    order = np.argsort(lengths, kind="stable")
    batches, current = [], []
    for invoice in order:
        longest = max(lengths[invoice], 1)
        if current and (len(current) + 1) * longest > max_tokens or len(current) == max_invoices:
            batches.append(np.array(current))
            current = []
        current.append(invoice)
    if current:
        batches.append(np.array(current))
    return batches


_TOP_K_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _top_k_function(model, k: int, allow_start: bool = False):
    """A compiled ``(inputs, added=None) -> top-k item codes`` for ``model`` (traced once per
    model, k and ``allow_start``).

    ``added`` (optional, ``(batch, n_items)``) is added to the logits at every step of a sequence
    (see ``predict_next_items``). Code 0 (start and padding) is never recommended unless
    ``allow_start`` (the source ranks it with the items).
    """
    cached = _TOP_K_FUNCTIONS.setdefault(model, {})
    if (k, allow_start) in cached:
        return cached[k, allow_start]
    n_items = model.output.shape[-1]
    never = tf.one_hot(START, n_items, on_value=0.0 if allow_start else -np.inf, off_value=0.0)
    spec = tf.TensorSpec((None, None), tf.int32)
    signature = {"items": spec}
    if uses_customers(model):
        signature["customers"] = spec
    if uses_history(model):
        signature["history_items"] = spec
        signature["history_weights"] = tf.TensorSpec((None, None), tf.float32)

    nothing = np.zeros((1, n_items), dtype=np.float32)

    @tf.function(input_signature=[signature, tf.TensorSpec((None, n_items), tf.float32)])
    def compiled(inputs, added):
        logits = model(inputs, training=False) + added[:, None, :]
        return tf.math.top_k(logits + never, k=k).indices

    def top_k(inputs, added=None):
        return compiled(inputs, nothing if added is None else np.asarray(added, dtype=np.float32))

    cached[k, allow_start] = top_k
    return top_k


def predict_next_items(
    model,
    invoices: Invoices,
    k: int = 5,
    max_tokens: int = 32768,
    progress: bool = False,
    bias: np.ndarray | None = None,
    allow_start: bool = False,
):
    """Top-k next items at every step of every invoice, in batches: ``(invoices.n_steps, k)``.

    Each invoice is fed whole as ``[0, s_1, ..., s_{n-1}]``; because the model is causal, its
    output at step ``t`` sees exactly the items bought before step ``t``, which is what the
    one-step-at-a-time loop computes. Invoices are sorted by length and padded on the right to
    the longest in their batch, so little work is spent on padding.

    ``bias`` (``(customer codes, n_items)``, optional) is added to the logits of every step of an
    invoice, by the invoice's customer code (see ``history_boost``). ``allow_start`` lets code 0
    compete with the items, as in the source.
    """
    top_k = _top_k_function(model, k, allow_start)
    previous = invoices.previous()
    lengths = invoices.lengths
    out = np.zeros((invoices.n_steps, k), dtype=np.int32)
    for batch in tqdm(length_batches(lengths, max_tokens), disable=not progress, desc="predict"):
        width = max(int(lengths[batch].max()), 1)
        X = np.zeros((len(batch), width), dtype=np.int32)
        position = np.arange(width)[None, :] < lengths[batch][:, None]
        starts = invoices.indptr[batch]
        rows = (starts[:, None] + np.arange(width)[None, :])[position]
        X[position] = previous[rows]
        added = None if bias is None else bias[invoices.customers[batch]]
        out[rows] = np.asarray(top_k(_invoice_inputs(model, X, invoices, batch), added))[position]
    return out


def history_boost(split: Split, weight: float = 1.0) -> np.ndarray:
    """``weight * log(1 + n)`` per customer code and item code: ``n`` counts how often the
    customer bought the item in the training period (row 0, unknown customers, is all zeros).

    Passed as ``bias`` to ``predict_next_items`` (``LSTMRecommender(boost=weight)`` does), it
    raises the items a known customer bought before, by a weight tuned on validation.
    """
    return weight * np.log1p(purchase_counts(split))


def predict_from_previous_only(
    model, invoices: Invoices, k: int = 5, batch_size: int = 4096, allow_start: bool = False
):
    """Top-k next items from the previous item alone, starting every step from the zero state.

    This is what the source's ``generate_prediction`` computes: it builds its feed dictionary
    with the zero state once per invoice and never feeds the returned state back, so every step
    sees only the previous item. Kept to measure what that bug costs; with ``allow_start`` code
    0 competes with the items, as in the source's ``argpartition`` over all logits.
    """
    top_k = _top_k_function(model, k, allow_start)
    previous = invoices.previous()[:, None]
    invoice_of_step = np.repeat(np.arange(len(invoices)), invoices.lengths)
    out = np.zeros((invoices.n_steps, k), dtype=np.int32)
    for start in range(0, invoices.n_steps, batch_size):
        rows = slice(start, start + batch_size)
        inputs = _invoice_inputs(model, previous[rows], invoices, invoice_of_step[rows])
        out[rows] = np.asarray(top_k(inputs))[:, 0]
    return out


def step_model(model, steps: int | None = 1):
    """A model that takes and returns the LSTM states explicitly (one step at a time by default).

    It shares every layer (and so every weight) with ``model``: inputs ``items`` (batch, steps)
    [, ``customers``] and ``h_i``, ``c_i`` per LSTM layer; outputs the logits ``(batch, steps,
    n_items)`` and the final states, which the caller feeds back next time (``steps=None``
    takes windows of any length: the source's state carrying in training). Dropout layers are
    left out.
    """
    names = [layer.name for layer in model.layers]
    n_layers = sum(name.startswith("lstm_") for name in names)
    hidden = model.get_layer("lstm_0").units
    items = keras.Input((steps,), dtype="int32", name="items")
    inputs = {"items": items}
    x = model.get_layer("item_embedding")(items)
    if "customer_embedding" in names:
        customers = keras.Input((steps,), dtype="int32", name="customers")
        inputs["customers"] = customers
        u = model.get_layer("customer_embedding")(customers)
        x = model.get_layer("concat")([u, x])
    states = []
    for layer in range(n_layers):
        h = keras.Input((hidden,), name=f"h_{layer}")
        c = keras.Input((hidden,), name=f"c_{layer}")
        inputs[f"h_{layer}"], inputs[f"c_{layer}"] = h, c
        x, h_new, c_new = model.get_layer(f"lstm_{layer}")(x, initial_state=[h, c])
        states += [h_new, c_new]
    if "concat_output" in names:
        x = model.get_layer("concat_output")([x, u])
    logits = model.get_layer("logits")(x)
    if "history_bias" in names:
        history_items = keras.Input((None,), dtype="int32", name="history_items")
        history_weights = keras.Input((None,), dtype="float32", name="history_weights")
        inputs["history_items"], inputs["history_weights"] = history_items, history_weights
        logits = model.get_layer("history_bias")([logits, history_items, history_weights])
    return keras.Model(inputs, [logits, *states], name="step")


def predict_stepwise(model, invoices: Invoices, k: int = 5, progress: bool = False) -> np.ndarray:
    """The reference loop: one model call per purchase, carrying the LSTM state along.

    This is the source chapter's ``generate_prediction`` with its state bug fixed (the state
    returned by each step is fed into the next one). It is slow by design: use it to check
    ``predict_next_items`` and to time it.
    """
    stepper = step_model(model)
    n_layers = (len(stepper.outputs) - 1) // 2
    hidden = model.get_layer("lstm_0").units
    out = np.zeros((invoices.n_steps, k), dtype=np.int32)
    previous = invoices.previous()
    for g in tqdm(range(len(invoices)), disable=not progress, desc="step by step"):
        states = [np.zeros((1, hidden), dtype=np.float32) for _ in range(2 * n_layers)]
        for i in range(invoices.indptr[g], invoices.indptr[g + 1]):
            inputs = _invoice_inputs(model, np.array([[previous[i]]]), invoices, np.array([g]))
            for layer in range(n_layers):
                inputs[f"h_{layer}"], inputs[f"c_{layer}"] = (
                    states[2 * layer],
                    states[2 * layer + 1],
                )
            logits, *states = stepper(inputs, training=False)
            logits = np.asarray(logits).reshape(-1).copy()
            states = [np.asarray(s) for s in states]
            logits[START] = -np.inf
            top = np.argpartition(-logits, k)[:k]
            out[i] = top[np.argsort(-logits[top], kind="stable")]
    return out


@njit(cache=True)
def _drop_bought(candidates, items, indptr, k):
    out = np.zeros((candidates.shape[0], k), dtype=np.int32)
    for g in range(len(indptr) - 1):
        start = indptr[g]
        for i in range(start, indptr[g + 1]):
            j = 0
            for item in candidates[i]:
                seen = False
                for b in range(start, i):
                    if items[b] == item:
                        seen = True
                        break
                if not seen:
                    out[i, j] = item
                    j += 1
                    if j == k:
                        break
    return out


def drop_bought(candidates, invoices: Invoices, k: int = 5) -> np.ndarray:
    """The first ``k`` candidates of each step that were not bought earlier in the same invoice.

    ``candidates`` is ``(n_steps, m)`` with ``m > k`` best first; rows with fewer than ``k``
    candidates left are filled with 0.
    """
    candidates = np.ascontiguousarray(candidates, dtype=np.int32)
    return _drop_bought(candidates, invoices.items, invoices.indptr, k)
