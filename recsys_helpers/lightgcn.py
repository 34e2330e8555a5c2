"""LightGCN (He et al., 2020) on the customer-item graph, in TensorFlow with a sparse matmul.

Customers and items are the nodes of one bipartite graph (customers first, then items); an edge
joins a customer to every item they bought in the training period. LightGCN keeps only the
neighbourhood averaging of a graph convolution, no weights and no non-linearity:

    E_{l+1} = A_hat @ E_l,   A_hat = D^{-1/2} A D^{-1/2},   E = mean(E_0, ..., E_L)

and trains the free embeddings ``E_0`` with the BPR loss on (customer, bought item, random item).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from .beyond import ScoreRecommender, item_popularity, sample_negatives, unique_pairs
from .data import Split
from .mf import training_pairs
from .settings import get_settings


def normalized_adjacency(customers, items, n_customers: int, n_items: int) -> sp.csr_matrix:
    """Symmetric normalised adjacency ``D^-1/2 A D^-1/2`` of the bipartite graph (binary edges)."""
    n = n_customers + n_items
    rows = np.concatenate([customers, items + n_customers])
    cols = np.concatenate([items + n_customers, customers])
    adjacency = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    adjacency.data[:] = 1.0  # duplicates summed by the constructor: back to binary
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    scale = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1.0)), 0.0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ adjacency @ sp.diags(scale))


def to_sparse_tensor(matrix: sp.spmatrix):
    """A scipy sparse matrix as an ordered ``tf.SparseTensor``."""
    import tensorflow as tf

    coo = matrix.tocoo()
    indices = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
    tensor = tf.SparseTensor(indices, coo.data.astype(np.float32), coo.shape)
    return tf.sparse.reorder(tensor)


def build_lightgcn(adjacency: sp.spmatrix, dim: int = 64, n_layers: int = 2, seed: int = 42):
    """A ``keras.Model`` whose call returns the propagated embeddings of every node."""
    import keras
    import tensorflow as tf

    class LightGCNModel(keras.Model):
        def __init__(self):
            super().__init__(name="lightgcn")
            self.n_layers = n_layers
            self.adjacency = to_sparse_tensor(adjacency)
            self.embeddings = self.add_weight(
                shape=(adjacency.shape[0], dim),
                initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed),
                name="embeddings",
            )

        def call(self, inputs=None):
            layer = tf.convert_to_tensor(self.embeddings)
            total = layer
            for _ in range(self.n_layers):
                layer = tf.sparse.sparse_dense_matmul(self.adjacency, layer)
                total = total + layer
            return total / float(self.n_layers + 1)

    return LightGCNModel()


class LightGCN(ScoreRecommender):
    """LightGCN with BPR, as a basket recommender.

    Parameters
    ----------
    dim, n_layers
        Embedding size and number of propagation layers (0 layers: plain BPR matrix factorisation).
    epochs, batch_size
        An epoch draws as many (customer, item) positives as there are training rows of known
        customers (``positives="rows"``) or distinct pairs (``positives="pairs"``).
    learning_rate, l2
        Adam's step size and the L2 penalty on the layer-0 embeddings of each batch.
    """

    def __init__(
        self,
        dim: int = 64,
        n_layers: int = 2,
        epochs: int = 20,
        batch_size: int = 8192,
        learning_rate: float = 0.01,
        l2: float = 1e-4,
        positives: str = "rows",
        seed: int | None = None,
        progress: bool = True,
    ):
        self.dim, self.n_layers, self.epochs, self.train_batch = dim, n_layers, epochs, batch_size
        self.learning_rate, self.l2, self.positives = learning_rate, l2, positives
        self.seed = get_settings().seed if seed is None else seed
        self.progress = progress
        self.history_: list[float] = []

    def fit(self, split: Split, callback=None) -> LightGCN:
        """Train; ``callback(epoch, model)`` runs after every epoch (e.g. to evaluate)."""
        import keras
        import tensorflow as tf
        from tqdm.auto import tqdm

        start = time.perf_counter()
        self.n_customers, self.n_items = split.n_customers, split.n_items
        self.popularity_ = item_popularity(split)
        edges_c, edges_i = unique_pairs(split)
        self.model_ = build_lightgcn(
            normalized_adjacency(edges_c, edges_i, self.n_customers, self.n_items),
            self.dim, self.n_layers, self.seed,
        )
        optimizer = keras.optimizers.Adam(self.learning_rate)
        pos_c, pos_i = training_pairs(split) if self.positives == "rows" else (edges_c, edges_i)
        n_c, l2 = self.n_customers, self.l2
        model = self.model_

        @tf.function
        def step(c, i, j):
            with tf.GradientTape() as tape:
                final = model(None)
                u, p, n = tf.gather(final, c), tf.gather(final, i + n_c), tf.gather(final, j + n_c)
                margin = tf.reduce_sum(u * (p - n), axis=1)
                ego = tf.gather(model.embeddings, tf.concat([c, i + n_c, j + n_c], axis=0))
                loss = tf.reduce_mean(tf.nn.softplus(-margin)) + l2 * tf.reduce_sum(ego**2) / tf.cast(
                    tf.shape(c)[0], tf.float32
                )
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        rng = np.random.default_rng(self.seed)
        for epoch in tqdm(range(self.epochs), desc="LightGCN epochs", disable=not self.progress):
            order = rng.permutation(len(pos_c))
            negatives = sample_negatives(self.n_items, len(order), rng)
            losses = []
            for s in range(0, len(order), self.train_batch):
                rows = order[s : s + self.train_batch]
                losses.append(float(step(pos_c[rows], pos_i[rows], negatives[s : s + len(rows)])))
            self.history_.append(float(np.mean(losses)))
            self._cache()
            if callback is not None:
                callback(epoch, self)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _cache(self) -> None:
        final = np.asarray(self.model_(None))
        self.customer_factors_ = final[: self.n_customers]
        self.item_factors_ = final[self.n_customers :]

    def scores(self, customers):
        return self.customer_factors_[np.asarray(customers)] @ self.item_factors_.T
