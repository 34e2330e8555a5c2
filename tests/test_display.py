import inspect

import pandas as pd
import pytest

from recsys_helpers.book import display, style


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (32.642656, "32.6"),
        (0.029337, "0.0293"),
        (0.000106, "0.000106"),
        (61315.865819, "61,300"),
        (268.137245, "268"),
        (1.051278, "1.05"),
        (5.0, "5"),
        (378470, "378,470"),
        (True, "True"),
        ("text", "text"),
        (float("nan"), ""),
        (-0.0123456, "-0.0123"),
    ],
)
def test_significant_text(value, text):
    assert display.significant_text(value) == text


def test_significant_text_digits():
    assert display.significant_text(3.14159, digits=2) == "3.1"
    assert display.significant_text(0.5, digits=1) == "0.5"


def test_significant_formats_only_the_display():
    frame = pd.DataFrame({"median": [32.642656, 0.029337], "repeats": [2.0, 5.0], "met": [True, False]})
    html = display.significant(frame).to_html()
    assert "32.6<" in html and "0.0293<" in html and ">2<" in html and "True" in html
    assert "32.642656" not in html
    assert frame["median"].iloc[0] == 32.642656  # the data stay as they are
    assert "1.05<" in display.significant(pd.Series([1.051278], name="s")).to_html()


def _wide_helper(first_argument, second_argument, third_argument, fourth_argument, fifth_argument):
    return first_argument + second_argument + third_argument + fourth_argument + fifth_argument


class _Holder:
    def method(self, first_argument, second_argument, third_argument, fourth_argument_that_is_long):
        return [first_argument, second_argument, third_argument, fourth_argument_that_is_long]


def test_page_source_fits_the_column():
    for obj in (_wide_helper, _Holder.method):
        source = inspect.getsource(obj)
        assert style.long_lines(source)  # too wide as written
        shown = display.page_source(source)
        assert not style.long_lines(shown), shown
        assert shown.splitlines()[0].startswith(source.splitlines()[0][:8])  # the indent is kept


def test_flop_table_compares_each_stage_with_the_matmul_rate_of_its_run():
    results = {"stages": {
        "matmul": {"matmul_gflops": 200.0},
        "matmul_avx2": {"matmul_gflops": 100.0},
        "sgd_mf": {"epoch_gflop": 10.0, "achieved_gflops": 50.0, "fit_cpu_seconds": {"user": 3, "system": 1}},
        "lstm_training_avx2": {
            "item_now_rate": {"epoch_gflop": 20.0, "achieved_gflops": 40.0},
            "item_now_cpu_seconds": {"user": 5.0, "system": 0.5},
            "item_epoch_speedup": 3.0,
        },
    }}
    table = display.flop_table(results)
    assert list(table.index) == ["sgd_mf", "lstm_training_avx2: item now"]
    assert table.loc["sgd_mf", "share of matmul"] == pytest.approx(0.25)
    assert table.loc["sgd_mf", "epoch s"] == pytest.approx(0.2)
    row = table.loc["lstm_training_avx2: item now"]
    assert row["matmul GFLOP/s"] == 100.0 and row["share of matmul"] == pytest.approx(0.4)
    assert row["user CPU s"] == 5.0
    assert display.flop_table({"stages": {"matmul": {"matmul_gflops": 1.0}}}).empty
