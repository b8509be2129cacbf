"""Reads of an embedded store another process holds: only through the worker that holds that
very store (issue 7 item 6), and without chDB's "Cannot lock file" line on stderr (item 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from config.registry import DEMO_REGISTRY
from sinks.base import StoreError
from sinks.remote import RemoteStore, held_by_another_process
from tests.integration.kafka_fixture import free_ports, kafka_broker, local_kafka  # noqa: F401
from tests.integration.test_streaming import Worker, running, unique_topic

pytestmark = pytest.mark.integration

EVENT = {"event_id": "e1", "type": "mlps.finding", "unit": "fj.gat", "system": "OA",
         "at": "2018-03-01T10:00:00+08:00"}  # fmt: skip
HOLD = "import sys, time\nfrom sinks.clickhouse import ClickHouseStore\n" \
       "sink = ClickHouseStore(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(600)\n"  # fmt: skip


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "TRACKER_STORE": "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "tracker.cli", *args], capture_output=True,
                          text=True, env=environ, timeout=300)  # fmt: skip


def make_store(tmp_path: Path, name: str) -> str:
    events = tmp_path / f"{name}.jsonl"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    dsn = f"chdb://{tmp_path / name}"
    done = cli("ingest", "--units", str(DEMO_REGISTRY), "--store", dsn, str(events))
    assert done.returncode == 0, done.stderr
    return dsn


@contextmanager
def held(dsn: str) -> Iterator[None]:
    """Another process (not a worker) holds the embedded store."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, dsn], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held", proc.stderr
        assert held_by_another_process(dsn)
        yield
    finally:
        proc.kill()
        proc.wait(timeout=30)


