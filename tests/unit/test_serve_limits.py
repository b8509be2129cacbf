"""Limits and refusals of `POST /v1/events` (issue 10, item 5): each refusal is a clear HTTP error
(400 with per-line reasons, 401, 403, 413, 415, 429, 503) and nothing accepted before it, in the
same request or earlier, is lost or duplicated."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from sinks import MemoryStore
from tests.serve_kit import Served, event, jsonl, serve
from tracker.serve.bodies import BodyError, read_body, split_body
from tracker.serve.limits import Limits, RateLimiter

NOTICES = [event("vuln.notice", "fj.gat", f"n-{i}", notice_id=f"V-{i}") for i in range(5)]


def logged(served: Served) -> list[str]:
    served.service.settle()  # the store itself, not a read of the API: wait for the applier
    return [e.event_id for e in served.service.store.logged_events()]


@pytest.fixture
def served(tmp_path: Path) -> Served:
    return serve(MemoryStore(), tmp_path, Limits(max_body_bytes=4096, max_events=10, burst=1000))


# -- the token bucket ----------------------------------------------------------------------------


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = RateLimiter(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take("a") for _ in range(3)] == [None, None, None]
    assert bucket.take("a") == pytest.approx(0.5)  # one token comes back after 1/rate seconds
    assert bucket.take("b") is None  # per principal
    now[0] = 0.5
    assert bucket.take("a") is None
    assert bucket.take("a") == pytest.approx(0.5)
    now[0] = 100.0
    assert [bucket.take("a") for _ in range(4)][-1] is not None  # refilled to the burst, no more


def test_over_the_rate_is_429_with_retry_after_and_nothing_applied(tmp_path: Path) -> None:
    served = serve(MemoryStore(), tmp_path, Limits(rate_per_s=0.01, burst=2))
    assert served.post("centre", NOTICES[:1]).status_code == 200
    assert served.get("centre", "/v1/me").status_code == 200
    refused = served.post("centre", NOTICES[1:2])
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "rate" in refused.json()["detail"]
    assert served.get("auditor", "/v1/me").status_code == 200  # another principal's own bucket
    assert logged(served) == ["n-0"]


# -- sizes ---------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_what_came_before_is_kept(served: Served) -> None:
    assert served.post("centre", NOTICES[:2]).json()["accepted"] == 2
    big = jsonl(NOTICES[2:]) + " " * 5000
    refused = served.post("centre", big)
    assert refused.status_code == 413
    assert "4096" in refused.json()["detail"]
    assert logged(served) == ["n-0", "n-1"]


def test_a_streamed_body_without_length_is_cut_at_the_limit(served: Served) -> None:
    def chunks() -> Iterator[bytes]:
        yield jsonl(NOTICES[2:]).encode()
        for _ in range(100):
            yield b" " * 1000

    response = served.client.post(
        "/v1/events",
        content=chunks(),
        headers={**served.headers("centre"), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 413
    assert logged(served) == []


def test_more_events_than_the_limit_is_413(served: Served) -> None:
    many = [event("mlps.finding", "fj.gat", f"m-{i}", system=f"s{i}") for i in range(11)]
    refused = served.post("centre", many)
    assert refused.status_code == 413
    assert "at most 10" in refused.json()["detail"]
    assert served.post("centre", many[:10]).json()["accepted"] == 10


def test_a_body_that_does_not_arrive_in_time_is_408() -> None:
    async def slow_receive() -> dict[str, Any]:
        await asyncio.sleep(5)
        return {"type": "http.request", "body": b"", "more_body": False}

    request = Request({"type": "http", "method": "POST", "headers": []}, slow_receive)
    with pytest.raises(BodyError) as caught:
        asyncio.run(read_body(request, Limits(timeout_s=0.05)))
    assert caught.value.status == 408


def test_a_full_backlog_is_503_with_retry_after_and_nothing_taken(tmp_path: Path) -> None:
    """The journal runs ahead of the store up to `max_backlog` events; past it a request waits
    for room, and is refused (503) with nothing of it taken when none comes in time."""
    served = serve(MemoryStore(), tmp_path)
    served.service.lock_timeout_s = 0.05
    served.service.max_backlog = 1
    with served.service._lock:  # the applier cannot write the store
        assert served.post("centre", NOTICES[:1]).json()["accepted"] == 1  # journaled
        refused = served.post("centre", NOTICES[1:2])
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert logged(served) == ["n-0"]
    assert served.post("centre", NOTICES[1:2]).json()["accepted"] == 1


# -- content -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "media",
    [
        # what a browser sends cross-site without asking first (with the pages' cookie): refused
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        # none at all
        "",
    ],
)
def test_other_content_types_are_415(served: Served, media: str) -> None:
    served.client.cookies.set("tracker_token", served.tokens["centre"])
    try:
        response = served.client.post(
            "/v1/events", content=jsonl(NOTICES[:1]), headers={"Content-Type": media}
        )
    finally:
        served.client.cookies.clear()
    assert response.status_code == 415
    assert "application/x-ndjson" in response.json()["detail"]
    assert logged(served) == []


def test_a_bad_line_is_400_naming_every_bad_line_and_nothing_is_applied(served: Served) -> None:
    assert served.post("centre", NOTICES[:1]).json()["accepted"] == 1
    good = [json.dumps(e) for e in NOTICES[1:4]]
    body = (
        "\n".join(
            [
                good[0],
                "",  # 2: blank, skipped but counted
                "{not json",  # 3
                good[1],
                json.dumps(event("vuln.notice", "fj.nowhere", "x")),  # 5: unknown unit
                json.dumps({**NOTICES[4], "at": "2018-03-01T10:00:00"}),  # 6: naive timestamp
                good[2],
            ]
        ).encode()
        + b"\n\xff\xfe{}\n"
    )  # 8: not UTF-8
    refused = served.client.post(
        "/v1/events",
        content=body,
        headers={**served.headers("centre"), "Content-Type": "application/x-ndjson"},
    )
    assert refused.status_code == 400, refused.text
    out = refused.json()
    assert out["accepted"] == 0 and out["duplicates"] == 0
    reasons = {r["line"]: r["reason"] for r in out["rejected"]}
    assert sorted(reasons) == [3, 5, 6, 8]
    assert "malformed JSON" in reasons[3]
    assert "unknown unit" in reasons[5]
    assert "naive" in reasons[6]
    assert "UTF-8" in reasons[8]
    assert logged(served) == ["n-0"]
    # fixed and sent again: applied once
    fixed = served.post("centre", NOTICES)
    assert (fixed.json()["accepted"], fixed.json()["duplicates"]) == (4, 1)


def test_json_bodies_one_event_or_an_array(served: Served) -> None:
    one = served.client.post("/v1/events", json=NOTICES[0], headers=served.headers("centre"))
    assert one.json()["accepted"] == 1
    many = served.client.post("/v1/events", json=NOTICES[:3], headers=served.headers("centre"))
    assert (many.json()["accepted"], many.json()["duplicates"]) == (2, 1)
    bad = served.client.post(
        "/v1/events", json=[NOTICES[3], {"event_id": "y"}], headers=served.headers("centre")
    )
    assert bad.status_code == 400
    assert [r["line"] for r in bad.json()["rejected"]] == [2]  # the array position


@pytest.mark.parametrize(
    "body",
    [
        b'[{"event_id": "a"',  # cut short
        b'{"event_id": NaN}',  # not JSON
        b"\xff",  # not UTF-8
        b"[" * 100_000,  # nested past any parser's patience
    ],
)
def test_a_malformed_json_document_is_400(body: bytes) -> None:
    with pytest.raises(BodyError) as caught:
        split_body(body, "application/json")
    assert caught.value.status == 400 and caught.value.lines


def test_forbidden_and_invalid_lines_together_are_403_listing_both(served: Served) -> None:
    body = [
        NOTICES[0],
        event("vuln.feedback", "fj.gat", "f-1"),  # a centre does not post feedback
        {"event_id": "z"},  # invalid
    ]
    refused = served.post("centre", body)
    assert refused.status_code == 403
    assert [r["line"] for r in refused.json()["rejected"]] == [2, 3]
    assert "a centre may post" in refused.json()["detail"]
    assert logged(served) == []


def test_engine_rejections_are_dead_letters_and_in_the_answer_when_asked(served: Served) -> None:
    """By default a request is answered once journaled: the engine's rejections are dead
    letters (as with a broker). `wait=applied` answers with them, line by line."""
    served.post("centre", NOTICES[:1])
    lines = [
        event("vuln.feedback", "fj.gat", "f-1", notice_id="V-0"),
        event("vuln.feedback", "fj.gat", "f-2", notice_id="V-404"),  # no such notice
        event("supervision.handled", "fj.gat", "h-1", signal_id="S-404"),  # nor signal
    ]
    out = served.post("unit_gat", lines)
    assert out.status_code == 200
    assert (out.json()["accepted"], out.json()["rejected"]) == (3, [])
    letters = served.get("auditor", "/v1/rejects").json()  # after the applier: read-your-writes
    assert {d["origin"] for d in letters} == {"api:unit:fj.gat:2", "api:unit:fj.gat:3"}
    assert logged(served) == ["n-0", "f-1"]
    # replayed, asking for the verdict: the logged line is a duplicate; the rejected ones are
    # applied again, rejected again, and keep one dead letter each
    again = served.post("unit_gat", lines, params={"wait": "applied"})
    assert again.status_code == 200
    body = again.json()
    assert (body["accepted"], body["duplicates"]) == (0, 1)
    assert [(r["line"], r["event_id"]) for r in body["rejected"]] == [(2, "f-2"), (3, "h-1")]
    assert "unknown notice" in body["rejected"][0]["reason"]
    assert len(served.get("auditor", "/v1/rejects").json()) == 2
    assert logged(served) == ["n-0", "f-1"]


def test_a_retraction_may_name_an_event_of_the_same_request(served: Served) -> None:
    lines = [
        NOTICES[0],
        event("event.retracted", "fj.gat", "r-1", target_event_id="n-0"),
    ]
    assert served.post("centre_fz", lines).status_code == 403  # fj.gat is not Fuzhou's
    out = served.post("centre", lines)
    assert out.json()["accepted"] == 2, out.text


def test_a_centre_may_not_retract_what_another_principal_posted(served: Served) -> None:
    notice = event("vuln.notice", "fj.fz.gl", "n-gl", notice_id="V-gl")
    assert served.post("centre", [notice]).json()["accepted"] == 1
    retraction = event("event.retracted", "fj.fz.gl", "r-gl", target_event_id="n-gl")
    refused = served.post("centre_fz", [retraction])
    assert refused.status_code == 403
    assert "was posted by centre:*" in refused.json()["rejected"][0]["reason"]
    assert served.post("centre", [retraction]).json()["accepted"] == 1


def test_jsonl_lines_end_where_tracker_ingest_ends_them(served: Served) -> None:
    # U+2028, U+0085 and a form feed may stand in a JSON string; CR LF and a lone CR end lines
    odd = [
        event("mlps.finding", "fj.gat", f"odd-{i}", system=f"OA{sep}{i}")
        for i, sep in enumerate(["\u2028", "\u0085", "\x0c"])
    ]
    body = "\ufeff" + "\r\n".join(json.dumps(e, ensure_ascii=False) for e in odd[:2]) + "\r"
    body += json.dumps(odd[2], ensure_ascii=False).replace("\\f", "\\u000c") + "\n"
    out = served.post("centre", body)
    assert out.status_code == 200, out.text
    assert out.json()["accepted"] == 3
    assert logged(served) == ["odd-0", "odd-1", "odd-2"]
