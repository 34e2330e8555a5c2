"""Serving: saved models, a fresh process that answers, nearest-neighbour indexes, an endpoint.

* Artifacts (``save_artifacts`` / ``load_recommender``): the two-tower model's retrieval
  (query tower + ``keras_rs.layers.BruteForceRetrieval``) exported as a TensorFlow SavedModel
  serving signature, the next-item model saved in Keras' ``.keras`` format, and the id tables
  (customer ids, stock codes, countries) as JSON / ``.npy``.
* ``Recommender``: "k items for customer X (after this basket)" in the outside world's ids, with
  the items of the basket left out; known customers without a basket get the retrieval model,
  everything else the next-item model (customer code 0 for an anonymous visitor).
* ``answer``: one JSON request to ``(status, JSON answer)``, 4xx for a bad request; the script
  (``python -m recsys_helpers.models.serving ARTIFACTS REQUESTS``, run by
  ``answer_in_fresh_process``) and the HTTP endpoint (``start_server``, the standard library's
  ``ThreadingHTTPServer``) both use it. ``prefix_requests``: a request for every step of some
  invoices, to compare the served answers with the next-item protocol's.
* Indexes: the exact brute-force top-k of keras-rs, faiss' exact and inverted-file indexes,
  ``index_recall`` of one against the other, ``time_queries`` (latency percentiles and queries
  per second), ``compare_indexes`` (all of them on some catalogues, as a table) and
  ``fewest_probes`` (the inverted file's setting chosen from it), and ``synthetic_catalogue`` (a large catalogue around real item embeddings).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import faiss
import keras
import keras_rs
import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf

from ..evaluation.metrics import recall_at_k
from ..interactions import START, Invoices
from ..settings import configure_tensorflow
from .lstm import LSTMRecommender, Policy

#: Most items one request may ask for (the depth of the exported retrieval signature).
MAX_K = 50

# ---------------------------------------------------------------------------------------------
# The models as files


def retrieval_model(model, k: int = MAX_K) -> keras.Model:
    """The two-tower model's serving graph: ``{"customer", "country"} -> {"scores", "items"}``,
    the query tower followed by a brute-force top-``k`` over every item's embedding."""
    customer = keras.Input(shape=(), dtype="int32", name="customer")
    country = keras.Input(shape=(), dtype="int32", name="country")
    query = model.query_({"customer": customer, "country": country})
    scores, items = model.index(k)(query)
    return keras.Model(
        {"customer": customer, "country": country}, {"scores": scores, "items": items}, name="retrieval"
    )


class SavedRetrieval:
    """A retrieval SavedModel reloaded with TensorFlow alone: ``(customers, countries) -> items``."""

    def __init__(self, path: str | Path):
        self.saved = tf.saved_model.load(str(path))

    def __call__(self, customers, countries) -> np.ndarray:
        inputs = {"customer": np.asarray(customers, "int32"), "country": np.asarray(countries, "int32")}
        return np.asarray(self.saved.serve(inputs)["items"])


class KerasRetrieval:
    """The same in memory, from ``retrieval_model``."""

    def __init__(self, model: keras.Model):
        self.model = model

    def __call__(self, customers, countries) -> np.ndarray:
        inputs = {"customer": np.asarray(customers, "int32"), "country": np.asarray(countries, "int32")}
        return np.asarray(self.model(inputs)["items"])


def save_lstm(recommender: LSTMRecommender, directory: Path) -> None:
    """The network as ``.keras``, the recommendation policy as JSON, the history bonus sparse."""
    recommender.model.save(directory / "next_item.keras")
    policy = {name: getattr(recommender, name) for name in ("drop_bought", "candidates", "boost", "max_tokens")}
    (directory / "next_item.json").write_text(json.dumps({"kind": "lstm", **policy}))
    if recommender.boost:  # log(1 + purchases): zero where a customer never bought an item
        sp.save_npz(directory / "log_purchases.npz", sp.csr_matrix(recommender.log_purchases_))


