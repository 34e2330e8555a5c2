"""A learned re-ranker of the purchase history: which of my past items will I buy next month?

``Repurchase`` ranks a customer's past items by how often they were bought. That ignores when
they were bought, how regularly, and whether the customer is still active. ``HistoryReranker``
learns that ranking instead: for every (customer, candidate item) it computes a few features of
the history (counts, share of the customer's invoices, recency, recent activity, popularity) and
a small Keras network predicts the share of the customer's next-month invoices that will contain
the item. Candidates are the customer's past items plus the items most bought in the last month.

Training examples come from the training period only: at several cut-off dates, features from
what came before and labels from the 30 days after.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ..datasets.retail import Split
from ..settings import get_settings
from .base import KerasTrainer, shuffled_batches

FEATURES = (
    "bought",  # 1 if the customer bought the item before
    "share",  # share of the customer's invoices that contain the item
    "log_rows",  # log(1 + invoice lines with the item)
    "recency",  # 1 / (1 + weeks since the customer last bought the item), 0 if never
    "log_invoices_30",  # log(1 + the customer's invoices with the item in the last 30 days)
    "log_invoices_90",  # ... in the last 90 days
    "log_customer_invoices",  # log(1 + the customer's invoices)
    "log_customer_idle_days",  # log(1 + days since the customer's last invoice)
    "log_popularity",  # log(1 + lines of the item, all customers)
    "log_recent_popularity",  # log(1 + lines of the item in the last 30 days)
)


def candidate_features(
    history: pd.DataFrame, end: pd.Timestamp, customers, n_popular: int = 30
) -> pd.DataFrame:
    """One row per (customer, candidate item) with the ``FEATURES`` as of ``end``.

    ``history`` holds rows of known customers before ``end`` (columns ``customer``, ``item``,
    ``invoiceno``, ``invoicedate``). Candidates: every item the customer bought, plus the
    ``n_popular`` items most bought in the 30 days before ``end``.
    """
    customers = np.asarray(customers)
    days = (end - history["invoicedate"]).dt.days.to_numpy()
    pairs = history.groupby(["customer", "item"])
    table = pd.DataFrame(
        {
            "rows": pairs.size(),
            "invoices": pairs["invoiceno"].nunique(),
            "last": pairs["invoicedate"].max(),
        }
    )
    for window in (30, 90):
        recent = history[days < window].groupby(["customer", "item"])["invoiceno"].nunique()
        table[f"invoices_{window}"] = recent.reindex(table.index).fillna(0)
    table = table.reset_index()
    table = table[table["customer"].isin(customers)]
    recent_counts = history.loc[days < 30, "item"].value_counts()
    popular = recent_counts.index[:n_popular].to_numpy()
    extra = pd.DataFrame(
        {"customer": np.repeat(customers, len(popular)), "item": np.tile(popular, len(customers))}
    )
    table = extra.merge(table, on=["customer", "item"], how="outer")
    table = table.fillna({"rows": 0, "invoices": 0})
    per_customer = history.groupby("customer").agg(
        n=("invoiceno", "nunique"), last=("invoicedate", "max")
    )
    n_invoices = table["customer"].map(per_customer["n"]).fillna(0).to_numpy()
    weeks = (end - table["last"]).dt.days.to_numpy() / 7
    out = table[["customer", "item"]].copy()
    out["bought"] = table["last"].notna().to_numpy(float)
    out["share"] = table["invoices"].to_numpy() / np.maximum(n_invoices, 1)
    out["log_rows"] = np.log1p(table["rows"].to_numpy())
    out["recency"] = np.where(np.isnan(weeks), 0.0, 1 / (1 + np.nan_to_num(weeks)))
    out["log_invoices_30"] = np.log1p(table["invoices_30"].fillna(0).to_numpy())
    out["log_invoices_90"] = np.log1p(table["invoices_90"].fillna(0).to_numpy())
    out["log_customer_invoices"] = np.log1p(n_invoices)
    idle = (end - table["customer"].map(per_customer["last"])).dt.days
    out["log_customer_idle_days"] = np.log1p(idle.fillna(365).to_numpy())
    popularity = table["item"].map(history["item"].value_counts()).fillna(0)
    out["log_popularity"] = np.log1p(popularity.to_numpy())
    out["log_recent_popularity"] = np.log1p(table["item"].map(recent_counts).fillna(0).to_numpy())
    return out.reset_index(drop=True)


def next_month_labels(
    features: pd.DataFrame, target: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Share of each customer's invoices in ``target`` that contain the item, and their number."""
    hits = target.groupby(["customer", "item"])["invoiceno"].nunique()
    index = pd.MultiIndex.from_arrays([features["customer"], features["item"]])
    counts = hits.reindex(index).fillna(0).to_numpy()
    invoices = target.groupby("customer")["invoiceno"].nunique()
    trials = features["customer"].map(invoices).fillna(0).to_numpy()
    return counts / np.maximum(trials, 1), trials.astype(np.float32)


