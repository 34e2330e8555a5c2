"""Cluster-bootstrap intervals: coverage on simulated clustered data, pairing, transforms, verdicts."""

import numpy as np
import pytest

from recsys_helpers.evaluation.uncertainty import (
    Interval,
    bootstrap,
    paired_difference,
    unpaired_difference,
    verdict,
)

N_CLUSTERS = 150
REPEATS = 300
TRUE_MEAN = 0.25


def _clustered_data(rng, kind: str, n_clusters: int = N_CLUSTERS):
    """Units in clusters of 1-20 with a strong cluster effect; the units' expected mean is TRUE_MEAN."""
    sizes = rng.integers(1, 21, n_clusters)
    clusters = np.repeat(np.arange(n_clusters), sizes)
    if kind == "normal":
        effect = rng.normal(0.0, 1.0, n_clusters)[clusters]
        return TRUE_MEAN + effect + rng.normal(0.0, 0.5, clusters.size), clusters
    p = rng.beta(0.5, 1.5, n_clusters)[clusters]  # mean 0.25, customers differ a lot
    return (rng.random(clusters.size) < p).astype(float), clusters


def _coverage(kind: str, naive: bool) -> float:
    rng = np.random.default_rng(42)
    hits = 0
    for seed in range(REPEATS):
        values, clusters = _clustered_data(rng, kind)
        units = np.arange(values.size) if naive else clusters
        hits += bootstrap(values, units, n_resamples=500, seed=seed).contains(TRUE_MEAN)
    return hits / REPEATS


@pytest.mark.parametrize("kind", ["normal", "bernoulli"])
def test_cluster_bootstrap_covers_the_true_mean_and_unit_bootstrap_does_not(kind):
    clustered = _coverage(kind, naive=False)
    naive = _coverage(kind, naive=True)
    assert 0.90 <= clustered <= 0.985, clustered
    assert naive < 0.85 and naive < clustered - 0.1, (naive, clustered)


def test_width_matches_the_analytic_cluster_standard_error():
    # 6,000 clusters: the draws come in several chunks, and every chunk must be filled
    values, clusters = _clustered_data(np.random.default_rng(3), "normal", n_clusters=6000)
    interval = bootstrap(values, clusters, n_resamples=2000)
    sums, counts = np.bincount(clusters, weights=values), np.bincount(clusters)
    mean = sums.sum() / counts.sum()
    se = np.sqrt(((sums - mean * counts) ** 2).sum()) / counts.sum()
    assert interval.estimate == pytest.approx(values.mean())
    assert interval.width == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert interval.lo < interval.estimate < interval.hi
    assert np.isfinite([interval.lo, interval.hi]).all()


def _two_correlated_models(rng, n_clusters=300):
    sizes = rng.integers(1, 21, n_clusters)
    clusters = np.repeat(np.arange(n_clusters), sizes)
    a = rng.normal(0.0, 1.0, n_clusters)[clusters] + rng.normal(0.0, 0.5, clusters.size)
    b = a - 0.05 + rng.normal(0.0, 0.1, clusters.size)  # b is a, 0.05 worse, a little noisier
    return a, b, clusters


def test_pairing_narrows_the_interval_and_contains_the_true_difference():
    a, b, clusters = _two_correlated_models(np.random.default_rng(7))
    paired = paired_difference(a, b, clusters)
    unpaired = unpaired_difference(a, clusters, b, clusters)
    assert paired.estimate == pytest.approx(a.mean() - b.mean())
    assert unpaired.estimate == pytest.approx(paired.estimate)
    assert paired.contains(0.05) and unpaired.contains(0.05)
    assert paired.width < 0.25 * unpaired.width, (paired, unpaired)
    assert verdict(paired) == "better" and verdict(unpaired) == "no clear difference"


def test_pairing_with_hits_a_few_flipped():
    rng = np.random.default_rng(11)
    sizes = rng.integers(1, 21, 400)
    clusters = np.repeat(np.arange(400), sizes)
    a = (rng.random(clusters.size) < rng.beta(0.5, 1.5, 400)[clusters]).astype(float)
    b = np.where(rng.random(clusters.size) < 0.1, 0.0, a)  # b loses a tenth of a's hits
    paired = paired_difference(a, b, clusters, n_resamples=1000)
    unpaired = unpaired_difference(a, clusters, b, clusters, n_resamples=1000)
    assert paired.contains(0.1 * TRUE_MEAN) and paired.lo > 0
    assert paired.width < 0.5 * unpaired.width