def load_lstm(directory: Path, policy: dict) -> LSTMRecommender:
    """An ``LSTMRecommender`` around the reloaded network: the same ``next_items`` code runs."""
    network = keras.saving.load_model(directory / "next_item.keras")
    recommender = LSTMRecommender(
        customers="customers" in network.input, policy=Policy(**policy), progress=False
    )
    recommender.model = network
    if recommender.boost:
        log_purchases = sp.load_npz(directory / "log_purchases.npz").toarray()
        recommender.log_purchases_ = log_purchases.astype(np.float32)
    return recommender


#: How each kind of next-item model is saved and loaded: ``kind -> (class, save, load)``. A new
#: next-item model (SASRec, say) is served by adding its line here.
NEXT_ITEM_FORMATS: dict[str, tuple[type, Callable, Callable]] = {
    "lstm": (LSTMRecommender, save_lstm, load_lstm),
}


def save_next_item(recommender, directory: Path) -> None:
    for cls, save, _ in NEXT_ITEM_FORMATS.values():
        if isinstance(recommender, cls):
            return save(recommender, directory)
    raise TypeError(f"no saved format for {type(recommender).__name__}; add one to NEXT_ITEM_FORMATS")


def load_next_item(directory: Path):
    policy = json.loads((directory / "next_item.json").read_text())
    return NEXT_ITEM_FORMATS[policy.pop("kind")][2](directory, policy)


@dataclass
class Catalogue:
    """The ids the outside world uses: customer ids and stock codes (in the split's code order)
    and each known customer's country code (the two-tower query's second input)."""

    customer_ids: np.ndarray
    stock_codes: np.ndarray
    countries: np.ndarray

    @classmethod
    def from_split(cls, split, countries) -> Catalogue:
        return cls(
            np.asarray(split.customers.classes_, dtype=str),
            np.asarray(split.items.classes_, dtype=str),
            np.asarray(countries, dtype=np.int32),
        )

    def save(self, directory: Path) -> None:
        ids = {"customer_ids": self.customer_ids.tolist(), "stock_codes": self.stock_codes.tolist()}
        (directory / "catalogue.json").write_text(json.dumps(ids))
        np.save(directory / "countries.npy", self.countries)

    @classmethod
    def load(cls, directory: Path) -> Catalogue:
        ids = json.loads((directory / "catalogue.json").read_text())
        return cls(
            np.asarray(ids["customer_ids"], dtype=str),
            np.asarray(ids["stock_codes"], dtype=str),
            np.load(directory / "countries.npy"),
        )


def save_artifacts(directory, two_tower, next_item, catalogue: Catalogue) -> Path:
    """Everything a fresh process needs to answer, in one folder (returned)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    retrieval_model(two_tower).export(str(directory / "retrieval"), format="tf_saved_model", verbose=False)
    save_next_item(next_item, directory)
    catalogue.save(directory)
    return directory


# ---------------------------------------------------------------------------------------------
# Answering: the recommender and its requests


class BadRequest(ValueError):
    """A request that cannot be answered, with the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Recommender:
    """ "``k`` items for customer X (after this basket)" in customer ids and stock codes.

    ``retrieve(customers, countries) -> (n, MAX_K)`` item codes is the two-tower model (in memory
    or reloaded); ``next_item`` any model of the next-item contract. A known customer without a
    basket gets the retrieval model's top ``k``; with a basket, or for an anonymous visitor
    (``customer=None``), the next-item model's top ``k`` after the basket, which leaves out the
    basket's items (its ``drop_bought``). A customer id that is not known is an error (404): a
    caller that does not know who is buying says so with ``None``.
    """

    def __init__(self, retrieve: Callable, next_item, catalogue: Catalogue):
        self.retrieve, self.next_item, self.catalogue = retrieve, next_item, catalogue
        self.customer_index = {c: i for i, c in enumerate(catalogue.customer_ids)}
        self.item_index = {s: i for i, s in enumerate(catalogue.stock_codes)}
        self.lock = threading.Lock()  # one model call at a time (the endpoint is threaded)

    def recommend(self, customer: str | None = None, basket: Sequence[str] = (), k: int = 5) -> list[str]:
        if customer is not None and str(customer) not in self.customer_index:
            raise BadRequest(404, f"unknown customer {customer!r}; send null for an anonymous visitor")
        unknown = [code for code in basket if str(code) not in self.item_index]
        if unknown:
            raise BadRequest(422, f"unknown stock codes in the basket: {unknown}")
        if not 1 <= k <= MAX_K:
            raise BadRequest(422, f"k must be between 1 and {MAX_K}, not {k}")
        index = None if customer is None else self.customer_index[str(customer)]
        items = [self.item_index[str(code)] for code in basket]
        with self.lock:
            if index is not None and not items:
                top = self.retrieve(np.array([index]), self.catalogue.countries[[index]])[0, :k]
            else:
                top = self.after_basket(index, items, k)
        return self.catalogue.stock_codes[top].tolist()

    def after_basket(self, customer: int | None, items: Sequence[int], k: int) -> np.ndarray:
        """The next-item model's prediction for the step after ``items`` (split item codes)."""
        codes = np.asarray([*items, -1], dtype=np.int32) + 1  # the step to predict: a placeholder
        invoice = Invoices(
            codes, np.array([0, len(codes)], dtype=np.int64), np.array([0 if customer is None else customer + 1], dtype=np.int32)
        )
        top = self.next_item.next_items(invoice, k)[-1]
        return top[top != START] - 1


