"""Rating models for explicit 0.5-5 star ratings (MovieLens), and how they are evaluated.

Every model predicts a rating for (user, movie[, context]) pairs:

* ``GlobalMean`` and ``BiasBaseline`` (``mu + b_u + b_i``, ridge-regularised, closed form);
* ``ContentBased``: the baseline plus a per-user ridge regression on the movie's features;
* Keras models built by small functions: ``build_mf`` (seed 002's dot product, with or without
  biases), ``build_cf`` (seed 003's normalised dot product), ``build_ncf`` (MF + MLP branches)
  and ``build_hybrid`` (NCF + movie features + context), trained by ``KerasRatings``.

All share ``fit(frame) -> self`` and ``predict(frame) -> ratings`` where ``frame`` has the
columns ``user``, ``movie`` (and ``daytime``, ``weekend`` for context). ``rating_metrics`` gives
MAE/RMSE; ``RankingTask`` scores the top 5 of every test user's unrated movies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import metrics

MIN_RATING, MAX_RATING = 0.5, 5.0
CONTEXT = ("daytime", "weekend")


def rating_metrics(y_true, y_pred) -> dict[str, float]:
    """``mae`` and ``rmse`` of predictions clipped to the 0.5-5 star scale."""
    y_true = np.asarray(y_true, dtype="float64")
    y_pred = np.clip(np.asarray(y_pred, dtype="float64"), MIN_RATING, MAX_RATING)
    err = y_pred - y_true
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        frame["user"].to_numpy("int32"),
        frame["movie"].to_numpy("int32"),
        frame["rating"].to_numpy("float32") if "rating" in frame else np.zeros(len(frame), "float32"),
    )


# ---------------------------------------------------------------------------------------------
# Baselines that need no training loop


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

    def __init__(self, n_users: int, n_movies: int, l2_user: float = 5.0, l2_item: float = 5.0, sweeps: int = 10):
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
        return (self.mu_ + self.user_bias_[users][:, None] + self.item_bias_[None, :]).astype("float32")


class ContentBased:
    """Content-based ratings: the bias baseline plus ``x_i . w_u`` with per-user feature weights.

    ``w_u`` is a ridge regression of what the baseline leaves unexplained in the user's ratings on
    the rated movies' features (genres, old, year): "a user rates the features, not the movie".
    Seed 003 multiplies the user's rating vector by the movie x feature matrix and normalises the
    weights to sum to one, which ranks but does not predict a rating on the star scale.
    """

    def __init__(self, features: np.ndarray, n_users: int, l2: float = 10.0, baseline: BiasBaseline | None = None):
        self.features = np.asarray(features, dtype="float64")
        self.n_users, self.n_movies = n_users, len(features)
        self.l2 = l2
        self.baseline = baseline or BiasBaseline(n_users, len(features))

    def fit(self, frame: pd.DataFrame) -> ContentBased:
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
        return (self.baseline.score_users(users) + self.weights_[users] @ self.features.T).astype("float32")


# ---------------------------------------------------------------------------------------------
# Keras models: small builder functions returning plain keras.Model objects


def _inputs():
    import keras

    user = keras.Input(shape=(), dtype="int32", name="user")
    movie = keras.Input(shape=(), dtype="int32", name="movie")
    return user, movie


def _embedding(n: int, dim: int, name: str, l2: float, seed: int, init: str = "normal"):
    import keras
    from keras import layers

    if init == "zeros":
        initializer = keras.initializers.Zeros()
    else:
        initializer = keras.initializers.RandomNormal(0.0, 0.05, seed=seed)
    # ``l2`` times the squared norm of each looked-up row, averaged over the batch (Keras divides an
    # activity regulariser by the batch size): the per-rating penalty of SGD matrix factorisation.
    reg = keras.regularizers.L2(l2) if l2 else None
    return layers.Embedding(n, dim, embeddings_initializer=initializer, activity_regularizer=reg, name=name)


def build_mf(n_users, n_movies, factors=3, biases=False, l2=0.0, mean=0.0, seed=42):
    """Seed 002's MF: rating = ``p_u . q_i``; with ``biases`` ``mu + b_u + b_i + p_u . q_i``.

    ``l2`` penalises the squared norms of the rows looked up for each rating (not the whole
    matrices, which would push rarely rated movies to zero at every step); ``mean`` is the fixed global mean ``mu`` (only with ``biases``).
    """
    import keras
    from keras import layers

    user, movie = _inputs()
    p_u = _embedding(n_users, factors, "user_factors", l2, seed)(user)
    q_i = _embedding(n_movies, factors, "movie_factors", l2, seed + 1)(movie)
    out = layers.Dot(axes=1, name="dot")([p_u, q_i])
    if biases:
        b_u = _embedding(n_users, 1, "user_bias", l2, seed, init="zeros")(user)
        b_i = _embedding(n_movies, 1, "movie_bias", l2, seed, init="zeros")(movie)
        out = layers.Add(name="sum")([out, b_u, b_i])
        out = layers.Rescaling(1.0, offset=float(mean), name="global_mean")(out)
    out = layers.Reshape((), name="rating")(out)
    return keras.Model({"user": user, "movie": movie}, out, name="mf_biases" if biases else "mf")


def build_cf(n_users, n_movies, factors=50, l2=0.0, mean=0.0, seed=42):
    """Seed 003's CF: the cosine of the user and movie embeddings, then ``Dense(1)``.

    A cosine lies in [-1, 1], so the rating is ``a + b cos(p_u, q_i)`` with one global ``a, b``:
    no user or movie can be generally higher or lower than another.
    """
    import keras
    from keras import layers

    user, movie = _inputs()
    p_u = _embedding(n_users, factors, "user_factors", l2, seed)(user)
    q_i = _embedding(n_movies, factors, "movie_factors", l2, seed + 1)(movie)
    cos = layers.Dot(axes=1, normalize=True, name="cosine")([p_u, q_i])
    out = layers.Dense(1, bias_initializer=keras.initializers.Constant(mean), name="out")(cos)
    return keras.Model({"user": user, "movie": movie}, layers.Reshape((), name="rating")(out), name="cf")


def _ncf_branches(user, movie, n_users, n_movies, factors, hidden, l2, seed):
    from keras import layers

    cf_u = _embedding(n_users, factors, "cf_user", l2, seed)(user)
    cf_i = _embedding(n_movies, factors, "cf_movie", l2, seed + 1)(movie)
    cos = layers.Dot(axes=1, normalize=True, name="cosine")([cf_u, cf_i])
    nn_u = _embedding(n_users, factors, "nn_user", l2, seed + 2)(user)
    nn_i = _embedding(n_movies, factors, "nn_movie", l2, seed + 3)(movie)
    mlp = layers.Concatenate(name="nn_concat")([nn_u, nn_i])
    mlp = layers.Dense(hidden, activation="relu", name="nn_hidden")(mlp)
    return [cos, mlp]


def build_ncf(n_users, n_movies, factors=50, hidden=25, l2=0.0, mean=0.0, seed=42):
    """Seed 003's neural CF (He et al. 2017, simplified): a cosine branch and an MLP branch on
    separate embeddings, concatenated into ``Dense(1)``."""
    import keras
    from keras import layers

    user, movie = _inputs()
    parts = _ncf_branches(user, movie, n_users, n_movies, factors, hidden, l2, seed)
    out = layers.Concatenate(name="merge")(parts)
    out = layers.Dense(1, bias_initializer=keras.initializers.Constant(mean), name="out")(out)
    return keras.Model({"user": user, "movie": movie}, layers.Reshape((), name="rating")(out), name="ncf")


def build_hybrid(n_users, n_movies, features, factors=50, hidden=25, l2=0.0, mean=0.0, context=True, seed=42):
    """Seed 003's hybrid: NCF + a ``Dense`` on the movie's features (+ a ``Dense`` on the context).

    The movie features are a fixed (non-trainable) lookup table inside the model, so the model's
    inputs stay ``user``, ``movie`` (and ``context``: daytime, weekend as two floats).
    """
    import keras
    from keras import layers

    features = np.asarray(features, dtype="float32")
    user, movie = _inputs()
    inputs = {"user": user, "movie": movie}
    parts = _ncf_branches(user, movie, n_users, n_movies, factors, hidden, l2, seed)
    table = layers.Embedding(
        n_movies, features.shape[1], embeddings_initializer=keras.initializers.Constant(features),
        trainable=False, name="movie_features",
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
    return keras.Model(inputs, layers.Reshape((), name="rating")(out), name=name)


def model_inputs(model, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The arrays a Keras rating model takes, from a ratings frame."""
    names = {t.name for t in model.inputs} if hasattr(model, "inputs") else {"user", "movie"}
    out = {"user": frame["user"].to_numpy("int32"), "movie": frame["movie"].to_numpy("int32")}
    if "context" in names:
        out["context"] = frame.loc[:, list(CONTEXT)].to_numpy("float32")
    return out


