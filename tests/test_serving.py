"""Serving: the saved models answer as the trained ones do, in this process and in a fresh one;
the indexes find what exact search finds; the endpoint answers bad requests with a 4xx."""

import json
from pathlib import Path

import numpy as np
import pytest

from recsys_helpers.features import customer_countries
from recsys_helpers.interactions import invoices_of
from recsys_helpers.models import lstm, serving, two_tower

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"progress": False}


@pytest.fixture(scope="module")
def trained(split):
    tower = two_tower.TwoTower(dim=8, epochs=2, batch_size=64, **QUIET).fit(split)
    user = lstm.UserLSTM(embedding_dim=8, hidden=16, num_steps=6, stride=3, epochs=1, negatives=32, **QUIET)
    user.fit(split)
    catalogue = serving.Catalogue.from_split(split, customer_countries(split)[0])
    memory = serving.Recommender(serving.KerasRetrieval(serving.retrieval_model(tower)), user, catalogue)
    return tower, user, catalogue, memory


def _requests(split, catalogue):
    train = split.train
    known = catalogue.customer_ids[:3].tolist()
    basket = train["stockcode"].astype(str).iloc[:3].tolist()
    return [
        {"customer": known[0]},
        {"customer": known[1], "k": 7},
        {"customer": known[2], "basket": basket},
        {"customer": None, "basket": basket[:1]},
        {"basket": []},
        {"customer": "no such customer"},
    ]


def test_saved_artifacts_answer_as_the_trained_models(trained, split, tmp_path):
    tower, user, catalogue, memory = trained
    folder = serving.save_artifacts(tmp_path / "artifacts", tower, user, catalogue)
    loaded = serving.load_recommender(folder)
    requests = _requests(split, catalogue)
    expected = [serving.answer(memory, r) for r in requests]
    assert [serving.answer(loaded, r) for r in requests] == expected
    assert [status for status, _ in expected] == [200, 200, 200, 200, 200, 404]
    # the served retrieval is the model's own top-k, in stock codes
    top = tower.recommend(np.arange(3), k=5)
    assert expected[0][1]["items"] == catalogue.stock_codes[top[0]].tolist()
    # the basket's items are left out, and the answer is the recommender's own next_items
    basket = requests[2]["basket"]
    assert not set(basket) & set(expected[2][1]["items"]) and len(expected[2][1]["items"]) == 5
    # a fresh process (the script) gives the same answers
    output = serving.answer_in_fresh_process(folder, requests, timeout=300)
    assert [(a["status"], a["body"]) for a in output["answers"]] == expected
    assert output["load_seconds"] > 0


def test_prefix_requests_follow_the_steps_of_next_items(trained, split):
    _, user, catalogue, memory = trained
    invoices = invoices_of(split, "validation").take(np.arange(4))
    requests = serving.prefix_requests(invoices, catalogue)
    assert len(requests) == invoices.n_steps
    first = invoices.items[invoices.indptr[0] : invoices.indptr[1]] - 1
    assert [r["basket"] for r in requests[: len(first)]] == [
        catalogue.stock_codes[first[:t]].tolist() for t in range(len(first))
    ]
    for g, customer in enumerate(invoices.customers):
        request = requests[invoices.indptr[g]]
        assert request["customer"] == (None if customer == 0 else catalogue.customer_ids[customer - 1])
    predicted = user.next_items(invoices, 5) - 1
    for request, expected in zip(requests, predicted, strict=True):
        who = None if request["customer"] is None else memory.customer_index[request["customer"]]
        served = memory.after_basket(who, [memory.item_index[c] for c in request["basket"]], 5)
        np.testing.assert_array_equal(served, expected[expected >= 0])


def test_after_basket_is_the_next_item_contract(trained):
    _, user, _, memory = trained
    items = [3, 7]
    codes = np.array([4, 8, 0], dtype=np.int32)
    invoice = lstm.Invoices(codes, np.array([0, 3]), np.array([1], dtype=np.int32))
    np.testing.assert_array_equal(memory.after_basket(0, items, 5), user.next_items(invoice, 5)[-1] - 1)
    assert not set(memory.after_basket(None, items, 10)) & set(items)


def test_unknown_model_kind_is_refused(tmp_path):
    with pytest.raises(TypeError, match="NEXT_ITEM_FORMATS"):
        serving.save_next_item(object(), tmp_path)


def _clustered(n=6000, dim=16, seed=0):
    centres = np.random.default_rng(seed).standard_normal((40, dim)).astype("float32")
    return serving.synthetic_catalogue(centres, n, noise=0.3, seed=seed)


