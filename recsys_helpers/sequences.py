"""The next-item scenario: invoices as sequences, fixed-length windows, LSTM models, batched prediction.

After each purchase in an invoice we recommend ``k`` items for the next one; a step is a hit when
the next item is among them (top-k accuracy). Items are *sequence codes*: the split's item code
plus one, so that 0 is free to mean "start of the invoice" (and padding). Customers are coded the
same way: the split's customer index plus one, 0 for anonymous and new customers.

Everything the chapters need lives here:

* ``Invoices`` / ``invoices_of``: one part of a split as a flat item array with ``indptr``;
* ``make_windows``: the source's fixed-length windows with left/right padding, vectorised;
* ``PopularityWithRemoval``: the baseline of the source chapter;
* ``build_lstm``: embedding -> stacked LSTM -> dense logits, with an optional customer embedding;
* ``predict_next_items``: exact batched prediction of every step of every invoice, and
  ``predict_stepwise``, the one-call-per-purchase loop it replaces (kept as the reference);
* ``NextItemProtocol``: the evaluation, built once from a part of a split.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from numba import njit

from . import metrics
from .data import Split

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
    from collections import Counter

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
    if num_steps < 1 or stride < 1:
        raise ValueError("num_steps and stride must be positive")
    lengths = np.diff(indptr)
    padded = np.maximum(lengths + 1, num_steps + 1)  # length of [0, s..., 0...]
    offsets = np.concatenate([[0], np.cumsum(padded)])
    flat = np.zeros(offsets[-1], dtype=np.int32)
    rows = np.repeat(offsets[:-1] + 1 - indptr[:-1], lengths) + np.arange(indptr[-1])
    flat[rows] = items
    last_start = padded - num_steps - 1  # >= 0
    per_invoice = -(-last_start // stride) + 1  # ceil(last_start / stride) + 1 windows
    invoice = np.repeat(np.arange(len(lengths)), per_invoice)
    first = np.concatenate([[0], np.cumsum(per_invoice)])[:-1]
    rank = np.arange(per_invoice.sum()) - np.repeat(first, per_invoice)
    starts = offsets[invoice] + np.minimum(rank * stride, last_start[invoice])
    window = flat[starts[:, None] + np.arange(num_steps + 1)]
    X, Y = window[:, :-1], window[:, 1:]
    if customers is None:
        return X, Y
    return X, Y, np.asarray(customers, dtype=np.int32)[invoice]


def windows_loop(sequence, num_steps: int):
    """The source chapter's windows for one invoice, written as a plain loop (the reference)."""
    data = [START, *sequence]
    data += [START] * max(0, num_steps + 1 - len(data))
    X = [data[i - num_steps : i] for i in range(num_steps, len(data))]
    Y = [data[i - num_steps + 1 : i + 1] for i in range(num_steps, len(data))]
    return np.array(X, dtype=np.int32), np.array(Y, dtype=np.int32)


# ---------------------------------------------------------------------------------------------
# The popularity baseline with removal


@njit(cache=True)
def _popular_not_bought(ranking, items, indptr, k, n_codes):
    out = np.zeros((indptr[-1], k), dtype=np.int32)
    bought = np.zeros(n_codes, dtype=np.bool_)
    for g in range(len(indptr) - 1):
        for i in range(indptr[g], indptr[g + 1]):
            j = 0
            for item in ranking:
                if not bought[item]:
                    out[i, j] = item
                    j += 1
                    if j == k:
                        break
            bought[items[i]] = True
        for i in range(indptr[g], indptr[g + 1]):
            bought[items[i]] = False
    return out


class PopularityWithRemoval:
    """The most bought training items, minus those already bought in the current invoice.

    Ties in the training counts are broken by first appearance in the training data, as the
    source's ``Counter.most_common`` does.
    """

    def fit(self, split: Split) -> PopularityWithRemoval:
        train = invoices_of(split, "train").items
        codes, first = np.unique(train, return_index=True)
        counts = np.bincount(train, minlength=split.n_items + 1)[codes]
        order = np.lexsort((first, -counts))
        self.ranking_ = codes[order].astype(np.int32)
        self.n_codes_ = split.n_items + 1
        return self

    def next_items(self, invoices: Invoices, k: int = 5) -> np.ndarray:
        return _popular_not_bought(self.ranking_, invoices.items, invoices.indptr, k, self.n_codes_)


# ---------------------------------------------------------------------------------------------
# Keras models