class _EpochBar:
    """A Keras callback showing one tqdm bar over the epochs (stderr), with the losses."""

    def __new__(cls, epochs: int, desc: str, disable: bool):
        import keras
        from tqdm.auto import tqdm

        class Bar(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.bar = tqdm(total=epochs, desc=desc, disable=disable)

            def on_epoch_end(self, epoch, logs=None):
                self.bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items() if "mse" in k})
                self.bar.update(1)

            def on_train_end(self, logs=None):
                self.bar.close()

        return Bar()


class KerasRatings:
    """Train a Keras rating model (MSE, Adam) and use it like the other rating models.

    ``fit(train, validation)`` stops early on the validation MSE and keeps the best epoch's
    weights; ``fit(train, epochs=n)`` trains exactly ``n`` epochs (the refit on train +
    validation with the number of epochs chosen on validation).
    """

    def __init__(self, build, n_users, n_movies, *, epochs=30, batch_size=256, learning_rate=1e-3,
                 patience=3, seed=42, progress=True, **kwargs):
        self.build, self.n_users, self.n_movies, self.kwargs = build, n_users, n_movies, kwargs
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.seed, self.progress = patience, seed, progress
        self.history: pd.DataFrame | None = None
        self.best_epoch_: int | None = None

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame | None = None, epochs: int | None = None):
        import keras
        import tensorflow as tf

        # Every model traces its own predict function; TF's "retracing" notes about that are noise.
        tf.get_logger().setLevel("ERROR")
        keras.utils.set_random_seed(self.seed)
        mean = float(train["rating"].mean())
        self.model = self.build(self.n_users, self.n_movies, mean=mean, seed=self.seed, **self.kwargs)
        mse = keras.metrics.MeanSquaredError(name="mse")  # the loss without the regularisers
        self.model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mse", metrics=[mse])
        epochs = epochs or self.epochs
        callbacks = [_EpochBar(epochs, self.model.name, not self.progress)]
        val_data = None
        if validation is not None:
            val_data = (model_inputs(self.model, validation), validation["rating"].to_numpy("float32"))
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_mse", patience=self.patience, restore_best_weights=True))
        start = time.perf_counter()
        hist = self.model.fit(
            model_inputs(self.model, train), train["rating"].to_numpy("float32"), validation_data=val_data,
            epochs=epochs, batch_size=self.batch_size, shuffle=True, verbose=0, callbacks=callbacks,
        )
        self.fit_seconds_ = time.perf_counter() - start
        self.history = pd.DataFrame(hist.history, index=pd.RangeIndex(1, len(hist.history["loss"]) + 1, name="epoch"))
        if validation is not None:
            self.best_epoch_ = int(self.history["val_mse"].idxmin())
        else:
            self.best_epoch_ = epochs
        return self

    def predict(self, frame: pd.DataFrame, batch_size: int = 16384) -> np.ndarray:
        return np.asarray(self.model.predict(model_inputs(self.model, frame), batch_size=batch_size, verbose=0))

    def score_users(self, users, context=None) -> np.ndarray:
        """(n, n_movies) predicted ratings of every movie for ``users`` (``context``: (n, 2))."""
        users = np.asarray(users, dtype="int32")
        frame = pd.DataFrame({
            "user": np.repeat(users, self.n_movies),
            "movie": np.tile(np.arange(self.n_movies, dtype="int32"), len(users)),
        })
        if context is not None:
            ctx = np.repeat(np.asarray(context, dtype="float32"), self.n_movies, axis=0)
            frame["daytime"], frame["weekend"] = ctx[:, 0], ctx[:, 1]
        return self.predict(frame).reshape(len(users), self.n_movies)

    def embeddings(self, layer: str) -> np.ndarray:
        """The weights of an embedding layer (e.g. ``movie_factors``)."""
        return np.asarray(self.model.get_layer(layer).embeddings.numpy())


