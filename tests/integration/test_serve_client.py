"""The client `tracker post` uses (tracker/serve/client.py) against `tracker serve` on a real
socket: chunks, line numbers mapped back to the input, refusals per chunk, 429 waited out."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from sinks.clickhouse import ClickHouseStore
from tests.integration.kafka_fixture import free_ports
from tests.serve_kit import Served, event, serve
from tracker.serve.app import create_app
from tracker.serve.client import ClientError, post_events
from tracker.serve.limits import Limits

pytestmark = pytest.mark.integration


@pytest.fixture
def server(chdb_dsn: str, tmp_path: Path) -> Iterator[tuple[str, Served]]:
    served = serve(ClickHouseStore(chdb_dsn), tmp_path, Limits(rate_per_s=2, burst=3))
    app = create_app(served.service, served.principals, Limits(rate_per_s=2, burst=3))
    (port,) = free_ports(1)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", served
    finally:
        running.should_exit = True
        thread.join(timeout=10)
        served.service.close()


def lines(events: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(e) + "\n" for e in events).encode()


def test_chunks_answer_with_the_input_line_numbers(server: tuple[str, Served]) -> None:
    url, served = server
    notices = [event("mlps.finding", "fj.gat", f"m-{i}", system=f"s{i}") for i in range(7)]
    data = (
        lines(notices[:3])
        + b"\n"
        + lines(notices[3:])
        + lines([event("vuln.feedback", "fj.gat", "fb", notice_id="none")])
    )
    # a centre cannot post feedback: its chunk (lines 8-9) is refused whole, the others applied
    answer = post_events(url, served.tokens["centre"], data, chunk_events=3)
    assert (answer.accepted, answer.duplicates) == (6, 0)
    assert [n for n, _ in answer.rejected] == [9]
    assert "may not post vuln.feedback" in answer.rejected[0][1]
    assert answer.not_sent == [8] and answer.error and "403" in answer.error
    # over the rate (2/s, bursts of 3): the client waits and sends again
    again = post_events(url, served.tokens["centre"], lines(notices), chunk_events=1)
    assert (again.accepted, again.duplicates, again.not_sent) == (1, 6, [])  # m-6 was line 8


def test_a_bad_token_is_a_client_error(server: tuple[str, Served]) -> None:
    url, _ = server
    with pytest.raises(ClientError, match="not valid"):
        post_events(url, "trk.0123456789abcdef." + "A" * 43, lines([event("clock.tick", None)]))


def test_no_server_is_a_client_error() -> None:
    (port,) = free_ports(1)
    with pytest.raises(ClientError, match="cannot reach"):
        post_events(f"http://127.0.0.1:{port}", "t", b"{}\n", timeout_s=2)


def test_tracker_post_is_a_client_of_tracker_serve(
    server: tuple[str, Served],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tracker.cli import main

    url, served = server
    monkeypatch.setenv("TRACKER_SERVE_URL", url)
    monkeypatch.setenv("TRACKER_TOKEN", served.tokens["centre"])
    notices = [event("vuln.notice", "fj.gat", f"n-{i}", notice_id=f"V-{i}") for i in range(3)]
    events = tmp_path / "events.jsonl"
    # a line the centre may not post: the request is refused whole, nothing applied
    events.write_bytes(lines([*notices, event("vuln.feedback", "fj.gat", "fb", notice_id="V-0")]))
    assert main(["post", "--file", str(events), "--json"]) == 2
    out, err = capsys.readouterr()
    summary = json.loads(out.splitlines()[-1])
    assert (summary["accepted"], summary["not_sent_lines"]) == (0, [1, 2, 3])
    assert [r["line"] for r in summary["rejected_lines"]] == [4]
    assert "tracker post: rejected: line 4: centre:* may not post vuln.feedback" in err
    # without it: accepted, then duplicates when posted again
    events.write_bytes(lines(notices))
    assert main(["post", "--file", str(events)]) == 0
    assert "accepted 3, duplicates 0, rejected 0" in capsys.readouterr().out
    assert main(["post", "--file", str(events), "--url", url]) == 0
    assert "accepted 0, duplicates 3" in capsys.readouterr().out
    # the unit reports its feedback from flags, with its token in a file
    token = tmp_path / "unit.token"
    token.write_text(served.tokens["unit_gat"] + "\n")
    flags = ["post", "--token-file", str(token), "--type", "vuln.feedback", "--unit", "fj.gat"]
    assert main([*flags, "--notice-id", "V-0", "--at", "2018-03-05T10:00:00+08:00"]) == 0
    # a feedback for a notice that is not there: rejected by the engine, exit 1
    assert main([*flags, "--notice-id", "V-404", "--at", "2018-03-05T10:00:00+08:00"]) == 1
    assert "unknown notice 'V-404'" in capsys.readouterr().err
    served.service.settle()  # the store read directly: once the journal is applied
    logged = [e.event_id for e in served.service.store.logged_events()]
    assert logged[:3] == ["n-0", "n-1", "n-2"] and len(logged) == 4
