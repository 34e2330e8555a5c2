"""What is particular to LightGCN (the shared checks are in test_contracts)."""

import numpy as np
import pandas as pd
import pytest

from recsys_helpers.interactions import training_pairs, unique_pairs
from recsys_helpers.models import lightgcn


def test_graph_edges_are_the_distinct_pairs(split):
    c, i = training_pairs(split)
    uc, ui = unique_pairs(split)
    assert len(uc) == len(set(zip(c.tolist(), i.tolist(), strict=True)))
    assert (uc >= 0).all() and np.all(np.diff(uc) >= 0)


def test_normalized_adjacency():
    a = lightgcn.normalized_adjacency(np.array([0, 0, 1, 0]), np.array([0, 1, 1, 0]), 2, 2)
    a = a.toarray()
    assert a.shape == (4, 4) and np.allclose(a, a.T)
    # customer 0 (degree 2) - item 1 (degree 2): 1 / sqrt(2 * 2)
    assert a[0, 3] == pytest.approx(0.5) and a[1, 2] == 0.0


def test_zero_layers_is_matrix_factorisation(split):
    model = lightgcn.LightGCN(dim=4, n_layers=0, epochs=1, progress=False).fit(split)
    embeddings = model.model_.embeddings.numpy()
    np.testing.assert_allclose(model.customer_factors_, embeddings[: split.n_customers])
    np.testing.assert_allclose(model.item_factors_, embeddings[split.n_customers :])


def test_loss_falls_and_history_is_a_frame(checkerboard_split):
    model = lightgcn.LightGCN(dim=8, epochs=10, batch_size=256, learning_rate=0.05, progress=False)
    model.fit(checkerboard_split)
    assert isinstance(model.history_, pd.DataFrame) and len(model.history_) == 10
    assert model.history_["loss"].iloc[-1] < model.history_["loss"].iloc[0]
