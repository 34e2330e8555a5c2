"""Two-tower retrieval with Keras 3 and keras-rs: a query tower, a candidate tower, in-batch softmax.

The query tower embeds a customer (their id and country); the candidate tower embeds an item
(its stock code and the words of its description). Their dot product is the affinity score.
Training treats the other items of a batch as negatives (in-batch softmax); a duplicate of the
positive item elsewhere in the batch is an *accidental hit* and is masked out of the softmax.
Serving is a brute-force top-k over the candidate embeddings (``keras_rs.layers.BruteForceRetrieval``).
"""

from __future__ import annotations

import time

import numpy as np

from .beyond import ScoreRecommender, item_popularity
from .content import item_table, tokenize
from .data import LabelEncoder, Split
from .mf import training_pairs
from .settings import get_settings


def customer_countries(split: Split) -> tuple[np.ndarray, LabelEncoder]:
    """Each known customer's most frequent country in training (code 0 = unknown), and the encoder."""
    train = split.train[split.train["customer"] >= 0]
    countries = LabelEncoder(reserve_zero=True).fit(split.train["country"].fillna("Unspecified"))
    counts = train.groupby(["customer", "country"], sort=False).size().reset_index(name="n")
    best = counts.sort_values(["customer", "n"], ascending=[True, False], kind="stable").drop_duplicates("customer")
    codes = np.zeros(split.n_customers, dtype="int32")
    codes[best["customer"].to_numpy()] = countries.transform(best["country"])
    return codes, countries


def description_tokens(split: Split, max_words: int = 8, min_count: int = 2) -> tuple[np.ndarray, list[str]]:
    """(n_items, max_words) word ids of each item's description, 0 = padding; and the vocabulary.

    Word ids start at 1; words used by fewer than ``min_count`` items are dropped.
    """
    words = [tokenize(d)[:max_words] for d in item_table(split)["description"]]
    counts: dict[str, int] = {}
    for doc in words:
        for w in set(doc):
            counts[w] = counts.get(w, 0) + 1
    vocabulary = sorted(w for w, n in counts.items() if n >= min_count)
    index = {w: j + 1 for j, w in enumerate(vocabulary)}
    tokens = np.zeros((len(words), max_words), dtype="int32")
    for i, doc in enumerate(words):
        ids = [index[w] for w in doc if w in index]
        tokens[i, : len(ids)] = ids
    return tokens, vocabulary


def remove_accidental_hits(logits, labels, candidate_ids):
    """Mask in-batch negatives that are the positive item itself (a fixed ``RemoveAccidentalHits``).

    keras-rs 0.4.0's layer adds ``smallest_normal / 100`` (about 1e-40) to those logits, which
    leaves float32 logits unchanged (keras-team/keras-rs#206); here they get a large negative value.
    ``candidate_ids`` has one id per column; ``labels`` is one-hot per row.
    """
    from keras import ops

    positive_ids = ops.take(candidate_ids, ops.argmax(labels, axis=-1), axis=0)
    duplicate = ops.cast(ops.equal(positive_ids[:, None], candidate_ids[None, :]), logits.dtype) - labels
    return logits - 1e9 * duplicate