def answer(recommender: Recommender, request) -> tuple[int, dict]:
    """One JSON request ``{"customer": id or null, "basket": [stock codes], "k": 5}`` to its
    HTTP status and JSON answer (``{"items": [...]}``, or ``{"error": ...}`` with a 4xx)."""
    if not isinstance(request, dict):
        return 400, {"error": "the body must be a JSON object"}
    extra = set(request) - {"customer", "basket", "k"}
    if extra:
        return 422, {"error": f"unknown fields {sorted(extra)}; use customer, basket and k"}
    customer, basket, k = request.get("customer"), request.get("basket", []), request.get("k", 5)
    if customer is not None and not isinstance(customer, str | int) or isinstance(customer, bool):
        return 422, {"error": "customer must be an id (string or integer) or null"}
    if not isinstance(basket, list) or not all(isinstance(c, str | int) for c in basket):
        return 422, {"error": "basket must be a list of stock codes"}
    if not isinstance(k, int) or isinstance(k, bool):
        return 422, {"error": "k must be an integer"}
    try:
        return 200, {"items": recommender.recommend(customer, [str(c) for c in basket], k)}
    except BadRequest as error:
        return error.status, {"error": str(error)}


def load_recommender(directory) -> Recommender:
    """The recommender from ``save_artifacts``' folder: no training code, no split."""
    directory = Path(directory)
    catalogue = Catalogue.load(directory)
    return Recommender(SavedRetrieval(directory / "retrieval"), load_next_item(directory), catalogue)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m recsys_helpers.models.serving ARTIFACTS REQUESTS.json``: the answers, as JSON."""
    artifacts, requests = argv if argv is not None else sys.argv[1:]
    configure_tensorflow()  # the threads and op determinism of the chapters
    start = time.perf_counter()
    recommender = load_recommender(artifacts)
    loaded = time.perf_counter() - start
    answers = [dict(zip(("status", "body"), answer(recommender, r), strict=True)) for r in json.loads(Path(requests).read_text())]
    print(json.dumps({"load_seconds": loaded, "answers": answers}))


def prefix_requests(invoices: Invoices, catalogue: Catalogue) -> list[dict]:
    """One request per step of every invoice, in the order of ``next_items``' rows: the
    invoice's customer id (``None`` for an anonymous visitor) and the basket before the step, in
    stock codes."""
    requests = []
    for g in range(len(invoices)):
        codes = invoices.items[invoices.indptr[g] : invoices.indptr[g + 1]] - 1
        who = invoices.customers[g]
        customer = None if who == 0 else str(catalogue.customer_ids[who - 1])
        for t in range(len(codes)):
            requests.append({"customer": customer, "basket": catalogue.stock_codes[codes[:t]].tolist()})
    return requests


def answer_in_fresh_process(artifacts, requests: Sequence, timeout: float = 600) -> dict:
    """The answers of a new Python process to ``requests``: it runs this module's script
    (``python -m recsys_helpers.models.serving ARTIFACTS REQUESTS.json``) on the folder of
    ``save_artifacts``, with nothing of this process but the package on its path. Returns the
    script's JSON: ``load_seconds`` and ``answers`` (``status`` and ``body`` of each request)."""
    with tempfile.TemporaryDirectory(prefix="requests-") as folder:
        path = Path(folder) / "requests.json"
        path.write_text(json.dumps(list(requests)))
        env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TF_CPP_MIN_LOG_LEVEL": "3"}
        run = subprocess.run(
            [sys.executable, "-m", "recsys_helpers.models.serving", str(artifacts), str(path)],
            capture_output=True, text=True, check=True, timeout=timeout, env=env,
        )
    return json.loads(run.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# The endpoint


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the standard library's name)
        if self.path != "/recommend":
            return self._send(404, {"error": f"no such path {self.path}; POST /recommend"})
        try:
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length) or b"null")
        except (ValueError, UnicodeDecodeError):
            return self._send(400, {"error": "the body is not JSON"})
        try:
            self._send(*answer(self.server.recommender, request))
        except Exception as error:  # an answer, never a dropped connection
            self._send(500, {"error": f"{type(error).__name__}: {error}"})

    def do_GET(self):  # noqa: N802
        if self.path == "/health":
            return self._send(200, {"status": "ok"})
        self._send(404, {"error": f"no such path {self.path}; POST /recommend"})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet: the chapter measures, it does not log
        pass


