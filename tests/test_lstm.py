"""The LSTM recommenders of the next-item protocol (``models.lstm``, ``lstm_prediction``, ``losses``)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from recsys_helpers.evaluation import metrics
from recsys_helpers.evaluation.next_item import NextItemProtocol
from recsys_helpers.interactions import Invoices, invoices_of, make_windows, pack_windows
from recsys_helpers.models import losses, lstm, lstm_prediction
from recsys_helpers.models.baselines import PopularityWithRemoval

QUIET = {"progress": False}

# --- the baseline and the protocol the LSTMs are measured with --------------------------------


def test_popularity_with_removal_skips_bought_items(split):
    model = PopularityWithRemoval().fit(split)
    invoices = Invoices(model.ranking_[[0, 1, 2, 7]].copy(), np.array([0, 3, 4]), np.array([0, 0]))
    recs = model.next_items(invoices, k=3)
    r = model.ranking_
    assert recs[0].tolist() == r[:3].tolist()
    assert recs[1].tolist() == r[1:4].tolist()  # the first item was bought
    assert recs[2].tolist() == r[2:5].tolist()  # first two bought
    assert recs[3].tolist() == r[:3].tolist()  # new invoice: nothing removed


def test_popularity_ranking_is_by_training_count(split):
    model = PopularityWithRemoval().fit(split)
    counts = np.bincount(split.train["item"].to_numpy() + 1, minlength=split.n_items + 1)
    assert np.all(np.diff(counts[model.ranking_]) <= 0)


def test_protocol_scores_oracle_and_baseline(split):
    protocol = NextItemProtocol.from_split(split, "validation")
    truth = protocol.invoices.items
    oracle = np.column_stack([truth, np.zeros((len(truth), 4), np.int32)])
    assert protocol.score(oracle)["accuracy"] == 1.0
    assert protocol.score(oracle)["mrr_at_5"] == 1.0
    baseline = PopularityWithRemoval().fit(split)
    scores = protocol.evaluate(baseline)
    assert 0 < scores["accuracy"] < 0.5
    assert scores["accuracy"] == pytest.approx(
        metrics.accuracy_k(truth, baseline.next_items(protocol.invoices))
    )
    assert scores["recall_at_5"] == pytest.approx(scores["accuracy"])


# --- networks: small, so that the tests run in seconds -----------------------------------------


def test_length_batches_cover_each_invoice_once():
    lengths = np.array([3, 50, 1, 7, 0, 20, 20, 2])
    batches = lstm_prediction.length_batches(lengths, max_tokens=40)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[b].max(), 1) <= 40 or len(b) == 1 for b in batches)


@pytest.fixture(scope="module")
def small_models(split):
    keras.utils.set_random_seed(0)
    n_items, n_customers = split.n_items + 1, split.n_customers + 1
    item = lstm.build_lstm(n_items, embedding_dim=8, hidden=12, layers=2, dropout=0.1, seed=0)
    user = lstm.build_lstm(n_items, n_customers, embedding_dim=8, customer_dim=4, hidden=12, layers=1)
    skip = lstm.build_lstm(
        n_items, n_customers, embedding_dim=8, customer_dim=4, hidden=12, customer_to_output=True
    )
    history = lstm.build_lstm(
        n_items, n_customers, embedding_dim=8, customer_dim=4, hidden=12, history=True
    )
    history.get_layer("history_bias").scale.assign(np.linspace(0.5, 3, n_items))
    return item, user, skip, history


def test_models_shapes_and_customer_table_size(split, small_models):
    item, user, _, _ = small_models
    x = np.zeros((3, 7), np.int32)
    assert tuple(item({"items": x}).shape) == (3, 7, split.n_items + 1)
    assert tuple(user(lstm_prediction.lstm_inputs(x, np.array([0, 1, 2]))).shape) == (3, 7, split.n_items + 1)
    # the customer table is sized by the number of customers (the source used the number of items)
    assert user.get_layer("customer_embedding").input_dim == split.n_customers + 1
    assert not lstm_prediction.uses_customers(item) and lstm_prediction.uses_customers(user)


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
    invoices = invoices_of(split, "validation", history=6)
    invoices = invoices.take(np.arange(min(12, len(invoices))))
    batched = lstm_prediction.predict_next_items(model, invoices, k=5, max_tokens=40)
    stepwise = lstm_prediction.predict_stepwise(model, invoices, k=5)
    assert batched.shape == (invoices.n_steps, 5)
    assert np.array_equal(batched, stepwise)
    assert not np.any(batched == 0)  # "start" is never recommended


def test_previous_only_is_one_step_from_the_zero_state(split, small_models):
    """The source's bug, reproduced: every step starts from the zero state with one item."""
    _, user, _, _ = small_models
    invoices = invoices_of(split, "validation").take(np.arange(5))
    recs = lstm_prediction.predict_from_previous_only(user, invoices, k=5, batch_size=7)
    inputs = lstm_prediction.lstm_inputs(invoices.previous()[:, None], invoices.step_customers())
    logits = np.array(user(inputs))[:, 0]
    logits[:, 0] = -np.inf
    expected = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    assert np.array_equal(recs, expected)


