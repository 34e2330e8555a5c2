"""Rating models for explicit 0.5-5 star ratings (MovieLens).

Every model predicts a rating for (user, movie[, context]) pairs:

* ``GlobalMean`` and ``BiasBaseline`` (``mu + b_u + b_i``, ridge-regularised, closed form);
* ``ContentRatings``: the baseline plus a per-user ridge regression on the movie's features;
* Keras models built by small functions: ``build_mf`` (the Keras MF post's dot product, with or
  without biases), ``build_cf`` (the hybrid-network article's normalised dot product), ``build_ncf``
  (MF + MLP branches) and ``build_hybrid_ratings`` (NCF + movie features + context), trained by
  ``KerasRatings`` on the book's one training loop (``base.KerasTrainer``);
* ``MoviePopularity``, which predicts no rating but ranks (a reference for the top five).

All follow the ratings contract (``base.RatingModel``): ``fit(frame) -> self``,
``predict(frame) -> ratings`` where ``frame`` has the columns ``user``, ``movie`` (and
``daytime``, ``weekend`` for context), and ``score_users(users, context) -> (n, n_movies)`` for
the ranking task of ``evaluation.ratings``.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers

from ..datasets.movielens import CONTEXT
from ..evaluation.metrics import top_k
from ..settings import get_settings
from .base import KerasTrainer, shuffled_batches, take


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rating = (
        frame["rating"].to_numpy("float32")
        if "rating" in frame
        else np.zeros(len(frame), "float32")
    )
    return frame["user"].to_numpy("int32"), frame["movie"].to_numpy("int32"), rating


# ---------------------------------------------------------------------------------------------
# Models that need no training loop


class GlobalMean:
    """Predict the mean training rating for everything."""

    def __init__(self, n_users: int, n_movies: int):
        self.n_users, self.n_movies = n_users, n_movies

    def fit(self, frame: pd.DataFrame) -> GlobalMean:
        self.mu_ = float(frame["rating"].mean())
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.mu_, dtype="float32")

    def score_users(self, users, context=None) -> np.ndarray:
        return np.full((len(users), self.n_movies), self.mu_, dtype="float32")


class BiasBaseline:
    """``mu + b_u + b_i`` fitted by alternating ridge regressions (Koren 2009, section "biases").

    ``b_i = sum_u (r - mu - b_u) / (l2_item + n_i)`` and the same for ``b_u``; a few sweeps
    converge. A movie or user without training ratings gets bias 0.
    """

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        l2_user: float = 5.0,
        l2_item: float = 5.0,
        sweeps: int = 10,
    ):
        self.n_users, self.n_movies = n_users, n_movies
        self.l2_user, self.l2_item, self.sweeps = l2_user, l2_item, sweeps

    def fit(self, frame: pd.DataFrame) -> BiasBaseline:
        users, movies, r = _arrays(frame)
        r = r.astype("float64")
        self.mu_ = float(r.mean())
        n_u = np.bincount(users, minlength=self.n_users)
        n_i = np.bincount(movies, minlength=self.n_movies)
        b_u, b_i = np.zeros(self.n_users), np.zeros(self.n_movies)
        den_i, den_u = np.maximum(self.l2_item + n_i, 1e-12), np.maximum(self.l2_user + n_u, 1e-12)
        for _ in range(self.sweeps):
            b_i = np.bincount(movies, r - self.mu_ - b_u[users], self.n_movies) / den_i
            b_u = np.bincount(users, r - self.mu_ - b_i[movies], self.n_users) / den_u
        self.user_bias_, self.item_bias_ = b_u, b_i
        return self

    def predict_arrays(self, users, movies) -> np.ndarray:
        return (self.mu_ + self.user_bias_[users] + self.item_bias_[movies]).astype("float32")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        users, movies, _ = _arrays(frame)
        return self.predict_arrays(users, movies)

    def score_users(self, users, context=None) -> np.ndarray:
        users = np.asarray(users)
        scores = self.mu_ + self.user_bias_[users][:, None] + self.item_bias_[None, :]
        return scores.astype("float32")


class ContentRatings:
    """Content-based ratings: the bias baseline plus ``x_i . w_u`` with per-user feature weights.

    ``w_u`` is a ridge regression of what the baseline leaves unexplained in the user's ratings on
    the rated movies' features (genres, old, year): "a user rates the features, not the movie".
    The hybrid-network article multiplies the user's rating vector by the movie x feature matrix
    and normalises the weights to sum to one, which ranks but does not predict a rating on the
    star scale.
    """

    def __init__(
        self,
        features: np.ndarray,
        n_users: int,
        l2: float = 10.0,
        baseline: BiasBaseline | None = None,
    ):
        self.features = np.asarray(features, dtype="float64")
        self.n_users, self.n_movies = n_users, len(features)
        self.l2 = l2
        self.baseline = baseline or BiasBaseline(n_users, len(features))

    def fit(self, frame: pd.DataFrame) -> ContentRatings:
        self.baseline.fit(frame)
        users, movies, r = _arrays(frame)
        residual = r - self.baseline.predict_arrays(users, movies)
        x = self.features[movies]
        d = x.shape[1]
        gram = np.zeros((self.n_users, d, d))
        np.add.at(gram, users, x[:, :, None] * x[:, None, :])
        rhs = np.zeros((self.n_users, d))
        np.add.at(rhs, users, x * residual[:, None])
        self.weights_ = np.linalg.solve(gram + self.l2 * np.eye(d), rhs[:, :, None])[:, :, 0]
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        users, movies, _ = _arrays(frame)
        extra = np.einsum("nd,nd->n", self.features[movies], self.weights_[users])
        return (self.baseline.predict_arrays(users, movies) + extra).astype("float32")

    def score_users(self, users, context=None) -> np.ndarray:
        users = np.asarray(users)
        scores = self.baseline.score_users(users) + self.weights_[users] @ self.features.T
        return scores.astype("float32")


class MoviePopularity:
    """Rank movies by how many users rated them (a reference for the ranking metrics only).

    ``scores`` and ``score_batch`` make it a reference for the retrieval metrics too
    (``evaluation.retrieval.factorized_top_k``).
    """

    score_batch = 512

    def __init__(self, n_movies: int):
        self.n_movies = n_movies

    def fit(self, frame: pd.DataFrame) -> MoviePopularity:
        counts = np.bincount(frame["movie"].to_numpy(), minlength=self.n_movies)
        self.counts_ = counts.astype("float32")
        return self

    def score_users(self, users, context=None) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(users), self.n_movies))

    def scores(self, users) -> np.ndarray:
        return self.score_users(users)


#: MF with biases as chapter 20 chooses it on validation (``l2`` from its sweep); the later
#: MovieLens chapters use it as a reference and as a ranking model.
MF_BIASES_CHOSEN = {"factors": 32, "biases": True, "l2": 0.1, "learning_rate": 0.005}


# ---------------------------------------------------------------------------------------------
# Keras models: small builder functions returning plain keras.Model objects


def _seed(seed: int | None) -> int:
    return get_settings().seed if seed is None else seed


def _inputs():
    user = keras.Input(shape=(), dtype="int32", name="user")
    movie = keras.Input(shape=(), dtype="int32", name="movie")
    return user, movie


def _embedding(n: int, dim: int, name: str, l2: float, seed: int, init: str = "normal"):
    if init == "zeros":
        initializer = keras.initializers.Zeros()
    else:
        initializer = keras.initializers.RandomNormal(0.0, 0.05, seed=seed)
    # ``l2`` times the squared norm of each looked-up row, averaged over the batch (Keras divides an
    # activity regulariser by the batch size): the per-rating penalty of SGD matrix factorisation.
    reg = keras.regularizers.L2(l2) if l2 else None
    return layers.Embedding(
        n, dim, embeddings_initializer=initializer, activity_regularizer=reg, name=name
    )


def _rating(out) -> keras.KerasTensor:
    return layers.Reshape((), name="rating")(out)


def build_mf(n_users, n_movies, factors=3, biases=False, l2=0.0, mean=0.0, seed=None):
    """The Keras MF post's model: ``p_u . q_i``; with ``biases`` ``mu + b_u + b_i + p_u . q_i``.

    ``l2`` penalises the squared norms of the rows looked up for each rating (not the whole
    matrices, which would push rarely rated movies to zero at every step); ``mean`` is the fixed
    global mean ``mu`` (only with ``biases``).
    """
    seed = _seed(seed)
    user, movie = _inputs()
    p_u = _embedding(n_users, factors, "user_factors", l2, seed)(user)
    q_i = _embedding(n_movies, factors, "movie_factors", l2, seed + 1)(movie)
    out = layers.Dot(axes=1, name="dot")([p_u, q_i])
    if biases:
        b_u = _embedding(n_users, 1, "user_bias", l2, seed, init="zeros")(user)
        b_i = _embedding(n_movies, 1, "movie_bias", l2, seed, init="zeros")(movie)
        out = layers.Add(name="sum")([out, b_u, b_i])
        out = layers.Rescaling(1.0, offset=float(mean), name="global_mean")(out)
    name = "mf_biases" if biases else "mf"
    return keras.Model({"user": user, "movie": movie}, _rating(out), name=name)


def build_cf(n_users, n_movies, factors=50, l2=0.0, mean=0.0, seed=None):
    """The hybrid-network article's CF: the cosine of user and movie embeddings, then ``Dense(1)``.

    A cosine lies in [-1, 1], so the rating is ``a + b cos(p_u, q_i)`` with one global ``a, b``:
    no user or movie can be generally higher or lower than another.
    """
    seed = _seed(seed)
    user, movie = _inputs()
    p_u = _embedding(n_users, factors, "user_factors", l2, seed)(user)
    q_i = _embedding(n_movies, factors, "movie_factors", l2, seed + 1)(movie)
    cos = layers.Dot(axes=1, normalize=True, name="cosine")([p_u, q_i])
    out = layers.Dense(1, bias_initializer=keras.initializers.Constant(mean), name="out")(cos)
    return keras.Model({"user": user, "movie": movie}, _rating(out), name="cf")


def _ncf_branches(user, movie, n_users, n_movies, factors, hidden, l2, seed):
    cf_u = _embedding(n_users, factors, "cf_user", l2, seed)(user)
    cf_i = _embedding(n_movies, factors, "cf_movie", l2, seed + 1)(movie)
    cos = layers.Dot(axes=1, normalize=True, name="cosine")([cf_u, cf_i])
    nn_u = _embedding(n_users, factors, "nn_user", l2, seed + 2)(user)
    nn_i = _embedding(n_movies, factors, "nn_movie", l2, seed + 3)(movie)
    mlp = layers.Concatenate(name="nn_concat")([nn_u, nn_i])
    mlp = layers.Dense(hidden, activation="relu", name="nn_hidden")(mlp)
    return [cos, mlp]


def build_ncf(n_users, n_movies, factors=50, hidden=25, l2=0.0, mean=0.0, seed=None):
    """The hybrid-network article's neural CF (He et al. 2017, simplified): a cosine branch and an
    MLP branch on separate embeddings, concatenated into ``Dense(1)``."""
    seed = _seed(seed)
    user, movie = _inputs()
    parts = _ncf_branches(user, movie, n_users, n_movies, factors, hidden, l2, seed)
    out = layers.Concatenate(name="merge")(parts)
    out = layers.Dense(1, bias_initializer=keras.initializers.Constant(mean), name="out")(out)
    return keras.Model({"user": user, "movie": movie}, _rating(out), name="ncf")


def build_hybrid_ratings(
    n_users, n_movies, features, factors=50, hidden=25, l2=0.0, mean=0.0, context=True, seed=None
):
    """The hybrid-network article's hybrid: NCF + a ``Dense`` on the movie's features (+ one on the
    context).

    The movie features are a fixed (non-trainable) lookup table inside the model, so the model's
    inputs stay ``user``, ``movie`` (and ``context``: daytime, weekend as two floats).
    """
    seed = _seed(seed)
    features = np.asarray(features, dtype="float32")
    user, movie = _inputs()
    inputs = {"user": user, "movie": movie}
    parts = _ncf_branches(user, movie, n_users, n_movies, factors, hidden, l2, seed)
    table = layers.Embedding(
        n_movies,
        features.shape[1],
        embeddings_initializer=keras.initializers.Constant(features),
        trainable=False,
        name="movie_features",
    )
    x = table(movie)
    parts.append(layers.Dense(features.shape[1], activation="relu", name="features_x")(x))
    if context:
        ctx = keras.Input(shape=(len(CONTEXT),), dtype="float32", name="context")
        inputs["context"] = ctx
        parts.append(layers.Dense(len(CONTEXT), activation="relu", name="context_x")(ctx))
    out = layers.Concatenate(name="merge")(parts)
    out = layers.Dense(1, bias_initializer=keras.initializers.Constant(mean), name="out")(out)
    name = "hybrid" if context else "hybrid_no_context"
    return keras.Model(inputs, _rating(out), name=name)


def rating_inputs(model: keras.Model, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The arrays a Keras rating model takes, from a ratings frame."""
    out = {"user": frame["user"].to_numpy("int32"), "movie": frame["movie"].to_numpy("int32")}
    if "context" in {t.name for t in model.inputs}:
        out["context"] = frame.loc[:, list(CONTEXT)].to_numpy("float32")
    return out