class Server:
    """A running endpoint (``start_server``): ``url``, and ``close()`` to stop it."""

    def __init__(self, recommender: Recommender, host: str = "127.0.0.1", port: int = 0):
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.recommender = recommender
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_server(recommender: Recommender, host: str = "127.0.0.1", port: int = 0) -> Server:
    """Serve ``POST /recommend`` on ``host`` in a background thread (port 0: a free one)."""
    return Server(recommender, host, port)


def post(url: str, body, timeout: float = 30.0) -> tuple[int, dict]:
    """POST ``body`` (bytes as they are, anything else as JSON) and return (status, answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# ---------------------------------------------------------------------------------------------
# Indexes: exact and approximate top-k, and how to measure them


def exact_index(candidates: np.ndarray, k: int = 10) -> Callable:
    """keras-rs' exact brute-force top-k: ``queries (n, d) -> ids (n, k)``, by inner product."""
    layer = keras_rs.layers.BruteForceRetrieval(candidate_embeddings=np.asarray(candidates, "float32"), k=k, return_scores=False)
    search = tf.function(layer, input_signature=[tf.TensorSpec((None, candidates.shape[1]), tf.float32)])
    return lambda queries: np.asarray(search(np.asarray(queries, "float32")))


def faiss_exact(candidates: np.ndarray, k: int = 10) -> Callable:
    """faiss' exact inner-product search (``IndexFlatIP``)."""
    index = faiss.IndexFlatIP(candidates.shape[1])
    index.add(np.ascontiguousarray(candidates, dtype="float32"))
    return lambda queries: index.search(np.ascontiguousarray(queries, dtype="float32"), k)[1]


def faiss_ivf(candidates: np.ndarray, k: int = 10, lists: int | None = None, seed: int = 42) -> Callable:
    """faiss' inverted-file index (``IndexIVFFlat``, inner product): k-means cuts the catalogue
    into ``lists`` cells (default ``sqrt(n)``), trained on 64 items per cell; a query scans the
    ``probes`` cells whose centres score highest. Approximate: an item in an unvisited cell is
    missed. Returns ``search(queries, probes=8) -> ids (n, k)``; one index serves every
    ``probes``."""
    candidates = np.ascontiguousarray(candidates, dtype="float32")
    n, dim = candidates.shape
    lists = lists or max(1, int(np.sqrt(n)))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed, index.cp.max_points_per_centroid = seed, 64
    index.train(candidates)
    index.add(candidates)

    def search(queries, probes: int = 8):
        params = faiss.SearchParametersIVF(nprobe=probes)
        return index.search(np.ascontiguousarray(queries, dtype="float32"), k, params=params)[1]

    search.index = index
    return search