def test_sqrt_transform_gives_an_rmse_interval():
    rng = np.random.default_rng(5)
    clusters = rng.integers(0, 200, 3000)
    squared = (rng.normal(0.0, 1.0, 200)[clusters] * 0.3 + rng.normal(0.0, 1.0, 3000)) ** 2
    rmse = bootstrap(squared, clusters, transform=np.sqrt)
    mse = bootstrap(squared, clusters)
    assert rmse.estimate == pytest.approx(np.sqrt(squared.mean()))
    assert rmse.lo <= rmse.estimate <= rmse.hi and rmse.contains(np.sqrt(squared.mean()))
    assert rmse.lo == pytest.approx(np.sqrt(mse.lo), rel=1e-4)
    assert rmse.hi == pytest.approx(np.sqrt(mse.hi), rel=1e-4)
    assert rmse.width != pytest.approx(mse.width)


def test_sqrt_transform_in_a_paired_difference():
    rng = np.random.default_rng(6)
    clusters = rng.integers(0, 200, 3000)
    err_a = rng.normal(0.0, 1.0, 3000) ** 2
    err_b = err_a * 1.21  # every error 10% larger in absolute value: RMSE b = 1.1 RMSE a
    diff = paired_difference(err_a, err_b, clusters, transform=np.sqrt)
    assert diff.estimate == pytest.approx(-0.1 * np.sqrt(err_a.mean()))
    assert diff.hi < 0 and verdict(diff, higher_is_better=False) == "better"


@pytest.mark.parametrize(
    ("lo", "hi", "higher", "expected"),
    [
        (0.01, 0.03, True, "better"),
        (-0.03, -0.01, True, "worse"),
        (-0.01, 0.03, True, "no clear difference"),
        (0.01, 0.03, False, "worse"),
        (-0.03, -0.01, False, "better"),
        (-0.03, 0.01, False, "no clear difference"),
        (0.0, 0.03, True, "no clear difference"),
    ],
)
def test_verdict(lo, hi, higher, expected):
    interval = Interval((lo + hi) / 2, lo, hi)
    assert verdict(interval, higher_is_better=higher) == expected
    assert interval.excludes_zero == (expected != "no clear difference")


def test_interval_helpers():
    interval = Interval(0.5, 0.25, 1.0)
    assert interval.width == 0.75 and interval.level == 0.95
    assert interval.contains(0.25) and interval.contains(1.0) and not interval.contains(1.01)
    with pytest.raises(AttributeError):
        interval.lo = 0.0


def test_level_changes_the_width():
    values, clusters = _clustered_data(np.random.default_rng(8), "normal")
    wide = bootstrap(values, clusters, level=0.99)
    narrow = bootstrap(values, clusters, level=0.8)
    assert narrow.width < wide.width and narrow.level == 0.8
    assert wide.lo < narrow.lo and narrow.hi < wide.hi


@pytest.mark.parametrize(
    ("values", "clusters", "message"),
    [
        ([0.1, 0.2, 0.3], [4, 4, 4], "needs at least two clusters"),
        ([], [], "empty"),
        ([0.1, 0.2, 0.3], [1, 2], "3 values but 2"),
        ([0.1, np.nan, 0.3], [1, 2, 3], "finite"),
        ([0.1, np.inf, 0.3], [1, 2, 3], "finite"),
        ([[0.1, 0.2], [0.3, 0.4]], [[1, 2], [3, 4]], "1-D"),
    ],
)
def test_degenerate_inputs_raise(values, clusters, message):
    with pytest.raises(ValueError, match=message):
        bootstrap(values, clusters)
    with pytest.raises(ValueError, match=message):
        paired_difference(values, values, clusters)
    with pytest.raises(ValueError, match=message):
        unpaired_difference([0.1, 0.2], [1, 2], values, clusters)


def test_all_equal_values_give_a_zero_width_interval():
    clusters = np.repeat(np.arange(50), 7)
    values = np.full(clusters.size, 0.1)
    interval = bootstrap(values, clusters)
    assert interval == Interval(0.1, 0.1, 0.1)
    assert paired_difference(values, values, clusters) == Interval(0.0, 0.0, 0.0)
    assert unpaired_difference(values, clusters, values, clusters).width == 0.0


def test_seeded_and_deterministic():
    values, clusters = _clustered_data(np.random.default_rng(9), "bernoulli")
    first = bootstrap(values, clusters, seed=3)
    assert bootstrap(values, clusters, seed=3) == first
    assert bootstrap(values, clusters, seed=4) != first
    b = np.roll(values, 1)

    def paired(seed):
        return paired_difference(values, b, clusters, seed=seed)

    assert paired(3) == paired(3) and paired(3) != paired(4)


def test_string_cluster_labels_match_integer_labels():
    values, clusters = _clustered_data(np.random.default_rng(10), "normal")
    names = np.array([f"customer-{c:04d}" for c in clusters])  # sorts like the integers
    assert bootstrap(values, names) == bootstrap(values, clusters)
    doubled = values * 2
    assert paired_difference(values, doubled, names) == paired_difference(values, doubled, clusters)
    assert bootstrap(values, names.astype(object)) == bootstrap(values, clusters)