@contextmanager
def not_a_worker() -> Iterator[str]:
    """Some other web service on the worker's port: every path is 404."""

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_reads_fall_back_only_to_the_worker_that_holds_the_store(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    other = make_store(tmp_path, "other")
    worker = Worker(kafka_broker, unique_topic("held"), tmp_path / "w")
    with running(worker), held(other), not_a_worker() as elsewhere:
        worker.wait_web()
        worker.remote().watermark()  # the worker opens its store on the first call
        assert held_by_another_process(worker.dsn)
        at_worker = {"TRACKER_WORKER_URL": worker.url}
        # the worker's own store: read through the worker, nothing on stderr
        for command in ("status", "ledger", "deadlines", "rejects"):
            done = cli(command, "--store", worker.dsn, "--json", env=at_worker)
            assert done.returncode == 0 and done.stderr == "", (command, done.stderr)
        # another store: the worker answering at the URL holds a different one
        wrong = cli("status", "--store", other, "--json", env=at_worker)
        assert (wrong.returncode, wrong.stdout) == (2, ""), wrong.stdout
        assert "holds another store" in wrong.stderr and worker.dsn in wrong.stderr
        assert len(wrong.stderr.splitlines()) == 1, wrong.stderr
        # nothing, or something that is not a tracker worker, at the URL
        closed = f"http://127.0.0.1:{free_ports(1)[0]}"
        for url in (closed, elsewhere):
            done = cli("status", "--store", other, env={"TRACKER_WORKER_URL": url})
            assert done.returncode == 2 and done.stdout == "", done.stdout
            assert "no worker that holds it answers" in done.stderr, done.stderr
            assert len(done.stderr.splitlines()) == 1, done.stderr


def test_a_held_store_is_said_once_without_the_engines_own_line(tmp_path: Path) -> None:
    """What a writer (ingest, a second worker) gets on a held store: one clear error."""
    store = make_store(tmp_path, "store")
    probe = "from sinks.clickhouse import connect\nimport sys\n" \
            "try:\n    connect(sys.argv[1])\nexcept Exception as exc:\n    print(exc)\n"  # fmt: skip
    units = str(DEMO_REGISTRY)
    with held(store):
        opened = subprocess.run([sys.executable, "-c", probe, store], capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert opened.stderr == "", opened.stderr
        assert "another process holds it" in opened.stdout, opened.stdout
        events = tmp_path / "store.jsonl"
        ingest = cli("ingest", "--units", units, "--store", store, str(events))
        assert ingest.returncode == 2 and "another process holds it" in ingest.stderr
        assert "Cannot lock" not in ingest.stderr.split("(")[0], ingest.stderr
        assert len(ingest.stderr.splitlines()) == 1, ingest.stderr


def _answer(url: str, authorization: str | None = None) -> int:
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_workers_views_answer_only_with_its_token(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Issue 10 item 4: the worker's read port requires a token. A worker on an embedded store
    makes one at start, beside the store (mode 0600); a reader that knows the DSN reads it, so
    the CLI needs no extra step. With TRACKER_WORKER_TOKEN set, that is the token."""
    made = Worker(kafka_broker, unique_topic("token"), tmp_path / "made")
    given = Worker(kafka_broker, unique_topic("token"), tmp_path / "given", store="memory://",
                   env={"TRACKER_WORKER_TOKEN": "a-token-given-by-the-operator"})  # fmt: skip
    # no embedded store (like a server store): the token it makes is in its data dir
    served = Worker(kafka_broker, unique_topic("token"), tmp_path / "served", store="memory://")
    with running(made, given, served):
        made.wait_web()
        given.wait_web()
        served.wait_web()  # reads its token from its data dir, as a reader with that data dir
        in_data = served.data_dir / f"worker-{served.web_port}.token"
        assert in_data.stat().st_mode & 0o777 == 0o600
        token_file = tmp_path / "made" / f"chdb.worker-{made.web_port}.token"
        assert token_file.is_file()
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text(encoding="ascii").strip()
        assert len(token) >= 32
        for path in ("status", "ledger", "deadlines", "rejects", "config", "totals",
                     "unit-years", "watermark", "progress"):  # fmt: skip
            url = f"{made.url}/tracker/{path}"
            # rows: (Authorization header, answer)
            for header, code in (
                (None, 401),  # no token
                (f"Bearer {token[:-1]}x", 401),  # a wrong one of the same length
                ("Bearer ", 401),  # an empty one
                (f"Basic {token}", 401),  # not a bearer token
                (f"Bearer {token}", 200),  # the worker's token
            ):
                assert _answer(url, header) == code, (path, header)
        posters = urllib.request.Request(f"{made.url}/tracker/posters", data=b"[]")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(posters, timeout=10)
        assert refused.value.code == 401
        assert _answer(f"{made.url}/tracker/health") == 200  # liveness stays open
        # which store it holds stays open too: a reader of another store is told so (above)
        assert _answer(f"{made.url}/tracker/store") == 200
        for faust_page in ("/table/", "/router/", "/graph/", "/stats/", "/performance/"):
            assert _answer(made.url + faust_page, f"Bearer {token}") == 404, faust_page
        # the CLI reads through the worker with no extra step: the token file is beside the store
        at_worker = {"TRACKER_WORKER_URL": made.url}
        for command in ("status", "ledger", "deadlines", "rejects"):
            done = cli(command, "--store", made.dsn, "--json", env=at_worker)
            assert done.returncode == 0 and done.stderr == "", (command, done.stderr)
        # the operator's token: required as given, and no file is made for it
        assert not list((tmp_path / "given").rglob("*.token"))
        url = f"{given.url}/tracker/watermark"
        assert _answer(url) == 401
        assert _answer(url, "Bearer a-token-given-by-the-operator") == 200
        # a reader without it is told what to do, in one line
        elsewhere = RemoteStore(given.url, dsn="memory://", data_dir=tmp_path / "nowhere")
        with pytest.raises(StoreError, match=r"wants its token .*TRACKER_WORKER_TOKEN"):
            elsewhere.watermark()