def index_recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Recall@k of an approximate index: the mean share of each query's exact top k that its
    top k found (order ignored), ``evaluation.metrics.recall_at_k`` with the exact lists as the
    relevant items."""
    found, exact = np.asarray(found), np.asarray(exact)
    k = exact.shape[1]
    indptr = np.arange(0, exact.size + 1, k)
    return recall_at_k(indptr, exact.ravel(), found[:, :k], k)


def time_queries(search: Callable, queries: np.ndarray, batch_size: int = 1, warmup: int = 2) -> dict:
    """Latency of each call (p50 and p95 in ms, per batch of ``batch_size`` queries) and queries
    per second over all of ``queries``, one call after the other (``warmup`` calls first)."""
    batches = [queries[i : i + batch_size] for i in range(0, len(queries), batch_size)]
    for batch in batches[:warmup]:
        search(batch)
    seconds = []
    for batch in batches:
        start = time.perf_counter()
        search(batch)
        seconds.append(time.perf_counter() - start)
    seconds = np.asarray(seconds)
    return {
        "p50_ms": 1000 * float(np.percentile(seconds, 50)),
        "p95_ms": 1000 * float(np.percentile(seconds, 95)),
        "queries_per_second": len(queries) / float(seconds.sum()),
    }


def compare_indexes(
    catalogues: dict, queries: np.ndarray, probes: dict, k: int = 10, seed: int = 42, single: int = 500,
    batched: int = 4096, batch_size: int = 64,
) -> pd.DataFrame:
    """keras-rs' brute force, faiss' flat index and faiss' inverted file (one row per number of
    ``probes[catalogue]``) on each catalogue (``name -> item embeddings``), for the same
    ``queries``: build seconds, recall@``k`` against brute force, and ``time_queries`` for
    ``single`` queries one at a time (batch 1) and ``batched`` queries in batches of
    ``batch_size``. Indexed by (catalogue, index, batch)."""
    rows = []

    def found(search):
        return np.concatenate([search(queries[i : i + 64]) for i in range(0, len(queries), 64)])

    for name, candidates in catalogues.items():
        start = time.perf_counter()
        exact = exact_index(candidates, k=k)
        indexes = {"keras-rs brute force": (exact, time.perf_counter() - start)}
        start = time.perf_counter()
        indexes["faiss flat (exact)"] = (faiss_exact(candidates, k), time.perf_counter() - start)
        start = time.perf_counter()
        ivf = faiss_ivf(candidates, k, seed=seed)
        built = time.perf_counter() - start
        for p in probes[name]:
            indexes[f"faiss IVF, {p} probes"] = (functools.partial(ivf, probes=p), built)
        exact_top = found(exact)
        for index_name, (search, seconds) in indexes.items():
            row = {"catalogue": name, "index": index_name, "build seconds": seconds,
                   f"recall@{k}": index_recall(found(search), exact_top)}
            for batch, n in ((1, single), (batch_size, batched)):
                timed = np.resize(queries, (n, queries.shape[1]))
                rows.append(row | {"batch": batch} | time_queries(search, timed, batch))
    return pd.DataFrame(rows).set_index(["catalogue", "index", "batch"])


def fewest_probes(table: pd.DataFrame, catalogue: str, probes: Sequence[int], target: float = 0.95) -> int:
    """The fewest ``probes`` whose inverted file reaches ``target`` recall@10 on ``catalogue`` in
    ``compare_indexes``' table (the most, if none does)."""
    for p in probes:
        if float(table.loc[(catalogue, f"faiss IVF, {p} probes", 1), "recall@10"]) >= target:
            return p
    return probes[-1]


def synthetic_catalogue(centres: np.ndarray, n: int, noise: float = 0.5, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """``n`` item embeddings around ``centres`` (real item embeddings, say): each is a random
    centre plus Gaussian noise of ``noise`` times the centres' per-dimension spread, so the large
    catalogue keeps the clusters of the real one."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=np.float32)
    scale = noise * centres.std(axis=0, keepdims=True)
    out = np.empty((n, centres.shape[1]), dtype=np.float32)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        pick = centres[rng.integers(0, len(centres), size)]
        out[start : start + size] = pick + scale * rng.standard_normal(pick.shape, dtype=np.float32)
    return out


if __name__ == "__main__":
    main()
