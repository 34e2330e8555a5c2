"""A graph encoder and an LSTM over each user's ratings, predicting the next rating (after the
graph-and-LSTM article, ``graphlstm_movielens`` in references.bib).

The graph is the bipartite user-movie graph of the training ratings. A GraphSAGE-style layer
(Hamilton et al., 2017) gives every user and every movie a vector from its own embedding and the
*mean* of its neighbours' embeddings; here the mean is taken twice, once plain and once weighted
by the centred rating of each edge, so that a neighbour rated 5 stars and one rated 1 star pull
in opposite directions. An LSTM then reads each user's ratings in time order (the movie's graph
vector and the centred stars); its state after a user's ratings so far, the user's graph vector
and the next movie's graph vector go through a small MLP that predicts the next rating, on top of
``mu + b_u + b_i``. Training minimises the squared error over the positions of padded windows
that hold a rating (the article's masked MSE).

The model follows the ratings contract (``base.RatingModel``): ``fit(frame) -> self`` (with an
optional validation frame for early stopping), ``predict(frame)`` and ``score_users(users)``.
A prediction for a later rating uses the state after the user's whole fitted history: the model
never sees the ratings it is asked about.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers

from .base import KerasTrainer, take
from .ratings import ValidatedFit

#: The configuration chapter 23 trains: the penalty and the learning rate chosen on validation
#: among (0.01, 3e-3), (0.05, 3e-3) and (0.1, 2e-3); the sizes follow the other MovieLens models.
GRAPH_LSTM_CHOSEN = {
    "dim": 32, "units": 32, "hidden": 32, "length": 64, "context": 32, "l2": 0.1, "batch_size": 32,
    "learning_rate": 2e-3,
}


def user_sequences(frame: pd.DataFrame, n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's ratings in time order (ties by movie): ``indptr`` (n_users + 1), movies, stars."""
    ordered = frame.sort_values(["user", "timestamp", "movie"], kind="stable")
    counts = np.bincount(ordered["user"].to_numpy(), minlength=n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype("int64")
    return indptr, ordered["movie"].to_numpy("int32"), ordered["rating"].to_numpy("float32")


def windows(indptr: np.ndarray, length: int, context: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut every user's sequence into windows of ``length`` positions with the ``context`` first
    positions of each window (but the user's first) repeated from the window before.

    Returns ``user`` (n,), ``start`` (n,) and ``first_target`` (n,): a window covers positions
    ``start .. start + length`` of its user's sequence (fewer at the end) and is trained on the
    positions from ``first_target`` on, so that every rating is a target exactly once and, after a
    user's first window, has at least ``context`` earlier ratings in view.
    """
    if not 0 <= context < length:
        raise ValueError("need 0 <= context < length")
    users, starts, firsts = [], [], []
    step = length - context
    for user in range(len(indptr) - 1):
        n = int(indptr[user + 1] - indptr[user])
        target = 0
        while target < n:
            start = max(0, target - context)
            users.append(user)
            starts.append(start)
            firsts.append(target)
            target = start + length if start == 0 else target + step
    return np.array(users, "int32"), np.array(starts, "int64"), np.array(firsts, "int64")


def bipartite_means(users, movies, weights, n_users: int, n_movies: int) -> tuple[tf.SparseTensor, tf.SparseTensor]:
    """Row-normalised sparse (n_users, n_movies) and (n_movies, n_users) matrices: multiplying
    by them averages ``weights``-scaled neighbour vectors (weights 1: the plain mean)."""

    def mean_matrix(rows, cols, n_rows, n_cols):
        degree = np.maximum(np.bincount(rows, minlength=n_rows), 1)
        values = (np.asarray(weights, "float32") / degree[rows]).astype("float32")
        order = np.lexsort((cols, rows))
        index = np.stack([rows[order], cols[order]], axis=1).astype("int64")
        return tf.SparseTensor(index, values[order], (n_rows, n_cols))

    users, movies = np.asarray(users, "int64"), np.asarray(movies, "int64")
    return mean_matrix(users, movies, n_users, n_movies), mean_matrix(movies, users, n_movies, n_users)


class SageMean(layers.Layer):
    """One GraphSAGE mean-aggregation step: ``relu(W [self ; mean neighbours ; rated mean])``."""

    def __init__(self, dim: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(
            dim, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
        )

    def call(self, own, neighbours, plain_mean, rated_mean):
        aggregated = [tf.sparse.sparse_dense_matmul(m, neighbours) for m in (plain_mean, rated_mean)]
        return self.dense(tf.concat([own, *aggregated], axis=1))


class GraphSequenceRatings(ValidatedFit, KerasTrainer):
    """Graph encoder + LSTM over the user's ratings in time order, predicting the next rating.

    Parameters
    ----------
    n_users, n_movies
        Sizes of the id spaces.
    dim
        Size of the id embeddings and of the graph vectors.
    units
        LSTM units (the state that summarises a user's ratings so far).
    hidden
        Units of the MLP that combines state, user vector and movie vector.
    length, context
        Training windows (``windows``): ``length`` positions, the first ``context`` of them only
        read, not trained on (after the user's first window). Predictions read the user's last
        ``length`` ratings.
    l2
        Penalty on the looked-up embedding rows and biases (per rating, as in ``ratings.build_mf``).
    epochs, batch_size, learning_rate, patience, seed, progress
        The training loop's (``base.KerasTrainer``); ``batch_size`` counts windows; ``patience``
        is early stopping on the validation MSE when ``fit`` gets a validation frame.
    """

    name = "graph+lstm"

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        dim: int = 32,
        units: int = 32,
        hidden: int = 32,
        length: int = 64,
        context: int = 32,
        l2: float = 0.01,
        epochs: int = 20,
        batch_size: int = 32,
        learning_rate: float = 3e-3,
        patience: int = 3,
        seed: int | None = None,
        progress: bool = True,
    ):
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        self.n_users, self.n_movies = n_users, n_movies
        self.dim, self.units, self.hidden, self.length, self.context = dim, units, hidden, length, context
        self.l2, self.patience = l2, patience
        self.best_epoch_: int | None = None

    # -- the networks ---------------------------------------------------------------------

    def build(self, frame: pd.DataFrame) -> list:
        self.mu_ = float(frame["rating"].mean())
        users = frame["user"].to_numpy("int32")
        movies = frame["movie"].to_numpy("int32")
        centred = frame["rating"].to_numpy("float32") - self.mu_
        ones = np.ones(len(frame), "float32")
        self.user_plain_, self.movie_plain_ = bipartite_means(users, movies, ones, self.n_users, self.n_movies)
        self.user_rated_, self.movie_rated_ = bipartite_means(users, movies, centred, self.n_users, self.n_movies)
        self.indptr_, self.seq_movies_, self.seq_ratings_ = user_sequences(frame, self.n_users)
        self.window_user_, self.window_start_, self.window_first_ = windows(self.indptr_, self.length, self.context)

        seed = self.seed
        normal = keras.initializers.RandomNormal(stddev=0.05, seed=seed)
        self.user_emb_ = layers.Embedding(self.n_users, self.dim, embeddings_initializer=normal)
        self.movie_emb_ = layers.Embedding(
            self.n_movies, self.dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05, seed=seed + 1)
        )
        self.user_bias_ = layers.Embedding(self.n_users, 1, embeddings_initializer="zeros")
        self.movie_bias_ = layers.Embedding(self.n_movies, 1, embeddings_initializer="zeros")
        self.user_sage_ = SageMean(self.dim, seed + 2)
        self.movie_sage_ = SageMean(self.dim, seed + 3)
        self.lstm_ = layers.LSTM(
            self.units,
            return_sequences=True,
            kernel_initializer=keras.initializers.GlorotUniform(seed + 4),
            recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 5),
        )
        self.hidden_ = layers.Dense(
            self.hidden, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed + 6)
        )
        self.out_ = layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed + 7))
        # Build every layer once, so that the loop sees all weights before the first step.
        self.graph_vectors()
        self.lstm_(tf.zeros((1, 1, self.dim + 1)))
        self.out_(self.hidden_(tf.zeros((1, self.units + 2 * self.dim))))
        self.user_bias_(tf.zeros((1,), "int32"))
        self.movie_bias_(tf.zeros((1,), "int32"))
        return [self.user_emb_, self.movie_emb_, self.user_bias_, self.movie_bias_, self.user_sage_,
                self.movie_sage_, self.lstm_, self.hidden_, self.out_]

    def graph_vectors(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Every user's and every movie's vector after one mean-aggregation step over the graph."""
        x_user = self.user_emb_(tf.range(self.n_users))
        x_movie = self.movie_emb_(tf.range(self.n_movies))
        user = self.user_sage_(x_user, x_movie, self.user_plain_, self.user_rated_)
        movie = self.movie_sage_(x_movie, x_user, self.movie_plain_, self.movie_rated_)
        return user, movie

    def _states(self, movie_vectors, movies, ratings, valid, training=False):
        """LSTM outputs at every position: the state *before* that position's rating (the input
        at position t is the movie and centred stars of position t - 1; position 0 reads zeros)."""
        steps = tf.concat([tf.gather(movie_vectors, movies), (ratings - self.mu_)[..., None]], axis=-1)
        steps = steps * tf.cast(valid, steps.dtype)[..., None]
        shifted = tf.pad(steps[:, :-1], [[0, 0], [1, 0], [0, 0]])
        return self.lstm_(shifted, training=training)

    def _rate(self, state, user_vec, movie_vec, users, movies):
        out = self.out_(self.hidden_(tf.concat([state, user_vec, movie_vec], axis=-1)))[..., 0]
        biases = self.user_bias_(users)[..., 0] + self.movie_bias_(movies)[..., 0]
        return self.mu_ + biases + out

    # -- training -------------------------------------------------------------------------

    def _window_arrays(self, rows: np.ndarray) -> tuple:
        """Padded (rows, length) movies, ratings, valid and target masks of the given windows."""
        n = len(rows)
        movies = np.zeros((n, self.length), "int32")
        stars = np.zeros((n, self.length), "float32")
        valid = np.zeros((n, self.length), bool)
        target = np.zeros((n, self.length), bool)
        for j, w in enumerate(rows):
            user = self.window_user_[w]
            lo = self.indptr_[user] + self.window_start_[w]
            hi = min(lo + self.length, self.indptr_[user + 1])
            size = hi - lo
            movies[j, :size] = self.seq_movies_[lo:hi]
            stars[j, :size] = self.seq_ratings_[lo:hi]
            valid[j, :size] = True
            target[j, self.window_first_[w] - self.window_start_[w] : size] = True
        return self.window_user_[rows], movies, stars, valid, target

    def batches(self, rng: np.random.Generator):
        order = rng.permutation(len(self.window_user_))
        for start in range(0, len(order), self.batch_size):
            yield self._window_arrays(order[start : start + self.batch_size])

    def compute_loss(self, batch, training=True):
        """The masked MSE: squared errors averaged over the positions that are targets."""
        users, movies, stars, valid, target = batch
        user_vectors, movie_vectors = self.graph_vectors()
        states = self._states(movie_vectors, movies, stars, valid, training)
        length = tf.shape(movies)[1]
        user_seq = tf.repeat(users[:, None], length, axis=1)
        predicted = self._rate(
            states, tf.gather(user_vectors, user_seq), tf.gather(movie_vectors, movies), user_seq, movies
        )
        mask = tf.cast(target, "float32")
        return tf.reduce_sum(tf.square(predicted - stars) * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)

    def regularization(self, batch):
        """``l2`` times the squared norms of the looked-up rows, per target rating."""
        users, movies, _, _, target = batch
        mask = tf.cast(target, "float32")
        rows = tf.reduce_sum(tf.square(self.movie_emb_(movies)), -1) + tf.square(self.movie_bias_(movies)[..., 0])
        per_user = tf.reduce_sum(tf.square(self.user_emb_(users)), -1) + tf.square(self.user_bias_(users)[..., 0])
        total = tf.reduce_sum(rows * mask) + tf.reduce_sum(per_user * tf.reduce_sum(mask, 1))
        return self.l2 * total / tf.maximum(tf.reduce_sum(mask), 1.0)

    # -- prediction -----------------------------------------------------------------------

    def on_epoch_end(self) -> None:
        """Each user's state after their whole fitted history, and the graph vectors."""
        user_vectors, movie_vectors = self.graph_vectors()
        users = np.arange(self.n_users)
        n = np.diff(self.indptr_)
        last = np.minimum(n, self.length)
        movies = np.zeros((self.n_users, self.length + 1), "int32")
        stars = np.zeros((self.n_users, self.length + 1), "float32")
        valid = np.zeros((self.n_users, self.length + 1), bool)
        for user in users:
            hi = self.indptr_[user + 1]
            lo = hi - last[user]
            movies[user, : last[user]] = self.seq_movies_[lo:hi]
            stars[user, : last[user]] = self.seq_ratings_[lo:hi]
            valid[user, : last[user]] = True
        states = self._states(movie_vectors, movies, stars, valid).numpy()
        # position ``last`` reads the user's last rating: the state for whatever comes next
        self.user_state_ = states[users, last]
        self.user_vectors_, self.movie_vectors_ = user_vectors.numpy(), movie_vectors.numpy()

    def _predict_rows(self, users, movies):
        return self._rate(
            tf.gather(self.user_state_, users), tf.gather(self.user_vectors_, users),
            tf.gather(self.movie_vectors_, movies), users, movies,
        )

    def predict_arrays(self, users, movies, batch_size: int = 65536) -> np.ndarray:
        users, movies = np.asarray(users, "int32"), np.asarray(movies, "int32")
        chunks = [
            self._predict_rows(*take((users, movies), slice(start, start + batch_size))).numpy()
            for start in range(0, len(users), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, "float32")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_arrays(frame["user"].to_numpy(), frame["movie"].to_numpy())

    def score_users(self, users, context=None) -> np.ndarray:
        """(n, n_movies) predicted ratings of every movie for ``users``."""
        users = np.asarray(users, "int32")
        flat = self.predict_arrays(np.repeat(users, self.n_movies), np.tile(np.arange(self.n_movies), len(users)))
        return flat.reshape(len(users), self.n_movies)
