import pytest

from recsys_helpers import data, synthetic


@pytest.fixture(scope="session")
def raw():
    """A small synthetic table in the workbook's schema."""
    return synthetic.make_retail(n_customers=200, n_items=60, n_tastes=5, seed=1)


@pytest.fixture(scope="session")
def split(raw):
    return data.time_split(data.clean_retail(raw))


@pytest.fixture(scope="session")
def checkerboard_split():
    return data.time_split(data.clean_retail(synthetic.make_checkerboard(seed=3)))