# ---------------------------------------------------------------------------------------------
# Ranking: top 5 of each test user's unrated movies


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest scores of each row, best first (ties: lower index)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(scores, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1).astype("int64")


@dataclass
class RankingTask:
    """Rank, for every test user with a liked test movie, the movies they did not rate before.

    Candidates are the movies rated by anyone in ``history`` (a rating model knows nothing about
    the others), minus the user's own history; relevant items are the user's test movies rated at
    least ``threshold`` stars. ``context`` holds the (daytime, weekend) of each user's first test
    rating: the moment the recommendation is shown.
    """

    users: np.ndarray
    indptr: np.ndarray
    relevant: np.ndarray
    seen: list[np.ndarray]
    candidates: np.ndarray
    context: np.ndarray
    n_movies: int

    @classmethod
    def build(cls, history: pd.DataFrame, test: pd.DataFrame, n_movies: int, threshold: float = 4.0) -> RankingTask:
        liked = test[test["rating"] >= threshold].sort_values(["user", "movie"])
        users = np.unique(liked["user"].to_numpy())
        counts = liked.groupby("user").size().reindex(users).to_numpy()
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype("int64")
        by_user = history.groupby("user")["movie"].apply(np.asarray)
        seen = [by_user.get(u, np.zeros(0, dtype="int64")) for u in users]
        candidates = np.zeros(n_movies, dtype=bool)
        candidates[history["movie"].to_numpy()] = True
        first = test.sort_values(["user", "timestamp", "movie"]).drop_duplicates("user").set_index("user")
        context = first.loc[users, list(CONTEXT)].to_numpy("float32")
        return cls(users, indptr, liked["movie"].to_numpy("int64"), seen, candidates, context, n_movies)

    def recommend(self, model, k: int = 5, chunk: int = 128) -> np.ndarray:
        """(n_users, k) top movies of ``model.score_users`` among each user's candidates."""
        out = []
        for start in range(0, len(self.users), chunk):
            users = self.users[start : start + chunk]
            scores = np.array(model.score_users(users, self.context[start : start + chunk]), dtype="float32")
            scores[:, ~self.candidates] = -np.inf
            for row, seen in enumerate(self.seen[start : start + chunk]):
                scores[row, seen] = -np.inf
            out.append(top_k(scores, k))
        return np.concatenate(out)

    def evaluate(self, model, k: int = 5) -> dict[str, float]:
        """``precision_at_k``, ``recall_at_k``, ``ndcg_at_k``, ``mrr_at_k`` averaged over users."""
        return metrics.ranking_metrics(self.indptr, self.relevant, self.recommend(model, k), k)


