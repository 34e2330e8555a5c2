import pytest

from recsys_helpers.datasets import movielens, synthetic
from recsys_helpers.datasets import retail as data
from recsys_helpers.settings import configure_threads


def pytest_configure(config):
    """TensorFlow's thread pools sized by ``RECSYS_THREADS``, as in the chapters (``make test``
    runs two test processes of one thread each on two cores)."""
    configure_threads()


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


@pytest.fixture(scope="session")
def rating_split():
    """Synthetic ratings with planted biases, factors and genre tastes, split at random."""
    return synthetic.make_rating_split(n_users=120, n_movies=50, per_user=30, seed=4)


@pytest.fixture(scope="session")
def rating_features(rating_split):
    return movielens.movie_features(rating_split.movies)[0]
