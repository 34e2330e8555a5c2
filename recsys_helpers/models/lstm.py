"""LSTM recommenders for the next-item protocol (chapters 6 and 7).

After each purchase in an invoice we recommend ``k`` items for the next one; items and customers
are sequence codes (``interactions.Invoices``: item + 1, customer + 1, 0 reserved).

* ``build_lstm``: item embedding (+ customer embedding) -> stacked LSTMs -> dense logits;
* ``LSTMRecommender``: such a network trained by the book's one training loop
  (``base.KerasTrainer``) on the stateless windows of ``interactions.make_windows``, behind the
  next-item contract ``fit(split)``, ``next_items(invoices, k)``; ``ItemLSTM`` and ``UserLSTM``
  are the chapters' two models, with the configurations chosen there (``ITEM_LSTM``,
  ``USER_LSTM``);
* ``predict_next_items``: exact batched prediction of every step of every invoice, and
  ``predict_stepwise``, the one-call-per-purchase loop it replaces (kept as the reference);
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
from ..interactions import (
    START,
    Invoices,
    customer_history,
    fresh_targets,
    invoices_of,
    make_windows,
    pack_windows,
    purchase_counts,
)
from .base import KerasTrainer, bucketed_batches, shuffled_batches, take
from .layers import HistoryBias

# ---------------------------------------------------------------------------------------------
# The configurations chosen in the chapters (read there and by ``make bench``)

#: The item LSTM as chapter 6 chooses it on validation: windows of 32 steps every 16, one LSTM
#: of 128 units, dropout 0.2, Adam at 0.01 with a cosine decay to a tenth, batches of 64 windows;
#: the loss at each purchase's first prediction alone, a sampled softmax over 512 items per
#: batch, twelve epochs.
ITEM_LSTM = {
    "num_steps": 32, "stride": 16, "embedding_dim": 64, "hidden": 128, "layers": 1,
    "dropout": 0.2, "batch_size": 64, "learning_rate": 1e-2, "targets": "fresh", "negatives": 512,
    "epochs": 12,
}
#: The user LSTM of chapter 7: the item LSTM plus a customer vector of 32, the customer hidden in
#: 30% of the training windows, and the purchase-history bonus weight chosen on validation; it
#: needs more of the training signal than the item LSTM (its ladder shows it): the loss at every
#: purchase of every window, the windows packed into rows of 32 (64 rows a batch), a sampled
#: softmax over 1,024 items per batch, eight epochs.
USER_LSTM = ITEM_LSTM | {
    "customer_dim": 32, "hide_customers": 0.3, "boost": 1.0, "targets": "purchases",
    "pack": True, "negatives": 1024, "epochs": 8,
}
#: The source chapter's item LSTM, ported as faithfully as Keras 3 allows: windows of 5 steps at
#: every position, two LSTMs of 200 units over embeddings of 200, weights uniform in +-0.1 and
#: no forget-gate bias (``init="source"``), plain SGD at 1.0 with the global gradient norm
#: clipped at 5, batches of 20 windows whose LSTM state is carried from one shuffled batch to the
#: next, padded targets in the loss, one epoch.
ITEM_LSTM_SOURCE = {
    "num_steps": 5, "stride": 1, "embedding_dim": 200, "hidden": 200, "layers": 2,
    "dropout": 0.0, "batch_size": 20, "learning_rate": 1.0, "optimizer": "sgd", "clipnorm": 5.0,
    "carry_state": True, "init": "source", "mask_padding": False, "drop_bought": False,
    "epochs": 1,
}
#: The source's user LSTM: the same, with a customer vector of 200 concatenated to every item
#: vector (its table sized by the customers; the source sizes it by the items).
USER_LSTM_SOURCE = ITEM_LSTM_SOURCE | {"customer_dim": 200}


# ---------------------------------------------------------------------------------------------
# The network and its loss


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
    init: str = "keras",
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
    init
        ``"keras"``: Keras' default initialisers (the LSTM's forget-gate bias starts at 1);
        ``"source"``: the source's TF1 graph, every weight uniform in +-0.1 but the LSTMs' biases,
        which start at 0, with no forget-gate bias (``BasicLSTMCell(forget_bias=0.0)``).

    The model takes ``{"items": (batch, steps)}`` (plus ``"customers"``, the customer code
    repeated along the steps) and returns logits ``(batch, steps, n_items)``. It is stateless
    and causal: the output at step ``t`` depends on inputs ``0..t`` only, so right padding never
    changes the outputs before it.
    """
    if init not in ("keras", "source"):
        raise ValueError(f"init is 'keras' or 'source', not {init!r}")
    source = init == "source"

    def uniform():  # a new initialiser for every weight (drawn from Keras' global seed)
        return keras.initializers.RandomUniform(-0.1, 0.1)

    def embedding():
        return {"embeddings_initializer": uniform()} if source else {}

    def recurrent():
        if not source:
            return {}
        return {"kernel_initializer": uniform(), "recurrent_initializer": uniform(), "unit_forget_bias": False}

    dense = {"kernel_initializer": uniform(), "bias_initializer": uniform()} if source else {}
    items = keras.Input((None,), dtype="int32", name="items")
    inputs = {"items": items}
    x = keras.layers.Embedding(n_items, embedding_dim, name="item_embedding", **embedding())(items)
    if n_customers:
        customers = keras.Input((None,), dtype="int32", name="customers")
        inputs["customers"] = customers
        u = keras.layers.Embedding(
            n_customers, customer_dim, name="customer_embedding", **embedding()
        )(customers)
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
            hidden, return_sequences=True, return_state=True, name=f"lstm_{layer}", **recurrent()
        )(x)
    if n_customers and customer_to_output:
        x = keras.layers.Concatenate(name="concat_output")([x, u])
    if dropout:
        x = keras.layers.Dropout(dropout, seed=seed, name=f"dropout_{layers}")(x)
    logits = keras.layers.Dense(n_items, name="logits", **dense)(x)
    if history:
        history_items = keras.Input((None,), dtype="int32", name="history_items")
        history_weights = keras.Input((None,), dtype="float32", name="history_weights")
        inputs["history_items"], inputs["history_weights"] = history_items, history_weights
        logits = HistoryBias(n_items, name="history_bias")([logits, history_items, history_weights])
    name = "user_lstm" if n_customers else "item_lstm"
    return keras.Model(inputs, logits, name=name)


