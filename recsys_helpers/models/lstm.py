"""LSTM recommenders for the next-item protocol (chapters 6 and 7).

After each purchase in an invoice we recommend ``k`` items for the next one; items and customers
are sequence codes (``interactions.Invoices``: item + 1, customer + 1, 0 reserved).

* ``build_lstm``: item embedding (+ customer embedding) -> stacked LSTMs -> dense logits;
* ``LSTMRecommender``: such a network trained by the book's one loop (``base.KerasTrainer``) on
  the windows of ``interactions.make_windows``, the loss at every position, behind the next-item
  contract ``fit(split)``, ``next_items(invoices, k)``. Two models extend it: ``SourceLSTM``, the
  source chapter's (its LSTM state carried from batch to batch), and ``BookLSTM``, the book's
  (the loss at chosen targets, packed windows, a sampled softmax); ``ItemLSTM`` and ``UserLSTM``
  are the chapters' two models, with the configurations chosen there (``ITEM_LSTM``,
  ``USER_LSTM``);
* ``lstm_recommender(**params)``: the recommender a flat configuration describes.

Prediction lives in ``lstm_prediction``, the losses in ``losses``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import keras
import numpy as np
import tensorflow as tf

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
from .losses import next_item_loss, sampled_softmax_loss
from .lstm_prediction import drop_bought, lstm_inputs, predict_next_items, step_model

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


# ---------------------------------------------------------------------------------------------
# The options of a recommender, grouped (the configurations above are flat: ``options``)


@dataclass(frozen=True)
class Network:
    """The network's shape (``build_lstm``)."""

    embedding_dim: int = 64
    customer_dim: int = 32
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.2
    customer_to_output: bool = False
    customer_dropout: float = 0.0
    init: str = "keras"


@dataclass(frozen=True)
class Training:
    """How the network learns: ``optimizer`` ``"adam"`` (a cosine decay of ``learning_rate`` to
    ``final_fraction``, each weight's gradient norm clipped at ``clipnorm``) or ``"sgd"`` (constant
    rate, the global norm clipped: the source's); ``mask_padding`` weighs padded targets 0."""

    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-2
    final_fraction: float = 0.1
    clipnorm: float = 5.0
    optimizer: str = "adam"
    mask_padding: bool = True

    def __post_init__(self):
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer is 'adam' or 'sgd', not {self.optimizer!r}")


@dataclass(frozen=True)
class Policy:
    """How a trained network recommends (``LSTMRecommender.next_items``); saved with it."""

    drop_bought: bool = True
    candidates: int = 20
    boost: float = 0.0
    max_tokens: int = 32768


@dataclass(frozen=True)
class Targets:
    """Where the book's model computes its loss (``BookLSTM``): ``"all"`` positions, every
    ``"purchases"``, or each purchase's first (``"fresh"``) prediction; with chosen targets,
    ``buckets`` or ``pack`` cut the padding and ``negatives`` samples the softmax."""

    targets: str = "all"
    buckets: bool = False
    pack: bool = False
    negatives: int = 0
    sample_power: float = 0.75

    def __post_init__(self):
        if self.targets not in ("all", "purchases", "fresh"):
            raise ValueError(f"targets is 'all', 'purchases' or 'fresh', not {self.targets!r}")
        if (self.buckets or self.pack or self.negatives) and self.targets == "all":
            raise ValueError("buckets, pack and negatives score chosen targets: targets='purchases' or 'fresh'")
        if self.buckets and self.pack:
            raise ValueError("packed rows have no trailing padding to cut: buckets or pack, not both")


def options(params: dict, groups=(Network, Training, Policy, Targets)) -> dict:
    """Constructor arguments from a flat configuration: each group's names become that group."""
    params, out = dict(params), {}
    for group in groups:
        names = [f.name for f in fields(group) if f.name in params]
        out[group.__name__.lower()] = group(**{name: params.pop(name) for name in names})
    return out | params


# ---------------------------------------------------------------------------------------------
# The recommenders: training on windows, next items by exact batched prediction