def _history_bias_layer():
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="recsys_helpers")
    class HistoryBias(keras.layers.Layer):
        """Adds ``scale[i] * weight`` to the logit of every history item ``i``, at every step."""

        def __init__(self, n_items: int, **kwargs):
            super().__init__(**kwargs)
            self.n_items = n_items

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(self.n_items,), initializer="ones", name="scale")

        def call(self, inputs):
            logits, items, weights = inputs
            batch, size = tf.shape(items)[0], tf.shape(items)[1]
            rows = tf.repeat(tf.range(batch), size)
            index = tf.stack([rows, tf.reshape(tf.cast(items, tf.int32), [-1])], axis=1)
            values = tf.reshape(tf.cast(weights, logits.dtype), [-1])
            dense = tf.scatter_nd(index, values, tf.stack([batch, self.n_items]))
            return logits + (dense * self.scale)[:, None, :]

        def compute_output_shape(self, input_shapes):
            return input_shapes[0]

        def get_config(self):
            return {**super().get_config(), "n_items": self.n_items}

    return HistoryBias


def HistoryBias(n_items: int, **kwargs):  # noqa: N802 (a layer factory, named like the layer)
    """The layer that adds a customer's purchase history to the logits (see ``build_lstm``)."""
    global _HISTORY_BIAS
    if _HISTORY_BIAS is None:
        _HISTORY_BIAS = _history_bias_layer()
    return _HISTORY_BIAS(n_items, **kwargs)


_HISTORY_BIAS = None


def build_lstm(
    n_items: int,
    n_customers: int = 0,
    embedding_dim: int = 64,
    customer_dim: int = 32,
    hidden: int = 128,
    layers: int = 1,
    dropout: float = 0.0,
    seed: int | None = None,
    customer_to_output: bool = False,
    customer_dropout: float = 0.0,
    history: bool = False,
):
    """Item embedding (+ customer embedding) -> ``layers`` stacked LSTMs -> dense logits.

    Parameters
    ----------
    n_items
        Number of sequence codes, counting the reserved 0 (``split.n_items + 1``).
    n_customers
        Number of customer codes counting the reserved 0 (``split.n_customers + 1``); 0 builds
        the item-only model. The customer's vector is concatenated to every item vector, and
        with ``customer_to_output`` also to the LSTM's output, next to the dense layer.
        ``customer_dropout`` drops coordinates of the customer vector in training (the same
        ones at every step of a window), against memorising the training invoices.
    history
        Add the customer's purchase history to the logits: inputs ``history_items`` and
        ``history_weights`` ``(batch, h)``; item ``i`` gets ``scale_i * weight`` (``HistoryBias``).

    The model takes ``{"items": (batch, steps)}`` (plus ``"customers"``, the customer code
    repeated along the steps) and returns logits ``(batch, steps, n_items)``. It is stateless
    and causal: the output at step ``t`` depends on inputs ``0..t`` only, so right padding never
    changes the outputs before it.
    """
    import keras

    items = keras.Input((None,), dtype="int32", name="items")
    inputs = {"items": items}
    x = keras.layers.Embedding(n_items, embedding_dim, name="item_embedding")(items)
    if n_customers:
        customers = keras.Input((None,), dtype="int32", name="customers")
        inputs["customers"] = customers
        u = keras.layers.Embedding(n_customers, customer_dim, name="customer_embedding")(customers)
        if customer_dropout:
            u = keras.layers.Dropout(
                customer_dropout,
                noise_shape=(None, 1, customer_dim),
                seed=seed,
                name="customer_dropout",
            )(u)
        x = keras.layers.Concatenate(name="concat")([u, x])
    for layer in range(layers):
        if dropout:
            x = keras.layers.Dropout(dropout, seed=seed, name=f"dropout_{layer}")(x)
        x, _, _ = keras.layers.LSTM(
            hidden, return_sequences=True, return_state=True, name=f"lstm_{layer}"
        )(x)
    if n_customers and customer_to_output:
        x = keras.layers.Concatenate(name="concat_output")([x, u])
    if dropout:
        x = keras.layers.Dropout(dropout, seed=seed, name=f"dropout_{layers}")(x)
    logits = keras.layers.Dense(n_items, name="logits")(x)
    if history:
        history_items = keras.Input((None,), dtype="int32", name="history_items")
        history_weights = keras.Input((None,), dtype="float32", name="history_weights")
        inputs["history_items"], inputs["history_weights"] = history_items, history_weights
        logits = HistoryBias(n_items, name="history_bias")([logits, history_items, history_weights])
    name = "user_lstm" if n_customers else "item_lstm"
    return keras.Model(inputs, logits, name=name)


