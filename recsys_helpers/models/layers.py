"""The book's own Keras layers, registered so that saved models load again.

Each is a plain ``keras.layers.Layer`` subclass defined once here; the model modules use them.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="recsys_helpers")
class GlobalBias(keras.layers.Layer):
    """Adds one learned scalar (the global bias, mu) to its input."""

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(), initializer="zeros", name="bias")

    def call(self, inputs):
        return inputs + self.bias


@keras.saving.register_keras_serializable(package="recsys_helpers")
class MeanOfWords(keras.layers.Layer):
    """Mean of the word embeddings of the non-padding ids (zeros for a text without words).

    Keras' masked ``GlobalAveragePooling1D`` divides by zero (NaN) when every id is padding.
    """

    def call(self, vectors, ids):
        mask = ops.cast(ops.not_equal(ids, 0), vectors.dtype)[..., None]
        return ops.sum(vectors * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


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
