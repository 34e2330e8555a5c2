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
        return Invoices(self.items[rows], indptr, self.customers[invoices])


def invoices_of(split: Split, part: str) -> Invoices:
    """The invoices of ``part`` in sequence codes (item + 1, customer + 1; 0 reserved)."""
    frame = split.part(part)
    indptr = split.indptr(part).astype(np.int64)
    customers = frame["customer"].to_numpy()[indptr[:-1]].astype(np.int32) + 1
    return Invoices(frame["item"].to_numpy().astype(np.int32) + 1, indptr, customers)


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


def build_lstm(
    n_items: int,
    n_customers: int = 0,
    embedding_dim: int = 64,
    customer_dim: int = 32,
    hidden: int = 128,
    layers: int = 1,
    dropout: float = 0.0,
    seed: int | None = None,
):
    """Item embedding (+ customer embedding) -> ``layers`` stacked LSTMs -> dense logits.

    Parameters
    ----------
    n_items
        Number of sequence codes, counting the reserved 0 (``split.n_items + 1``).
    n_customers
        Number of customer codes counting the reserved 0 (``split.n_customers + 1``); 0 builds
        the item-only model. The customer's vector is concatenated to every item vector.

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
        x = keras.layers.Concatenate(name="concat")([u, x])
    for layer in range(layers):
        if dropout:
            x = keras.layers.Dropout(dropout, seed=seed, name=f"dropout_{layer}")(x)
        x, _, _ = keras.layers.LSTM(
            hidden, return_sequences=True, return_state=True, name=f"lstm_{layer}"
        )(x)
    if dropout:
        x = keras.layers.Dropout(dropout, seed=seed, name=f"dropout_{layers}")(x)
    logits = keras.layers.Dense(n_items, name="logits")(x)
    name = "user_lstm" if n_customers else "item_lstm"
    return keras.Model(inputs, logits, name=name)


def compile_lstm(
    model, learning_rate: float = 1e-3, clipnorm: float = 5.0, optimizer: str = "adam"
):
    """Sparse categorical cross-entropy on logits, with gradient clipping (as the source does)."""
    import keras

    optimizers = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    model.compile(
        optimizer=optimizers[optimizer](learning_rate=learning_rate, clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def model_inputs(X, U=None) -> dict:
    """The input dictionary of ``build_lstm``'s models (customers repeated along the steps)."""
    inputs = {"items": np.asarray(X, dtype=np.int32)}
    if U is not None:
        inputs["customers"] = np.repeat(np.asarray(U, dtype=np.int32)[:, None], X.shape[1], axis=1)
    return inputs


def uses_customers(model) -> bool:
    return "customers" in model.input


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
):
    """Train on shuffled windows (a fixed shuffle per seed); return the ``History``.

    ``mask_padding`` gives padded target positions (target 0) weight 0 in the loss. With a
    ``validation`` protocol the exact top-k accuracy is added to the history after each epoch.
    A tqdm bar (on stderr) shows the progress.
    """
    callbacks = []
    if validation is not None:
        callbacks.append(NextItemAccuracy(validation))
    if progress:
        from tqdm.keras import TqdmCallback

        callbacks.append(TqdmCallback(verbose=1, leave=False))
    order = np.random.default_rng(seed).permutation(len(X))
    X, Y = np.asarray(X)[order], np.asarray(Y)[order]
    U = None if U is None else np.asarray(U)[order]
    weights = (Y > 0).astype(np.float32) if mask_padding else None
    return model.fit(
        model_inputs(X, U),
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
    """A compiled ``inputs -> top-k item codes`` for ``model`` (traced once per model and k)."""
    import tensorflow as tf

    cached = _TOP_K_FUNCTIONS.setdefault(model, {})
    if k in cached:
        return cached[k]
    n_items = model.output.shape[-1]
    never = tf.one_hot(START, n_items, on_value=-np.inf, off_value=0.0)  # never recommend "start"
    spec = tf.TensorSpec((None, None), tf.int32)
    signature = {"items": spec, "customers": spec} if uses_customers(model) else {"items": spec}

    @tf.function(input_signature=[signature])
    def top_k(inputs):
        logits = model(inputs, training=False)
        return tf.math.top_k(logits + never, k=k).indices

    cached[k] = top_k
    return top_k


def predict_next_items(
    model, invoices: Invoices, k: int = 5, max_tokens: int = 32768, progress: bool = False
):
    """Top-k next items at every step of every invoice, in batches: ``(invoices.n_steps, k)``.

    Each invoice is fed whole as ``[0, s_1, ..., s_{n-1}]``; because the model is causal, its
    output at step ``t`` sees exactly the items bought before step ``t``, which is what the
    one-step-at-a-time loop computes. Invoices are sorted by length and padded on the right to
    the longest in their batch, so little work is spent on padding.
    """
    from tqdm.auto import tqdm

    top_k = _top_k_function(model, k)
    previous = invoices.previous()
    lengths = invoices.lengths
    with_customers = uses_customers(model)
    out = np.zeros((invoices.n_steps, k), dtype=np.int32)
    for batch in tqdm(length_batches(lengths, max_tokens), disable=not progress, desc="predict"):
        width = max(int(lengths[batch].max()), 1)
        X = np.zeros((len(batch), width), dtype=np.int32)
        position = np.arange(width)[None, :] < lengths[batch][:, None]
        starts = invoices.indptr[batch]
        rows = (starts[:, None] + np.arange(width)[None, :])[position]
        X[position] = previous[rows]
        inputs = model_inputs(X, invoices.customers[batch] if with_customers else None)
        out[rows] = np.asarray(top_k(inputs))[position]
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
    logits = model.get_layer("logits")(x)
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
    with_customers = uses_customers(model)
    out = np.zeros((invoices.n_steps, k), dtype=np.int32)
    previous = invoices.previous()
    for g in tqdm(range(len(invoices)), disable=not progress, desc="step by step"):
        states = [np.zeros((1, hidden), dtype=np.float32) for _ in range(2 * n_layers)]
        for i in range(invoices.indptr[g], invoices.indptr[g + 1]):
            inputs = {"items": np.array([[previous[i]]], dtype=np.int32)}
            if with_customers:
                inputs["customers"] = np.array([[invoices.customers[g]]], dtype=np.int32)
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


class KerasNextItem:
    """A trained Keras sequence model behind the next-item contract ``next_items(invoices, k)``."""

    def __init__(self, model, max_tokens: int = 32768):
        self.model = model
        self.max_tokens = max_tokens

    def next_items(self, invoices: Invoices, k: int = 5) -> np.ndarray:
        return predict_next_items(self.model, invoices, k, self.max_tokens)


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
    def from_split(cls, split: Split, part: str = "validation", k: int = 5) -> NextItemProtocol:
        return cls(part=part, invoices=invoices_of(split, part), k=k)

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
