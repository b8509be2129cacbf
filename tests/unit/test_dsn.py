"""Store DSNs: passwords never shown (issue 7 item 13), one canonical spelling per store."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.base import StoreError
from sinks.clickhouse import ClickHouseStore, connect
from sinks.dsn import canonical, chdb_location, mask
from tracker.cli import main

SECRET = "s3cret-pw"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # a server DSN: the password goes, the user stays
        ("http://tracker:s3cret@ch:8123/?database=t", "http://tracker:***@ch:8123/?database=t"),
        # inside a longer message, twice
        ("a http://u:p1@h/ b https://v:p2@k:1/", "a http://u:***@h/ b https://v:***@k:1/"),
        # an @ in the password (not percent-encoded) still belongs to it
        ("http://u:p@ss@h:1/?x", "http://u:***@h:1/?x"),
        # percent-encoded
        ("http://u:p%40ss@h/", "http://u:***@h/"),
        # password as a query parameter
        ("http://h/?user=u&password=pw&database=d", "http://h/?user=u&password=***&database=d"),
        # no password: unchanged
        ("http://u@h:8123/?database=d", "http://u@h:8123/?database=d"),
        ("chdb:///var/lib/x?database=d", "chdb:///var/lib/x?database=d"),
        # an empty password is not a secret
        ("http://u:@h/", "http://u:***@h/"),
    ],
)
def test_mask(text: str, shown: str) -> None:
    assert mask(text) == shown


def test_mask_with_the_dsn_scrubs_an_echoed_password() -> None:
    dsn = f"http://u:{SECRET}@h:8123/"
    assert mask(f"login failed for {SECRET!r}", dsn) == "login failed for '***'"
    assert mask("p", "http://u:p@h/") == "p"  # too short to hunt for without a URL around it


@pytest.mark.parametrize(
    ("dsn", "want"),
    [
        ("http://U:pw@CH.example:8123/?database=x", "http://U@ch.example:8123/?database=x"),
        ("http://ch/", "http://ch:8123/?database=tracker"),  # default port and database
        ("https://ch/?database=x&compress=1", "https://ch:8443/?database=x"),  # settings left out
        ("ftp://u:pw@h/", "ftp://u:***@h/"),  # not a store DSN: only masked
    ],
)
def test_canonical_server(dsn: str, want: str) -> None:
    assert canonical(dsn) == want


def test_canonical_chdb(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    real = tmp_path.resolve() / "real"
    assert canonical(f"chdb://{tmp_path}/link/../real") == f"chdb://{real}?database=tracker"
    assert canonical(f"chdb://{tmp_path}/link?database=d") == f"chdb://{real}?database=d"
    assert chdb_location("chdb://memory") is None and chdb_location("http://h/") is None


def test_connect_errors_do_not_show_the_password() -> None:
    with pytest.raises(StoreError) as closed:
        connect(f"http://tracker:{SECRET}@127.0.0.1:1/?database=tracker")
    with pytest.raises(StoreError) as scheme:
        connect(f"ftp://tracker:{SECRET}@127.0.0.1:1/")
    for exc in (closed, scheme):
        assert SECRET not in str(exc.value) and "tracker:***@127.0.0.1:1" in str(exc.value)


def test_sink_repr_masks(chdb_dsn: str) -> None:
    sink = ClickHouseStore(chdb_dsn)
    try:
        assert repr(sink) == f"ClickHouseStore({canonical(chdb_dsn)!r})"
    finally:
        sink.close()


def test_cli_errors_do_not_show_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--store", f"http://tracker:{SECRET}@127.0.0.1:1/"]) == 2
    captured = capsys.readouterr()
    assert SECRET not in captured.err + captured.out
    assert captured.err.startswith("tracker: error: cannot open store http://tracker:***@")
    # the driver's own warning line ("Unexpected Http Driver Exception") is not repeated
    assert len(captured.err.strip().splitlines()) == 1


def test_same_store(tmp_path: Path) -> None:
    from sinks.remote import same_store

    store = tmp_path / "s"
    store.mkdir()
    dsn = f"chdb://{store}"
    here = canonical(dsn)
    id_a, id_b = "a" * 32, "b" * 32
    # no id next to the store: by canonical DSN
    assert same_store(dsn, {"store_id": id_a, "dsn": here})
    assert not same_store(dsn, {"store_id": id_a, "dsn": here.replace("/s?", "/t?")})
    assert same_store(f"chdb://{tmp_path}/x/../s", {"store_id": None, "dsn": here})
    (store / "tracker-tracker.store-id").write_text(id_a + "\n")
    # ids on both sides decide, whatever path the worker sees (a container, a bind mount)
    assert same_store(dsn, {"store_id": id_a, "dsn": "chdb:///data/chdb?database=tracker"})
    assert not same_store(dsn, {"store_id": id_b, "dsn": here})  # recreated under the same path
    assert same_store(dsn, {"store_id": None, "dsn": here})  # a worker that gives no id
