"""The contract of each protocol, checked once for every model of the book.

In the style of implicit's ``recommender_base_test.py``: the shared checks are written once here,
and each model supplies only its constructor (small, fast settings). The data have a planted
answer (``datasets.synthetic``): on the checkerboard every invoice is a customer's whole taste
group, so a basket model that learns the groups reaches precision 1 on known customers; in the
retail-shaped table an invoice walks along its taste's cycle of items, so a next-item model that
learns the order beats popularity with removal by far.
"""

import numpy as np
import pytest

from recsys_helpers.evaluation.basket import BasketProtocol
from recsys_helpers.evaluation.next_item import NextItemProtocol
from recsys_helpers.evaluation.ratings import rating_metrics
from recsys_helpers.models import (
    attention,
    baselines,
    content,
    graph_sequence,
    hybrid,
    lightgcn,
    lstm,
    mf,
    ncf,
    ratings,
    rerank,
    two_tower,
)

QUIET = {"progress": False}
SMALL_SASREC = {
    "context": 24, "stride": 8, "dim": 16, "epochs": 8, "batch_size": 16, "learning_rate": 5e-3,
    "dropout": 0.0, **QUIET,
}

# name -> (constructor, learns the checkerboard's groups)
BASKET = {
    "popularity": (baselines.Popularity, False),
    "repurchase": (baselines.Repurchase, True),
    "repurchase_recent": (lambda: baselines.Repurchase("recent"), True),
    "item_knn": (lambda: baselines.ItemKNN(neighbours=10), True),
    "ease": (lambda: baselines.EASE(l2=10.0), True),
    "als": (lambda: mf.ALS(factors=8, regularization=0.01, iterations=10), True),
    "implicit_bpr": (lambda: mf.ImplicitBPR(factors=8, learning_rate=0.05, iterations=200), True),
    "sgd_mf": (lambda: mf.SGDMF(factors=8, batch_size=256, learning_rate=0.02, epochs=20, **QUIET), True),
    "bpr": (
        lambda: mf.BPR(factors=8, batch_size=512, steps_per_epoch=10, learning_rate=0.02, epochs=20, **QUIET),
        True,
    ),
    "ncf": (lambda: ncf.NCF(epochs=10, batch_size=256, learning_rate=0.01, **QUIET), True),
    "two_tower": (lambda: two_tower.TwoTower(dim=8, epochs=10, batch_size=64, **QUIET), True),
    "lightgcn": (lambda: lightgcn.LightGCN(dim=8, epochs=20, batch_size=256, **QUIET), True),
    "hybrid": (lambda: hybrid.Hybrid(dim=8, epochs=10, batch_size=256, learning_rate=0.01, **QUIET), True),
    "content": (content.ContentBased, False),  # synthetic descriptions carry no taste
    "history_reranker": (lambda: rerank.HistoryReranker(cutoffs=2, epochs=2), True),
    "sasrec": (lambda: attention.SASRec(**SMALL_SASREC), True),
}

NEXT_ITEM = {
    "popularity_with_removal": baselines.PopularityWithRemoval,
    "transitions": baselines.Transitions,
    "seq_repurchase": baselines.SeqRepurchase,
    "item_lstm": lambda: lstm.ItemLSTM(epochs=3, **QUIET),
    "user_lstm": lambda: lstm.UserLSTM(epochs=3, **QUIET),
    "sasrec": lambda: attention.SASRec(**SMALL_SASREC),
}
NEXT_ITEM_LEARNED = ("transitions", "item_lstm", "user_lstm", "sasrec")


# ---------------------------------------------------------------------------------------------
# Basket protocol: fit(split) -> self, recommend(customers, k) -> (n, k) item codes


@pytest.fixture(scope="module")
def basket_models(checkerboard_split):
    return {name: make().fit(checkerboard_split) for name, (make, _) in BASKET.items()}


@pytest.mark.parametrize("name", BASKET)
def test_recommend_gives_k_distinct_items(basket_models, checkerboard_split, name):
    customers = np.arange(min(12, checkerboard_split.n_customers))
    recs = basket_models[name].recommend(customers, 5)
    assert recs.shape == (len(customers), 5) and recs.dtype.kind == "i"
    assert ((recs >= 0) & (recs < checkerboard_split.n_items)).all()
    assert all(len(set(row)) == 5 for row in recs)


@pytest.mark.parametrize("name", BASKET)
def test_recommend_depends_only_on_the_customer(basket_models, name):
    model = basket_models[name]
    customers = np.array([3, 1, 3, 0, 1])
    recs = model.recommend(customers, 4)
    assert np.array_equal(recs[0], recs[2]) and np.array_equal(recs[1], recs[4])
    assert np.array_equal(recs, model.recommend(customers, 4)), "recommend is not repeatable"


@pytest.mark.parametrize("name", [n for n, (_, learns) in BASKET.items() if learns])
def test_basket_model_recovers_the_planted_groups(basket_models, checkerboard_split, name):
    protocol = BasketProtocol.from_split(checkerboard_split, "validation")
    scores = protocol.subset(protocol.known).evaluate(basket_models[name])
    assert scores["precision_at_5"] == 1.0
    assert protocol.evaluate(basket_models[name])["precision"] > protocol.score(protocol.baseline())["precision"]


