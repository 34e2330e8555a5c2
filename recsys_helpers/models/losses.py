"""The next-item losses the sequence models share (the LSTMs of chapters 6 and 7, SASRec).

* ``next_item_loss``: the full softmax cross-entropy, written so that its gradient is cheap and
  deterministic;
* ``sampled_softmax_loss``: the same against a sample of items drawn per batch, not the catalogue.
"""

from __future__ import annotations

import tensorflow as tf


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
