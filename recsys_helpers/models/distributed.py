"""Scaling up with an existing engine: the SGD MF model trained under ``tf.distribute``.

``tf.distribute.MirroredStrategy`` copies the model to every device, splits each batch between
them and adds up the gradients: the same code runs on one CPU, on several GPUs of a machine, and
(with ``MultiWorkerMirroredStrategy``) on several machines. On a laptop we split the CPU into two
logical devices to show the mechanics.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from ..datasets.retail import Split
from ..interactions import item_popularity, training_pairs
from ..settings import get_settings
from .base import FactorModel
from .mf import build_mf_model


def split_cpu(n: int = 2) -> list:
    """Expose the CPU as ``n`` logical devices; call before TensorFlow runs anything."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:  # already initialised: keep what is there
        pass
    return tf.config.list_logical_devices("CPU")


def mf_dataset(split: Split, negatives: int = 5, batch_size: int = 5000, epochs: int = 1, seed: int | None = None):
    """Shuffled batches of positive pairs plus ``negatives`` random pairs each, as a ``tf.data``.

    The same sampling as ``mf.SGDMF`` (random customer, random item for a negative), drawn up
    front for ``epochs`` epochs so that every strategy sees exactly the same batches.
    """
    users, items = training_pairs(split)
    rng = np.random.default_rng(get_settings().seed if seed is None else seed)
    batches = []
    for _ in range(epochs):
        order = rng.permutation(len(users))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            n_neg = len(idx) * negatives
            u = np.concatenate([users[idx], rng.integers(0, split.n_customers, n_neg, dtype="int32")])
            i = np.concatenate([items[idx], rng.integers(0, split.n_items, n_neg, dtype="int32")])
            y = np.concatenate([np.ones(len(idx)), np.zeros(n_neg)]).astype("float32")
            batches.append(((u, i), y))
    return tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=(
            (tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)),
            tf.TensorSpec([None], tf.float32),
        ),
    ), len(batches)


def fit_mf(split: Split, strategy=None, epochs: int = 1, factors: int = 64, learning_rate: float = 0.005,
           seed: int | None = None):
    """Train the SGD MF Keras model with ``model.fit`` under ``strategy`` (default: no strategy).

    Returns a basket recommender (``base.FactorModel``) with its factors, plus ``seconds`` (the
    training time) and ``replicas`` (how many copies of the model trained in sync).
    """
    seed = get_settings().seed if seed is None else seed
    tf.get_logger().setLevel("WARNING")  # MirroredStrategy logs every all-reduce at INFO
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_mf_model(split.n_customers, split.n_items, factors, True, seed)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
        )
    dataset, steps = mf_dataset(split, epochs=epochs, seed=seed)
    start = time.perf_counter()
    model.fit(dataset.repeat(), epochs=epochs, steps_per_epoch=steps // epochs, verbose=0)
    seconds = time.perf_counter() - start
    layer = model.get_layer
    fitted = FactorModel()
    fitted.popularity_ = item_popularity(split)
    fitted.customer_factors_ = np.asarray(layer("user_factors").embeddings.numpy())
    fitted.item_factors_ = np.asarray(layer("item_factors").embeddings.numpy())
    fitted.item_bias_ = np.asarray(layer("item_bias").embeddings.numpy())[:, 0]
    fitted.seconds, fitted.replicas = seconds, strategy.num_replicas_in_sync
    return fitted
