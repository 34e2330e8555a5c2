"""Two-tower retrieval with Keras 3 and keras-rs: query and candidate towers, in-batch softmax.

The query tower embeds a customer (their id and country) or a MovieLens user; the candidate tower
embeds an item (its stock code and the words of its description) or a film (its title, the title's
words, its genres): each model's towers are built from a list of ``Feature``s (``TowerData``). Their dot product is the affinity score.
Training treats the other items of a batch as negatives (in-batch softmax); a duplicate of the
positive item elsewhere in the batch is an *accidental hit* and is masked out of the softmax.
Serving is a brute-force top-k over the candidate embeddings
(``keras_rs.layers.BruteForceRetrieval``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import keras_rs
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers, ops

from ..datasets import movielens
from ..datasets.retail import Split
from ..features import customer_countries, description_tokens
from ..interactions import item_popularity, training_pairs
from .base import FactorModel, KerasTrainer
from .layers import MeanOfWords

#: The two-tower model chapter 10 trains (its settings chosen on validation).
TWO_TOWER_CHOSEN = {
    "dim": 32, "epochs": 4, "batch_size": 1024, "learning_rate": 0.01, "temperature": 0.1,
}

#: The TFRS article's set-up on MovieLens (TensorFlow Recommenders' basic retrieval tutorial): a
#: user-id tower and a title tower of 32 dimensions without projection, in-batch softmax summed over
#: batches of 8,192 ratings, Adagrad at 0.1, three epochs, no temperature, no hit removal.
ML_SEED_SETUP = {
    "dim": 32, "epochs": 3, "batch_size": 8192, "learning_rate": 0.1, "temperature": 1.0,
    "remove_hits": False, "sampling_correction": False, "project": False, "optimizer": "adagrad",
    "reduction": "sum",
}
#: The MovieLens two-tower model chapter 22 chooses on validation (the title's words and the
#: genres in the candidate tower, ``MovieLensTowers(words=True, genres=True)``); its number of
#: epochs is chosen by early stopping on the validation top-100 accuracy.
ML_TWO_TOWER_CHOSEN = {
    "dim": 32, "batch_size": 1024, "learning_rate": 0.01, "temperature": 0.1, "remove_hits": True,
    "sampling_correction": True,
}


def remove_accidental_hits(logits, labels, candidate_ids):
    """Mask in-batch negatives that are the positive item itself (a fixed ``RemoveAccidentalHits``).

    keras-rs 0.4.0's layer adds ``smallest_normal / 100`` (about 1e-40) to those logits, which
    leaves float32 logits unchanged (keras-team/keras-rs#206); here they get a large negative value.
    ``candidate_ids`` has one id per column; ``labels`` is one-hot per row.
    """
    positive_ids = ops.take(candidate_ids, ops.argmax(labels, axis=-1), axis=0)
    same = ops.equal(positive_ids[:, None], candidate_ids[None, :])
    duplicate = ops.cast(same, logits.dtype) - labels
    return logits - 1e9 * duplicate


@dataclass(frozen=True)
class Feature:
    """One input of a tower: ``size`` codes (or token ids, 0 = padding, when ``tokens``) that an
    ``Embedding`` layer named ``layer`` turns into a vector (tokens: the mean of their vectors)."""

    name: str
    size: int
    layer: str
    tokens: bool = False


@dataclass
class TowerData:
    """What a two-tower model trains on: the (query, candidate) pairs and each tower's features.

    ``query_tables[name]`` holds one row per query id (a code, or a row of token ids), and the same
    for candidates; ``popularity`` (one per candidate, in [0, 1]) breaks ties in ``recommend``.
    """

    queries: np.ndarray
    candidates: np.ndarray
    query_features: list[Feature]
    query_tables: dict[str, np.ndarray]
    candidate_features: list[Feature]
    candidate_tables: dict[str, np.ndarray]
    popularity: np.ndarray

    @property
    def n_queries(self) -> int:
        return len(next(iter(self.query_tables.values())))

    @property
    def n_candidates(self) -> int:
        return len(next(iter(self.candidate_tables.values())))


def build_tower(
    features: list[Feature], dim: int, seed: int, name: str, project: bool = True,
    dense_seed: int | None = None,
) -> keras.Model:
    """A tower ``features -> R^dim``: one embedding per feature, concatenated, then ``Dense(dim)``.

    Without ``project`` (one feature only) the tower is the embedding itself, as in TensorFlow
    Recommenders' basic retrieval model. Embedding ``f`` is seeded ``seed + len(f.layer)``, the
    projection ``dense_seed`` (default ``seed``).
    """
    inputs, parts = {}, []
    for f in features:
        x = keras.Input(shape=(None,) if f.tokens else (), dtype="int32", name=f.name)
        init = keras.initializers.RandomNormal(stddev=0.05, seed=seed + len(f.layer))
        vectors = layers.Embedding(f.size, dim, embeddings_initializer=init, name=f.layer)(x)
        if f.tokens:
            vectors = MeanOfWords(name=f"mean_{f.name}")(vectors, x)
        inputs[f.name] = x
        parts.append(vectors)
    if project:
        out = layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
        glorot = keras.initializers.GlorotUniform(seed if dense_seed is None else dense_seed)
        out = layers.Dense(dim, kernel_initializer=glorot, name=f"{name}_dense")(out)
    elif len(parts) == 1:
        out = parts[0]
    else:
        raise ValueError("a tower without projection takes exactly one feature")
    return keras.Model(inputs, out, name=f"{name}_tower")


def build_towers(
    n_customers: int, n_countries: int, n_items: int, n_words: int, dim: int = 32, seed: int = 42
) -> tuple[keras.Model, keras.Model]:
    """The retail towers: query ``(customer, country) -> R^dim``, candidate ``(item, words) ->
    R^dim``, each a functional ``keras.Model`` (``build_tower``)."""
    query = [Feature("customer", n_customers, "customer_id"), Feature("country", n_countries, "country_id")]
    candidate = [Feature("item", n_items, "item_id"), Feature("words", n_words, "word_id", tokens=True)]
    return (
        build_tower(query, dim, seed, "query"),
        build_tower(candidate, dim, seed, "candidate", dense_seed=seed + 1),
    )


def retail_towers(split: Split) -> TowerData:
    """The retail towers' data: invoice rows as (customer, item) pairs, countries, descriptions."""
    customers, items = training_pairs(split)
    countries, country_encoder = customer_countries(split)
    words, vocabulary = description_tokens(split)
    return TowerData(
        customers,
        items,
        [Feature("customer", split.n_customers, "customer_id"), Feature("country", len(country_encoder), "country_id")],
        {"customer": np.arange(split.n_customers, dtype="int32"), "country": countries},
        [Feature("item", split.n_items, "item_id"), Feature("words", len(vocabulary) + 1, "word_id", tokens=True)],
        {"item": np.arange(split.n_items, dtype="int32"), "words": words},
        item_popularity(split),
    )


class TwoTower(KerasTrainer, FactorModel):
    """Two-tower retrieval model trained with in-batch softmax on (query, candidate) pairs.

    The towers' features are pluggable: ``towers(data) -> TowerData`` says what the pairs are and
    what each tower reads (default ``retail_towers``: customers and the items of their invoices;
    ``movielens_towers`` gives users and the films they rated). Queries play the part of the
    basket protocol's customers, candidates of its items.

    Parameters
    ----------
    dim
        Size of the shared embedding space.
    temperature
        Logits are divided by it before the softmax.
    remove_hits
        Mask accidental hits (the positive item appearing again in the batch).
    sampling_correction
        Subtract the log of each in-batch candidate's sampling probability from its logit (the
        "logQ" correction of Yi et al., 2019, ``keras_rs.layers.SamplingProbabilityCorrection``).
        In-batch negatives are drawn in proportion to popularity; without the correction the
        model learns to push popular items down.
    towers
        ``data -> TowerData`` (see above).
    project
        A ``Dense(dim)`` on top of each tower's embeddings (``build_tower``).
    optimizer, reduction
        ``"adam"`` or ``"adagrad"``; the batch's losses averaged (``"mean"``) or summed
        (``"sum"``, TensorFlow Recommenders' ``Retrieval`` task, whose step then grows with the
        batch).
    epochs, batch_size, learning_rate, seed, progress
        The training loop's (``base.KerasTrainer``); ``batch_size`` is the number of in-batch
        candidates.
    """

    name = "two-tower"

    def __init__(
        self,
        dim: int = 32,
        epochs: int = 3,
        batch_size: int = 1024,
        learning_rate: float = 0.01,
        temperature: float = 0.1,
        remove_hits: bool = True,
        sampling_correction: bool = True,
        seed: int | None = None,
        progress: bool = True,
        towers: Callable[..., TowerData] | None = None,
        project: bool = True,
        optimizer: str = "adam",
        reduction: str = "mean",
    ):
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        self.dim, self.temperature = dim, temperature
        self.remove_hits, self.sampling_correction = remove_hits, sampling_correction
        self.towers = towers or retail_towers
        self.project, self.optimizer, self.reduction = project, optimizer, reduction
        if optimizer not in ("adam", "adagrad") or reduction not in ("mean", "sum"):
            raise ValueError(f"optimizer {optimizer!r} / reduction {reduction!r} not known")

    def build(self, data) -> list:
        towers = self.towers(data)
        self.n_customers, self.n_items = towers.n_queries, towers.n_candidates
        self.popularity_ = towers.popularity
        self.customers_, self.items_ = towers.queries, towers.candidates
        frequency = np.bincount(self.items_, minlength=self.n_items).astype("float32")
        self.sampling_probability_ = frequency / frequency.sum()
        self.correction_ = keras_rs.layers.SamplingProbabilityCorrection()
        self.query_tables_, self.candidate_tables_ = towers.query_tables, towers.candidate_tables
        self.query_ = build_tower(towers.query_features, self.dim, self.seed, "query", self.project)
        self.candidate_ = build_tower(
            towers.candidate_features, self.dim, self.seed, "candidate", self.project, self.seed + 1
        )
        return [self.query_, self.candidate_]

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        if self.optimizer == "adagrad":
            return keras.optimizers.Adagrad(learning_rate=self.learning_rate)
        return super().make_optimizer()

    def batches(self, rng):
        """The shuffled training rows in batches of (almost) equal size: a short last batch would
        give its queries only a few in-batch negatives."""
        order = rng.permutation(len(self.customers_))
        for rows in np.array_split(order, max(1, len(order) // self.batch_size)):
            yield self.customers_[rows], self.items_[rows]

    @staticmethod
    def _lookup(tables: dict[str, np.ndarray], ids) -> dict:
        return {name: tf.gather(table, ids) for name, table in tables.items()}

    def compute_loss(self, batch, training=True):
        """In-batch softmax: each query's own candidate against the batch's other candidates."""
        customers, items = batch
        q = self.query_(self._lookup(self.query_tables_, customers), training=training)
        v = self.candidate_(self._lookup(self.candidate_tables_, items), training=training)
        logits = tf.matmul(q, v, transpose_b=True) / self.temperature
        if self.sampling_correction:
            probability = tf.gather(self.sampling_probability_, items)[None, :]
            logits = self.correction_(logits, probability)
        labels = tf.eye(tf.shape(customers)[0])
        if self.remove_hits:
            logits = remove_accidental_hits(logits, labels, items)
        losses = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
        return tf.reduce_sum(losses) if self.reduction == "sum" else tf.reduce_mean(losses)

    def on_epoch_end(self) -> None:
        """Embed every query and every candidate once (the candidates of the brute-force index)."""
        self.customer_factors_ = np.asarray(self.query_(self.query_tables_))
        self.item_factors_ = np.asarray(self.candidate_(self.candidate_tables_))

    def index(self, k: int = 10) -> keras_rs.layers.BruteForceRetrieval:
        """A keras-rs brute-force top-k index over every item's candidate embedding."""
        return keras_rs.layers.BruteForceRetrieval(
            candidate_embeddings=self.item_factors_,
            candidate_ids=np.arange(self.n_items, dtype="int32"),
            k=k,
        )


@dataclass(eq=False)
class MovieLensTowers:
    """``TowerData`` from a MovieLens ratings frame: users query, the films they rated are the
    candidates (every rating is a positive pair, whatever its stars, as in the two-tower source).

    The query tower reads the user id. The candidate tower reads the title (a code per distinct
    title, the source's string lookup) and, with ``words`` and ``genres``, the title's words and
    the genres (``datasets.movielens.title_tokens``, ``genre_codes``).
    """

    movies: pd.DataFrame
    n_users: int
    words: bool = False
    genres: bool = False

    def __call__(self, frame: pd.DataFrame) -> TowerData:
        titles = movielens.title_codes(self.movies)
        candidate = [Feature("title", int(titles.max()) + 1, "title_id")]
        tables = {"title": titles}
        if self.words:
            tokens, vocabulary = movielens.title_tokens(self.movies)
            candidate.append(Feature("words", len(vocabulary) + 1, "word_id", tokens=True))
            tables["words"] = tokens
        if self.genres:
            codes, names = movielens.genre_codes(self.movies)
            candidate.append(Feature("genres", len(names) + 1, "genre_id", tokens=True))
            tables["genres"] = codes
        counts = np.bincount(frame["movie"].to_numpy(), minlength=len(self.movies))
        return TowerData(
            frame["user"].to_numpy("int32"),
            frame["movie"].to_numpy("int32"),
            [Feature("user", self.n_users, "user_id")],
            {"user": np.arange(self.n_users, dtype="int32")},
            candidate,
            tables,
            (counts / max(counts.max(), 1)).astype("float64"),
        )
