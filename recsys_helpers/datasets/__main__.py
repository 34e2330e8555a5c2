"""``make data``: download and cache the data sets the book uses (``python -m recsys_helpers.datasets``)."""

from ..settings import get_settings
from . import movielens, retail


def main() -> None:
    settings = get_settings()
    if settings.retail_data is not None:
        print(f"RECSYS_RETAIL_DATA={settings.retail_data}: using that table, nothing to download")
        retail.load_raw_retail(settings)
    else:
        print(f"Online Retail cached at {retail.fetch_retail(settings)}")
    print(f"MovieLens at {movielens.fetch_movielens(settings)}")


if __name__ == "__main__":
    main()