def _mean_of_words_layer():
    import keras
    from keras import ops

    class MeanOfWords(keras.layers.Layer):
        """Mean of the word embeddings of the non-padding ids (zeros for a description without words).

        Keras' masked ``GlobalAveragePooling1D`` divides by zero (NaN) when every id is padding.
        """

        def call(self, vectors, ids):
            mask = ops.cast(ops.not_equal(ids, 0), vectors.dtype)[..., None]
            return ops.sum(vectors * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    return MeanOfWords


def build_towers(
    n_customers: int, n_countries: int, n_items: int, n_words: int, dim: int = 32, seed: int = 42
):
    """The query tower ``(customer, country) -> R^dim`` and candidate tower ``(item, words) -> R^dim``."""
    import keras
    from keras import layers

    MeanOfWords = _mean_of_words_layer()

    def emb(n, name):
        init = keras.initializers.RandomNormal(stddev=0.05, seed=seed + len(name))
        return layers.Embedding(n, dim, embeddings_initializer=init, name=name)

    customer = keras.Input(shape=(), dtype="int32", name="customer")
    country = keras.Input(shape=(), dtype="int32", name="country")
    q = layers.Concatenate()([emb(n_customers, "customer_id")(customer), emb(n_countries, "country_id")(country)])
    q = layers.Dense(dim, kernel_initializer=keras.initializers.GlorotUniform(seed), name="query_dense")(q)
    query = keras.Model({"customer": customer, "country": country}, q, name="query_tower")

    item = keras.Input(shape=(), dtype="int32", name="item")
    words = keras.Input(shape=(None,), dtype="int32", name="words")
    text = MeanOfWords(name="mean_words")(emb(n_words, "word_id")(words), words)
    c = layers.Concatenate()([emb(n_items, "item_id")(item), text])
    c = layers.Dense(dim, kernel_initializer=keras.initializers.GlorotUniform(seed + 1), name="candidate_dense")(c)
    candidate = keras.Model({"item": item, "words": words}, c, name="candidate_tower")
    return query, candidate


class TwoTower(ScoreRecommender):
    """Two-tower retrieval model trained with in-batch softmax on the invoice rows.

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
    """

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
    ):
        self.dim, self.epochs, self.train_batch = dim, epochs, batch_size
        self.learning_rate, self.temperature, self.remove_hits = learning_rate, temperature, remove_hits
        self.sampling_correction = sampling_correction
        self.seed = get_settings().seed if seed is None else seed
        self.progress = progress
        self.history_: list[float] = []

    def fit(self, split: Split, callback=None) -> TwoTower:
        import keras
        import keras_rs
        import tensorflow as tf
        from tqdm.auto import tqdm

        start = time.perf_counter()
        self.n_customers, self.n_items = split.n_customers, split.n_items
        customers, items = training_pairs(split)
        frequency = np.bincount(items, minlength=self.n_items).astype("float32")
        probability = tf.constant(frequency / frequency.sum())
        correct = keras_rs.layers.SamplingProbabilityCorrection() if self.sampling_correction else None
        self.popularity_ = item_popularity(split)
        self.countries_, self.country_encoder_ = customer_countries(split)
        self.words_, self.vocabulary_ = description_tokens(split)
        self.query_, self.candidate_ = build_towers(
            self.n_customers, len(self.country_encoder_), self.n_items, len(self.vocabulary_) + 1, self.dim, self.seed
        )
        variables = self.query_.trainable_variables + self.candidate_.trainable_variables
        optimizer = keras.optimizers.Adam(self.learning_rate)
        countries, words, temperature = tf.constant(self.countries_), tf.constant(self.words_), self.temperature
        query, candidate, remove_hits = self.query_, self.candidate_, self.remove_hits

        @tf.function(reduce_retracing=True)
        def step(c, i):
            with tf.GradientTape() as tape:
                q = query({"customer": c, "country": tf.gather(countries, c)}, training=True)
                v = candidate({"item": i, "words": tf.gather(words, i)}, training=True)
                logits = tf.matmul(q, v, transpose_b=True) / temperature
                if correct is not None:
                    logits = correct(logits, tf.gather(probability, i)[None, :])
                labels = tf.eye(tf.shape(c)[0])
                if remove_hits:
                    logits = remove_accidental_hits(logits, labels, i)
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels, logits))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return loss

        rng = np.random.default_rng(self.seed)
        for epoch in tqdm(range(self.epochs), desc="two-tower epochs", disable=not self.progress):
            order = rng.permutation(len(customers))
            losses = [
                float(step(customers[rows], items[rows]))
                for rows in np.array_split(order, max(1, len(order) // self.train_batch))
            ]
            self.history_.append(float(np.mean(losses)))
            self._cache()
            if callback is not None:
                callback(epoch, self)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _cache(self) -> None:
        """Embed every customer and every item once (the candidates of the brute-force index)."""
        customers = np.arange(self.n_customers, dtype="int32")
        self.customer_factors_ = np.asarray(self.query_({"customer": customers, "country": self.countries_}))
        items = np.arange(self.n_items, dtype="int32")
        self.item_factors_ = np.asarray(self.candidate_({"item": items, "words": self.words_}))

    def scores(self, customers):
        return self.customer_factors_[np.asarray(customers)] @ self.item_factors_.T

    def index(self, k: int = 10):
        """A keras-rs brute-force top-k index over every item's candidate embedding."""
        import keras_rs

        return keras_rs.layers.BruteForceRetrieval(
            candidate_embeddings=self.item_factors_, candidate_ids=np.arange(self.n_items, dtype="int32"), k=k
        )
