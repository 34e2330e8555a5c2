import numpy as np
import pytest

from recsys_helpers import metrics, sequences
from recsys_helpers.data import LabelEncoder
from recsys_helpers.sequences import Invoices, NextItemProtocol


def test_reserved_zero_encoding_matches_split_items_plus_one(split):
    encoder = LabelEncoder(reserve_zero=True).fit(split.items.classes_)
    codes = encoder.transform(split.validation["stockcode"])
    assert np.array_equal(codes, split.validation["item"].to_numpy() + 1)
    assert len(encoder) == split.n_items + 1
    assert encoder.transform(["no such item"])[0] == 0


def test_invoices_of_uses_sequence_codes(split):
    invoices = sequences.invoices_of(split, "validation")
    assert invoices.items.min() >= 1
    assert len(invoices) == len(split.indptr("validation")) - 1
    unknown = split.validation["customer"].to_numpy()[split.indptr("validation")[:-1]] < 0
    assert np.array_equal(invoices.customers == 0, unknown)
    packed = sequences.pack_items(invoices.items, invoices.indptr)
    assert [len(p) for p in packed] == list(invoices.lengths)


def test_previous_starts_every_invoice_with_zero():
    invoices = Invoices(
        np.array([5, 6, 7, 8, 9], np.int32), np.array([0, 3, 3, 5]), np.array([1, 0, 2])
    )
    assert invoices.previous().tolist() == [0, 5, 6, 0, 8]
    assert invoices.step_customers().tolist() == [1, 1, 1, 2, 2]
    taken = invoices.take([2, 0])
    assert taken.items.tolist() == [8, 9, 5, 6, 7] and taken.indptr.tolist() == [0, 2, 5]
    assert taken.customers.tolist() == [2, 1]


# The source chapter's worked examples for num_steps = 5.
@pytest.mark.parametrize(
    ("sequence", "X", "Y"),
    [
        ([1, 2, 3, 4, 5], [[0, 1, 2, 3, 4]], [[1, 2, 3, 4, 5]]),
        ([1, 2], [[0, 1, 2, 0, 0]], [[1, 2, 0, 0, 0]]),
        (
            [1, 2, 3, 4, 5, 6],
            [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]],
            [[1, 2, 3, 4, 5], [2, 3, 4, 5, 6]],
        ),
    ],
)
def test_windows_on_the_source_examples(sequence, X, Y):
    got_X, got_Y = sequences.make_windows(np.array(sequence), np.array([0, len(sequence)]), 5)
    assert got_X.tolist() == X and got_Y.tolist() == Y
    loop_X, loop_Y = sequences.windows_loop(sequence, 5)
    assert loop_X.tolist() == X and loop_Y.tolist() == Y


@pytest.mark.parametrize("num_steps", [1, 3, 5, 8])
def test_vectorised_windows_equal_the_loop(num_steps):
    rng = np.random.default_rng(num_steps)
    lengths = rng.integers(0, 14, size=30)
    items = rng.integers(1, 50, size=lengths.sum()).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    customers = np.arange(30)
    X, Y, U = sequences.make_windows(items, indptr, num_steps, customers=customers)
    loops = [
        sequences.windows_loop(items[a:b], num_steps)
        for a, b in zip(indptr[:-1], indptr[1:], strict=True)
    ]
    assert np.array_equal(X, np.concatenate([x for x, _ in loops]))
    assert np.array_equal(Y, np.concatenate([y for _, y in loops]))
    assert np.array_equal(U, np.repeat(customers, [len(x) for x, _ in loops]))


@pytest.mark.parametrize("stride", [2, 4, 5])
def test_strided_windows_cover_every_target(stride):
    rng = np.random.default_rng(stride)
    lengths = rng.integers(1, 20, size=25)
    items = rng.integers(1, 50, size=lengths.sum()).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    X, Y = sequences.make_windows(items, indptr, 5, stride=stride)
    full_X, full_Y = sequences.make_windows(items, indptr, 5)
    # every strided window is one of the overlapping windows, and every target is covered
    pairs = {(tuple(x), tuple(y)) for x, y in zip(full_X, full_Y, strict=True)}
    assert all((tuple(x), tuple(y)) in pairs for x, y in zip(X, Y, strict=True))
    assert (Y > 0).sum() >= lengths.sum()
    assert np.array_equal(np.unique(Y[Y > 0]), np.unique(items))
    assert np.all(X[:, 1:] == Y[:, :-1])


def test_popularity_with_removal_skips_bought_items(split):
    model = sequences.PopularityWithRemoval().fit(split)
    invoices = Invoices(model.ranking_[[0, 1, 2, 7]].copy(), np.array([0, 3, 4]), np.array([0, 0]))
    recs = model.next_items(invoices, k=3)
    r = model.ranking_
    assert recs[0].tolist() == r[:3].tolist()
    assert recs[1].tolist() == r[1:4].tolist()  # the first item was bought
    assert recs[2].tolist() == r[2:5].tolist()  # first two bought
    assert recs[3].tolist() == r[:3].tolist()  # new invoice: nothing removed


