"""A hybrid, context-aware recommender: collaborative embeddings + item content + invoice context.

The score of item ``i`` for customer ``c`` in context ``x`` (the invoice's country, hour of day and
weekday) is a dot product of two vectors plus an item bias:

    query(c, x) = e_c + W_x [country(x); hour(x); weekday(x)]
    item(i)     = e_i + W_f [mean word embedding(i); price band(i)]
    score       = query(c, x) . item(i) + b_i

The context enters the *query*, so it interacts with every item and can change the ranking. (A
context term added to the score on its own, as in the source article's hybrid model, shifts every
item of an invoice by the same amount and cannot change what is recommended.) Training is
pointwise with sampled negatives, as for NCF, each negative sharing its positive's context.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .beyond import ScoreRecommender, item_popularity, sample_negatives
from .content import item_table, price_bands
from .data import Split
from .settings import get_settings
from .two_tower import _mean_of_words_layer, customer_countries, description_tokens

N_HOURS, N_WEEKDAYS = 24, 7


def invoice_context(split: Split, part: str, country_encoder) -> pd.DataFrame:
    """One row per invoice of ``part`` (in the protocol's order): customer and context codes."""
    frame = split.part(part)
    first = frame.iloc[split.indptr(part)[:-1]]
    when = pd.to_datetime(first["invoicedate"])
    return pd.DataFrame(
        {
            "customer": first["customer"].to_numpy("int32"),
            "country": country_encoder.transform(first["country"].fillna("Unspecified")),
            "hour": when.dt.hour.to_numpy("int32"),
            "weekday": when.dt.day_of_week.to_numpy("int32"),
        }
    )


def row_context(split: Split, country_encoder) -> pd.DataFrame:
    """Customer, item and context codes of every training row of a known customer."""
    train = split.train[split.train["customer"] >= 0]
    when = pd.to_datetime(train["invoicedate"])
    return pd.DataFrame(
        {
            "customer": train["customer"].to_numpy("int32"),
            "item": train["item"].to_numpy("int32"),
            "country": country_encoder.transform(train["country"].fillna("Unspecified")),
            "hour": when.dt.hour.to_numpy("int32"),
            "weekday": when.dt.day_of_week.to_numpy("int32"),
        }
    )


def build_hybrid(
    n_customers: int,
    n_items: int,
    n_countries: int,
    n_words: int,
    n_bands: int,
    dim: int = 32,
    use_context: bool = True,
    use_content: bool = True,
    seed: int = 42,
):
    """The query and item towers (``keras.Model`` each) and the item bias layer of the hybrid model."""
    import keras
    from keras import layers

    def emb(n, name, size=dim):
        init = keras.initializers.RandomNormal(stddev=0.05, seed=seed + len(name))
        return layers.Embedding(n, size, embeddings_initializer=init, name=name)

    customer = keras.Input(shape=(), dtype="int32", name="customer")
    context_inputs = {name: keras.Input(shape=(), dtype="int32", name=name) for name in ("country", "hour", "weekday")}
    query = emb(n_customers, "customer_id")(customer)
    if use_context:
        parts = [
            emb(n_countries, "country_id", 8)(context_inputs["country"]),
            emb(N_HOURS, "hour_id", 4)(context_inputs["hour"]),
            emb(N_WEEKDAYS, "weekday_id", 4)(context_inputs["weekday"]),
        ]
        context = layers.Dense(dim, kernel_initializer=keras.initializers.GlorotUniform(seed), name="context")(
            layers.Concatenate()(parts)
        )
        query = layers.Add(name="query_sum")([query, context])
    query_tower = keras.Model({"customer": customer, **context_inputs}, query, name="query_tower")

    item = keras.Input(shape=(), dtype="int32", name="item")
    words = keras.Input(shape=(None,), dtype="int32", name="words")
    band = keras.Input(shape=(), dtype="int32", name="band")
    vector = emb(n_items, "item_id")(item)
    if use_content:
        text = _mean_of_words_layer()(name="mean_words")(emb(n_words, "word_id", 16)(words), words)
        price = emb(n_bands, "band_id", 4)(band)
        content = layers.Dense(dim, kernel_initializer=keras.initializers.GlorotUniform(seed + 1), name="content")(
            layers.Concatenate()([text, price])
        )
        vector = layers.Add(name="item_sum")([vector, content])
    item_tower = keras.Model({"item": item, "words": words, "band": band}, vector, name="item_tower")
    bias = layers.Embedding(n_items, 1, embeddings_initializer="zeros", name="item_bias")
    bias.build((None,))
    return query_tower, item_tower, bias


class Hybrid(ScoreRecommender):
    """Context-aware hybrid model; ``recommend_invoices`` uses each invoice's own context.

    ``recommend(customers, k)`` (the basket contract) fills the context with the customer's usual
    country and the training period's most common hour and weekday: a static context.
    """

    def __init__(
        self,
        dim: int = 32,
        epochs: int = 4,
        n_negatives: int = 4,
        batch_size: int = 4096,
        learning_rate: float = 0.003,
        use_context: bool = True,
        use_content: bool = True,
        seed: int | None = None,
        progress: bool = True,
    ):
        self.dim, self.epochs, self.n_negatives, self.train_batch = dim, epochs, n_negatives, batch_size
        self.learning_rate, self.use_context, self.use_content = learning_rate, use_context, use_content
        self.seed = get_settings().seed if seed is None else seed
        self.progress = progress
        self.history_: list[float] = []

    def fit(self, split: Split, callback=None) -> Hybrid:
        import keras
        import tensorflow as tf
        from tqdm.auto import tqdm

        start = time.perf_counter()
        self.n_items = split.n_items
        self.popularity_ = item_popularity(split)
        self.home_country_, self.country_encoder_ = customer_countries(split)
        self.words_, self.vocabulary_ = description_tokens(split)
        self.bands_ = price_bands(item_table(split)["price"])
        rows = row_context(split, self.country_encoder_)
        self.usual_hour_ = int(rows["hour"].mode().iloc[0])
        self.usual_weekday_ = int(rows["weekday"].mode().iloc[0])
        self.query_, self.item_, self.bias_ = build_hybrid(
            split.n_customers, self.n_items, len(self.country_encoder_), len(self.vocabulary_) + 1,
            int(self.bands_.max()) + 1, self.dim, self.use_context, self.use_content, self.seed,
        )
        variables = self.query_.trainable_variables + self.item_.trainable_variables + self.bias_.trainable_variables
        optimizer = keras.optimizers.Adam(self.learning_rate)
        words, bands = tf.constant(self.words_), tf.constant(self.bands_)
        query_tower, item_tower, bias = self.query_, self.item_, self.bias_

        @tf.function(reduce_retracing=True)
        def step(c, country, hour, weekday, i, y):
            with tf.GradientTape() as tape:
                q = query_tower({"customer": c, "country": country, "hour": hour, "weekday": weekday}, training=True)
                v = item_tower({"item": i, "words": tf.gather(words, i), "band": tf.gather(bands, i)}, training=True)
                logits = tf.reduce_sum(q * v, axis=1) + tf.reshape(bias(i), [-1])
                loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return loss

        columns = [rows[name].to_numpy("int32") for name in ("customer", "country", "hour", "weekday")]
        positives = rows["item"].to_numpy("int32")
        rng = np.random.default_rng(self.seed)
        n = len(positives) * (1 + self.n_negatives)
        for epoch in tqdm(range(self.epochs), desc="hybrid epochs", disable=not self.progress):
            negatives = sample_negatives(self.n_items, len(positives) * self.n_negatives, rng)
            items = np.concatenate([positives, negatives])
            labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))]).astype("float32")
            context = [np.tile(col, 1 + self.n_negatives) for col in columns]
            order = rng.permutation(n)
            losses = []
            for s in range(0, n, self.train_batch):
                b = order[s : s + self.train_batch]
                losses.append(float(step(*(col[b] for col in context), items[b], labels[b])))
            self.history_.append(float(np.mean(losses)))
            self._cache()
            if callback is not None:
                callback(epoch, self)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _cache(self) -> None:
        items = np.arange(self.n_items, dtype="int32")
        self.item_factors_ = np.asarray(self.item_({"item": items, "words": self.words_, "band": self.bands_}))
        self.item_bias_ = np.asarray(self.bias_(items)).ravel()

    def query(self, context: pd.DataFrame) -> np.ndarray:
        """Query vectors for rows with ``customer``, ``country``, ``hour`` and ``weekday`` codes."""
        inputs = {name: context[name].to_numpy("int32") for name in ("customer", "country", "hour", "weekday")}
        return np.asarray(self.query_(inputs))

    def static_context(self, customers) -> pd.DataFrame:
        customers = np.asarray(customers, dtype="int32")
        return pd.DataFrame(
            {
                "customer": customers,
                "country": self.home_country_[customers],
                "hour": np.full(len(customers), self.usual_hour_, dtype="int32"),
                "weekday": np.full(len(customers), self.usual_weekday_, dtype="int32"),
            }
        )

    def scores(self, customers):
        return self.query(self.static_context(customers)) @ self.item_factors_.T + self.item_bias_

    def recommend_invoices(self, context: pd.DataFrame, k: int = 5) -> np.ndarray:
        """Top-k items for each invoice, from its customer and its own context."""
        from .protocols import top_k

        out = np.empty((len(context), k), dtype="int32")
        for s in range(0, len(context), 1024):
            scores = self.query(context.iloc[s : s + 1024]) @ self.item_factors_.T + self.item_bias_
            out[s : s + len(scores)] = top_k(scores + 1e-6 * self.popularity_, k)
        return out


def evaluate_in_context(model: Hybrid, protocol, split: Split) -> dict[str, float]:
    """Score ``model`` on a protocol's invoices, each recommended in its own context."""
    context = invoice_context(split, protocol.part, model.country_encoder_)
    recs = protocol.baseline()
    known = protocol.known
    if known.any():
        recs[known] = model.recommend_invoices(context[known].reset_index(drop=True), protocol.k)
    return protocol.score(recs)
