"""LightGCN (He et al., 2020) on the customer-item graph, in TensorFlow with a sparse matmul.

Customers and items are the nodes of one bipartite graph (customers first, then items); an edge
joins a customer to every item they bought in the training period. LightGCN keeps only the
neighbourhood averaging of a graph convolution, no weights and no non-linearity:

    E_{l+1} = A_hat @ E_l,   A_hat = D^{-1/2} A D^{-1/2},   E = mean(E_0, ..., E_L)

and trains the free embeddings ``E_0`` with the BPR loss on (customer, bought item, random item).
"""

from __future__ import annotations

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from ..datasets.retail import Split
from ..interactions import item_popularity, sample_negatives, training_pairs, unique_pairs
from .base import FactorModel, KerasTrainer

#: LightGCN as chapter 14 trains it (and, with ``n_layers=0``, its BPR-MF comparison).
LIGHTGCN_CHOSEN = {"dim": 64, "n_layers": 2, "epochs": 15, "learning_rate": 0.03, "l2": 1e-3}


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


def to_sparse_tensor(matrix: sp.spmatrix) -> tf.SparseTensor:
    """A scipy sparse matrix as an ordered ``tf.SparseTensor``."""
    coo = matrix.tocoo()
    indices = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
    tensor = tf.SparseTensor(indices, coo.data.astype(np.float32), coo.shape)
    return tf.sparse.reorder(tensor)


class LightGCNModel(keras.Model):
    """Free node embeddings ``E_0``; calling the model propagates them over the graph and returns
    the mean of the layers, ``mean(E_0, A_hat E_0, ..., A_hat^L E_0)``, for every node."""

    def __init__(self, adjacency: sp.spmatrix, dim: int = 64, n_layers: int = 2, seed: int = 42):
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


class LightGCN(KerasTrainer, FactorModel):
    """LightGCN with BPR, as a basket recommender.

    Parameters
    ----------
    dim, n_layers
        Embedding size and number of propagation layers (0 layers: plain BPR matrix factorisation).
    positives
        An epoch draws as many (customer, item) positives as there are training rows of known
        customers (``"rows"``) or distinct pairs (``"pairs"``), each with a random item.
    l2
        The L2 penalty on the layer-0 embeddings of each batch (divided by the batch size).
    epochs, batch_size, learning_rate, seed, progress
        The training loop's (``base.KerasTrainer``).
    """

    name = "LightGCN"

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
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        self.dim, self.n_layers, self.l2, self.positives = dim, n_layers, l2, positives

    def build(self, split: Split) -> list:
        self.n_customers, self.n_items = split.n_customers, split.n_items
        self.popularity_ = item_popularity(split)
        edges_c, edges_i = unique_pairs(split)
        adjacency = normalized_adjacency(edges_c, edges_i, self.n_customers, self.n_items)
        self.model_ = LightGCNModel(adjacency, self.dim, self.n_layers, self.seed)
        positives = training_pairs(split) if self.positives == "rows" else (edges_c, edges_i)
        self.customers_, self.items_ = positives
        return [self.model_]

    def batches(self, rng):
        """(customer, bought item, random item) triples: the positives shuffled, in batches."""
        order = rng.permutation(len(self.customers_))
        negatives = sample_negatives(self.n_items, len(order), rng)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            yield self.customers_[rows], self.items_[rows], negatives[start : start + len(rows)]

    def compute_loss(self, batch, training=True):
        """BPR: ``-log sigmoid(e_c . (e_i - e_j))`` on the propagated embeddings."""
        customers, pos, neg = batch
        final, offset = self.model_(None), self.n_customers
        e_c = tf.gather(final, customers)
        e_i, e_j = tf.gather(final, pos + offset), tf.gather(final, neg + offset)
        margin = tf.reduce_sum(e_c * (e_i - e_j), axis=1)
        return tf.reduce_mean(tf.nn.softplus(-margin))

    def regularization(self, batch):
        """``l2`` times the squared layer-0 embeddings of the batch's nodes, per triple."""
        customers, pos, neg = batch
        nodes = tf.concat([customers, pos + self.n_customers, neg + self.n_customers], axis=0)
        ego = tf.gather(self.model_.embeddings, nodes)
        return self.l2 * tf.reduce_sum(ego**2) / tf.cast(tf.shape(customers)[0], tf.float32)

    def on_epoch_end(self) -> None:
        final = np.asarray(self.model_(None))
        self.customer_factors_ = final[: self.n_customers]
        self.item_factors_ = final[self.n_customers :]
