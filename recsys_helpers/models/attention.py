"""Self-attention over each customer's whole purchase history (SASRec, Kang and McAuley 2018).

The item LSTMs read one invoice at a time. Here a customer's training invoices are joined, in
time order, into one sequence of tokens with a reserved *boundary* token between invoices
(``interactions.customer_sequences``); a causal transformer reads it, so that the output at
every position sees the whole recent history and the invoice so far, and nothing after.

* ``build_sasrec``: item + position embeddings -> ``blocks`` causal self-attention blocks
  (``transformer_block``: layer norm, ``keras.layers.MultiHeadAttention``, dropout, a
  feed-forward layer) -> one vector per position; the logits are that vector's dot products
  with the item embeddings (tied) plus an item bias, over the whole catalogue;
* ``SASRec``: the network trained by the book's one loop on windows of the customer sequences,
  with ``next_item_loss`` at every purchase and, at every boundary, a basket loss (the next
  invoice's items as a multi-label target), behind both contracts: ``next_items(invoices, k)``
  (next-item protocol) and ``recommend(customers, k)`` (basket protocol: the logits at a
  boundary after the customer's history rank the whole next invoice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from numba import njit

from ..datasets.retail import Split
from ..evaluation.metrics import top_k
from ..interactions import (
    Invoices,
    customer_sequences,
    history_contexts,
    next_invoices,
    purchase_counts,
    ranges,
    sequence_windows,
    step_windows,
)
from .base import KerasTrainer, bucketed_batches
from .losses import next_item_loss, sampled_softmax_loss

#: The model chapter 8 chooses on validation (``book.ladders.SASREC_PATH`` measures each change):
#: two pre-norm blocks of 64 with two heads over a 64-token context read every 32 tokens,
#: dropout 0.1, the full softmax at every purchase (no basket loss: measured, not taken),
#: batches of 16 windows, Adam at 0.005 with a cosine decay to a tenth, eight epochs.
SASREC = {
    "context": 64, "stride": 32, "dim": 64, "heads": 2, "blocks": 2, "dropout": 0.1,
    "batch_size": 16, "learning_rate": 5e-3, "epochs": 8, "basket_weight": 0.0,
}


@dataclass(frozen=True)
class Bonuses:
    """What ``SASRec`` adds to its logits at prediction, tuned on validation after training
    (``tune_bonuses``): ``weight * log(1 + count)`` of the customer's purchases (``boost``: next
    item, ``basket_boost``: basket) and of the item's lines in the last ``trend_days`` of training
    (``trend_boost``, basket)."""

    boost: float = 0.0
    basket_boost: float = 0.0
    trend_boost: float = 0.0
    trend_days: int = 30


# ---------------------------------------------------------------------------------------------
# The network


@keras.saving.register_keras_serializable(package="recsys_helpers")
class PositionEmbedding(keras.layers.Layer):
    """``x * sqrt(dim) + p``: item vectors ``(batch, steps, dim)`` scaled, plus a learned vector
    ``p`` per position (0 to ``context - 1``)."""

    def __init__(self, context: int, **kwargs):
        super().__init__(**kwargs)
        self.context = context

    def build(self, input_shape):
        self.table = self.add_weight(
            shape=(self.context, input_shape[-1]), initializer="glorot_uniform", name="table"
        )

    def call(self, x):
        steps = keras.ops.shape(x)[1]
        return x * x.shape[-1] ** 0.5 + keras.ops.expand_dims(self.table[:steps], 0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "context": self.context}


def transformer_block(x, dim: int, heads: int, dropout: float, name: str):
    """One pre-norm causal self-attention block: ``x + attention(norm(x))``, then
    ``x + feed_forward(norm(x))``; position ``t`` attends to positions ``<= t`` only."""
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm_1")(x)
    h = keras.layers.MultiHeadAttention(
        heads, dim // heads, dropout=dropout, name=f"{name}_attention"
    )(h, h, use_causal_mask=True)
    x = x + keras.layers.Dropout(dropout, name=f"{name}_dropout_1")(h)
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm_2")(x)
    h = keras.layers.Dense(dim, activation="gelu", name=f"{name}_feed_forward_1")(h)
    h = keras.layers.Dense(dim, name=f"{name}_feed_forward_2")(h)
    return x + keras.layers.Dropout(dropout, name=f"{name}_dropout_2")(h)


def build_sasrec(
    n_tokens: int, context: int, dim: int = 64, heads: int = 2, blocks: int = 2, dropout: float = 0.2,
    seed: int = 0,
) -> keras.Model:
    """Tokens ``(batch, steps <= context)`` -> one vector per position ``(batch, steps, dim)``.

    ``n_tokens`` counts code 0 (start and padding), the items and the boundary. Padding sits on
    the right, after every real token, so the causal mask alone keeps it out of every output
    that counts.
    """
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(n_tokens, dim, name="item_embedding")(tokens)
    x = PositionEmbedding(context, name="position_embedding")(x)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for b in range(blocks):
        x = transformer_block(x, dim, heads, dropout, name=f"block_{b}")
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    return keras.Model(tokens, x, name="sasrec")


# ---------------------------------------------------------------------------------------------
# The recommender


@keras.saving.register_keras_serializable(package="recsys_helpers")
class TiedLogits(keras.layers.Layer):
    """Item logits of hidden vectors: dot products with the item rows of the (shared) token
    embedding, plus a learned bias per item."""

    def __init__(self, n_items: int, **kwargs):
        super().__init__(**kwargs)
        self.n_items = n_items

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.n_items,), initializer="zeros", name="bias")

    def call(self, hidden, table):
        items = table[1 : self.n_items + 1]  # token 0 is the start code, the last the boundary
        return keras.ops.matmul(hidden, keras.ops.transpose(items)) + self.bias

    def get_config(self):
        return {**super().get_config(), "n_items": self.n_items}


@njit(cache=True)
def _remove_bought(scores, items, indptr):
    """``-inf`` at every step for the items bought earlier in the same invoice (in place);
    ``items`` are sequence codes, column ``j`` of ``scores`` is item code ``j + 1``."""
    for g in range(len(indptr) - 1):
        start = indptr[g]
        for i in range(start, indptr[g + 1]):
            for b in range(start, i):
                scores[i, items[b] - 1] = -np.inf


def invoice_groups(lengths: np.ndarray, max_steps: int = 4096) -> list[np.ndarray]:
    """Consecutive invoices in groups of at most ``max_steps`` steps (a longer invoice alone)."""
    groups, current, steps = [], [], 0
    for g, n in enumerate(lengths):
        if current and steps + n > max_steps:
            groups.append(np.array(current))
            current, steps = [], 0
        current.append(g)
        steps += n
    if current:
        groups.append(np.array(current))
    return groups


class SASRec(KerasTrainer):
    """A causal transformer over each customer's history, for both of the book's protocols.

    Training (``fit(split)``, the one loop): the customer sequences (``customer_sequences``) are
    cut into windows of ``context`` tokens every ``stride`` (``sequence_windows``); only each
    target's first appearance counts (``fresh_targets``), so every purchase is predicted once,
    with at least ``context - stride`` tokens before it. The loss is the full softmax
    ``next_item_loss`` at every purchase (about 4,000 items: the whole catalogue is affordable)
    plus ``basket_weight`` times the basket loss at every boundary: the cross-entropy of each of
    the next invoice's items, weighted ``1 / its size``. Batches hold windows of about the same
    length, cut after the longest. Adam with a cosine decay to ``final_fraction``.

    Prediction: ``next_items`` scores each step from the customer's history, a boundary and the
    invoice so far (``step_windows``) and removes the items already in the invoice;
    ``recommend`` reads the logits at a boundary after the history (``history_contexts``).
    ``boost`` and ``basket_boost`` add ``weight * log(1 + times the customer bought the item in
    training)`` to the logits of each protocol, ``trend_boost`` adds ``weight * log(1 + lines of
    the item in the last trend_days of training)`` to the basket logits (what sells now; tuned on
    validation, all three can be changed after training). ``negatives > 0`` replaces the full
    softmax of the next-item loss by ``losses.sampled_softmax_loss`` over that many items per
    batch (frequencies to the power ``sample_power``). ``history=False`` is the ablation: every
    invoice alone, as the LSTMs see it. The defaults are the chapter's model (``SASREC``).
    """

    name = "SASRec"

    def __init__(
        self,
        context: int = 64,
        stride: int = 32,
        dim: int = 64,
        heads: int = 2,
        blocks: int = 2,
        dropout: float = 0.1,
        basket_weight: float = 0.0,
        history: bool = True,
        bonuses: Bonuses = Bonuses(),
        final_fraction: float = 0.1,
        negatives: int = 0,
        sample_power: float = 0.75,
        eval_batch: int = 256,
        **trainer,
    ):
        super().__init__(**({"epochs": 8, "batch_size": 16, "learning_rate": 5e-3} | trainer))
        self.context, self.stride, self.dim = context, stride, dim
        self.heads, self.blocks, self.dropout = heads, blocks, dropout
        self.basket_weight, self.history = basket_weight, history
        vars(self).update(asdict(bonuses))  # attributes: tuned after training
        self.final_fraction, self.eval_batch = final_fraction, eval_batch
        self.negatives, self.sample_power = negatives, sample_power

    @classmethod
    def from_params(cls, **params) -> SASRec:
        """The model a flat configuration describes (``SASREC``, a ladder's rung)."""
        names = [f.name for f in fields(Bonuses)]
        bonuses = Bonuses(**{name: params.pop(name) for name in names if name in params})
        return cls(bonuses=bonuses, **params)

    # -- training -------------------------------------------------------------------------

    def build(self, split: Split) -> list:
        self.sequences_ = sequences = customer_sequences(split, history=self.history)
        X, Y, fresh, source = sequence_windows(sequences, self.context, self.stride)
        self.windows_ = X, Y, fresh & (Y > 0) & (Y != sequences.boundary)
        self.basket_ = fresh & (X == sequences.boundary)
        self.source_ = source
        self.next_start_, self.next_end_ = next_invoices(sequences)
        # real tokens per window: the start code counts where the window begins a sequence
        self.lengths_ = np.maximum(np.count_nonzero(source >= 0, axis=1) + (source[:, 0] < 0), 1)
        self.log_purchases_ = np.log1p(purchase_counts(split))[:, 1:]  # (customer codes, items)
        train = split.train
        recent = train["invoicedate"] > train["invoicedate"].max() - np.timedelta64(self.trend_days, "D")
        self.log_recent_ = np.log1p(np.bincount(train.loc[recent, "item"], minlength=split.n_items))
        self.n_items_ = split.n_items
        if self.negatives:  # item frequencies ** sample_power, for the sampled softmax
            weights = np.bincount(Y[self.windows_[2]] - 1, minlength=split.n_items) ** self.sample_power
            self.sample_p_ = weights / weights.sum()
            self.log_expected_ = tf.constant(np.log(np.maximum(self.negatives * self.sample_p_, 1e-30)), tf.float32)
        self.encoder_ = build_sasrec(
            sequences.boundary + 1, self.context, self.dim, self.heads, self.blocks,
            self.dropout, seed=self.seed,
        )
        self.head_ = TiedLogits(split.n_items, name="logits")
        self.head_.build((None, self.dim))
        self._encode = None
        return [self.encoder_, self.head_]

    def batches(self, rng):
        X, Y, targets = self.windows_
        for rows in bucketed_batches(self.lengths_, self.batch_size, rng):
            width = max(int(self.lengths_[rows].max()), 2)  # a softmax over one key warns
            where = np.argwhere(self.basket_[rows, :width]).astype(np.int32)  # boundaries
            at = self.source_[rows[where[:, 0]], where[:, 1]]
            start, end = self.next_start_[at], self.next_end_[at]
            size = end - start
            pair_rows = np.repeat(np.arange(len(at)), size).astype(np.int32)
            pair_items = self.sequences_.tokens[ranges(start, size)] - 1
            pair_weights = np.repeat(1.0 / np.maximum(size, 1), size).astype(np.float32)
            batch = (
                X[rows, :width], Y[rows, :width], targets[rows, :width], where,
                pair_rows, pair_items.astype(np.int32), pair_weights,
            )
            if self.negatives:  # items shared by the batch's targets (sampled softmax)
                batch += (rng.choice(self.n_items_, self.negatives, p=self.sample_p_).astype(np.int32),)
            yield batch

    def logits(self, hidden):
        """Item logits of hidden vectors ``(n, dim)`` (columns: split item codes)."""
        return self.head_(hidden, self.encoder_.get_layer("item_embedding").embeddings)

    @tf.autograph.experimental.do_not_convert  # plain Python branches only: nothing to convert
    def compute_loss(self, batch, training=True):
        X, Y, targets, where, pair_rows, pair_items, pair_weights, *negatives = batch
        hidden = self.encoder_(X, training=training)
        at = tf.where(targets)
        chosen, items = tf.gather_nd(hidden, at), tf.gather_nd(Y, at) - 1
        if negatives:  # compared with the batch's sampled items, not the catalogue
            table = self.encoder_.get_layer("item_embedding").embeddings[1 : self.n_items_ + 1]
            loss = tf.reduce_mean(sampled_softmax_loss(
                chosen, items, negatives[0], tf.transpose(table), self.head_.bias, self.log_expected_
            ))
        else:
            loss = tf.reduce_mean(next_item_loss(items, self.logits(chosen)))
        if self.basket_weight and self.history:
            log_p = tf.nn.log_softmax(self.logits(tf.gather_nd(hidden, where)), axis=-1)
            picked = tf.gather_nd(log_p, tf.stack([pair_rows, pair_items], axis=1))
            boundaries = tf.cast(tf.maximum(tf.shape(where)[0], 1), loss.dtype)
            loss += self.basket_weight * -tf.reduce_sum(picked * pair_weights) / boundaries
        return loss

    def make_optimizer(self):
        steps = self.epochs * -(-len(self.lengths_) // self.batch_size)
        rate = keras.optimizers.schedules.CosineDecay(
            self.learning_rate, steps, alpha=self.final_fraction
        )
        return keras.optimizers.Adam(learning_rate=rate, clipnorm=1.0)

    # -- prediction -----------------------------------------------------------------------

    def encode(self, windows: np.ndarray, window_of: np.ndarray, column: np.ndarray) -> np.ndarray:
        """The output vectors read at ``(window_of[i], column[i])``: every window (right-padded)
        is encoded once, in batches of windows of about the same length, each batch cut after
        its longest read (the network is causal: the cut changes nothing)."""
        if self._encode is None:

            @tf.function(reduce_retracing=True, autograph=False)
            def read(x, at):
                return tf.gather_nd(self.encoder_(x, training=False), at)

            self._encode = read
        reads = np.argsort(window_of, kind="stable")  # reads grouped by window
        bounds = np.searchsorted(window_of[reads], np.arange(len(windows) + 1))
        width = np.zeros(len(windows), dtype=np.int64)
        np.maximum.at(width, window_of, column + 1)
        out = np.zeros((len(window_of), self.dim), dtype=np.float32)
        order = np.argsort(width, kind="stable")
        order = order[width[order] > 0]
        position = np.zeros(len(windows), dtype=np.int64)
        for start in range(0, len(order), self.eval_batch):
            rows = order[start : start + self.eval_batch]
            mine = np.concatenate([reads[bounds[w] : bounds[w + 1]] for w in rows])
            position[rows] = np.arange(len(rows))
            at = np.stack([position[window_of[mine]], column[mine]], axis=1).astype(np.int32)
            cut = max(int(width[rows].max()), 2)  # Keras warns of a softmax over one key
            out[mine] = self._encode(windows[rows, :cut], at)
        return out

    def item_scores(self, hidden: np.ndarray) -> np.ndarray:
        return np.array(self.logits(tf.constant(hidden, dtype=tf.float32)))

    def step_hidden(self, invoices: Invoices) -> np.ndarray:
        """The output vector before every step of ``invoices``: ``(n_steps, dim)``."""
        windows, window_of, column = step_windows(
            self.sequences_, invoices, self.context, self.stride, history=self.history
        )
        return self.encode(windows, window_of, column)

    def next_items(self, invoices: Invoices, k: int = 5, hidden: np.ndarray | None = None) -> np.ndarray:
        """Top-k item codes (item + 1) before every step, items already in the invoice removed;
        ``hidden`` (from ``step_hidden``) skips the encoder, to re-score with another boost."""
        hidden = self.step_hidden(invoices) if hidden is None else hidden
        customers = invoices.step_customers()
        out = np.zeros((len(hidden), k), dtype=np.int32)
        for group in invoice_groups(invoices.lengths):
            first, stop = invoices.indptr[group[0]], invoices.indptr[group[-1] + 1]
            scores = self.item_scores(hidden[first:stop])
            if self.boost:
                scores += self.boost * self.log_purchases_[customers[first:stop]]
            _remove_bought(scores, invoices.items[first:stop], invoices.indptr[group[0] : group[-1] + 2] - first)
            out[first:stop] = top_k(scores, k) + 1
        return out

    def basket_hidden(self, customers) -> np.ndarray:
        """The output vector at the boundary after each customer's history: ``(n, dim)``."""
        codes = np.asarray(customers) + 1 if self.history else np.zeros(len(customers), np.int64)
        windows, column = history_contexts(self.sequences_, codes, self.context)
        return self.encode(windows, np.arange(len(windows)), column)

    def recommend(self, customers, k: int = 5, hidden: np.ndarray | None = None) -> np.ndarray:
        """Top-k split item codes for the next invoice of each (known) customer."""
        customers = np.asarray(customers)
        hidden = self.basket_hidden(customers) if hidden is None else hidden
        scores = self.item_scores(hidden)
        if self.basket_boost:
            scores += self.basket_boost * self.log_purchases_[customers + 1]
        if self.trend_boost:
            scores += self.trend_boost * self.log_recent_.astype(np.float32)
        return top_k(scores, k)


def attention_weights(encoder: keras.Model, tokens: np.ndarray) -> list[np.ndarray]:
    """The attention weights of every block for ``tokens`` ``(batch, steps)``: one array
    ``(batch, heads, steps, steps)`` per block (row ``t``: how much position ``t`` reads each
    position; zero above the diagonal). Dropout is off, as in prediction."""
    tokens = np.asarray(tokens, dtype=np.int32)
    x = encoder.get_layer("position_embedding")(encoder.get_layer("item_embedding")(tokens))
    weights, b = [], 0
    while True:
        try:
            norm = encoder.get_layer(f"block_{b}_norm_1")
        except ValueError:
            return weights
        h = norm(x)
        h, scores = encoder.get_layer(f"block_{b}_attention")(
            h, h, use_causal_mask=True, return_attention_scores=True, training=False
        )
        weights.append(np.asarray(scores))
        x = x + h
        h = encoder.get_layer(f"block_{b}_norm_2")(x)
        h = encoder.get_layer(f"block_{b}_feed_forward_2")(encoder.get_layer(f"block_{b}_feed_forward_1")(h))
        x = x + h
        b += 1


#: The bonus weights tried on validation: the purchase counts (both protocols) and what sells now
#: (the basket protocol).
BONUS_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
TREND_WEIGHTS = (0.0, 0.1, 0.2, 0.3)


def tune_bonuses(model: SASRec, next_protocol, basket_protocol, weights=BONUS_WEIGHTS, trends=TREND_WEIGHTS):
    """Choose ``boost`` on ``next_protocol`` and ``basket_boost``, ``trend_boost`` on
    ``basket_protocol`` (validation), from one pass of the network per protocol; set them on
    ``model`` and return the two grids (next-item accuracy by weight; basket precision by
    purchase-count weight and trend weight)."""
    known = basket_protocol.customers[basket_protocol.known]
    steps, boundary = model.step_hidden(next_protocol.invoices), model.basket_hidden(known)
    accuracy = {}
    for weight in weights:
        model.boost = weight
        recs = model.next_items(next_protocol.invoices, next_protocol.k, hidden=steps)
        accuracy[weight] = next_protocol.score(recs)["accuracy"]
    precision = pd.DataFrame(index=pd.Index(weights, name="purchase counts"), columns=pd.Index(trends, name="trend"))
    for weight in weights:
        for trend in trends:
            model.basket_boost, model.trend_boost = weight, trend
            recs = basket_protocol.baseline()
            recs[basket_protocol.known] = model.recommend(known, basket_protocol.k, hidden=boundary)
            precision.loc[weight, trend] = basket_protocol.score(recs)["precision"]
    precision = precision.astype(float)
    model.boost = max(accuracy, key=accuracy.get)
    model.basket_boost, model.trend_boost = precision.stack().idxmax()
    return pd.Series(accuracy, name="next-item accuracy").rename_axis("purchase counts"), precision


def both_protocols(next_scores: dict, basket_scores: dict) -> dict:
    """One model's recorded metrics from both protocols, one name each: ``accuracy`` and
    ``mrr_at_5`` of the next item; ``precision``, ``recall_at_5`` and ``ndcg_at_5`` of the
    basket (both protocols compute an MRR and an nDCG: the next-item board shows the MRR, the
    basket board the nDCG)."""
    basket = ("precision", "recall_at_5", "ndcg_at_5", "precision_repeat", "precision_explore", "repeat_share")
    return {"accuracy": next_scores["accuracy"], "mrr_at_5": next_scores["mrr_at_5"]} | {
        name: basket_scores[name] for name in basket
    }