# ---------------------------------------------------------------------------------------------
# Next-item protocol: fit(split) -> self, next_items(invoices, k) -> (steps, k) sequence codes


@pytest.fixture(scope="module")
def next_item_models(split):
    return {name: make().fit(split) for name, make in NEXT_ITEM.items()}


@pytest.fixture(scope="module")
def next_item_validation(split):
    return NextItemProtocol.from_split(split, "validation")


@pytest.mark.parametrize("name", NEXT_ITEM)
def test_next_items_gives_k_item_codes_per_step(next_item_models, next_item_validation, split, name):
    invoices = next_item_validation.invoices
    recs = next_item_models[name].next_items(invoices, 5)
    assert recs.shape == (invoices.n_steps, 5) and recs.dtype.kind == "i"
    assert ((recs >= 1) & (recs <= split.n_items)).all(), "codes are items + 1; 0 is the start symbol"
    assert all(len(set(row)) == 5 for row in recs)


@pytest.mark.parametrize("name", NEXT_ITEM)
def test_next_items_of_one_invoice_do_not_depend_on_the_others(next_item_models, next_item_validation, name):
    invoices = next_item_validation.invoices
    model = next_item_models[name]
    whole = model.next_items(invoices, 5)
    chosen = np.arange(0, len(invoices), 3)
    part = model.next_items(invoices.take(chosen), 5)
    rows = np.concatenate([np.arange(invoices.indptr[g], invoices.indptr[g + 1]) for g in chosen])
    assert np.array_equal(part, whole[rows])


@pytest.mark.parametrize("name", NEXT_ITEM_LEARNED)
def test_next_item_model_learns_the_planted_order(next_item_models, next_item_validation, name):
    popular = next_item_validation.evaluate(next_item_models["popularity_with_removal"])["accuracy"]
    assert next_item_validation.evaluate(next_item_models[name])["accuracy"] > 2 * popular


# ---------------------------------------------------------------------------------------------
# Ratings protocol: fit(frame) -> self, predict(frame) -> stars, score_users(users) -> (n, movies)


def rating_models(split, features):
    n_users, n_movies = split.n_users, split.n_movies
    keras_ratings = {
        f"keras_{build.__name__}": (
            lambda build=build, kwargs=kwargs: ratings.KerasRatings(
                build, n_users, n_movies, epochs=15, batch_size=64, learning_rate=0.01, **QUIET, **kwargs
            )
        )
        for build, kwargs in [
            (ratings.build_mf, {"biases": True}),
            (ratings.build_cf, {}),
            (ratings.build_ncf, {}),
            (ratings.build_hybrid_ratings, {"features": features}),
        ]
    }
    return {
        "global_mean": lambda: ratings.GlobalMean(n_users, n_movies),
        "bias_baseline": lambda: ratings.BiasBaseline(n_users, n_movies),
        "content_ratings": lambda: ratings.ContentRatings(features, n_users),
        **keras_ratings,
        "graph_sequence": lambda: graph_sequence.GraphSequenceRatings(
            n_users, n_movies, dim=8, units=8, hidden=8, length=16, context=4, epochs=15, batch_size=16,
            learning_rate=0.01, **QUIET,
        ),
    }


RATING_MODELS = [
    "global_mean",
    "bias_baseline",
    "content_ratings",
    "keras_build_mf",
    "keras_build_cf",
    "keras_build_ncf",
    "keras_build_hybrid_ratings",
    "graph_sequence",
]


@pytest.fixture(scope="module")
def fitted_rating_models(rating_split, rating_features):
    makers = rating_models(rating_split, rating_features)
    assert sorted(makers) == sorted(RATING_MODELS)
    return {name: make().fit(rating_split.train) for name, make in makers.items()}


@pytest.mark.parametrize("name", RATING_MODELS)
def test_predict_gives_one_finite_rating_per_row(fitted_rating_models, rating_split, name):
    frame = rating_split.test
    predicted = np.asarray(fitted_rating_models[name].predict(frame))
    assert predicted.shape == (len(frame),) and np.isfinite(predicted).all()


@pytest.mark.parametrize("name", RATING_MODELS)
def test_score_users_scores_every_movie(fitted_rating_models, rating_split, name):
    users = np.array([0, 2, 5])
    context = np.zeros((3, 2), dtype="float32")
    scores = np.asarray(fitted_rating_models[name].score_users(users, context))
    assert scores.shape == (3, rating_split.n_movies) and np.isfinite(scores).all()


@pytest.mark.parametrize("name", [n for n in RATING_MODELS if n != "global_mean"])
def test_rating_model_beats_the_global_mean(fitted_rating_models, rating_split, name):
    def mae(model):
        return rating_metrics(rating_split.test["rating"], model.predict(rating_split.test))["mae"]

    assert mae(fitted_rating_models[name]) < mae(fitted_rating_models["global_mean"])