def next_item_loss(y_true, logits):
    """Softmax cross-entropy of integer targets, ``logsumexp(logits) - logits[target]``.

    The same loss as ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``, written
    with a one-hot product. With op determinism on (``configure_tensorflow``), TensorFlow swaps
    its fused sparse cross-entropy for a deterministic version whose gradient runs an
    ``UnsortedSegmentSum`` over the whole ``(tokens, n_items)`` logits; profiling the item LSTM
    showed that one op taking over a third of a training step on a CPU. This version's gradient
    is a plain ``softmax - one_hot``: deterministic, and no segment sum.
    """
    import tensorflow as tf

    target = tf.one_hot(tf.cast(y_true, tf.int32), tf.shape(logits)[-1], dtype=logits.dtype)
    return tf.reduce_logsumexp(logits, axis=-1) - tf.reduce_sum(logits * target, axis=-1)


def compile_lstm(
    model,
    learning_rate: float = 1e-3,
    clipnorm: float = 5.0,
    optimizer: str = "adam",
    decay_steps: int = 0,
    final_fraction: float = 0.1,
):
    """Softmax cross-entropy on logits (``next_item_loss``), with gradient clipping (as the
    source does).

    With ``decay_steps`` the learning rate follows a cosine from ``learning_rate`` down to
    ``final_fraction`` of it over that many training steps (batches).
    """
    import keras

    optimizers = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    rate = learning_rate
    if decay_steps:
        rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps, alpha=final_fraction
        )
    model.compile(
        optimizer=optimizers[optimizer](learning_rate=rate, clipnorm=clipnorm),
        loss=next_item_loss,
    )
    return model


def model_inputs(X, U=None, history=None) -> dict:
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
    return model_inputs(X, U, history)


class NextItemAccuracy:
    """A Keras callback: exact top-k validation accuracy after every epoch (for the curves)."""

    def __new__(cls, protocol: NextItemProtocol, every: int = 1):
        import keras

        class _Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if logs is not None and (epoch + 1) % every == 0:
                    scores = protocol.evaluate(KerasNextItem(self.model))
                    logs["val_accuracy"] = scores["accuracy"]
                    logs["val_mrr_at_5"] = scores["mrr_at_5"]

        return _Callback()


def fit_lstm(
    model,
    X,
    Y,
    U=None,
    epochs: int = 1,
    batch_size: int = 512,
    mask_padding: bool = True,
    validation: NextItemProtocol | None = None,
    seed: int = 42,
    progress: bool = True,
    history=None,
):
    """Train on shuffled windows (a fixed shuffle per seed); return the ``History``.

    ``mask_padding`` gives padded target positions (target 0) weight 0 in the loss; ``history``
    is ``(items, weights)`` per window for models built with ``history=True``. With a
    ``validation`` protocol the exact top-k accuracy is added to the history after each epoch.
    A tqdm bar (on stderr) shows the progress.
    """
    callbacks = []
    if validation is not None:
        callbacks.append(NextItemAccuracy(validation))
    if progress:
        from tqdm.keras import TqdmCallback

        callbacks.append(TqdmCallback(verbose=0, leave=False, mininterval=5))  # one bar, by epoch
    order = np.random.default_rng(seed).permutation(len(X))
    X, Y = np.asarray(X)[order], np.asarray(Y)[order]
    U = None if U is None else np.asarray(U)[order]
    if history is not None:
        history = (np.asarray(history[0])[order], np.asarray(history[1])[order])
    weights = (Y > 0).astype(np.float32) if mask_padding else None
    return model.fit(
        model_inputs(X, U, history),
        Y,
        sample_weight=weights,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )


# ---------------------------------------------------------------------------------------------
# Prediction: batched (exact) and step by step (the reference)


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


def _top_k_function(model, k: int):
    """A compiled ``(inputs, added=None) -> top-k item codes`` for ``model`` (traced once per
    model and k).

    ``added`` (optional, ``(batch, n_items)``) is added to the logits at every step of a sequence
    (see ``predict_next_items``).
    """
    import tensorflow as tf

    cached = _TOP_K_FUNCTIONS.setdefault(model, {})
    if k in cached:
        return cached[k]
    n_items = model.output.shape[-1]
    never = tf.one_hot(START, n_items, on_value=-np.inf, off_value=0.0)  # never recommend "start"
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

    cached[k] = top_k
    return top_k