def build_scorer(n_features: int, hidden=(64, 32), seed: int = 42) -> keras.Sequential:
    """A small MLP from standardised features to the logit of "bought next month"."""
    stack = [keras.Input((n_features,))]
    for i, units in enumerate(hidden):
        glorot = keras.initializers.GlorotUniform(seed + i)
        stack.append(
            keras.layers.Dense(units, "relu", kernel_initializer=glorot, name=f"hidden_{i}")
        )
    glorot = keras.initializers.GlorotUniform(seed + len(hidden))
    stack.append(keras.layers.Dense(1, kernel_initializer=glorot, name="logit"))
    return keras.Sequential(stack, name="history_reranker")


class HistoryScorer(KerasTrainer):
    """The re-ranker's network, trained by the book's loop on ``(features, share, invoices)``.

    The loss of an example is the binary cross-entropy of its logit against the share of the
    customer's next-month invoices that contain the item, weighted by the number of those
    invoices (a customer with more invoices tells more).
    """

    name = "history scorer"

    def __init__(self, hidden=(64, 32), epochs=8, batch_size=1024, learning_rate=3e-3,
                 seed=None, progress=False):
        super().__init__(epochs, batch_size, learning_rate, seed, progress)
        self.hidden = hidden

    def build(self, data) -> list:
        self.features_, self.labels_, self.weights_ = data
        self.model_ = build_scorer(self.features_.shape[1], self.hidden, self.seed)
        return [self.model_]

    def batches(self, rng):
        arrays = (self.features_, self.labels_, self.weights_)
        for rows in shuffled_batches(len(self.labels_), self.batch_size, rng):
            yield tuple(array[rows] for array in arrays)

    def compute_loss(self, batch, training=True):
        features, labels, weights = batch
        logits = self.model_(features, training=training)[:, 0]
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        return tf.reduce_mean(weights * loss)


class HistoryReranker:
    """Re-rank each customer's history (and the month's popular items) with a learned scorer."""

    def __init__(self, cutoffs: int = 6, window_days: int = 30, n_popular: int = 30,
                 hidden=(64, 32), epochs: int = 8, seed: int | None = None,
                 progress: bool = False):
        self.cutoffs, self.window_days, self.n_popular = cutoffs, window_days, n_popular
        self.hidden, self.epochs, self.progress = hidden, epochs, progress
        self.seed = get_settings().seed if seed is None else seed

    def _training_set(self, known: pd.DataFrame):
        frames, labels, weights = [], [], []
        window = pd.Timedelta(days=self.window_days)
        dates = known["invoicedate"]
        for j in range(1, self.cutoffs + 1):
            cut = self.validation_start_ - j * window
            history = known[dates < cut]
            target = known[(dates >= cut) & (dates < cut + window)]
            active = np.intersect1d(history["customer"].unique(), target["customer"].unique())
            features = candidate_features(history, cut, active, self.n_popular)
            y, n = next_month_labels(features, target)
            frames.append(features), labels.append(y), weights.append(n)
        return pd.concat(frames), np.concatenate(labels), np.concatenate(weights)

    def fit(self, split: Split) -> HistoryReranker:
        known = split.train[split.train["customer"] >= 0]
        self.validation_start_ = split.validation_start
        features, y, weights = self._training_set(known)
        X = features[list(FEATURES)].to_numpy(np.float32)
        self.mean_, self.scale_ = X.mean(axis=0), X.std(axis=0) + 1e-9
        self.scorer_ = HistoryScorer(self.hidden, self.epochs, seed=self.seed,
                                     progress=self.progress)
        standardized = (X - self.mean_) / self.scale_
        self.scorer_.fit((standardized, y.astype(np.float32), weights.astype(np.float32)))
        self.model_ = self.scorer_.model_
        self.n_training_rows_ = len(X)
        # rank the candidates of every known customer as of the end of the training period
        candidates = candidate_features(
            known, split.validation_start, np.arange(split.n_customers), self.n_popular
        )
        X = (candidates[list(FEATURES)].to_numpy(np.float32) - self.mean_) / self.scale_
        candidates["score"] = self.model_.predict(X, batch_size=8192, verbose=0)[:, 0]
        self.ranked_ = candidates.sort_values(["customer", "score"], ascending=[True, False])
        never_bought = candidates["bought"] == 0
        self.fallback_ = candidates.loc[never_bought, "item"].value_counts().index.to_numpy()
        return self

    def recommend(self, customers, k: int = 5) -> np.ndarray:
        """The top ``k`` ranked candidates of each customer, filled up from the items most often
        among the customers' candidates (a re-ranker has no score for every item)."""
        top = self.ranked_.groupby("customer").head(k)
        lists = top.groupby("customer")["item"].apply(np.asarray)
        out = np.empty((len(np.atleast_1d(customers)), k), dtype=np.int32)
        for row, customer in enumerate(np.atleast_1d(customers)):
            items = lists.get(customer, np.zeros(0, dtype=np.int32))
            fill = self.fallback_[~np.isin(self.fallback_, items)][: k - len(items)]
            out[row] = np.concatenate([items, fill])[:k]
        return out