def test_popularity_ranking_is_by_training_count(split):
    model = sequences.PopularityWithRemoval().fit(split)
    counts = np.bincount(split.train["item"].to_numpy() + 1, minlength=split.n_items + 1)
    assert np.all(np.diff(counts[model.ranking_]) <= 0)


def test_protocol_scores_oracle_and_baseline(split):
    protocol = NextItemProtocol.from_split(split, "validation")
    truth = protocol.invoices.items
    oracle = np.column_stack([truth, np.zeros((len(truth), 4), np.int32)])
    assert protocol.score(oracle)["accuracy"] == 1.0
    assert protocol.score(oracle)["mrr_at_5"] == 1.0
    scores = protocol.evaluate(sequences.PopularityWithRemoval().fit(split))
    assert 0 < scores["accuracy"] < 0.5
    assert scores["accuracy"] == pytest.approx(
        metrics.accuracy_k(
            truth, sequences.PopularityWithRemoval().fit(split).next_items(protocol.invoices)
        )
    )
    assert scores["recall_at_5"] == pytest.approx(scores["accuracy"])


def test_length_batches_cover_each_invoice_once():
    lengths = np.array([3, 50, 1, 7, 0, 20, 20, 2])
    batches = sequences.length_batches(lengths, max_tokens=40)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[b].max(), 1) <= 40 or len(b) == 1 for b in batches)


# --- Keras models: small, so that the tests run in seconds -------------------------------------


@pytest.fixture(scope="module")
def small_models(split):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    n_items, n_customers = split.n_items + 1, split.n_customers + 1
    item = sequences.build_lstm(n_items, embedding_dim=8, hidden=12, layers=2, dropout=0.1, seed=0)
    user = sequences.build_lstm(
        n_items, n_customers, embedding_dim=8, customer_dim=4, hidden=12, layers=1
    )
    skip = sequences.build_lstm(
        n_items, n_customers, embedding_dim=8, customer_dim=4, hidden=12, customer_to_output=True
    )
    history = sequences.build_lstm(
        n_items, n_customers, embedding_dim=8, customer_dim=4, hidden=12, history=True
    )
    history.get_layer("history_bias").scale.assign(np.linspace(0.5, 3, n_items))
    return item, user, skip, history


def test_models_shapes_and_customer_table_size(split, small_models):
    item, user, _, _ = small_models
    x = np.zeros((3, 7), np.int32)
    assert tuple(item({"items": x}).shape) == (3, 7, split.n_items + 1)
    assert tuple(user(sequences.model_inputs(x, np.array([0, 1, 2]))).shape) == (
        3,
        7,
        split.n_items + 1,
    )
    # the customer table is sized by the number of customers (the source used the number of items)
    assert user.get_layer("customer_embedding").input_dim == split.n_customers + 1
    assert not sequences.uses_customers(item) and sequences.uses_customers(user)