def predict_next_items(
    model,
    invoices: Invoices,
    k: int = 5,
    max_tokens: int = 32768,
    progress: bool = False,
    bias: np.ndarray | None = None,
):
    """Top-k next items at every step of every invoice, in batches: ``(invoices.n_steps, k)``.

    Each invoice is fed whole as ``[0, s_1, ..., s_{n-1}]``; because the model is causal, its
    output at step ``t`` sees exactly the items bought before step ``t``, which is what the
    one-step-at-a-time loop computes. Invoices are sorted by length and padded on the right to
    the longest in their batch, so little work is spent on padding.

    ``bias`` (``(customer codes, n_items)``, optional) is added to the logits of every step of an
    invoice, by the invoice's customer code (see ``history_boost``).
    """
    from tqdm.auto import tqdm

    top_k = _top_k_function(model, k)
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

    Passed as ``bias`` to ``predict_next_items`` (or ``KerasNextItem(boost=...)``), it raises the
    items a known customer bought before, by a weight tuned on validation.
    """
    from .mf import user_item_matrix

    counts = user_item_matrix(split, binary=False).tocsr()
    boost = np.zeros((counts.shape[0] + 1, counts.shape[1] + 1), dtype=np.float32)
    boost[1:, 1:] = weight * np.log1p(counts.toarray())
    return boost


def predict_from_previous_only(model, invoices: Invoices, k: int = 5, batch_size: int = 4096):
    """Top-k next items from the previous item alone, starting every step from the zero state.

    This is what the source's ``generate_prediction`` computes: it builds its feed dictionary
    with the zero state once per invoice and never feeds the returned state back, so every step
    sees only the previous item. Kept to measure what that bug costs.
    """
    top_k = _top_k_function(model, k)
    previous = invoices.previous()[:, None]
    invoice_of_step = np.repeat(np.arange(len(invoices)), invoices.lengths)
    out = np.zeros((invoices.n_steps, k), dtype=np.int32)
    for start in range(0, invoices.n_steps, batch_size):
        rows = slice(start, start + batch_size)
        inputs = _invoice_inputs(model, previous[rows], invoices, invoice_of_step[rows])
        out[rows] = np.asarray(top_k(inputs))[:, 0]
    return out


def step_model(model):
    """A model for one step at a time that takes and returns the LSTM states explicitly.

    It shares every layer (and so every weight) with ``model``: inputs ``items`` (batch, 1)
    [, ``customers``] and ``h_i``, ``c_i`` per LSTM layer; outputs the logits ``(batch, 1,
    n_items)`` and the new states, which the caller feeds back at the next step.
    """
    import keras

    names = [layer.name for layer in model.layers]
    n_layers = sum(name.startswith("lstm_") for name in names)
    hidden = model.get_layer("lstm_0").units
    items = keras.Input((1,), dtype="int32", name="items")
    inputs = {"items": items}
    x = model.get_layer("item_embedding")(items)
    if "customer_embedding" in names:
        customers = keras.Input((1,), dtype="int32", name="customers")
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
    from tqdm.auto import tqdm

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


class KerasNextItem:
    """A trained Keras sequence model behind the next-item contract ``next_items(invoices, k)``.

    ``drop_bought`` removes items already bought in the invoice from the recommendations (as the
    popularity baseline does), choosing from the model's best ``candidates`` items. ``boost``
    (``(customer codes, n_items)``, e.g. ``history_boost``) is added to the model's logits.
    """

    def __init__(
        self,
        model,
        max_tokens: int = 32768,
        drop_bought: bool = False,
        candidates: int = 20,
        boost: np.ndarray | None = None,
    ):
        self.model = model
        self.max_tokens = max_tokens
        self.drop_bought = drop_bought
        self.candidates = candidates
        self.boost = boost

    def next_items(self, invoices: Invoices, k: int = 5) -> np.ndarray:
        """Top-k items at every step; with ``drop_bought``, items not yet in the invoice."""
        width = max(self.candidates, k) if self.drop_bought else k
        top = predict_next_items(self.model, invoices, width, self.max_tokens, bias=self.boost)
        return drop_bought(top, invoices, k) if self.drop_bought else top


# ---------------------------------------------------------------------------------------------
# The protocol


@dataclass(frozen=True)
class NextItemProtocol:
    """Every step of every invoice of one part: recommend ``k`` items for the next purchase.

    Built once from a split; ``evaluate(model)`` calls ``model.next_items(invoices, k)`` (an
    ``(n_steps, k)`` array of sequence codes) and returns ``accuracy`` (top-k accuracy) with
    ``precision/recall/ndcg/mrr_at_k`` of the one true next item.
    """

    part: str
    invoices: Invoices
    k: int = 5

    @classmethod
    def from_split(
        cls, split: Split, part: str = "validation", k: int = 5, history: int = 0
    ) -> NextItemProtocol:
        """``history > 0`` adds the customers' histories, for models that read them."""
        return cls(part=part, invoices=invoices_of(split, part, history), k=k)

    @property
    def n_steps(self) -> int:
        return self.invoices.n_steps

    def score(self, recommendations: np.ndarray) -> dict[str, float]:
        recommendations = np.asarray(recommendations)
        truth = self.invoices.items
        result = {"accuracy": float(metrics.accuracy_k(truth, recommendations))}
        result.update(
            metrics.ranking_metrics(np.arange(len(truth) + 1), truth, recommendations, self.k)
        )
        return result

    def evaluate(self, model) -> dict[str, float]:
        return self.score(model.next_items(self.invoices, self.k))