class Popularity:
    """Rank movies by how many users rated them (a reference for the ranking metrics only)."""

    def __init__(self, n_movies: int):
        self.n_movies = n_movies

    def fit(self, frame: pd.DataFrame) -> Popularity:
        self.counts_ = np.bincount(frame["movie"].to_numpy(), minlength=self.n_movies).astype("float32")
        return self

    def score_users(self, users, context=None) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(users), self.n_movies))


def seed_agreement(frame: pd.DataFrame, predictions, k: int = 5) -> dict[str, float]:
    """Seed 003's per-user view, averaged over users: order each user's own test movies by the
    true and by the predicted rating and compare the two top-``k`` lists.

    ``accuracy`` is sklearn's ``accuracy_score`` of the two lists (same movie at the same
    position); ``mrr`` is the seed's mean over the true top-k of 1 / (rank in the predicted top-k)
    (0 if absent). Ties in the true ratings are broken by movie code, which makes both noisy.
    """
    df = pd.DataFrame({"user": frame["user"].to_numpy(), "movie": frame["movie"].to_numpy(),
                       "y": frame["rating"].to_numpy(), "yhat": np.asarray(predictions)})
    acc, mrr = [], []
    for _, g in df.groupby("user", sort=True):
        if len(g) < k:
            continue
        truth = g.sort_values(["y", "movie"], ascending=[False, True])["movie"].to_numpy()[:k]
        pred = g.sort_values(["yhat", "movie"], ascending=[False, True])["movie"].to_numpy()[:k]
        acc.append(float(np.mean(truth == pred)))
        rank = {m: j + 1 for j, m in enumerate(pred)}
        mrr.append(float(np.mean([1.0 / rank[m] if m in rank else 0.0 for m in truth])))
    return {"accuracy": float(np.mean(acc)), "mrr": float(np.mean(mrr))}


# ---------------------------------------------------------------------------------------------
# Evaluation and inspection helpers for the chapter


def evaluate(model, frame: pd.DataFrame, task: RankingTask | None = None, k: int = 5) -> dict[str, float]:
    """MAE/RMSE of ``model`` on ``frame`` and, given a ``task``, its top-``k`` ranking metrics."""
    out = rating_metrics(frame["rating"], model.predict(frame)) if hasattr(model, "predict") else {}
    if task is not None:
        out.update(task.evaluate(model, k))
    return out


def refit(model, frame: pd.DataFrame):
    """Fit again on ``frame`` (train + validation) with what validation chose: a Keras model
    for the number of epochs early stopping kept, any other model as it is configured."""
    if isinstance(model, KerasRatings):
        return model.fit(frame, epochs=model.best_epoch_)
    return model.fit(frame)


def nearest(vectors: np.ndarray, query: int, k: int = 10, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
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
