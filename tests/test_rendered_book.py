"""Build the book and open every page in a real (headless) browser.

Checks what a reader would notice: the build has no warnings, every page renders after its
JavaScript ran, links and images resolve, every figure of a notebook made it to its page, glued
numbers were substituted, no error output, nothing is fetched from elsewhere except MathJax, and
the search page finds things. Screenshots of a few pages land in ``_build/screenshots/``.

Needs Chromium (Debian's ``chromium``); without it the test skips, unless
``RECSYS_REQUIRE_BROWSER=1`` (as in CI) makes a missing browser a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
ALLOWED_REMOTE = ("cdn.jsdelivr.net/npm/mathjax",)


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


BROWSER = _browser()
if BROWSER is None:
    if os.environ.get("RECSYS_REQUIRE_BROWSER"):
        pytest.fail("RECSYS_REQUIRE_BROWSER is set but no Chromium was found", pytrace=False)
    pytest.skip("no Chromium on this machine (apt-get install chromium)", allow_module_level=True)


def _chromium(*args: str, timeout: int = 60) -> str:
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return done.stdout


@pytest.fixture(scope="module")
def site():
    """Build the book (warnings fail) and serve it on a loopback port for the browser."""
    jb = Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run(
        [str(jb), "build", str(ROOT), "-W", "-n", "--keep-going"], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(HTML)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _pages() -> list[Path]:
    toc = (ROOT / "_toc.yml").read_text()
    files = ["intro"] + [line.split("file:")[1].strip() for line in toc.splitlines() if "file:" in line]
    return [Path(f) for f in files]


def _dom(site: str, page: Path, query: str = "") -> BeautifulSoup:
    html = _chromium("--virtual-time-budget=8000", "--dump-dom", f"{site}/{page.as_posix()}.html{query}")
    assert "<html" in html, f"the browser rendered nothing for {page}"
    return BeautifulSoup(html, "html.parser")


def _png_outputs(page: Path) -> int:
    notebook = ROOT / page.with_suffix(".ipynb")
    if not notebook.exists():
        return 0
    nb = json.loads(notebook.read_text())
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb["cells"]
        for output in cell.get("outputs", [])
    )


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_page_renders_cleanly(site, page):
    dom = _dom(site, page)
    main = dom.find("main") or dom
    text = main.get_text(" ")
    assert "{glue" not in text, "a glued number was not substituted"
    assert not main.select(".output.error, .output.traceback"), "an error output is on the page"
    assert dom.find("h1"), "the page has no title"

    here = (HTML / page).parent
    for tag, attr in (("a", "href"), ("img", "src"), ("script", "src"), ("link", "href")):
        for element in dom.find_all(tag):
            target = element.get(attr)
            if not target or target.startswith(("#", "mailto:", "data:", "javascript:")):
                continue
            url = urlparse(target)
            if url.scheme in ("http", "https") and not url.netloc.startswith("127.0.0.1"):
                if tag != "a":  # resources must be local; outbound links are fine
                    assert any(a in target for a in ALLOWED_REMOTE), f"fetches {target} at view time"
                continue
            path = unquote(url.path)
            resolved = (HTML / path.lstrip("/")) if url.scheme else (here / path).resolve()
            assert resolved.exists(), f"broken {tag} {attr}={target!r}"
            if tag == "img":
                assert resolved.stat().st_size > 0, f"empty image {target}"

    figures = _png_outputs(page)
    images = [i for i in main.find_all("img") if "_images/" in (i.get("src") or "")]
    assert len(images) >= figures, f"{figures} figures in the notebook, {len(images)} on the page"


def test_search_finds_chapters(site):
    dom = _dom(site, Path("search"), "?q=precision")
    results = dom.select("ul.search li a")
    assert results, "the search page found nothing for 'precision'"
    assert any("chapters/" in (a.get("href") or "") for a in results)


def test_screenshots(site):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for page in _pages()[:4]:
        out = SHOTS / f"{page.stem}.png"
        _chromium("--window-size=1280,2000", f"--screenshot={out}", f"{site}/{page.as_posix()}.html")
        assert out.exists() and out.stat().st_size > 10_000, f"no screenshot of {page}"
