import json

from recsys_helpers.book import execute

TINY = """---
jupytext:
  formats: ipynb,md:myst
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---

# Tiny

```{code-cell} ipython3
x = 2
```

```{code-cell} ipython3
x * 21
```
"""


def test_execute_writes_paired_executed_notebook(tmp_path):
    source = tmp_path / "tiny.md"
    source.write_text(TINY)
    target = execute.execute(source)
    nb = json.loads(target.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == [1, 2]
    assert "".join(code[1]["outputs"][0]["data"]["text/plain"]) == "42"
    assert nb["metadata"]["jupytext"]["formats"] == "ipynb,md:myst"


def test_record_timing(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSYS_SUBSET", raising=False)
    path = tmp_path / "t.json"
    execute.record_timing("02_als", 12.34, path)
    execute.record_timing("01_data", 3.0, path)
    assert json.loads(path.read_text()) == {"01_data": 3.0, "02_als": 12.3}
    monkeypatch.setenv("RECSYS_SUBSET", "1")
    execute.record_timing("03_x", 1.0, path)  # subset runs do not count
    assert "03_x" not in json.loads(path.read_text())


def test_cell_times_reads_the_executor_timestamps(tmp_path):
    source = tmp_path / "tiny.md"
    source.write_text(TINY.replace("x = 2", "import time\ntime.sleep(0.3)\nx = 2"))
    times = execute.cell_times([execute.execute(source)])
    assert times["chapter"].tolist() == ["tiny", "tiny"]
    assert times["cell"].tolist() == [1, 2]
    assert times["code"].tolist() == ["import time", "x * 21"]
    assert 0.3 <= times["seconds"][0] < 5 and times["seconds"][1] < 0.3


def test_main_with_out_leaves_the_chapter_alone(tmp_path):
    source = tmp_path / "tiny.md"
    source.write_text(TINY)
    execute.main(["--out", str(tmp_path / "runs"), str(source)])
    assert not source.with_suffix(".ipynb").exists()
    nb = json.loads((tmp_path / "runs" / "tiny.ipynb").read_text())
    assert "".join(nb["cells"][-1]["outputs"][0]["data"]["text/plain"]) == "42"