def test_drop_bought_skips_items_of_the_invoice():
    invoices = Invoices(np.array([3, 4, 5, 9], np.int32), np.array([0, 3, 4]), np.array([0, 0]))
    candidates = np.array([[3, 4, 6, 7], [3, 4, 6, 7], [4, 3, 6, 7], [3, 4, 6, 7]], np.int32)
    out = lstm_prediction.drop_bought(candidates, invoices, k=2)
    assert out.tolist() == [[3, 4], [4, 6], [6, 7], [3, 4]]


def test_history_bias_adds_scaled_weights(small_models):
    *_, model = small_models
    x = np.array([[0, 5, 6]], np.int32)
    plain = lstm_prediction.lstm_inputs(x, np.array([1]), (np.zeros((1, 2), np.int32), np.zeros((1, 2))))
    boosted = lstm_prediction.lstm_inputs(x, np.array([1]), (np.array([[7, 0]]), np.array([[2.0, 0.0]])))
    difference = np.asarray(model(boosted)) - np.asarray(model(plain))
    scale = model.get_layer("history_bias").scale.numpy()
    np.testing.assert_allclose(difference[0, :, 7], 2.0 * scale[7], rtol=1e-5)
    difference[0, :, 7] = 0
    np.testing.assert_allclose(difference, 0, atol=1e-5)


def test_history_boost_counts_training_purchases(split):
    boost = lstm_prediction.history_boost(split, weight=2.0)
    assert boost.shape == (split.n_customers + 1, split.n_items + 1)
    assert not boost[0].any() and not boost[:, 0].any()  # unknown customers, the start code
    train = split.train[split.train["customer"] >= 0]
    pairs = train.groupby(["customer", "item"]).size()
    (customer, item), n = next(iter(pairs.items()))
    assert boost[customer + 1, item + 1] == pytest.approx(2.0 * np.log1p(n))
    assert np.count_nonzero(boost) == len(pairs)


def test_bias_is_added_to_the_logits_of_the_invoice_customer(split, small_models):
    _, user, _, _ = small_models
    invoices = invoices_of(split, "validation").take(np.arange(6))
    plain = lstm_prediction.predict_next_items(user, invoices)
    zero = np.zeros((split.n_customers + 1, split.n_items + 1), np.float32)
    assert np.array_equal(lstm_prediction.predict_next_items(user, invoices, bias=zero), plain)
    # a huge bias of three items for one customer: its steps get exactly those three first
    customer = int(invoices.customers[0])
    bias = zero.copy()
    bias[customer, [11, 12, 13]] = [3e3, 2e3, 1e3]
    recs = lstm_prediction.predict_next_items(user, invoices, bias=bias)
    mine = invoices.step_customers() == customer
    assert (recs[mine, :3] == [11, 12, 13]).all()
    assert np.array_equal(recs[~mine], plain[~mine])


