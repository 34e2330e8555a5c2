"""Build the book and open every page in a real (headless) browser, with the network off.

Checks what a reader would notice: the build has no warnings, every page renders after its
JavaScript ran, links and images resolve, every figure of a notebook made it to its page and is
numbered, glued numbers were substituted, no error output, the formulas were typeset by MathJax
(no raw ``\\(`` or ``\\[`` left on the page), no code block, table or formula is wider than its
column at a 1280-pixel window, no page requests anything from another host, and the search page
finds things. Screenshots of a few pages land in ``_build/screenshots/``.

"Network off": the browser's only route out is a proxy run by this test, which refuses and logs
every request; a page that asked for anything remote (a CDN script, a web font) fails.

Needs Chromium (Debian's ``chromium``); without it the test skips, unless
``RECSYS_REQUIRE_BROWSER=1`` (as in CI) makes a missing browser a failure.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socketserver
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

import pytest
from bs4 import BeautifulSoup

from recsys_helpers.settings import env_flag

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
#: The window the checks measure in (CSS pixels): a laptop browser.
WINDOW = (1280, 1600)
#: Figures whose cell also shows a table: myst-nb wraps every output of a cell with figure metadata
#: in the figure, so such a figure needs a cell of its own, and the chapter re-executed. Until
#: then this many figures of the page may stay unnumbered; delete an entry once it is done.
AWAITING_REEXECUTION: dict[str, int] = {}
#: The browser's own housekeeping (clock, updates, accounts, autofill, safe browsing), not the
#: page's: the only hosts the proxy log ignores (exact names: a page's fonts.googleapis.com counts).
BROWSER_HOSTS = {
    "clients2.google.com",
    "update.googleapis.com",
    "accounts.google.com",
    "content-autofill.googleapis.com",
    "safebrowsing.googleapis.com",
    "optimizationguide-pa.googleapis.com",
    "clientservices.googleapis.com",
    "redirector.gvt1.com",
    "edgedl.me.gvt1.com",
}


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


BROWSER = _browser()
if BROWSER is None:
    if env_flag("RECSYS_REQUIRE_BROWSER"):
        pytest.fail("RECSYS_REQUIRE_BROWSER is set but no Chromium was found", pytrace=False)
    pytest.skip("no Chromium on this machine (apt-get install chromium)", allow_module_level=True)


# ---------------------------------------------------------------------------------------------
# A proxy that refuses everything: the browser's network


class _Refuse(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline(65536).decode("latin-1").strip()
        if line:
            self.server.requests.append(line)
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Refuse)
        self.requests: list[str] = []

    def remote(self) -> list[str]:
        """Requests the pages made (the browser's own housekeeping left out)."""
        return [r for r in self.requests if _host(r) not in BROWSER_HOSTS]


def _host(request_line: str) -> str:
    """The host of a proxy request line: ``CONNECT host:443 ...`` or ``GET http://host/...``."""
    target = request_line.split(" ")[1] if " " in request_line else request_line
    if "://" in target:
        target = urlparse(target).netloc
    return target.rsplit(":", 1)[0] if target.count(":") == 1 else target


# ---------------------------------------------------------------------------------------------
# The site, and a page that measures another page in a 1280-pixel frame

#: Runs in the outer page once the framed page loaded and MathJax finished typesetting.
MEASURE_JS = r"""
const frame = document.getElementById("page");
async function measure() {
  const w = frame.contentWindow, d = frame.contentDocument;
  if (w.MathJax && w.MathJax.startup) { await w.MathJax.startup.promise; }
  await new Promise((r) => setTimeout(r, 200));
  const article = d.querySelector("main article") || d.querySelector("main") || d.body;
  const describe = (el) => el.tagName.toLowerCase() + "." + [...el.classList].join(".") +
    " " + JSON.stringify((el.innerText || "").trim().slice(0, 120));
  const wide = [];
  for (const el of article.querySelectorAll("*")) {
    const style = w.getComputedStyle(el);
    const scrolls = ["auto", "scroll"].includes(style.overflowX);
    if (scrolls && el.scrollWidth > el.clientWidth + 1) wide.push("scrolls: " + describe(el));
    if (["PRE", "TABLE", "IMG", "MJX-CONTAINER"].includes(el.tagName) &&
        el.getBoundingClientRect().right > article.getBoundingClientRect().right + 1)
      wide.push("past the column: " + describe(el));
  }
  const text = article.cloneNode(true);
  text.querySelectorAll("pre, code, script, style, mjx-assistive-mml").forEach((e) => e.remove());
  const figures = [...article.querySelectorAll("figure")].map((f) => {
    const caption = f.querySelector("figcaption");
    return {id: f.id, number: caption && caption.querySelector(".caption-number") ?
      caption.querySelector(".caption-number").innerText : null,
      caption: caption ? caption.innerText.trim() : ""};
  });
  return {
    math: article.querySelectorAll(".math").length,
    typeset: article.querySelectorAll(".math mjx-container, mjx-container.MathJax").length,
    unrendered: [...article.querySelectorAll(".math")].filter(
      (m) => !m.querySelector("mjx-container")).map((m) => m.textContent.slice(0, 80)),
    rawTex: (text.textContent.match(/\\[\(\[][^]{0,60}/g) || []),
    wide: wide,
    pageWidth: d.documentElement.scrollWidth, windowWidth: w.innerWidth,
    figures: figures,
    badRefs: [...article.querySelectorAll("a.reference")].filter(
      (a) => /^\s*(\?\?|Fig\. \?|Fig\. None)/.test(a.innerText)).map((a) => a.innerText),
  };
}
frame.addEventListener("load", () => measure().then(
  (r) => { document.getElementById("report").textContent = JSON.stringify(r); },
  (e) => { document.getElementById("report").textContent = JSON.stringify({error: String(e)}); }));
"""


class _Site(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/__measure__":
            return super().do_GET()
        page = parse_qs(url.query)["page"][0]
        body = (
            '<!doctype html><html><body style="margin:0">'
            f'<iframe id="page" src="/{quote(page)}" style="border:0;width:{WINDOW[0]}px;'
            f'height:{WINDOW[1]}px"></iframe><pre id="report">pending</pre>'
            f"<script>{MEASURE_JS}</script></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(server: socketserver.BaseServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def proxy():
    with _Proxy() as server:
        _serve(server)
        yield server
        server.shutdown()


@pytest.fixture(scope="module")
def site():
    """Build the book (warnings fail) and serve it on a loopback port for the browser."""
    jb = Path(sys.executable).with_name("jupyter-book")
    shutil.rmtree(HTML, ignore_errors=True)
    build = subprocess.run(
        [str(jb), "build", str(ROOT), "-W", "-n", "--keep-going"], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    handler = functools.partial(_Site, directory=str(HTML))
    with _Server(("127.0.0.1", 0), handler) as server:
        _serve(server)
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


def _chromium(proxy: _Proxy, *args: str, timeout: int = 90) -> str:
    cmd = [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-domain-reliability", "--disable-client-side-phishing-detection",
        "--no-first-run", "--no-default-browser-check", "--no-pings",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return done.stdout


def _pages() -> list[Path]:
    toc = (ROOT / "_toc.yml").read_text()
    files = ["intro"] + [line.split("file:")[1].strip() for line in toc.splitlines() if "file:" in line]
    return [Path(f) for f in files]


def _dom(proxy, site: str, page: Path, query: str = "") -> BeautifulSoup:
    html = _chromium(proxy, "--virtual-time-budget=8000", "--dump-dom", f"{site}/{page.as_posix()}.html{query}")
    assert "<html" in html, f"the browser rendered nothing for {page}"
    return BeautifulSoup(html, "html.parser")


def _measure(proxy, site: str, page: Path) -> dict:
    html = _chromium(
        proxy, "--virtual-time-budget=15000", "--dump-dom", f"{site}/__measure__?page={page.as_posix()}.html"
    )
    report = BeautifulSoup(html, "html.parser").find(id="report")
    assert report is not None and report.text != "pending", f"the measuring page did not finish for {page}"
    result = json.loads(report.text)
    assert "error" not in result, result
    return result


def _notebook(page: Path) -> dict | None:
    notebook = ROOT / page.with_suffix(".ipynb")
    return json.loads(notebook.read_text()) if notebook.exists() else None


def _png_outputs(page: Path) -> int:
    nb = _notebook(page) or {"cells": []}
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb["cells"]
        for output in cell.get("outputs", [])
    )


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_page_renders_cleanly(proxy, site, page):
    before = len(proxy.remote())
    dom = _dom(proxy, site, page)
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
                assert tag == "a", f"fetches {target} at view time"  # outbound links are fine
                continue
            path = unquote(url.path)
            resolved = (HTML / path.lstrip("/")) if url.scheme else (here / path).resolve()
            assert resolved.exists(), f"broken {tag} {attr}={target!r}"
            if tag == "img":
                assert resolved.stat().st_size > 0, f"empty image {target}"

    figures = _png_outputs(page)
    images = [i for i in main.find_all("img") if "_images/" in (i.get("src") or "")]
    assert len(images) >= figures, f"{figures} figures in the notebook, {len(images)} on the page"
    assert proxy.remote()[before:] == [], "the page asked for remote resources"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_page_fits_and_formulas_render(proxy, site, page):
    """At 1280 px: MathJax typeset every formula, nothing scrolls sideways, figures numbered."""
    before = len(proxy.remote())
    result = _measure(proxy, site, page)
    source = ROOT / page.with_suffix(".md")
    if source.exists() and "$" in source.read_text():
        assert result["math"] > 0, "the source has formulas but the page has no math elements"
    assert result["typeset"] >= result["math"], f"formulas not typeset: {result['unrendered']}"
    assert not result["unrendered"], f"formulas not typeset: {result['unrendered']}"
    assert not result["rawTex"], f"raw TeX on the page: {result['rawTex']}"
    assert not result["wide"], "wider than the column at 1280 px:\n" + "\n".join(result["wide"])
    assert result["pageWidth"] <= result["windowWidth"], "the page scrolls sideways at 1280 px"
    for figure in result["figures"]:
        assert figure["number"], f"figure {figure['id']!r} has no number"
        assert len(figure["caption"]) > len(figure["number"]) + 3, f"figure {figure['id']!r} has no caption"
    assert not result["badRefs"], f"unresolved cross-references: {result['badRefs']}"
    assert proxy.remote()[before:] == [], "the page asked for remote resources"


def test_every_notebook_figure_is_a_numbered_figure(site):
    """Each image a chapter's notebook outputs is inside a numbered, captioned ``<figure>``."""
    for page in _pages():
        figures = _png_outputs(page)
        dom = BeautifulSoup((HTML / page.with_suffix(".html")).read_text(), "html.parser")
        article = dom.find("article") or dom
        numbered = [f for f in article.find_all("figure") if f.select_one("figcaption .caption-number")]
        # drawings the chapter includes as files (SVG) are figures too, but not notebook outputs
        images = sum(len([i for i in f.find_all("img") if not i.get("src", "").endswith(".svg")]) for f in numbered)
        missing = figures - images
        allowed = AWAITING_REEXECUTION.get(page.as_posix(), 0)
        assert missing <= allowed, f"{page}: {figures} figures in the notebook, {images} numbered on the page"
        assert missing == allowed, f"{page}: {missing} unnumbered figures, not {allowed}: update AWAITING_REEXECUTION"


def test_search_finds_chapters(proxy, site):
    dom = _dom(proxy, site, Path("search"), "?q=precision")
    results = dom.select("ul.search li a")
    assert results, "the search page found nothing for 'precision'"
    assert any("chapters/" in (a.get("href") or "") for a in results)


def test_no_remote_requests_at_all(proxy, site):
    """The proxy saw no request from any page (the checks above ran every page through it)."""
    assert proxy.remote() == [], f"remote requests: {proxy.remote()}"


def test_proxy_catches_remote_requests(proxy, site):
    """The network check can fail: a page that loads a remote script is caught by the proxy."""
    before = len(proxy.requests)
    probe = HTML / "_probe_remote.html"
    probe.write_text(
        '<html><head><link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Lato">'
        '</head><body><script src="https://example.org/x.js"></script></body></html>'
    )
    try:
        _chromium(proxy, "--virtual-time-budget=3000", "--dump-dom", f"{site}/_probe_remote.html")
    finally:
        probe.unlink()
    seen = proxy.requests[before:]
    del proxy.requests[before:]  # the probe's own requests are not a book page's
    hosts = {_host(r) for r in seen}
    assert {"example.org", "fonts.googleapis.com"} <= hosts, seen
    assert _host("GET http://clients2.google.com/time/1/current?x=1 HTTP/1.1") in BROWSER_HOSTS


def test_screenshots(proxy, site):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for page in _pages()[:4]:
        out = SHOTS / f"{page.stem}.png"
        _chromium(proxy, f"--screenshot={out}", f"{site}/{page.as_posix()}.html")
        assert out.exists() and out.stat().st_size > 10_000, f"no screenshot of {page}"
