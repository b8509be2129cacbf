"""`tracker.grafana.push` over real HTTP against a small fake Grafana on 127.0.0.1 that records
every request and answers with Grafana-shaped JSON."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tracker import dashboard_json
from tracker.cli import main
from tracker.grafana import GrafanaPushError, clickhouse_datasource, folder_uid, push

TOKEN = "glsa_good_token_0123456789"
VIEWER = "glsa_viewer_token"
DSN = "http://grafana_reader:s3cret@clickhouse:8123/?database=tracker"


@dataclass
class FakeGrafana:
    """State of the fake: what exists, and every request as (method, path, auth, body)."""

    prefix: str = ""
    grafana: bool = True
    requests: list[tuple[str, str, str, Any]] = field(default_factory=list)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""

    def answer(self, method: str, path: str, auth: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, auth, body))
        if not path.startswith(self.prefix + "/api/"):
            return 404, {"message": "Not found"}
        path = path[len(self.prefix) + 4 :]
        if path == "/health":
            if not self.grafana:
                return 200, "<html>hello</html>"
            return 200, {"commit": "abc", "database": "ok", "version": "12.2.0"}
        if auth not in (f"Bearer {TOKEN}", f"Bearer {VIEWER}"):
            return 401, {"message": "invalid API key", "traceID": ""}
        if method != "GET" and auth == f"Bearer {VIEWER}":
            return 403, {"message": "You'll need additional permissions to perform this action."}
        return self._route(method, path, body)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[:2] == ["datasources", "uid"] and method == "GET":
            found = self.datasources.get(parts[2])
            return (200, found) if found else (404, {"message": "Data source not found"})
        if parts == ["datasources"] and method == "POST":
            self.datasources[body["uid"]] = {**body, "id": len(self.datasources) + 1}
            return 200, {
                "datasource": body,
                "id": 1,
                "message": "Datasource added",
                "name": body["name"],
            }
        if parts[:2] == ["datasources", "uid"] and method == "PUT":
            self.datasources[parts[2]] = body
            return 200, {"datasource": body, "id": 1, "message": "Datasource updated"}
        if parts[0] == "folders" and method == "GET":
            found = self.folders.get(parts[1])
            return (200, found) if found else (404, {"message": "folder not found"})
        if parts == ["folders"] and method == "POST":
            self.folders[body["uid"]] = body
            return 200, {"id": 7, "uid": body["uid"], "title": body["title"]}
        if parts == ["dashboards", "db"] and method == "POST":
            uid = body["dashboard"]["uid"]
            version = self.dashboards.get(uid, {}).get("version", 0) + 1
            self.dashboards[uid] = {**body, "version": version}
            return 200, {
                "id": 3,
                "status": "success",
                "uid": uid,
                "url": f"/d/{uid}",
                "version": version,
            }
        return 404, {"message": "Not found"}

    def writes(self) -> list[tuple[str, str, Any]]:
        return [(m, p, b) for m, p, _, b in self.requests if m != "GET"]


def _handler(fake: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, answer = fake.answer(
                self.command, self.path, self.headers.get("Authorization", ""), body
            )
            data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            self.send_response(status)
            kind = "text/html" if isinstance(answer, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeGrafana]:
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_first_push_creates_the_datasource_and_saves_every_dashboard(fake: FakeGrafana) -> None:
    result = push(fake.url, TOKEN, store_dsn_for_grafana=DSN)
    assert result.datasource == "created" and result.folder_uid is None
    assert result.dashboards == ["tracker-province", "tracker-unit", "tracker-audit"]
    assert all(auth == f"Bearer {TOKEN}" for _, p, auth, _ in fake.requests if p != "/api/health")
    (method, path, datasource), *saves = fake.writes()
    assert (method, path) == ("POST", "/api/datasources")
    assert datasource == {
        "uid": "tracker-clickhouse",
        "name": "Tracker ClickHouse",
        "type": "grafana-clickhouse-datasource",
        "access": "proxy",
        "jsonData": {
            "host": "clickhouse",
            "port": 8123,
            "protocol": "http",
            "secure": False,
            "username": "grafana_reader",
            "defaultDatabase": "tracker",
        },
        "secureJsonData": {"password": "s3cret"},
    }
    shipped = dashboard_json.load()
    assert [p for _, p, _ in saves] == ["/api/dashboards/db"] * 3
    for (_, _, body), (uid, dashboard) in zip(saves, shipped.items(), strict=True):
        assert body["overwrite"] is True and body["folderUid"] == ""
        assert body["dashboard"] == {**dashboard, "id": None} and body["dashboard"]["uid"] == uid


def test_pushing_again_updates_in_place(fake: FakeGrafana) -> None:
    push(fake.url, TOKEN, store_dsn_for_grafana=DSN)
    first = {uid: d["dashboard"] for uid, d in fake.dashboards.items()}
    fake.requests.clear()
    result = push(fake.url, TOKEN, store_dsn_for_grafana=DSN)
    assert result.datasource == "updated"
    assert fake.writes()[0][:2] == (
        "PUT",
        "/api/datasources/uid/tracker-clickhouse",
    )
    assert {uid: d["dashboard"] for uid, d in fake.dashboards.items()} == first
    assert {d["version"] for d in fake.dashboards.values()} == {2}
    assert len(fake.datasources) == 1


def test_folder_is_created_once_and_used(fake: FakeGrafana) -> None:
    push(fake.url, TOKEN, store_dsn_for_grafana=DSN, folder="扣分跟踪 Tracker")
    uid = folder_uid("扣分跟踪 Tracker")
    assert fake.folders == {uid: {"title": "扣分跟踪 Tracker", "uid": uid}}
    assert {d["folderUid"] for d in fake.dashboards.values()} == {uid}
    push(fake.url, TOKEN, store_dsn_for_grafana=DSN, folder="扣分跟踪 Tracker")
    assert [p for m, p, _ in fake.writes()].count("/api/folders") == 1
    assert len(uid) <= 40 and uid == folder_uid("扣分跟踪 Tracker")


def test_grafana_under_a_path_prefix(fake: FakeGrafana) -> None:
    fake.prefix = "/grafana"
    result = push(fake.url + "/grafana/", TOKEN, store_dsn_for_grafana=DSN)
    assert len(result.dashboards) == 3
    assert all(p.startswith("/grafana/api/") for _, p, _, _ in fake.requests)


def test_rejected_token_is_one_clear_line(fake: FakeGrafana) -> None:
    with pytest.raises(GrafanaPushError) as caught:
        push(fake.url, "glsa_wrong_secret", store_dsn_for_grafana=DSN)
    message = str(caught.value)
    assert message == (
        f"Grafana at {fake.url} rejected the token (HTTP 401: invalid API key); check --token"
    )
    assert "glsa_wrong_secret" not in message and fake.writes() == []


def test_token_without_rights_is_refused_with_what_it_tried(fake: FakeGrafana) -> None:
    with pytest.raises(
        GrafanaPushError, match=r"refused to create data source tracker-clickhouse .*HTTP 403"
    ) as caught:
        push(fake.url, VIEWER, store_dsn_for_grafana=DSN)
    assert "\n" not in str(caught.value)


def test_unreachable_grafana() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(GrafanaPushError) as caught:
        push(url, TOKEN, store_dsn_for_grafana=DSN, timeout=2)
    assert str(caught.value) == f"cannot reach Grafana at {url}: Connection refused"


def test_something_else_than_grafana(fake: FakeGrafana) -> None:
    fake.grafana = False
    with pytest.raises(GrafanaPushError, match="answered, but not like Grafana"):
        push(fake.url, TOKEN, store_dsn_for_grafana=DSN)


def test_bad_arguments_are_named_without_secrets() -> None:
    with pytest.raises(GrafanaPushError, match=r"not 'chdb:///x'"):
        clickhouse_datasource("chdb:///x")
    with pytest.raises(GrafanaPushError, match=r"'ftp://u:\*\*\*@h'") as caught:
        push("ftp://u:pw@h", TOKEN, store_dsn_for_grafana=DSN)
    assert "pw" not in str(caught.value)
    https = clickhouse_datasource("https://ro@ch.example:8443/?database=t2", password="p")
    assert https["jsonData"] == {
        "host": "ch.example",
        "port": 8443,
        "protocol": "http",
        "secure": True,
        "username": "ro",
        "defaultDatabase": "t2",
    }


# -- `tracker dashboards push` ----------------------------------------------------------------


def test_cli_push(fake: FakeGrafana, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["dashboards", "push", "--url", fake.url, "--token", TOKEN, "--datasource-url", DSN]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        "data source tracker-clickhouse created",
        "dashboards tracker-province, tracker-unit, tracker-audit saved in the General folder",
    ]
    assert set(fake.dashboards) == set(dashboard_json.FILES)


def test_cli_push_user_errors(
    fake: FakeGrafana, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    monkeypatch.delenv("TRACKER_GRAFANA_TOKEN", raising=False)
    monkeypatch.setenv("TRACKER_STORE", "chdb:///tmp/x")
    push = ["dashboards", "push", "--url", fake.url]
    assert main(push) == 2
    assert "give --token" in capsys.readouterr().err
    assert main([*push, "--token", TOKEN]) == 2
    assert "give --datasource-url" in capsys.readouterr().err
    assert main([*push, "--token", "nope", "--datasource-url", DSN]) == 2
    err = capsys.readouterr().err
    assert "rejected the token" in err and len(err.strip().splitlines()) == 1


def test_cli_push_token_from_the_environment(
    fake: FakeGrafana, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # $TRACKER_GRAFANA_TOKEN wins over the plain $GRAFANA_TOKEN; neither is ever printed
    monkeypatch.setenv("GRAFANA_TOKEN", "nope")
    monkeypatch.setenv("TRACKER_GRAFANA_TOKEN", TOKEN)
    assert main(["dashboards", "push", "--url", fake.url, "--datasource-url", DSN]) == 0
    out, err = capsys.readouterr()
    assert TOKEN not in out + err and "nope" not in out + err