class ValidatedFit:
    """``fit(train, validation=None, epochs=None)`` of a rating model on the one training loop.

    With ``validation`` the loop stops early on its MSE (after ``self.patience`` epochs without
    improvement) and keeps the best epoch's weights (``best_epoch_``); without it, it trains
    ``epochs`` (default the model's) and ``best_epoch_`` is that number: the refit on train +
    validation with the epochs chosen on validation. The model supplies ``predict(frame)``.
    """

    patience: int | None = 3

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame | None = None, epochs: int | None = None):
        # Every model traces its own predict function; TF's "retracing" notes about that are noise.
        tf.get_logger().setLevel("ERROR")
        if validation is None:
            KerasTrainer.fit(self, train, epochs=epochs)
            self.best_epoch_ = len(self.history_)
            return self
        truth = validation["rating"].to_numpy("float64")

        def validation_mse(model) -> dict[str, float]:
            return {"val_mse": float(np.mean((model.predict(validation) - truth) ** 2))}

        return KerasTrainer.fit(
            self,
            train,
            callback=validation_mse,
            keep_best="val_mse",
            lower_is_better=True,
            patience=self.patience,
            epochs=epochs,
        )


class KerasRatings(ValidatedFit, KerasTrainer):
    """A Keras rating model from ``builder`` trained on the squared error by the one training loop.

    ``fit(train, validation)`` stops early on the validation MSE (after ``patience`` epochs
    without improvement) and keeps the best epoch's weights (``best_epoch_``); ``fit(train,
    epochs=n)`` trains exactly ``n`` epochs (the refit on train + validation with the number of
    epochs chosen on validation). Each epoch shuffles the ratings into batches of ``batch_size``.
    ``kwargs`` go to ``builder(n_users, n_movies, mean=..., seed=..., **kwargs)``.
    """

    def __init__(
        self,
        builder: Callable[..., keras.Model],
        n_users: int,
        n_movies: int,
        *,
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        patience: int = 3,
        seed: int | None = None,
        progress: bool = True,
        **kwargs,
    ):
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        self.builder, self.n_users, self.n_movies, self.kwargs = builder, n_users, n_movies, kwargs
        self.patience = patience
        self.name = builder.__name__.removeprefix("build_")
        self.best_epoch_: int | None = None

    def build(self, frame: pd.DataFrame) -> list:
        mean = float(frame["rating"].mean())
        self.model = self.builder(
            self.n_users, self.n_movies, mean=mean, seed=self.seed, **self.kwargs
        )
        inputs = rating_inputs(self.model, frame)
        self.input_names_ = tuple(inputs)
        self.arrays_ = (*inputs.values(), frame["rating"].to_numpy("float32"))
        # One compiled forward pass for ``predict`` (``model.predict`` would build a tf.data
        # pipeline for every call, and TensorFlow logs a warning about it into the notebooks).
        self.forward_ = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return [self.model]

    def batches(self, rng: np.random.Generator):
        for rows in shuffled_batches(len(self.arrays_[-1]), self.batch_size, rng):
            yield take(self.arrays_, rows)

    def compute_loss(self, batch, training=True):
        *inputs, rating = batch
        predicted = self.model(dict(zip(self.input_names_, inputs, strict=True)), training=training)
        mse = tf.reduce_mean(tf.square(predicted - rating))
        # The embeddings' activity regularisers add their penalties to ``model.losses`` during the
        # call above (as in Keras' own train step, which adds them to the compiled loss).
        return mse + tf.add_n(self.model.losses) if self.model.losses else mse

    def predict(self, frame: pd.DataFrame, batch_size: int = 16384) -> np.ndarray:
        inputs = rating_inputs(self.model, frame)
        chunks = [
            self.forward_({k: v[start : start + batch_size] for k, v in inputs.items()}).numpy()
            for start in range(0, len(frame), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype="float32")

    def score_users(self, users, context=None) -> np.ndarray:
        """(n, n_movies) predicted ratings of every movie for ``users`` (``context``: (n, 2))."""
        users = np.asarray(users, dtype="int32")
        frame = pd.DataFrame(
            {
                "user": np.repeat(users, self.n_movies),
                "movie": np.tile(np.arange(self.n_movies, dtype="int32"), len(users)),
            }
        )
        if context is not None:
            ctx = np.repeat(np.asarray(context, dtype="float32"), self.n_movies, axis=0)
            frame["daytime"], frame["weekend"] = ctx[:, 0], ctx[:, 1]
        return self.predict(frame).reshape(len(users), self.n_movies)

    def embeddings(self, layer: str) -> np.ndarray:
        """The weights of an embedding layer (e.g. ``movie_factors``)."""
        return np.asarray(self.model.get_layer(layer).embeddings.numpy())


# ---------------------------------------------------------------------------------------------
# Helpers for the chapter


def refit(model, frame: pd.DataFrame):
    """Fit again on ``frame`` (train + validation) with what validation chose: a Keras model
    for the number of epochs early stopping kept, any other model as it is configured."""
    if isinstance(model, KerasTrainer):
        return model.fit(frame, epochs=model.best_epoch_)
    return model.fit(frame)


def nearest(
    vectors: np.ndarray, query: int, k: int = 10, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows most cosine-similar to row ``query`` (itself excluded) and their cosines.

    ``allowed`` (boolean, one per row) restricts the answer, e.g. to movies with enough ratings.
    """
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit[query]
    cos[query] = -np.inf
    if allowed is not None:
        cos = np.where(allowed, cos, -np.inf)
    order = top_k(cos[None, :], k)[0]
    return order, cos[order]


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components of ``vectors`` (rows centred), signs fixed so that the
    largest loading of each component is positive (reproducible pictures)."""
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(2), np.abs(vt[:2]).argmax(axis=1)])
    return centred @ (vt[:2].T * signs)
