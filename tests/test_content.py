"""What is particular to the content-based model (the shared checks are in test_contracts)."""

import numpy as np

from recsys_helpers.models import content


def test_tfidf_unit_rows_and_min_df():
    matrix, vocab = content.tfidf([["CAKE", "TINS"], ["CAKE", "HEART"], ["HEART"], ["LONELY"]])
    assert vocab == ["CAKE", "HEART"]
    dense = matrix.toarray()
    assert np.allclose(np.linalg.norm(dense[:3], axis=1), 1.0) and not dense[3].any()


def test_item_features_are_unit_rows(split):
    features, names = content.item_features(split)
    assert features.shape == (split.n_items, len(names))
    assert np.allclose(np.linalg.norm(features.toarray(), axis=1), 1.0)
    assert names[-1] == "price_band_4"


def test_scores_are_cosines_of_profile_and_items(split):
    model = content.ContentBased().fit(split)
    customers = np.arange(3)
    expected = model.profiles_[customers] @ model.features_.T
    np.testing.assert_allclose(model.scores(customers), expected.toarray(), rtol=1e-5, atol=1e-6)
    # the items a customer bought are closer to the profile than the others
    scores = model.scores(customers)
    bought = model.history_matrix_[customers].toarray() > 0
    assert scores[bought].mean() > scores[~bought].mean()
    assert model.fit_seconds_ >= 0