def test_next_item_loss_equals_keras_sparse_cross_entropy():
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(3, 4, 9)) * 3, dtype=tf.float32)
    targets = rng.integers(0, 9, size=(3, 4))
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    np.testing.assert_allclose(losses.next_item_loss(targets, logits), reference(targets, logits), rtol=1e-5)
    grads = []
    for loss in (losses.next_item_loss, reference):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = tf.reduce_sum(loss(targets, logits))
        grads.append(tape.gradient(value, logits).numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-6)


# --- the recommenders: trained by the book's loop ----------------------------------------------


def test_chosen_configurations_are_the_defaults():
    item, user = lstm.ItemLSTM(), lstm.UserLSTM()
    assert all(getattr(item, key) == value for key, value in lstm.ITEM_LSTM.items())
    assert all(getattr(user, key) == value for key, value in lstm.USER_LSTM.items())
    assert not item.customers and user.customers and user.hide_customers == 0.3
    assert lstm.ItemLSTM(epochs=2).epochs == 2


SMALL = {"embedding_dim": 16, "hidden": 32, "num_steps": 6, "stride": 3, "epochs": 4, **QUIET}


@pytest.fixture(scope="module")
def validation(split):
    return NextItemProtocol.from_split(split, "validation")


@pytest.fixture(scope="module")
def trained(split, validation):
    def callback(model):
        return {f"val_{key}": value for key, value in validation.evaluate(model).items()}

    item = lstm.ItemLSTM(**SMALL).fit(split, callback=callback)
    user = lstm.UserLSTM(**SMALL).fit(split, callback=callback)
    return item, user


def test_training_learns_planted_order(trained, validation, split):
    """A few epochs on the synthetic invoices (runs along item cycles) beat popularity."""
    popularity = validation.evaluate(PopularityWithRemoval().fit(split))["accuracy"]
    for model in trained:
        history = model.history_
        assert history["epoch"].tolist() == [1, 2, 3, 4]
        assert history["loss"].iloc[-1] < history["loss"].iloc[0]
        accuracy = validation.evaluate(model)["accuracy"]
        assert history["val_accuracy"].iloc[-1] == pytest.approx(accuracy)
        assert accuracy > popularity + 0.1
        assert model.fit_seconds_ > 0


def test_windows_and_hidden_customers(split, trained):
    item, user = trained
    train = invoices_of(split, "train")
    X, Y, U = make_windows(train.items, train.indptr, 6, 3, customers=train.customers)
    assert np.array_equal(item.windows_[0], Y) and np.array_equal(item.windows_[1], X)
    assert item.input_names_ == ["items", "scored"]
    assert user.input_names_ == ["items", "customers", "scored", "reset"]  # packed windows
    customers = user.windows_[2]
    assert (customers == customers[:, :1]).all()  # one customer code along a window
    hidden = (customers[:, 0] == 0) & (U > 0)
    assert np.array_equal(customers[~hidden, 0], U[~hidden])
    assert hidden.sum() / (U > 0).sum() == pytest.approx(0.3, abs=0.08)


def test_loss_weighs_padding_zero_and_averages_over_all_positions(split):
    item = lstm.ItemLSTM(**SMALL | {"targets": "all", "negatives": 0, "epochs": 1}).fit(split)
    targets, inputs = item.windows_[0][:16], item.windows_[1][:16]
    assert (targets == 0).any() and (targets > 0).any()
    logits = item.model({"items": inputs}, training=False)
    per_position = losses.next_item_loss(targets, logits).numpy()
    expected = (per_position * (targets > 0)).sum() / targets.size  # Keras' sample-weight mean
    assert float(item.compute_loss((targets, inputs), training=False)) == pytest.approx(expected, rel=1e-5)


