"""Where a worker keeps the token of its read views, and how a request's token is checked
(issue 10 item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.worker_token import bearer_matches, make_token_file, read_token_file, token_file


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("chdb:///srv/t/chdb", "/srv/t/chdb.worker-6070.token"),  # beside the embedded store
        ("chdb:///srv/t/chdb/", "/srv/t/chdb.worker-6070.token"),  # a trailing slash: the same one
        ("chdb:///srv/t/chdb?database=x", "/srv/t/chdb.worker-6070.token"),  # not per database
        ("http://u:p@ch.example:8123/?database=t", "/data/worker-6070.token"),  # server store
        ("memory://", "/data/worker-6070.token"),  # nothing on disk: the data dir
        ("chdb://memory", "/data/worker-6070.token"),  # in-memory chDB, likewise
    ],
)
def test_the_token_file_sits_beside_the_store_else_in_the_data_dir(dsn: str, expected: str) -> None:
    assert token_file(dsn, Path("/data"), 6070) == Path(expected)


def test_a_made_token_is_random_private_and_replaced_at_each_start(tmp_path: Path) -> None:
    path = tmp_path / "chdb.worker-6070.token"
    first = make_token_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_token_file(path) == first and len(first) >= 32
    path.chmod(0o644)  # even a file someone loosened comes back private
    second = make_token_file(path)
    assert second != first and path.stat().st_mode & 0o777 == 0o600
    assert read_token_file(tmp_path / "none") is None


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-token", True),  # the token
        ("bearer s3cret-token", True),  # the scheme is case-insensitive (RFC 7235)
        ("Bearer  s3cret-token ", True),  # surrounding spaces are not part of the token
        (None, False),  # no header
        ("", False),  # an empty header
        ("Bearer ", False),  # no token
        ("Bearer s3cret-tokeX", False),  # wrong, same length
        ("Bearer s3cret", False),  # a prefix of it
        ("Basic s3cret-token", False),  # another scheme
        ("s3cret-token", False),  # no scheme
        ("Bearer s3cret-tökén", False),  # non-ASCII: refused, not an exception
        ("Bearer \udcff", False),  # a lone surrogate (undecodable bytes): refused
    ],
)
def test_only_the_bearer_token_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(header, "s3cret-token") is ok