def reset_lstm(cell, x, reset):
    """A Keras ``LSTMCell``'s recurrence over ``x`` ``(batch, steps, features)``, its state set
    to zero wherever ``reset`` ``(batch, steps)`` is true (before that step's update).

    The rows of a batch of packed windows (``interactions.pack_windows``) hold several windows
    each; zeroing the state where a window begins makes every window's outputs exactly those of
    the cell run over that window alone. The cell's own weights are used (gates in Keras' order
    ``i, f, c, o``), so the model trained this way is the ``keras.layers.LSTM`` it belongs to.
    The loop is written out over the steps (``steps`` must be known): on a CPU that is about as
    fast as Keras' ``unroll=True`` and faster than its ``while`` loop.
    """
    if cell.activation is not keras.activations.tanh or cell.recurrent_activation is not keras.activations.sigmoid:
        raise ValueError("reset_lstm computes the default LSTM: tanh and sigmoid activations")
    keep = 1.0 - tf.cast(reset, x.dtype)[..., None]
    h = c = tf.zeros((tf.shape(x)[0], cell.units), x.dtype)
    outputs = []
    for t, (x_t, keep_t) in enumerate(zip(tf.unstack(x, axis=1), tf.unstack(keep, axis=1), strict=True)):
        if t:  # the state before the first step is zero already
            h, c = h * keep_t, c * keep_t
        z = tf.matmul(x_t, cell.kernel) + tf.matmul(h, cell.recurrent_kernel)
        if cell.use_bias:
            z += cell.bias
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        outputs.append(h)
    return tf.stack(outputs, axis=1)


def packed_encoder(model, inputs: dict, reset, training: bool = False):
    """``build_lstm``'s network up to its output layer, over packed rows (``reset_lstm``).

    Calls the same layers as ``model`` (shared weights) in the same order; ``inputs`` are the
    model's inputs (``items``, and ``customers`` for the user model), ``reset`` where each
    packed window begins. Models with a purchase history are not packed.
    """
    layer = {layer.name: layer for layer in model.layers}
    x = layer["item_embedding"](inputs["items"])
    if "customers" in inputs:
        u = layer["customer_embedding"](inputs["customers"])
        if "customer_dropout" in layer:
            u = layer["customer_dropout"](u, training=training)
        x = layer["concat"]([u, x])
    depth = sum(name.startswith("lstm_") for name in layer)
    for index in range(depth):
        if f"dropout_{index}" in layer:
            x = layer[f"dropout_{index}"](x, training=training)
        x = reset_lstm(layer[f"lstm_{index}"].cell, x, reset)
    if "concat_output" in layer:
        x = layer["concat_output"]([x, u])
    if f"dropout_{depth}" in layer:
        x = layer[f"dropout_{depth}"](x, training=training)
    return x