def test_learning_rate_decays_over_the_epochs_of_the_fit(split):
    model = lstm.ItemLSTM(**SMALL | {"epochs": 5}).fit(split, epochs=2)
    steps = 2 * -(-len(model.windows_[0]) // model.batch_size)
    assert int(model.optimizer_.iterations) == steps and len(model.history_) == 2
    final = model.learning_rate * model.final_fraction  # the cosine's end, after this fit
    assert float(model.optimizer_.learning_rate) == pytest.approx(final, rel=1e-4)


def test_next_items_drop_bought_and_fill_from_the_whole_catalogue(split, trained, validation):
    item, _ = trained
    invoices = validation.invoices
    raw = lstm_prediction.predict_next_items(item.model, invoices, 5)
    recs = item.next_items(invoices, 5)
    assert recs.shape == raw.shape and (recs > 0).all()
    for g in range(len(invoices)):
        start = invoices.indptr[g]
        for i in range(start, invoices.indptr[g + 1]):
            assert not set(recs[i]) & set(invoices.items[start:i].tolist())
    item.candidates = 5  # too few candidates: steps left short are ranked over every item
    try:
        few = item.next_items(invoices, 5)
    finally:
        item.candidates = 20
    assert np.array_equal(few, recs)
    item.drop_bought = False
    try:
        assert np.array_equal(item.next_items(invoices, 5), raw)
    finally:
        item.drop_bought = True


def test_boost_adds_the_purchase_history(split, trained, validation):
    _, user = trained
    invoices = validation.invoices
    user.drop_bought, boost = False, user.boost
    try:
        user.boost = 0.0
        plain = user.next_items(invoices, 5)
        assert np.array_equal(plain, lstm_prediction.predict_next_items(user.model, invoices, 5))
        user.boost = 2.5
        boosted = user.next_items(invoices, 5)
        expected = lstm_prediction.predict_next_items(
            user.model, invoices, 5, bias=lstm_prediction.history_boost(split, 2.5)
        )
        assert np.array_equal(boosted, expected)
    finally:
        user.drop_bought, user.boost = True, boost


def test_learned_history_option_trains_and_predicts(split):
    full = {"targets": "all", "negatives": 0, "pack": False}  # the history bonus is added after the output layer
    model = lstm.UserLSTM(**SMALL | full | {"epochs": 1, "history": 8}).fit(split)
    assert model.input_names_[-2:] == ["history_items", "history_weights"]
    invoices = invoices_of(split, "validation", history=8).take(np.arange(5))
    recs = model.next_items(invoices, 5)
    assert recs.shape == (invoices.n_steps, 5) and (recs > 0).all()
    with pytest.raises(ValueError, match="histories"):
        model.next_items(invoices_of(split, "validation").take(np.arange(5)), 5)


# --- the source's configuration ---------------------------------------------------------------


def test_source_init_draws_uniform_weights_and_no_forget_bias():
    keras.utils.set_random_seed(0)
    model = lstm.build_lstm(30, embedding_dim=8, hidden=6, layers=2, init="source")
    for name in ("item_embedding", "lstm_0", "lstm_1", "logits"):
        for weight in model.get_layer(name).weights:
            values = weight.numpy()
            if name.startswith("lstm") and "bias" in weight.path:
                assert np.all(values == 0), "the source's LSTM biases start at 0, forget gate too"
            else:
                assert np.abs(values).max() <= 0.1 and values.std() > 0.03
    kernels = [model.get_layer(f"lstm_{i}").weights[1].numpy() for i in range(2)]
    assert not np.allclose(kernels[0], kernels[1]), "every weight gets its own draw"
    with pytest.raises(ValueError):
        lstm.build_lstm(30, init="glorot")


def test_carried_state_flows_from_one_batch_to_the_next(split):
    params = lstm.ITEM_LSTM_SOURCE | {"embedding_dim": 8, "hidden": 8, "batch_size": 16, **QUIET}
    model = lstm.lstm_recommender(**params).fit(split, epochs=1)
    assert isinstance(model.optimizer_, keras.optimizers.SGD)
    assert model.optimizer_.global_clipnorm == 5.0
    # the epoch ended with a reset: the state is zero again
    assert all(np.all(state.numpy() == 0) for state in model.states_)
    batch = next(iter(model.batches(np.random.default_rng(0))))
    model.compute_loss(batch, training=False)
    carried = [state.numpy().copy() for state in model.states_]
    assert all(np.abs(state).max() > 0 for state in carried), "a batch leaves its final state"
    # the next batch starts from that state: same batch, other start, other loss
    first = float(model.compute_loss(batch, training=False))
    for state in model.states_:
        state.assign(tf.zeros_like(state))
    assert float(model.compute_loss(batch, training=False)) != pytest.approx(first)
    # and every batch is a full one
    assert all(len(b[0]) == 16 for b in model.batches(np.random.default_rng(1)))


def test_carried_state_matches_the_stateless_model_from_zero(split):
    params = lstm.ITEM_LSTM_SOURCE | {"embedding_dim": 8, "hidden": 8, "batch_size": 16, **QUIET}
    model = lstm.lstm_recommender(**params).fit(split, epochs=1)
    targets, items = next(iter(model.batches(np.random.default_rng(0))))
    stateless = model.model({"items": items}, training=False)
    carried = model._logits({"items": items}, training=False)  # the state is zero after fit
    np.testing.assert_allclose(np.asarray(carried), np.asarray(stateless), atol=1e-5)


def test_allow_start_lets_code_zero_be_recommended(split):
    invoices = invoices_of(split, "validation")
    model = lstm.build_lstm(split.n_items + 1, embedding_dim=4, hidden=4)
    logits_bias = model.get_layer("logits").weights[1]
    logits_bias.assign(np.where(np.arange(split.n_items + 1) == 0, 100.0, 0.0).astype("float32"))
    with_start = lstm_prediction.predict_from_previous_only(model, invoices, allow_start=True)
    assert np.all(with_start[:, 0] == 0)
    assert not np.any(lstm_prediction.predict_from_previous_only(model, invoices) == 0)
    assert np.all(lstm_prediction.predict_next_items(model, invoices, allow_start=True)[:, 0] == 0)
    assert not np.any(lstm_prediction.predict_next_items(model, invoices) == 0)


def test_fresh_targets_loss_is_the_masked_loss_of_the_first_predictions(split):
    model = lstm.lstm_recommender(embedding_dim=8, hidden=8, num_steps=8, stride=4, epochs=1,
                                 dropout=0.0, targets="fresh", **QUIET).fit(split)
    batch = next(iter(model.batches(np.random.default_rng(0))))
    targets, items, fresh = batch
    assert fresh.sum() < (targets > 0).sum(), "overlapping windows repeat targets"
    logits = model.model({"items": items}, training=False)
    manual = float(tf.reduce_sum(losses.next_item_loss(targets, logits) * fresh) / fresh.sum())
    assert float(model.compute_loss(batch, training=False)) == pytest.approx(manual, rel=1e-5)
    with pytest.raises(ValueError):
        lstm.lstm_recommender(targets="some")


def test_buckets_cut_only_trailing_padding(split):
    model = lstm.lstm_recommender(embedding_dim=8, hidden=8, num_steps=16, stride=8, epochs=1,
                                 dropout=0.0, targets="fresh", buckets=True, batch_size=8,
                                 **QUIET).fit(split)
    batches = list(model.batches(np.random.default_rng(1)))
    rows = sum(len(batch[0]) for batch in batches)
    assert rows == len(model.windows_[0]), "every window once per epoch"
    assert sum(batch[2].sum() for batch in batches) == model.windows_[2].sum(), "no target is cut"
    assert any(batch[0].shape[1] < 16 for batch in batches), "short windows are cut"
    targets, items, fresh = batches[0]
    full = tuple(np.pad(a, ((0, 0), (0, 16 - a.shape[1]))) for a in batches[0])
    assert float(model.compute_loss(batches[0], training=False)) == pytest.approx(
        float(model.compute_loss(full, training=False)), rel=1e-5
    ), "the network is causal: cutting the padding after the last target changes no loss"
    with pytest.raises(ValueError):
        lstm.lstm_recommender(buckets=True)


def test_sampled_softmax_over_the_whole_catalogue_is_the_full_softmax():
    rng = np.random.default_rng(0)
    hidden = tf.constant(rng.normal(size=(7, 5)), tf.float32)
    kernel = tf.constant(rng.normal(size=(5, 11)), tf.float32)
    bias = tf.constant(rng.normal(size=11), tf.float32)
    targets = tf.constant(rng.integers(1, 11, 7), tf.int32)
    full = losses.next_item_loss(targets, hidden @ kernel + bias)
    every = tf.range(11, dtype=tf.int32)  # each item once, the target among them (left out)
    sampled = losses.sampled_softmax_loss(hidden, targets, every, kernel, bias, tf.zeros(11))
    np.testing.assert_allclose(sampled.numpy(), full.numpy(), rtol=1e-5)
    # a sample without the target's competitors gives a smaller loss; the correction raises it
    few = tf.constant([1, 2], tf.int32)
    small = losses.sampled_softmax_loss(hidden, targets, few, kernel, bias, tf.zeros(11))
    assert np.all(small.numpy() <= full.numpy() + 1e-6)
    corrected = losses.sampled_softmax_loss(hidden, targets, few, kernel, bias, tf.fill([11], -2.0))
    assert np.all(corrected.numpy() >= small.numpy() - 1e-6)


def test_purchases_and_negatives_train_and_predict_the_whole_catalogue(split):
    model = lstm.lstm_recommender(embedding_dim=8, hidden=8, num_steps=8, stride=4, epochs=1,
                                 dropout=0.0, targets="purchases", negatives=16, **QUIET).fit(split)
    batch = next(iter(model.batches(np.random.default_rng(0))))
    targets, items, scored, negatives = batch
    assert np.array_equal(scored, targets > 0), "every purchase of the window is scored"
    assert negatives.shape == (16,) and np.all(negatives > 0), "the start code is never drawn"
    assert np.isfinite(float(model.compute_loss(batch, training=False)))
    invoices = invoices_of(split, "validation")
    assert model.next_items(invoices, k=3).shape == (invoices.n_steps, 3)
    with pytest.raises(ValueError):
        lstm.lstm_recommender(negatives=16)  # the full softmax at every position


def test_packed_rows_compute_what_each_window_computes_alone(split):
    model = lstm.lstm_recommender(customers=True, embedding_dim=8, hidden=8, customer_dim=4,
                                 num_steps=16, stride=8, epochs=1, targets="purchases",
                                 pack=True, batch_size=4, **QUIET).fit(split)
    targets, items, customers, scored = model.windows_
    (p_items, p_customers), reset = pack_windows(
        [items, customers], model.window_lengths_, 16, np.random.default_rng(0))
    assert len(p_items) < len(items), "short windows share rows"
    packed = lstm.packed_encoder(model.model, {"items": p_items, "customers": p_customers}, reset)
    alone = model.encoder_({"items": items, "customers": customers}).numpy()
    # each window's first position in the packed rows, by its unique (items, customers) content
    for row in range(3):
        for start in np.flatnonzero(reset[row]):
            end = start + 1
            while end < 16 and not reset[row, end] and p_items[row, end]:  # items > 0 after the start
                end += 1
            match = [w for w in range(len(items)) if model.window_lengths_[w] == end - start
                     and (items[w, : end - start] == p_items[row, start:end]).all()
                     and (customers[w, : end - start] == p_customers[row, start:end]).all()]
            assert match, "every packed segment is a window"
            np.testing.assert_allclose(packed[row, start:end], alone[match[0], : end - start],
                                       rtol=1e-4, atol=1e-5)
    batch = next(iter(model.batches(np.random.default_rng(2))))
    assert batch[-1].dtype == bool and batch[0].shape == batch[-1].shape, "rows and their starts"
    assert np.isfinite(float(model.compute_loss(batch, training=True)))
    with pytest.raises(ValueError):
        lstm.lstm_recommender(pack=True)
    with pytest.raises(ValueError):
        lstm.lstm_recommender(pack=True, buckets=True, targets="fresh")


# --- the two models, built from their flat configurations --------------------------------------

#: First-batch losses (seed 0) computed by the code before the source's and the book's models
#: became two classes: the split must give the same networks and the same numbers.
FIRST_LOSSES = {"item_source": 4.110997200012207, "user_source": 4.111046314239502,
                "item": 6.235456943511963, "user": 6.944031238555908}
REFACTOR_SMALL = {"embedding_dim": 16, "hidden": 32, "num_steps": 6, "stride": 3, "epochs": 1,
                  "seed": 0, **QUIET}


@pytest.mark.parametrize("key", sorted(FIRST_LOSSES))
def test_flat_configurations_build_the_same_networks_as_before(split, key):
    params = {"item_source": lstm.ITEM_LSTM_SOURCE | {"batch_size": 16},
              "user_source": lstm.USER_LSTM_SOURCE | {"customers": True, "batch_size": 16},
              "item": lstm.ITEM_LSTM, "user": lstm.USER_LSTM | {"customers": True}}[key]
    model = lstm.lstm_recommender(**params | REFACTOR_SMALL)
    assert type(model) is (lstm.SourceLSTM if key.endswith("source") else lstm.BookLSTM)
    keras.utils.set_random_seed(model.seed)
    networks = model.build(split)
    shapes = {w.path: tuple(w.shape) for network in networks for w in network.weights}
    customers = 200 if key == "user_source" else 32
    assert shapes["item_embedding/embeddings"] == (61, 16)
    assert shapes["logits/kernel"] == (32, 61)
    assert ("customer_embedding/embeddings" in shapes) == key.startswith("user")
    if key.startswith("user"):
        assert shapes["customer_embedding/embeddings"] == (201, customers)
        assert shapes["lstm_0/lstm_cell/kernel"] == (16 + customers, 128)
    assert ("lstm_1/lstm_cell/kernel" in shapes) == key.endswith("source")
    batch = next(iter(model.batches(np.random.default_rng(model.seed))))
    assert float(model.compute_loss(batch, training=False)) == FIRST_LOSSES[key]


def test_the_chapters_models_are_their_flat_configurations():
    item = lstm.lstm_recommender(**lstm.ITEM_LSTM | QUIET)
    assert vars(item) == vars(lstm.ItemLSTM(**QUIET))
    user = lstm.lstm_recommender(**lstm.USER_LSTM | {"customers": True} | QUIET)
    assert vars(user) == vars(lstm.UserLSTM(**QUIET))
    grouped = lstm.options(lstm.ITEM_LSTM)
    assert grouped["network"].hidden == 128 and grouped["targets"].negatives == 512
    assert grouped["training"].epochs == 12 and grouped["num_steps"] == 32
    with pytest.raises(TypeError):
        lstm.lstm_recommender(**lstm.ITEM_LSTM_SOURCE | {"targets": "fresh"})  # no chosen targets
    with pytest.raises(ValueError):
        lstm.lstm_recommender(**lstm.ITEM_LSTM_SOURCE | {"dropout": 0.2})
    with pytest.raises(ValueError):
        lstm.Training(optimizer="rmsprop")