def test_synthetic_catalogue_is_seeded_and_clustered():
    centres = np.eye(4, dtype="float32") * 10
    a = serving.synthetic_catalogue(centres, 1000, noise=0.1, seed=1, chunk=300)
    assert a.shape == (1000, 4) and a.dtype == np.float32
    np.testing.assert_array_equal(a, serving.synthetic_catalogue(centres, 1000, noise=0.1, seed=1, chunk=300))
    distance = np.linalg.norm(a[:, None, :] - centres[None], axis=-1)
    assert distance.min(1).max() < 5.0 < 14.0 / 2  # every item near one centre, far from the others
    assert len(np.unique(distance.argmin(1))) == 4


def test_recall_at_k_counts_shared_items():
    assert serving.index_recall([[1, 2, 3], [4, 5, 6]], [[3, 2, 1], [4, 7, 8]]) == pytest.approx(4 / 6)


def test_indexes_find_the_exact_top_k():
    items = _clustered()
    queries = items[::60] + 0.01
    exact = serving.exact_index(items, k=10)(queries)
    brute = items @ queries.T
    np.testing.assert_array_equal(np.sort(exact, 1), np.sort(np.argsort(-brute.T, 1)[:, :10], 1))
    assert serving.index_recall(serving.faiss_exact(items, 10)(queries), exact) == 1.0
    ivf = serving.faiss_ivf(items, 10, lists=32)
    assert serving.index_recall(ivf(queries, probes=32), exact) == 1.0  # every cell visited: exact
    one = serving.index_recall(ivf(queries, probes=1), exact)
    more = serving.index_recall(ivf(queries, probes=4), exact)
    assert 0.2 < one < more < 1.0 or (one < 1.0 and more == 1.0)


def test_compare_indexes_and_fewest_probes():
    items = _clustered(n=3000)
    queries = items[::50] + 0.01
    table = serving.compare_indexes({"small": items}, queries, {"small": [1, 55]}, single=20, batched=64)
    assert table.index.names == ["catalogue", "index", "batch"]
    indexes = ["keras-rs brute force", "faiss flat (exact)", "faiss IVF, 1 probes", "faiss IVF, 55 probes"]
    assert table.loc["small"].index.get_level_values("index").unique().tolist() == indexes
    assert set(table.loc["small"].index.get_level_values("batch")) == {1, 64}
    recall = table["recall@10"]
    assert recall[("small", "keras-rs brute force", 1)] == recall[("small", "faiss flat (exact)", 1)] == 1.0
    assert recall[("small", "faiss IVF, 55 probes", 1)] == 1.0  # every cell visited: exact
    assert {"build seconds", "p50_ms", "p95_ms", "queries_per_second"} <= set(table.columns)
    assert serving.fewest_probes(table, "small", [1, 55]) in (1, 55)
    assert serving.fewest_probes(table, "small", [1, 55], target=1.0) == (
        1 if recall[("small", "faiss IVF, 1 probes", 1)] == 1.0 else 55
    )


def test_time_queries_reports_latency_and_throughput():
    calls = []
    timing = serving.time_queries(lambda q: calls.append(len(q)), np.zeros((10, 2)), batch_size=4)
    assert calls == [4, 4, 4, 4, 2]  # two warm-up calls, then every batch once
    assert set(timing) == {"p50_ms", "p95_ms", "queries_per_second"}
    assert 0 <= timing["p50_ms"] <= timing["p95_ms"] and timing["queries_per_second"] > 0


def test_endpoint_answers_and_refuses_clearly(trained, split):
    _, _, catalogue, memory = trained
    customer = catalogue.customer_ids[0]
    with serving.start_server(memory) as server:
        assert server.url.startswith("http://127.0.0.1:")
        url = server.url + "/recommend"
        status, body = serving.post(url, {"customer": customer, "k": 3})
        assert status == 200 and len(body["items"]) == 3
        assert body == serving.answer(memory, {"customer": customer, "k": 3})[1]
        bad = {
            b"{not json": 400,
            b"[1, 2]": 400,
            json.dumps({"customer": "nobody"}).encode(): 404,
            json.dumps({"customer": customer, "k": 0}).encode(): 422,
            json.dumps({"customer": customer, "k": "five"}).encode(): 422,
            json.dumps({"basket": ["NO-SUCH-ITEM"]}).encode(): 422,
            json.dumps({"basket": "85123A"}).encode(): 422,
            json.dumps({"customer": customer, "colour": "red"}).encode(): 422,
        }
        for request, expected in bad.items():
            status, body = serving.post(url, request)
            assert status == expected and body["error"], (request, status, body)
        assert serving.post(server.url + "/elsewhere", {})[0] == 404
        # still serving after the bad requests
        assert serving.post(url, {"customer": None})[0] == 200