def next_item_loss(y_true, logits):
    """Softmax cross-entropy of integer targets, ``logsumexp(logits) - logits[target]``.

    The same loss as ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``, written
    with a one-hot product. With op determinism on (``configure_tensorflow``), TensorFlow swaps
    its fused sparse cross-entropy for a deterministic version whose gradient runs an
    ``UnsortedSegmentSum`` over the whole ``(tokens, n_items)`` logits; profiling the item LSTM
    showed that one op taking over a third of a training step on a CPU. This version's gradient
    is a plain ``softmax - one_hot``: deterministic, and no segment sum.
    """
    target = tf.one_hot(tf.cast(y_true, tf.int32), tf.shape(logits)[-1], dtype=logits.dtype)
    return tf.reduce_logsumexp(logits, axis=-1) - tf.reduce_sum(logits * target, axis=-1)


def sampled_softmax_loss(hidden, targets, negatives, kernel, bias, log_expected):
    """Softmax cross-entropy of each target against a shared sample of items (not the catalogue).

    ``hidden`` ``(n, units)`` feeds a dense output layer (``kernel`` ``(units, n_items)``,
    ``bias``); ``negatives`` ``(s,)`` are item codes drawn for the batch, ``log_expected`` the
    log of each item's expected count in such a draw. Every logit, the target's and the
    sampled ones, is lowered by its item's ``log_expected`` (so that the sample's softmax
    estimates the full one, Jean et al. 2015), and a sampled item equal to the target is left
    out of that target's sum. The output layer is evaluated for ``1 + s`` items per target
    instead of ``n_items``.
    """
    rows = tf.transpose(kernel)  # (n_items, units): one row of weights per item
    targets = tf.cast(targets, tf.int32)
    own = tf.reduce_sum(hidden * tf.gather(rows, targets), axis=-1) + tf.gather(bias, targets)
    own -= tf.gather(log_expected, targets)
    sampled = tf.matmul(hidden, tf.gather(rows, negatives), transpose_b=True)  # (n, s)
    sampled += tf.gather(bias - log_expected, negatives)
    hit = tf.equal(targets[:, None], negatives[None, :])
    sampled = tf.where(hit, tf.constant(-1e9, sampled.dtype), sampled)
    logits = tf.concat([own[:, None], sampled], axis=1)
    return tf.reduce_logsumexp(logits, axis=-1) - own


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


# ---------------------------------------------------------------------------------------------
# The recommender: training on windows, next items by exact batched prediction