class LSTMRecommender(KerasTrainer):
    """An LSTM over the items of an invoice (with ``customers``, also its customer's vector),
    trained on windows of ``num_steps`` codes every ``stride`` steps, the loss at every position.

    ``hide_customers`` is the share of training windows whose customer becomes 0 ("some
    customer"); ``history > 0`` makes the network read the customer's ``history`` most bought
    items (``build_lstm(history=True)``; evaluate on ``invoices_of(..., history=history)``). The
    options become attributes; those of ``policy`` may be changed after training.
    """

    name = "LSTM"
    carry_state = False
    #: the loss of one position; ``benchmarks/run.py`` swaps in Keras' own to time the difference
    position_loss = staticmethod(next_item_loss)

    def __init__(
        self,
        customers: bool = False,
        num_steps: int = 32,
        stride: int = 16,
        hide_customers: float = 0.0,
        history: int = 0,
        network: Network = Network(),
        training: Training = Training(),
        policy: Policy = Policy(),
        seed: int | None = None,
        progress: bool = True,
    ):
        super().__init__(training.epochs, training.batch_size, training.learning_rate, seed, progress)
        self.customers, self.num_steps, self.stride = customers, num_steps, stride
        self.hide_customers, self.history = hide_customers, history
        for group in (network, training, policy):
            vars(self).update(asdict(group))

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
        return [self.model]

    def batches(self, rng):
        for rows in shuffled_batches(len(self.windows_[0]), self.batch_size, rng):
            yield take(self.windows_, rows)

    def _logits(self, inputs: dict, training: bool):
        return self.model(inputs, training=training)

    def compute_loss(self, batch, training=True):
        """The loss of a batch of windows: cross-entropy at every position, padding weighted 0."""
        targets, *inputs = batch
        logits = self._logits(dict(zip(self.input_names_, inputs, strict=True)), training)
        loss = self.position_loss(targets, logits)  # (windows, steps): softmax cross-entropy
        if self.mask_padding:
            loss = loss * tf.cast(targets > 0, loss.dtype)  # padded targets weigh 0
        return tf.reduce_mean(loss)  # over all positions, padding included

    def rows_per_epoch(self) -> int:
        return len(self.windows_[0])

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        if self.optimizer == "sgd":
            return keras.optimizers.SGD(learning_rate=self.learning_rate, global_clipnorm=self.clipnorm)
        steps = self.fit_epochs_ * -(-self.rows_per_epoch() // self.batch_size)
        rate = keras.optimizers.schedules.CosineDecay(
            self.learning_rate, steps, alpha=self.final_fraction
        )
        return keras.optimizers.Adam(learning_rate=rate, clipnorm=self.clipnorm)

    def next_items(self, invoices: Invoices, k: int = 5) -> np.ndarray:
        """Top-k items at every step; with ``drop_bought``, items not yet in the invoice; ``boost``
        weighs the purchase-history bonus added to the logits (``history_boost``)."""
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


class SourceLSTM(LSTMRecommender):
    """The source chapter's training (``ITEM_LSTM_SOURCE``): the LSTMs' final states of one
    shuffled batch are the initial states of the next, reset at each epoch; incomplete batches
    are skipped, as the source skips them. The network is the plain one: no dropout, no history.
    """

    name = "source LSTM"
    carry_state = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.dropout or self.customer_dropout or self.history:
            raise ValueError("carry_state trains the plain network: no dropout, no history")

    def build(self, split: Split) -> list:
        networks = super().build(split)
        self.state_model_ = step_model(self.model, steps=None)
        self.states_ = [
            tf.Variable(tf.zeros((self.batch_size, self.hidden)), trainable=False)
            for _ in range(2 * self.layers)
        ]
        return networks

    def batches(self, rng):
        for batch in super().batches(rng):
            if len(batch[0]) == self.batch_size:  # the carried state has a row per window
                yield batch

    def on_epoch_end(self) -> None:
        for state in self.states_:  # the source starts every epoch from the zero state
            state.assign(tf.zeros_like(state))

    def _logits(self, inputs: dict, training: bool):
        inputs = {name: tf.convert_to_tensor(value) for name, value in inputs.items()}
        for layer in range(self.layers):
            h, c = self.states_[2 * layer : 2 * layer + 2]
            inputs[f"h_{layer}"], inputs[f"c_{layer}"] = tf.convert_to_tensor(h), tf.convert_to_tensor(c)
        logits, *states = self.state_model_(inputs, training=training)
        for variable, state in zip(self.states_, states, strict=True):
            variable.assign(tf.stop_gradient(state))  # the next batch starts from this state
        return logits


class BookLSTM(LSTMRecommender):
    """The book's training: the loss at chosen ``targets`` only (``Targets``), the output layer
    computed there alone; windows cut after the longest of a batch (``buckets``) or packed end
    to end with the state reset where each begins (``pack``, ``reset_lstm``); a sampled softmax
    over ``negatives`` items per batch (``sampled_softmax_loss``). The trained network is the
    same ``build_lstm`` network, and prediction scores the whole catalogue.
    """

    def __init__(self, targets: Targets = Targets(), **kwargs):
        super().__init__(**kwargs)
        vars(self).update(asdict(targets))

    def build(self, split: Split) -> list:
        networks = super().build(split)
        if self.targets == "all":
            return networks
        if self.history:
            raise ValueError("chosen targets compute the output layer alone: no history")
        train = invoices_of(split, "train")
        Y = self.windows_[0]
        self.input_names_.append("scored")  # the positions whose logits are computed
        fresh = self.targets == "fresh"
        self.windows_.append(fresh_targets(train.indptr, self.num_steps, self.stride) if fresh else Y > 0)
        self.window_lengths_ = np.count_nonzero(Y, axis=1)  # content first, then padding
        if self.pack:
            self.input_names_.append("reset")  # made with each epoch's packing
        self.head_ = self.model.get_layer("logits")
        self.encoder_ = keras.Model(self.model.inputs, self.head_.input, name="encoder")
        if self.negatives:
            weights = np.bincount(train.items, minlength=split.n_items + 1) ** self.sample_power
            weights[0] = 0.0  # the start symbol is never a target
            self.sample_p_ = weights / weights.sum()
            self.log_expected_ = tf.constant(
                np.log(np.maximum(self.negatives * self.sample_p_, 1e-30)), tf.float32
            )
        return networks

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
        elif self.buckets:  # windows of about the same length, cut after the longest one
            lengths = self.window_lengths_
            for rows in bucketed_batches(lengths, self.batch_size, rng):
                longest = max(int(lengths[rows].max()), 1)
                yield tuple(array[:, :longest] for array in take(self.windows_, rows))
        else:
            yield from super().batches(rng)

    def compute_loss(self, batch, training=True):
        """The mean loss of the chosen targets, with the output layer at those alone."""
        if self.targets == "all":
            return super().compute_loss(batch, training)
        targets, *inputs = batch
        names = self.input_names_ + (["negatives"] if self.negatives else [])
        inputs = dict(zip(names, inputs, strict=True))
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

    def rows_per_epoch(self) -> int:
        if self.pack:  # rows of packed windows (about this many: each packing is nearly full)
            return -(-int(self.window_lengths_.sum()) // self.num_steps)
        return super().rows_per_epoch()


def lstm_recommender(**params) -> LSTMRecommender:
    """The recommender a flat configuration describes (``ITEM_LSTM``, a ladder's rung): the
    source's model where ``carry_state`` is true, the book's otherwise."""
    if params.pop("carry_state", False):
        return SourceLSTM(**options(params, (Network, Training, Policy)))
    return BookLSTM(**options(params))


class ItemLSTM(BookLSTM):
    """The item LSTM of chapter 6: the invoice so far, nothing about the customer (``ITEM_LSTM``)."""

    name = "item LSTM"

    def __init__(self, **params):
        super().__init__(**options(ITEM_LSTM | params))


class UserLSTM(BookLSTM):
    """The user LSTM of chapter 7: the item LSTM with the customer's vector and the
    purchase-history bonus (``USER_LSTM``)."""

    name = "user LSTM"

    def __init__(self, **params):
        super().__init__(**options(USER_LSTM | {"customers": True} | params))
