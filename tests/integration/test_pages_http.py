"""The web pages over HTTP (no browser): sign-in, CSRF, roles, scope, escaping, limits.

The real app (`create_app`) on the embedded backend into chDB; the browser test
(test_pages_browser.py) walks the happy path, these pin the refusals.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.registry import DEMO_REGISTRY
from tracker.principals import PrincipalStore
from tracker.serve.app import create_app
from tracker.serve.backends import open_embedded
from tracker.serve.embedded import EmbeddedService
from tracker.serve.limits import Limits

pytestmark = pytest.mark.integration

SHANGHAI = "+08:00"
UNIT = "fj.gat"  # a provincial department
NINGDE = "fj.nd"  # 宁德市人民政府, with counties and departments below it


@dataclass
class Site:
    client: TestClient
    service: EmbeddedService
    principals: PrincipalStore
    tokens: dict[str, str]

    def sign_in(self, who: str) -> TestClient:
        client = self.client
        client.cookies.clear()
        page = client.get("/login")
        csrf = _hidden(page.text, "csrf")
        answer = client.post("/login", data={"csrf": csrf, "token": self.tokens[who], "next": "/"})
        assert answer.status_code == 303, answer.text
        return client

    def csrf(self, path: str) -> str:
        return _hidden(self.client.get(path).text, "csrf")

    def event_ids(self) -> set[str]:
        self.service.settle()  # the store read directly: once the journal is applied
        return {e.event_id for e in self.service.store.logged_events()}


def _hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name} in {html[:2000]}"
    return match.group(1)


@pytest.fixture
def site(chdb_dsn: str, tmp_path: Path) -> Iterator[Site]:
    service = open_embedded(chdb_dsn, DEMO_REGISTRY)
    principals = PrincipalStore(tmp_path / "principals.json")
    tokens = {
        "centre": principals.add("centre", None, "省中心")[1],
        "ningde-centre": principals.add("centre", NINGDE, "宁德市中心")[1],
        "unit": principals.add("unit", UNIT, "公安厅")[1],
        "other-unit": principals.add("unit", "fj.jyt", "教育厅")[1],
        "auditor": principals.add("auditor", None, "审计")[1],
    }
    app = create_app(service, principals, Limits(rate_per_s=1000, burst=1000))
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield Site(client, service, principals, tokens)
    service.close()


def _notice_form(site: Site, **fields: str) -> dict[str, str]:
    html = site.client.get("/notices/new?type=vuln.notice").text
    at = (datetime.now(UTC) + timedelta(hours=8)).replace(tzinfo=None, microsecond=0)
    return {
        "csrf": _hidden(html, "csrf"),
        "event_id": _hidden(html, "event_id"),
        "type": "vuln.notice",
        "unit": UNIT,
        "at": at.isoformat(),
        "notice_id": "V-1",
        "system": "政务网",
        "due": "",
        **fields,
    }


def test_pages_need_a_sign_in(site: Site) -> None:
    for path in ("/", "/notices/new", "/unit"):
        answer = site.client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=")


def test_the_session_cookie_is_httponly_and_strict(site: Site) -> None:
    page = site.client.get("/login")
    answer = site.client.post(
        "/login", data={"csrf": _hidden(page.text, "csrf"), "token": site.tokens["centre"]}
    )
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "tracker_token=" in v
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


# (what is sent to /login, the status, the text shown)
LOGINS = [
    # a token nobody was given
    ({"token": "trk.0000000000000000." + "A" * 43}, 401, "令牌无效或已被吊销"),
    # not a token at all
    ({"token": "<script>alert(1)</script>"}, 401, "令牌无效或已被吊销"),
    # the login form's CSRF field missing (a cross-site form)
    ({"csrf": "", "token": "x"}, 403, "表单已过期"),
]


@pytest.mark.parametrize(("sent", "status", "shown"), LOGINS)
def test_a_bad_login_is_refused(site: Site, sent: dict[str, str], status: int, shown: str) -> None:
    csrf = _hidden(site.client.get("/login").text, "csrf")
    answer = site.client.post("/login", data={"csrf": csrf, **sent})
    assert answer.status_code == status
    assert shown in answer.text
    assert "tracker_token=" not in answer.headers.get("set-cookie", "")
    assert "<script>alert" not in answer.text


def test_a_revoked_token_signs_out(site: Site) -> None:
    client = site.sign_in("unit")
    assert client.get("/unit").status_code == 200
    principal = site.principals.authenticate(site.tokens["unit"])
    assert principal is not None
    site.principals.revoke(principal.id)
    assert client.get("/unit").status_code == 303


def test_next_stays_on_this_site(site: Site) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        html = site.client.get("/login", params={"next": target}).text
        assert _hidden(html, "next") == "/"


def test_a_post_without_the_csrf_token_changes_nothing(site: Site) -> None:
    site.sign_in("centre")
    form = _notice_form(site, csrf="0" * 64)
    answer = site.client.post("/notices/new", data=form)
    assert answer.status_code == 403
    assert "表单已过期" in answer.text
    assert form["event_id"] not in site.event_ids()


def test_a_posted_notice_is_logged_once(site: Site) -> None:
    site.sign_in("centre")
    form = _notice_form(site)
    answer = site.client.post("/notices/new", data=form)
    assert answer.status_code == 303, answer.text
    assert form["event_id"] in site.event_ids()
    # the same form sent twice (a double click) is one event
    again = site.client.post("/notices/new", data=form)
    assert again.status_code == 303
    assert "dup=1" in again.headers["location"]
    shown = site.client.get(again.headers["location"]).text
    assert "此前已受理" in shown


def test_a_unit_may_not_use_the_centre_form(site: Site) -> None:
    site.sign_in("unit")
    assert site.client.get("/notices/new").status_code == 403
    form = {"csrf": site.csrf("/unit"), "type": "vuln.notice", "unit": UNIT}
    answer = site.client.post("/notices/new", data=form)
    assert answer.status_code == 403
    assert "仅限安全中心" in answer.text


def test_the_unit_picker_is_the_centre_scope(site: Site) -> None:
    site.sign_in("ningde-centre")
    html = site.client.get("/notices/new").text
    offered = set(re.findall(r'<option value="(fj[^"]*)"', html))
    assert NINGDE in offered
    assert any(u.startswith("fj.nd.") for u in offered)
    assert UNIT not in offered
    # a hand-made post for a unit outside the scope: an error next to the picker, nothing logged
    form = _notice_form(site, unit=UNIT)
    answer = site.client.post("/notices/new", data=form)
    assert answer.status_code == 400
    assert re.search(r'id="error-unit">该单位不在您的管辖范围内', answer.text)
    assert form["event_id"] not in site.event_ids()


def test_external_values_are_escaped(site: Site) -> None:
    site.sign_in("centre")
    evil = '<img src=x onerror="alert(1)">'
    answer = site.client.post("/notices/new", data=_notice_form(site, notice_id=evil, system=evil))
    assert answer.status_code == 303, answer.text
    site.sign_in("unit")
    html = site.client.get("/unit").text
    assert evil not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    # a form sent back with errors keeps the typed text, escaped
    site.sign_in("centre")
    back = site.client.post("/notices/new", data=_notice_form(site, notice_id=evil, system="")).text
    assert evil not in back
    # and a crafted redirect cannot put words in the page
    crafted = site.client.get(
        "/notices/new", params={"posted": "系统已停用，请将令牌发至", "unit": UNIT}
    )
    assert "系统已停用" not in crafted.text


def test_pages_send_a_strict_content_policy(site: Site) -> None:
    site.sign_in("unit")
    policy = site.client.get("/unit").headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy  # no script runs at all
    assert "frame-ancestors 'none'" in policy


def test_feedback_from_the_unit_page(site: Site) -> None:
    site.sign_in("centre")
    assert site.client.post("/notices/new", data=_notice_form(site)).status_code == 303
    site.sign_in("unit")
    html = site.client.get("/unit").text
    assert 'data-ref="V-1"' in html and "修复反馈" in html
    form = {
        "csrf": _hidden(html, "csrf"),
        "unit": UNIT,
        "kind": "vuln.notice",
        "ref": "V-1",
        "event_id": _hidden(html, "event_id"),
    }
    answer = site.client.post("/unit/feedback", data=form)
    assert answer.status_code == 303, answer.text
    (state,) = site.service.reader().deadlines(unit=UNIT)
    assert state.status == "met"
    assert "已提交反馈：修复反馈 V-1" in site.client.get(answer.headers["location"]).text


# (who, the unit named in the feedback, the status, the text shown)
FEEDBACK_REFUSALS = [
    # another unit's principal
    ("other-unit", UNIT, 403, "该单位不在您的管辖范围内"),
    # the centre reads the unit page but may not report feedback
    ("centre", UNIT, 403, "修复反馈只能由本单位账号提交"),
    # an auditor neither
    ("auditor", UNIT, 403, "修复反馈只能由本单位账号提交"),
]


@pytest.mark.parametrize(("who", "unit", "status", "shown"), FEEDBACK_REFUSALS)
def test_feedback_only_from_the_unit(
    site: Site, who: str, unit: str, status: int, shown: str
) -> None:
    site.sign_in("centre")
    assert site.client.post("/notices/new", data=_notice_form(site)).status_code == 303
    site.sign_in(who)
    csrf = site.csrf("/unit")
    form = {
        "csrf": csrf,
        "unit": unit,
        "kind": "vuln.notice",
        "ref": "V-1",
        "event_id": "web-" + "a" * 24,
    }
    answer = site.client.post("/unit/feedback", data=form)
    assert answer.status_code == status, answer.text
    assert shown in answer.text
    (state,) = site.service.reader().deadlines(unit=UNIT)
    assert state.status == "open"


def test_a_unit_sees_only_its_own_page(site: Site) -> None:
    site.sign_in("unit")
    assert site.client.get("/unit", params={"unit": "fj.jyt"}).status_code == 403
    site.sign_in("auditor")
    assert site.client.get("/unit", params={"unit": "fj.jyt"}).status_code == 200


def test_page_posts_count_against_the_rate_limit(chdb_dsn: str, tmp_path: Path) -> None:
    service = open_embedded(chdb_dsn, DEMO_REGISTRY)
    principals = PrincipalStore(tmp_path / "principals.json")
    token = principals.add("unit", UNIT, "公安厅")[1]
    app = create_app(service, principals, Limits(rate_per_s=0.001, burst=1))
    try:
        with TestClient(app, follow_redirects=False) as client:
            client.cookies.set("tracker_token", token)
            html = client.get("/unit").text
            form = {"csrf": _hidden(html, "csrf"), "unit": UNIT, "kind": "vuln.notice", "ref": "X"}
            first = client.post("/unit/feedback", data=form)
            assert first.status_code == 400  # taken the one token: an unknown notice, rejected
            second = client.post("/unit/feedback", data=form)
            assert second.status_code == 429
            assert "Retry-After" in second.headers
    finally:
        service.close()


def test_the_status_json_is_unchanged_by_pages(site: Site) -> None:
    # the pages post through the same intake: the API's own read shows the form's notice
    site.sign_in("centre")
    assert site.client.post("/notices/new", data=_notice_form(site)).status_code == 303
    site.client.cookies.clear()
    answer = site.client.get(
        "/v1/deadlines", headers={"Authorization": f"Bearer {site.tokens['unit']}"}
    )
    assert answer.status_code == 200, answer.text
    assert "V-1" in json.dumps(answer.json())