class LSTMRecommender(KerasTrainer):
    """An LSTM over the items of an invoice (and, with ``customers``, its customer's vector).

    Training (``fit(split, callback=..., keep_best=...)``, the book's one loop): the training
    invoices are cut into stateless windows of ``num_steps`` codes every ``stride`` steps
    (``interactions.make_windows``), shuffled once per epoch into batches of ``batch_size``; the
    loss is ``next_item_loss`` with padded targets weighted 0 (``mask_padding``); Adam with the
    gradient norm of each weight clipped at ``clipnorm``, its learning rate decaying along a
    cosine to ``final_fraction`` of ``learning_rate`` over the epochs of the fit.

    Prediction (``next_items(invoices, k)``): every step of every invoice in batches
    (``predict_next_items``). With ``drop_bought`` the ``k`` best of the ``candidates`` best items
    that are not yet in the invoice; ``boost`` is the weight of the purchase-history bonus
    ``log(1 + times the customer bought the item in training)`` added to the logits
    (``history_boost``; it can be changed after training).

    Parameters
    ----------
    customers
        Add a customer embedding of ``customer_dim`` (``build_lstm``); ``hide_customers`` is the
        share of training windows whose customer code becomes 0 ("some customer"), drawn once.
    history
        With ``history > 0`` the network also reads the customer's ``history`` most bought
        earlier items (``build_lstm(history=True)``, a learned version of ``boost``); evaluate it
        on invoices made with ``invoices_of(split, part, history=history)``.
    embedding_dim, hidden, layers, dropout, customer_to_output, customer_dropout, init
        As in ``build_lstm``.
    optimizer
        ``"adam"`` (above) or ``"sgd"``: plain SGD at a constant ``learning_rate``, with the
        *global* gradient norm clipped at ``clipnorm`` (the source's ``clip_by_global_norm``).
    carry_state
        The source's training: the LSTMs' final states of one batch are the initial states of
        the next (shuffled) batch, reset to zero at the start of each epoch; batches smaller than
        ``batch_size`` are skipped, as the source skips them.
    targets
        ``"all"``: the loss covers every position of every window (padding weighted 0 with
        ``mask_padding``); ``"purchases"``: every purchase of every window, and the output layer
        is computed there alone, which skips the padding; ``"fresh"``: only each purchase's first
        prediction (``interactions.fresh_targets``), which also skips the repeats of overlapping
        windows. With either choice the loss is the mean over the chosen targets.
    buckets
        With chosen targets: batches of windows of about the same length
        (``base.bucketed_batches``), each cut after its longest window, so that the LSTM does not
        run over trailing padding either (the network is causal: the cut changes no output).
    pack
        With chosen targets: the windows of each epoch packed end to end into rows of
        ``num_steps`` (``interactions.pack_windows``), the LSTM's state set to zero where each
        window begins (``reset_lstm``), so that the network runs over the windows' positions
        and not their padding, and computes for each window exactly what it computes for the
        window alone. ``batch_size`` then counts rows, each holding about ``num_steps``
        positions of content. The trained model is the same ``build_lstm`` network.
    negatives
        With chosen targets: a sampled softmax (``sampled_softmax_loss``). Each batch draws
        this many items, shared by all its targets, from the training purchases' item frequencies
        to the power ``sample_power``, and the loss compares each target's logit with theirs
        alone (corrected by the log of each item's expected count), instead of with the whole
        catalogue; 0 keeps the full softmax. Prediction always scores the whole catalogue.
    """

    name = "LSTM"
    #: the loss of one position; ``benchmarks/run.py`` swaps in Keras' own to time the difference
    position_loss = staticmethod(next_item_loss)

    def __init__(
        self,
        customers: bool = False,
        num_steps: int = 32,
        stride: int = 16,
        embedding_dim: int = 64,
        customer_dim: int = 32,
        hidden: int = 128,
        layers: int = 1,
        dropout: float = 0.2,
        customer_to_output: bool = False,
        customer_dropout: float = 0.0,
        hide_customers: float = 0.0,
        history: int = 0,
        batch_size: int = 64,
        learning_rate: float = 1e-2,
        final_fraction: float = 0.1,
        clipnorm: float = 5.0,
        epochs: int = 8,
        mask_padding: bool = True,
        drop_bought: bool = True,
        candidates: int = 20,
        boost: float = 0.0,
        max_tokens: int = 32768,
        optimizer: str = "adam",
        carry_state: bool = False,
        init: str = "keras",
        targets: str = "all",
        buckets: bool = False,
        pack: bool = False,
        negatives: int = 0,
        sample_power: float = 0.75,
        seed: int | None = None,
        progress: bool = True,
    ):
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer is 'adam' or 'sgd', not {optimizer!r}")
        if targets not in ("all", "purchases", "fresh"):
            raise ValueError(f"targets is 'all', 'purchases' or 'fresh', not {targets!r}")
        if (buckets or pack or negatives) and targets == "all":
            raise ValueError("buckets, pack and negatives score chosen targets: targets='purchases' or 'fresh'")
        if buckets and pack:
            raise ValueError("packed rows have no trailing padding to cut: buckets or pack, not both")
        self.optimizer, self.carry_state, self.init = optimizer, carry_state, init
        self.targets, self.buckets, self.pack = targets, buckets, pack
        self.negatives, self.sample_power = negatives, sample_power
        self.customers, self.num_steps, self.stride = customers, num_steps, stride
        self.embedding_dim, self.customer_dim, self.hidden = embedding_dim, customer_dim, hidden
        self.layers, self.dropout = layers, dropout
        self.customer_to_output, self.customer_dropout = customer_to_output, customer_dropout
        self.hide_customers, self.history = hide_customers, history
        self.final_fraction, self.clipnorm, self.mask_padding = final_fraction, clipnorm, mask_padding
        self.drop_bought, self.candidates, self.boost = drop_bought, candidates, boost
        self.max_tokens = max_tokens

    def fit(self, split: Split, callback=None, epochs: int | None = None, **kwargs):
        """``KerasTrainer.fit``; the learning rate's cosine spans the epochs of this fit."""
        self.fit_epochs_ = epochs or self.epochs
        return super().fit(split, callback=callback, epochs=epochs, **kwargs)

    def build(self, split: Split) -> list:
        """The training windows (targets, items and the customer code at every step) and the
        network."""
        train = invoices_of(split, "train")
        X, Y, invoice = make_windows(  # the invoice of each window, to look up its customer
            train.items, train.indptr, self.num_steps, self.stride, customers=np.arange(len(train))
        )
        self.input_names_, self.windows_ = ["items"], [Y, X]  # targets first, then the inputs
        if self.customers:
            U = train.customers[invoice]
            hide = np.random.default_rng(self.seed).random(len(U)) < self.hide_customers
            self.input_names_.append("customers")
            self.windows_.append(lstm_inputs(X, np.where(hide, 0, U))["customers"])
        if self.history:
            items, weights = customer_history(split, "train", self.history)
            self.input_names_ += ["history_items", "history_weights"]
            self.windows_ += [items[invoice], weights[invoice]]
        if self.customers or self.boost:
            self.log_purchases_ = np.log1p(purchase_counts(split))
        self.model = build_lstm(
            split.n_items + 1,
            split.n_customers + 1 if self.customers else 0,
            embedding_dim=self.embedding_dim,
            customer_dim=self.customer_dim,
            hidden=self.hidden,
            layers=self.layers,
            dropout=self.dropout,
            seed=self.seed,
            customer_to_output=self.customer_to_output,
            customer_dropout=self.customer_dropout,
            history=bool(self.history),
            init=self.init,
        )
        if self.targets != "all":  # the positions whose logits are computed
            if self.carry_state or self.history:
                raise ValueError("chosen targets compute the output layer alone: no state, no history")
            self.input_names_.append("scored")
            fresh = self.targets == "fresh"
            self.windows_.append(fresh_targets(train.indptr, self.num_steps, self.stride) if fresh else Y > 0)
            self.window_lengths_ = np.count_nonzero(Y, axis=1)  # content first, then padding
            if self.pack:
                self.input_names_.append("reset")  # made with each epoch's packing
            logits = self.model.get_layer("logits")
            self.encoder_ = keras.Model(self.model.inputs, logits.input, name="encoder")
            self.head_ = logits
            if self.negatives:
                weights = np.bincount(train.items, minlength=split.n_items + 1) ** self.sample_power
                weights[0] = 0.0  # the start symbol is never a target
                self.sample_p_ = weights / weights.sum()
                self.log_expected_ = tf.constant(
                    np.log(np.maximum(self.negatives * self.sample_p_, 1e-30)), tf.float32
                )
        if self.carry_state:
            if self.dropout or self.customer_dropout or self.history:
                raise ValueError("carry_state trains the plain network: no dropout, no history")
            self.state_model_ = step_model(self.model, steps=None)
            self.states_ = [
                tf.Variable(tf.zeros((self.batch_size, self.hidden)), trainable=False)
                for _ in range(2 * self.layers)
            ]
        return [self.model]

    def batches(self, rng):
        for batch in self._window_batches(rng):
            if self.negatives:  # the items this batch's targets are compared with
                batch += (rng.choice(len(self.sample_p_), self.negatives, p=self.sample_p_).astype(np.int32),)
            yield batch

    def _window_batches(self, rng):
        if self.pack:  # a new packing every epoch, its rows shuffled into batches
            rows, reset = pack_windows(self.windows_, self.window_lengths_, self.num_steps, rng)
            rows.append(reset)
            for batch in shuffled_batches(len(reset), self.batch_size, rng):
                yield take(rows, batch)
            return
        if self.buckets:  # windows of about the same length, cut after the longest one
            lengths = self.window_lengths_
            for rows in bucketed_batches(lengths, self.batch_size, rng):
                longest = max(int(lengths[rows].max()), 1)
                yield tuple(array[:, :longest] for array in take(self.windows_, rows))
            return
        for rows in shuffled_batches(len(self.windows_[0]), self.batch_size, rng):
            if self.carry_state and len(rows) < self.batch_size:
                continue  # the carried state has one row per window of a full batch
            yield take(self.windows_, rows)

    def on_epoch_end(self) -> None:
        if self.carry_state:  # the source starts every epoch from the zero state
            for state in self.states_:
                state.assign(tf.zeros_like(state))

    def _logits(self, inputs: dict, training: bool):
        if not self.carry_state:
            return self.model(inputs, training=training)
        inputs = {name: tf.convert_to_tensor(value) for name, value in inputs.items()}
        for layer in range(self.layers):
            h, c = self.states_[2 * layer : 2 * layer + 2]
            inputs[f"h_{layer}"], inputs[f"c_{layer}"] = tf.convert_to_tensor(h), tf.convert_to_tensor(c)
        logits, *states = self.state_model_(inputs, training=training)
        for variable, state in zip(self.states_, states, strict=True):
            variable.assign(tf.stop_gradient(state))  # the next batch starts from this state
        return logits

    def compute_loss(self, batch, training=True):
        """The loss of a batch of windows: cross-entropy at every position, padding weighted 0."""
        targets, *inputs = batch
        names = self.input_names_ + (["negatives"] if self.negatives else [])
        inputs = dict(zip(names, inputs, strict=True))
        if self.targets != "all":
            return self._scored_loss(targets, inputs, training)
        logits = self._logits(inputs, training)
        loss = self.position_loss(targets, logits)  # (windows, steps): softmax cross-entropy
        if self.mask_padding:
            loss = loss * tf.cast(targets > 0, loss.dtype)  # padded targets weigh 0
        return tf.reduce_mean(loss)  # over all positions, padding included

    def _scored_loss(self, targets, inputs: dict, training: bool):
        """The mean loss of the chosen targets, with the output layer at those alone."""
        negatives = inputs.pop("negatives", None)
        where = tf.where(tf.convert_to_tensor(inputs.pop("scored")))  # (n, 2): window, position
        if self.pack:
            encoded = packed_encoder(self.model, inputs, inputs.pop("reset"), training=training)
        else:
            encoded = self.encoder_(inputs, training=training)
        hidden = tf.gather_nd(encoded, where)  # (n, units)
        targets = tf.gather_nd(targets, where)
        if negatives is None:
            return tf.reduce_mean(self.position_loss(targets, self.head_(hidden)))  # (n, n_items)
        loss = sampled_softmax_loss(
            hidden, targets, negatives, self.head_.kernel, self.head_.bias, self.log_expected_
        )
        return tf.reduce_mean(loss)

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        if self.optimizer == "sgd":
            return keras.optimizers.SGD(learning_rate=self.learning_rate, global_clipnorm=self.clipnorm)
        rows = len(self.windows_[0])
        if self.pack:  # rows of packed windows (about this many: each packing is nearly full)
            rows = -(-int(self.window_lengths_.sum()) // self.num_steps)
        steps = self.fit_epochs_ * -(-rows // self.batch_size)
        rate = keras.optimizers.schedules.CosineDecay(
            self.learning_rate, steps, alpha=self.final_fraction
        )
        return keras.optimizers.Adam(learning_rate=rate, clipnorm=self.clipnorm)

    def next_items(self, invoices: Invoices, k: int = 5) -> np.ndarray:
        """Top-k items at every step; with ``drop_bought``, items not yet in the invoice."""
        bias = self.boost * self.log_purchases_ if self.boost else None
        if not self.drop_bought:
            return predict_next_items(self.model, invoices, k, self.max_tokens, bias=bias)
        width = max(self.candidates, k)
        out = drop_bought(
            predict_next_items(self.model, invoices, width, self.max_tokens, bias=bias), invoices, k
        )
        # steps whose candidates were nearly all bought already: rank the whole catalogue there
        short = np.unique(np.repeat(np.arange(len(invoices)), invoices.lengths)[out[:, -1] == START])
        if len(short):
            few = invoices.take(short)
            every = self.model.output.shape[-1] - 1  # every item but the start symbol
            rows = np.concatenate([np.arange(invoices.indptr[g], invoices.indptr[g + 1]) for g in short])
            out[rows] = drop_bought(predict_next_items(self.model, few, every, 1, bias=bias), few, k)
        return out


class ItemLSTM(LSTMRecommender):
    """The item LSTM of chapter 6: the invoice so far, nothing about the customer (``ITEM_LSTM``)."""

    name = "item LSTM"

    def __init__(self, **params):
        super().__init__(**(ITEM_LSTM | params))


class UserLSTM(LSTMRecommender):
    """The user LSTM of chapter 7: the item LSTM with the customer's vector and the purchase-history
    bonus (``USER_LSTM``)."""

    name = "user LSTM"

    def __init__(self, **params):
        super().__init__(**(USER_LSTM | {"customers": True} | params))


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
