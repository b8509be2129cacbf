"""Principals and their tokens (issue 10, item 2): the token is shown once and stored only as a
salted hash; a revoked token is refused at once; missing, malformed, unknown and revoked tokens
are 401."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sinks import MemoryStore
from tests.serve_kit import Served, serve
from tracker.principals import PrincipalError, PrincipalStore
from tracker.serve_cli import register


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_the_token_is_printed_once_and_only_its_salted_hash_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    runner = CliRunner()
    made = runner.invoke(
        cli(),
        ["principals", "add", "--role", "unit", "--scope", "fj.gat", "--principals", str(path)],
    )
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("trk.") and "\n" not in token
    text = path.read_text()
    secret = token.split(".", 2)[2]
    assert token not in text and secret not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = json.loads(text)["principals"][0]
    assert record["id"] == "unit:fj.gat" and len(record["salt"]) == 32 and record["hash"]
    # shown once: listing shows no token
    for args in (["principals", "list"], ["principals", "list", "--json"]):
        listed = runner.invoke(cli(), [*args, "--principals", str(path)])
        assert listed.exit_code == 0 and "unit:fj.gat" in listed.stdout
        assert secret not in listed.stdout
    assert PrincipalStore(path).authenticate(token) is not None


def test_each_token_has_its_own_salt(tmp_path: Path) -> None:
    store = PrincipalStore(tmp_path / "p.json")
    store.add("unit", "fj.gat")
    store.add("unit", "fj.gat")
    records = json.loads((tmp_path / "p.json").read_text())["principals"]
    assert [r["id"] for r in records] == ["unit:fj.gat", "unit:fj.gat#2"]
    assert records[0]["salt"] != records[1]["salt"] and records[0]["hash"] != records[1]["hash"]


def test_revoked_tokens_are_refused_at_once_and_ids_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    serving, clerk = PrincipalStore(path), PrincipalStore(path)
    principal, token = clerk.add("centre", None, "centre")
    assert serving.authenticate(token) == principal
    revoked = CliRunner().invoke(
        cli(), ["principals", "revoke", principal.id, "--principals", str(path)]
    )
    assert revoked.exit_code == 0, revoked.output
    # another process revoked it: the serving store re-reads the file
    assert serving.authenticate(token) is None
    again, _ = clerk.add("centre", None)
    assert again.id == "centre:*#2"  # the tombstone keeps the old id taken
    record = json.loads(path.read_text())["principals"][0]
    assert record["revoked_at"] and record["hash"] == ""


@pytest.mark.parametrize(
    "token",
    [
        "",  # empty
        "trk",  # no key, no secret
        "Bearer trk.0123456789abcdef.x",  # the scheme pasted into the token
        "trk.0123456789abcdef." + "A" * 43,  # well formed, unknown key
        "trk.0123456789ABCDEF." + "A" * 43,  # key not lower-case hex
        "trk.0123456789abcdef." + "A" * 44,  # secret one character too long
        "x" * 10_000,  # very long
        "trk.0123456789abcdef.\u00e9" + "A" * 42,  # not ASCII
    ],
)
def test_malformed_or_unknown_tokens_authenticate_nobody(tmp_path: Path, token: str) -> None:
    store = PrincipalStore(tmp_path / "p.json")
    store.add("auditor", None)
    assert store.authenticate(token) is None


def test_a_right_key_with_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    store = PrincipalStore(tmp_path / "p.json")
    _, token = store.add("auditor", None)
    prefix, key, secret = token.split(".")
    wrong = f"{prefix}.{key}.{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    assert store.authenticate(wrong) is None
    assert store.authenticate(token) is not None


@pytest.mark.parametrize(
    ("role", "scope", "jurisdiction", "why"),
    [
        ("admin", None, False, "unknown role"),  # not a role
        ("unit", None, False, "needs --scope"),  # a unit without its unit
        ("auditor", "fj.gat", False, "has no scope"),  # province-wide roles take no scope
        ("centre", "fj.fz", True, "--jurisdiction is for unit"),  # a centre's scope is a subtree
    ],
)
def test_principals_that_cannot_be(
    tmp_path: Path, role: str, scope: str | None, jurisdiction: bool, why: str
) -> None:
    with pytest.raises(PrincipalError, match=why):
        PrincipalStore(tmp_path / "p.json").add(role, scope, jurisdiction=jurisdiction)


def test_a_scope_that_is_no_unit_of_the_registry_is_refused(tmp_path: Path) -> None:
    from config.registry import DEMO_REGISTRY

    made = CliRunner().invoke(
        cli(),
        ["principals", "add", "--role", "centre", "--scope", "fj.nowhere", "--units",
         str(DEMO_REGISTRY), "--principals", str(tmp_path / "p.json")],
    )  # fmt: skip
    assert made.exit_code != 0
    assert "is not a unit" in str(made.exception)


def test_a_broken_principals_file_is_an_error_not_an_open_door(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"version": 1, "principals": [{"id": "x"}]}')
    with pytest.raises(PrincipalError, match="malformed"):
        PrincipalStore(path).authenticate("trk.0123456789abcdef." + "A" * 43)


def test_concurrent_adds_lose_nobody(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    tokens: list[str] = []

    def add(i: int) -> None:
        tokens.append(PrincipalStore(path).add("unit", "fj.gat", f"clerk {i}")[1])

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = PrincipalStore(path)
    assert len(store.list()) == 8
    assert len({store.authenticate(t).id for t in tokens}) == 8  # type: ignore[union-attr]


# -- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Served:
    return serve(MemoryStore(), tmp_path)


def test_no_token_is_401_saying_how_to_send_one(served: Served) -> None:
    for method, path in (("GET", "/v1/status"), ("POST", "/v1/events"), ("GET", "/v1/me")):
        response = served.client.request(method, path)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer trk.0123456789abcdef." + "A" * 43,  # unknown
        "Bearer not-a-token",  # malformed
        "Basic dXNlcjpwYXNz",  # another scheme
        "Bearer",  # no token
    ],
)
def test_bad_tokens_are_401(served: Served, header: str) -> None:
    response = served.client.get("/v1/status", headers={"Authorization": header})
    assert response.status_code == 401


def test_a_revoked_token_is_401_on_the_next_request(served: Served) -> None:
    assert served.get("auditor", "/v1/me").status_code == 200
    served.principals.revoke("auditor:*")
    response = served.get("auditor", "/v1/me")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_the_pages_cookie_carries_a_token_and_the_header_wins(served: Served) -> None:
    client = served.client
    client.cookies.set("tracker_token", served.tokens["unit_gat"])
    try:
        assert client.get("/v1/me").json()["id"] == "unit:fj.gat"
        both = client.get("/v1/me", headers=served.headers("auditor"))
        assert both.json()["id"] == "auditor:*"
    finally:
        client.cookies.clear()


def test_only_a_token_verified_before_and_still_active_is_known_without_pbkdf2(
    tmp_path: Path,
) -> None:
    """`verified` answers on the event loop, so it never hashes with PBKDF2: a token is known
    there once `authenticate` has checked it, and no longer once it is revoked (by another
    process) or when it is not the token that was checked."""
    path = tmp_path / "p.json"
    serving, clerk = PrincipalStore(path), PrincipalStore(path)
    principal, token = clerk.add("centre", None, "centre")
    key = token.split(".")[1]
    forged = f"trk.{key}.{'A' * 43}"  # the right key, another secret
    assert serving.verified(token) is None  # not checked yet
    assert serving.authenticate(token) == principal
    assert serving.verified(token) == principal
    assert serving.verified(forged) is None and serving.authenticate(forged) is None
    for malformed in ("", None, "trk.x.y", token + "x"):
        assert serving.verified(malformed) is None
    clerk.revoke(principal.id)
    assert serving.verified(token) is None