def test_models_are_causal(small_models):
    item, _, _, _ = small_models
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, size=(2, 9)).astype(np.int32)
    y = x.copy()
    y[:, 5:] = 0  # change the future: outputs before it must not move
    a, b = np.asarray(item({"items": x})), np.asarray(item({"items": y}))
    np.testing.assert_allclose(a[:, :5], b[:, :5], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_batched_prediction_equals_step_by_step(split, small_models, which):
    model = small_models[which]
    invoices = sequences.invoices_of(split, "validation", history=6)
    invoices = invoices.take(np.arange(min(12, len(invoices))))
    batched = sequences.predict_next_items(model, invoices, k=5, max_tokens=40)
    stepwise = sequences.predict_stepwise(model, invoices, k=5)
    assert batched.shape == (invoices.n_steps, 5)
    assert np.array_equal(batched, stepwise)
    assert not np.any(batched == 0)  # "start" is never recommended


def test_training_learns_planted_order(split):
    """A few epochs on the synthetic invoices (runs along item cycles) beat popularity."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    train = sequences.invoices_of(split, "train")
    X, Y, U = sequences.make_windows(
        train.items, train.indptr, 6, stride=3, customers=train.customers
    )
    model = sequences.build_lstm(split.n_items + 1, embedding_dim=16, hidden=32)
    sequences.compile_lstm(model, learning_rate=1e-2)
    protocol = NextItemProtocol.from_split(split, "validation")
    history = sequences.fit_lstm(
        model, X, Y, epochs=6, batch_size=64, validation=protocol, progress=False
    )
    assert history.history["loss"][-1] < history.history["loss"][0]
    lstm = protocol.evaluate(sequences.KerasNextItem(model))["accuracy"]
    popularity = protocol.evaluate(sequences.PopularityWithRemoval().fit(split))["accuracy"]
    assert history.history["val_accuracy"][-1] == pytest.approx(lstm)
    assert lstm > popularity + 0.1


def test_previous_only_is_one_step_from_the_zero_state(split, small_models):
    """The source's bug, reproduced: every step starts from the zero state with one item."""
    _, user, _, _ = small_models
    invoices = sequences.invoices_of(split, "validation").take(np.arange(5))
    recs = sequences.predict_from_previous_only(user, invoices, k=5, batch_size=7)
    inputs = sequences.model_inputs(invoices.previous()[:, None], invoices.step_customers())
    logits = np.array(user(inputs))[:, 0]
    logits[:, 0] = -np.inf
    expected = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    assert np.array_equal(recs, expected)


def test_drop_bought_skips_items_of_the_invoice():
    invoices = Invoices(np.array([3, 4, 5, 9], np.int32), np.array([0, 3, 4]), np.array([0, 0]))
    candidates = np.array([[3, 4, 6, 7], [3, 4, 6, 7], [4, 3, 6, 7], [3, 4, 6, 7]], np.int32)
    out = sequences.drop_bought(candidates, invoices, k=2)
    assert out.tolist() == [[3, 4], [4, 6], [6, 7], [3, 4]]


def test_customer_history_uses_only_earlier_invoices(split):
    train = sequences.invoices_of(split, "train", history=500)
    seen: dict[int, set] = {}
    for t in range(len(train)):
        customer = int(train.customers[t])
        history = set(train.history_items[t][train.history_weights[t] > 0].tolist())
        assert history == (seen.get(customer, set()) if customer else set())
        if customer:
            seen.setdefault(customer, set()).update(
                train.items[train.indptr[t] : train.indptr[t + 1]].tolist()
            )
    validation = sequences.invoices_of(split, "validation", history=500)
    for t in range(len(validation)):
        customer = int(validation.customers[t])
        history = set(validation.history_items[t][validation.history_weights[t] > 0].tolist())
        assert history == (seen.get(customer, set()) if customer else set())


def test_history_bias_adds_scaled_weights(split, small_models):
    *_, model = small_models
    x = np.array([[0, 5, 6]], np.int32)
    plain = sequences.model_inputs(x, np.array([1]), (np.zeros((1, 2), np.int32), np.zeros((1, 2))))
    boosted = sequences.model_inputs(x, np.array([1]), (np.array([[7, 0]]), np.array([[2.0, 0.0]])))
    difference = np.asarray(model(boosted)) - np.asarray(model(plain))
    scale = model.get_layer("history_bias").scale.numpy()
    np.testing.assert_allclose(difference[0, :, 7], 2.0 * scale[7], rtol=1e-5)
    difference[0, :, 7] = 0
    np.testing.assert_allclose(difference, 0, atol=1e-5)


def test_history_boost_counts_training_purchases(split):
    boost = sequences.history_boost(split, weight=2.0)
    assert boost.shape == (split.n_customers + 1, split.n_items + 1)
    assert not boost[0].any() and not boost[:, 0].any()  # unknown customers, the start code
    train = split.train[split.train["customer"] >= 0]
    pairs = train.groupby(["customer", "item"]).size()
    (customer, item), n = next(iter(pairs.items()))
    assert boost[customer + 1, item + 1] == pytest.approx(2.0 * np.log1p(n))
    assert np.count_nonzero(boost) == len(pairs)


def test_boost_is_added_to_the_logits_of_the_invoice_customer(split, small_models):
    _, user, _, _ = small_models
    invoices = sequences.invoices_of(split, "validation").take(np.arange(6))
    plain = sequences.KerasNextItem(user).next_items(invoices)
    zero = np.zeros((split.n_customers + 1, split.n_items + 1), np.float32)
    assert np.array_equal(sequences.KerasNextItem(user, boost=zero).next_items(invoices), plain)
    # a huge boost of three items for one customer: its steps get exactly those three first
    customer = int(invoices.customers[0])
    boost = zero.copy()
    boost[customer, [11, 12, 13]] = [3e3, 2e3, 1e3]
    recs = sequences.KerasNextItem(user, boost=boost).next_items(invoices)
    mine = invoices.step_customers() == customer
    assert (recs[mine, :3] == [11, 12, 13]).all()
    assert np.array_equal(recs[~mine], plain[~mine])
    # the same through the step-by-step reference: logits plus the customer's row
    logits = np.asarray(user(sequences.model_inputs(invoices.previous()[:1, None], [customer])))
    assert np.argsort(-(logits[0, 0] + boost[customer]))[:3].tolist() == [11, 12, 13]


def test_next_item_loss_equals_keras_sparse_cross_entropy():
    keras = pytest.importorskip("keras")
    import tensorflow as tf

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(3, 4, 9)) * 3, dtype=tf.float32)
    targets = rng.integers(0, 9, size=(3, 4))
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    np.testing.assert_allclose(
        sequences.next_item_loss(targets, logits), reference(targets, logits), rtol=1e-5
    )
    grads = []
    for loss in (sequences.next_item_loss, reference):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = tf.reduce_sum(loss(targets, logits))
        grads.append(tape.gradient(value, logits).numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-6)
