"""`make lab` as a reader uses it: a Jupyter server with jupytext's contents manager opens a
chapter's MyST `.md` as a notebook, and the chapter's code cells run one by one in a kernel started
through the server, over the kernel's websocket, as JupyterLab sends them.

The server is the one `make lab` starts (`jupyter_server`, which requirements-lab.txt pins); it runs
headless on 127.0.0.1 with a random token and is shut down after the module, also on failure.
"""

import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

pytest.importorskip(
    "jupyter_server", reason="the Jupyter server is not installed (`make lab` installs it)"
)

ROOT = Path(__file__).resolve().parent.parent
# The chapter on a table of one's own runs on a synthetic table: no data set is needed.
CHAPTER = "chapters/24_your_own_data.md"
START_TIMEOUT = 60  # seconds for the server to answer
CELL_TIMEOUT = 120  # seconds for one cell's reply


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, url, token, process, log):
        self.url, self.token, self.process, self.log = url, token, process, log

    def request(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as response:
            text = response.read()
        return json.loads(text) if text else None

    def log_tail(self):
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A headless Jupyter server at the repository's root, the chapters' settings in its
    environment (subset mode, one thread); the user's own Jupyter configuration is kept out."""
    folder = tmp_path_factory.mktemp("jupyter")
    env = {k: v for k, v in os.environ.items() if k != "RECSYS_RECORD_FILE"}
    env |= {
        "RECSYS_SUBSET": "1",
        "RECSYS_THREADS": "1",
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    srv = Server(f"http://127.0.0.1:{port}", token, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"the Jupyter server exited ({process.returncode}):\n{srv.log_tail()}")
            try:
                srv.request("GET", "/api/status", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"no answer within {START_TIMEOUT} s:\n{srv.log_tail()}")
                time.sleep(0.3)
        yield srv
    finally:
        try:
            srv.request("POST", "/api/shutdown", timeout=10)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture(scope="module")
def notebook(server):
    """The chapter's `.md` read through the contents API as JupyterLab opens it."""
    model = server.request("GET", f"/api/contents/{CHAPTER}?type=notebook&content=1")
    assert model["type"] == "notebook", model["type"]
    return model["content"]


@pytest.fixture(scope="module")
def session(server):
    """A kernel started through the server as JupyterLab starts it for the chapter: a session
    on the notebook's path (so the kernel works in chapters/)."""
    model = server.request(
        "POST",
        "/api/sessions",
        {"path": CHAPTER, "type": "notebook", "name": "", "kernel": {"name": "python3"}},
    )
    try:
        yield model
    finally:
        try:
            server.request("DELETE", f"/api/sessions/{model['id']}", timeout=20)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass


async def _execute(server, kernel_id, sources):
    """Each source sent as an execute request over the kernel's websocket, in order; the replies'
    contents (status, and for an error its name and value) and the streamed text of each cell."""
    url = f"ws://127.0.0.1:{server.url.rsplit(':', 1)[1]}/api/kernels/{kernel_id}/channels"
    request = HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
    connection = await asyncio.wait_for(websocket_connect(request), timeout=30)
    session_id = uuid.uuid4().hex
    results = []
    try:
        for source in sources:
            msg_id = uuid.uuid4().hex
            header = {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "username": "test",
                "session": session_id,
                "version": "5.3",
                "date": "",
            }
            content = {
                "code": source,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            }
            await connection.write_message(
                json.dumps(
                    {
                        "header": header,
                        "parent_header": {},
                        "metadata": {},
                        "content": content,
                        "channel": "shell",
                        "buffers": [],
                    }
                )
            )
            text, reply = [], None
            deadline = time.monotonic() + CELL_TIMEOUT
            while reply is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply within {CELL_TIMEOUT} s to:\n{source}")
                raw = await asyncio.wait_for(connection.read_message(), timeout=left)
                if raw is None:
                    raise ConnectionError("the kernel's websocket closed")
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = message["header"]["msg_type"]
                if kind == "stream":
                    text.append(message["content"]["text"])
                elif kind == "execute_reply":
                    reply = message["content"]
            results.append((reply, "".join(text)))
    finally:
        connection.close()
    return results


def execute(server, kernel_id, sources):
    return asyncio.run(_execute(server, kernel_id, sources))


def test_chapter_md_opens_as_a_notebook(notebook):
    """jupytext's pairing: the `.md` comes back as a notebook with its code cells, and the outputs
    of the paired `.ipynb`."""
    text = (ROOT / CHAPTER).read_text()
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert len(code) == len(re.findall(r"^```\{code-cell\}", text, flags=re.M)) > 0
    assert any(cell["outputs"] for cell in code), "the paired notebook's outputs are missing"


def test_chapter_runs_cell_by_cell(server, notebook, session):
    sources = [cell["source"] for cell in notebook["cells"] if cell["cell_type"] == "code"]
    results = execute(server, session["kernel"]["id"], sources)
    for number, (source, (reply, _)) in enumerate(zip(sources, results, strict=True), 1):
        assert reply["status"] == "ok", (
            f"code cell {number} of {CHAPTER} ended with {reply['status']}: "
            f"{reply.get('ename')}: {reply.get('evalue')}\n{source}"
        )
    # The kernel worked in the chapter's folder, with the chapters' settings of the server.
    ((reply, text),) = execute(
        server,
        session["kernel"]["id"],
        ["import os; print(os.path.basename(os.getcwd()), os.environ['RECSYS_SUBSET'])"],
    )
    assert reply["status"] == "ok" and text.split() == ["chapters", "1"], text


def test_a_failing_cell_is_reported(server, session):
    """The same client sees a cell's error: the test above can fail."""
    ((reply, _),) = execute(server, session["kernel"]["id"], ["raise ValueError('deliberate')"])
    assert reply["status"] == "error"
    assert (reply["ename"], reply["evalue"]) == ("ValueError", "deliberate")
