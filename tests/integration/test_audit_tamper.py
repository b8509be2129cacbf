"""`tracker audit verify` against a real chDB store tampered with in every way issue 11 names:
each change is detected AND located (table, chain, position or id). One small store is built per
module (the demo province, one year, ingested in several batches with the signing key); every
case copies it into a fresh database and tampers with the copy through SQL, as someone with
write access to ClickHouse (but not the key) would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from config.signing import make_key_file
from engine.chain import entry_digest, event_digest, link
from engine.clock import local
from engine.merkle import is_proof
from schemas.ledger import LoggedEvent
from sinks.clickhouse import ClickHouseStore, connect
from sinks.ddl import TABLES
from tracker import demo
from tracker.cli import main
from tracker.pipeline import Tracker

UNIT_YEAR = 2018


@dataclass(frozen=True)
class Base:
    path: Path  # the session's chDB directory
    db: str
    public_key: Path
    chain: str  # a ledger chain "UNIT/YEAR" with at least 4 entries
    entry_ids: list[str]  # its entries in seq order
    event_ids: list[str]  # the event log (partition 0) in seq order

    def dsn(self, db: str) -> str:
        return f"chdb://{self.path}?database={db}"


@pytest.fixture(scope="module")
def base(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    keys = tmp_path_factory.mktemp("audit-keys")
    signer = make_key_file(keys / "signing.key")
    public = keys / "public.pem"
    public.write_bytes(signer.verifier.pem())
    registry = load_registry(DEMO_REGISTRY)
    books = dict(load_rulebooks(None))
    events = demo.generate(registry, seed=2018, years=[UNIT_YEAR], scale=0.02)
    db = f"t_audit_{uuid.uuid4().hex[:10]}"
    store = ClickHouseStore(f"chdb://{chdb_path}?database={db}")
    try:
        store.save_config(registry, books)
        tracker = Tracker(
            store, registry, books, official_calendar(), batch_size=200, signer=signer
        )
        tracker.feed_lines(list(demo.lines(events)), "demo.jsonl")
        chains: dict[str, list[str]] = {}
        for e in store.ledger():
            chains.setdefault(f"{e.unit}/{e.year}", []).append(e.entry_id)
        chain = max(sorted(chains), key=lambda k: len(chains[k]))
        assert len(chains[chain]) >= 4
        rows = list(store.logged_events())
        logged = [e.event_id for e in rows]
        assert len(store.chain_heads()) > len(chains)  # several batches: several heads a chain
        # signed a write at a time: each event's signature field is its proof in a signed batch
        assert all(is_proof(e.signature) for e in rows[:20])
    finally:
        store.close()
    yield Base(chdb_path, db, public, chain, chains[chain], logged)
    client = connect(f"chdb://{chdb_path}?database={db}")
    client.command(f"DROP DATABASE IF EXISTS {db}")
    client.close()


@pytest.fixture
def copy(base: Base) -> Iterator[Callable[[], tuple[Any, str]]]:
    """A copy of the base store in a new database: (client, database)."""
    made: list[str] = []
    client = connect(base.dsn(base.db))

    def make() -> tuple[Any, str]:
        db = f"t_tamper_{uuid.uuid4().hex[:10]}"
        made.append(db)
        client.command(f"CREATE DATABASE {db}")
        for name in TABLES:  # the tables only: verify reads no view
            client.command(f"CREATE TABLE {db}.{name} AS {base.db}.{name}")
            final = " FINAL" if "Replacing" in TABLES[name] else ""
            client.command(f"INSERT INTO {db}.{name} SELECT * FROM {base.db}.{name}{final}")
        return client, db

    yield make
    for db in made:
        client.command(f"DROP DATABASE IF EXISTS {db}")
    client.close()


@pytest.fixture(autouse=True)
def _same_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI runs in this process, which holds the session's chDB directory itself: the guard
    against a directory held by ANOTHER process (a worker) must not take this one for it."""
    import sinks.remote

    monkeypatch.setattr(sinks.remote, "held_by_another_process", lambda dsn: False)


def verify(base: Base, db: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(
        ["audit", "verify", "--store", base.dsn(db), "--public-key", str(base.public_key), *args]
    )
    out = capsys.readouterr()
    return code, out.out + out.err


# -- tampering through SQL -----------------------------------------------------------------------


def _row(client: Any, db: str, table: str, where: str) -> dict[str, Any]:
    result = client.query(f"SELECT * FROM {db}.{table} FINAL WHERE {where}")
    [row] = result.result_rows
    return dict(zip(result.column_names, row, strict=True))


def _put(client: Any, db: str, table: str, row: dict[str, Any]) -> None:
    """A replacement row: the replacing table keeps the later of two rows with one key."""
    client.insert(f"{db}.{table}", [list(row.values())], column_names=list(row))


def _entry(client: Any, db: str, entry_id: str) -> dict[str, Any]:
    return _row(client, db, "ledger", f"entry_id = '{entry_id}'")


def _event(client: Any, db: str, event_id: str) -> dict[str, Any]:
    return _row(client, db, "events", f"event_id = '{event_id}'")


def _reader(client: Any, db: str, b: Base) -> ClickHouseStore:
    return ClickHouseStore(b.dsn(db), client=client, create=False)


def _rehash_ledger(client: Any, db: str, b: Base) -> None:
    """Recompute every digest and chain value of a ledger chain, as a forger without the key
    would after an edit (the stored rows as they read back)."""
    unit, year = b.chain.split("/")
    store = _reader(client, db, b)
    previous = ""
    for e in store.ledger(unit, int(year)):
        values = dict(e.__dict__)
        values["digest"] = entry_digest(values)
        values["chain"] = previous = link(previous, values["digest"])
        row = _entry(client, db, e.entry_id)
        row.update(digest=values["digest"], chain=values["chain"])
        _put(client, db, "ledger", row)


def _rehash_events(client: Any, db: str, b: Base) -> None:
    """The same for the whole event log, in one read and one insert."""
    store = _reader(client, db, b)
    rows = {}
    previous = ""
    for e in list(store.logged_events()):
        values = dict(e.__dict__)
        values["digest"] = event_digest(values)
        values["chain"] = previous = link(previous, values["digest"])
        rows[e.event_id] = values
    result = client.query(f"SELECT * FROM {db}.events FINAL")
    columns = result.column_names
    out = []
    for row in result.result_rows:
        values = dict(zip(columns, row, strict=True))
        values.update(
            digest=rows[values["event_id"]]["digest"], chain=rows[values["event_id"]]["chain"]
        )
        out.append([values[c] for c in columns])
    client.insert(f"{db}.events", out, column_names=list(columns))


def edit_amount(c: Any, db: str, b: Base) -> None:
    row = _entry(c, db, b.entry_ids[1])
    row["applied"] = row["applied"] + 1
    _put(c, db, "ledger", row)


def delete_entry(c: Any, db: str, b: Base) -> None:
    c.command(
        f"ALTER TABLE {db}.ledger DELETE WHERE entry_id = '{b.entry_ids[1]}' "
        "SETTINGS mutations_sync = 2"
    )


def insert_entry(c: Any, db: str, b: Base) -> None:
    """A forged entry appended at the end of the chain with correct hashes."""
    last = _entry(c, db, b.entry_ids[-1])
    forged = dict(last, entry_id="forged", seq=last["seq"] + 1, reason="forged")
    _put(c, db, "ledger", forged)
    _rehash_ledger(c, db, b)


def swap_entries(c: Any, db: str, b: Base) -> None:
    second, third = _entry(c, db, b.entry_ids[1]), _entry(c, db, b.entry_ids[2])
    second["seq"], third["seq"] = third["seq"], second["seq"]
    _put(c, db, "ledger", second)
    _put(c, db, "ledger", third)


def edit_raw_event(c: Any, db: str, b: Base) -> None:
    row = _event(c, db, b.event_ids[4])
    body = json.loads(row["raw"])
    body["at"] = body["at"].replace("2018", "2017", 1)
    row["raw"] = json.dumps(body, ensure_ascii=False)
    _put(c, db, "events", row)


def edit_raw_event_rehashed(c: Any, db: str, b: Base) -> None:
    """An event's body edited and the whole event chain recomputed: only its proof in the signed
    batch tells (from the edited event it leads to a root that was never signed)."""
    edit_raw_event(c, db, b)
    _rehash_events(c, db, b)


def edit_posted_by_rehashed(c: Any, db: str, b: Base) -> None:
    """posted_by changed and the whole event chain recomputed: only the signature tells."""
    row = _event(c, db, b.event_ids[6])
    row["posted_by"] = "unit:someone-else"
    _put(c, db, "events", row)
    _rehash_events(c, db, b)


def rewrite_ledger_rehashed(c: Any, db: str, b: Base) -> None:
    """An amount edited and the chain recomputed: the signed heads and the replay tell."""
    edit_amount(c, db, b)
    _rehash_ledger(c, db, b)


def forge_head(c: Any, db: str, b: Base) -> None:
    """A head rewritten to match a rehashed chain, signed with another key."""
    rewrite_ledger_rehashed(c, db, b)
    result = c.query(
        f"SELECT * FROM {db}.chain_heads FINAL WHERE chain = 'ledger' AND key = '{b.chain}' "
        "ORDER BY through_seq LIMIT 1"
    )
    row = dict(zip(result.column_names, result.result_rows[0], strict=True))
    row["signature"] = "A" * 86 + "=="
    _put(c, db, "chain_heads", row)


def delete_event(c: Any, db: str, b: Base) -> None:
    c.command(
        f"ALTER TABLE {db}.events DELETE WHERE event_id = '{b.event_ids[9]}' "
        "SETTINGS mutations_sync = 2"
    )


Tamper = Callable[[Any, str, Base], None]


def _ledger_at(position: int) -> Callable[[Base], str]:
    return lambda b: f"ledger {b.chain} position {position} "


def _event_at(position: int) -> Callable[[Base], str]:
    return lambda b: (
        f"events partition 0 position {position} (seq {position}, event {b.event_ids[position - 1]})"
    )


CASES: list[tuple[str, Tamper, Callable[[Base], str], str]] = [
    # an applied amount edited in place: the entry's digest no longer matches it
    ("edit an amount", edit_amount, _ledger_at(2), "does not match its digest: modified"),
    # the second entry deleted: seq 2 is missing where the third now stands
    ("delete an entry", delete_entry, _ledger_at(2), "the entry at seq 2 is missing: deleted"),
    # a forged entry appended with correct hashes: no signed head covers it, the events do not
    # produce it
    ("insert an entry", insert_entry, lambda b: f"ledger {b.chain} position {len(b.entry_ids) + 1} ", "inserted"),
    # two entries swap places (their seq): the first swapped position names where it was written
    ("swap two entries", swap_entries, _ledger_at(2), "it was written at seq 3: entries reordered"),
    # an event's body edited: its digest, and its intake signature, no longer match
    ("edit a raw event", edit_raw_event, _event_at(5), "does not match its digest: modified"),
    # an event's body edited and the chain recomputed: its batch proof no longer reaches a
    # signed root, and names it
    ("edit a raw event, rehashed", edit_raw_event_rehashed, _event_at(5), "intake signature does not match"),
    # posted_by changed and the chain recomputed: only the intake signature tells
    ("edit posted_by, rehashed", edit_posted_by_rehashed, _event_at(7), "intake signature does not match"),
    # the ledger rewritten with recomputed hashes: the replay locates the edited entry
    ("rewrite the ledger, rehashed", rewrite_ledger_rehashed, _ledger_at(2), "differs from what the events produce: applied"),
    # the same, with a head re-made to match and signed with another key
    ("forge a signed head", forge_head, lambda b: f"chain_heads ledger {b.chain} through seq", "signature does not match"),
    # an event deleted: the next one does not follow the one before it
    ("delete an event", delete_event, lambda b: f"events partition 0 position 10 (seq 11, event {b.event_ids[10]})", "does not follow the event before it (seq 9)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tamper", "where", "what"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_kind_of_tampering_is_detected_and_located(
    base: Base,
    copy: Callable[[], tuple[Any, str]],
    capsys: pytest.CaptureFixture[str],
    tamper: Tamper,
    where: Callable[[Base], str],
    what: str,
) -> None:
    client, db = copy()
    tamper(client, db, base)
    code, out = verify(base, db, capsys)
    assert code == 1, out
    assert "audit: FAILED" in out
    lines = [line.strip() for line in out.splitlines()]
    located = [line for line in lines if line.startswith(where(base))]
    assert located, f"nothing located at {where(base)!r}:\n{out}"
    assert what in located[0], out


def test_a_clean_store_verifies_in_one_line(
    base: Base, copy: Callable[[], tuple[Any, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, db = copy()
    code, out = verify(base, db, capsys)
    assert code == 0, out
    [line] = out.splitlines()
    assert line.startswith("audit: clean: ") and f"{len(base.event_ids)} events" in line
    unit, year = base.chain.split("/")
    code, out = verify(base, db, capsys, "--unit", unit, "--year", year)
    assert (code, f"{len(base.entry_ids)} ledger entries in 1 chain(s)" in out) == (0, True), out


def test_another_key_fails_every_signature(
    base: Base,
    copy: Callable[[], tuple[Any, str]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _, db = copy()
    other = tmp_path / "other.pem"
    other.write_bytes(make_key_file(tmp_path / "other.key").verifier.pem())
    code = main(["audit", "verify", "--store", base.dsn(db), "--public-key", str(other)])
    out = capsys.readouterr().out
    assert code == 1 and "signature does not match" in out, out


def test_a_store_from_before_chains_is_named_with_its_remedy(
    base: Base, copy: Callable[[], tuple[Any, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    client, db = copy()
    client.command(
        f"ALTER TABLE {db}.events DROP COLUMN signature, DROP COLUMN digest, DROP COLUMN chain"
    )
    client.command(f"ALTER TABLE {db}.ledger DROP COLUMN digest, DROP COLUMN chain")
    client.command(f"DROP TABLE {db}.chain_heads")
    code, out = verify(base, db, capsys)
    assert code == 2, out
    assert (
        "predates hash chains" in out
        and "`tracker ingest` its events" in out
        and "into a new store" in out
    )
    assert "Traceback" not in out


# -- the bundle ----------------------------------------------------------------------------------


def _verify_bundle_elsewhere(
    bundle: Path, public_key: Path, home: Path
) -> subprocess.CompletedProcess[str]:
    """`tracker audit verify --bundle` in a fresh process with no store, key or data configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["TRACKER_DATA"] = str(home / "empty-data")
    return subprocess.run(
        [sys.executable, "-m", "tracker", "audit", "verify", "--bundle", str(bundle), "--public-key", str(public_key)],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def test_a_bundle_verifies_elsewhere_and_a_changed_byte_is_rejected(
    base: Base, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    unit, year = base.chain.split("/")
    bundle = tmp_path / "bundle.zip"
    code = main(["audit", "export", "--store", base.dsn(base.db), "--unit", unit, "--year", year, "--out", str(bundle)])  # fmt: skip
    assert code == 0, capsys.readouterr()
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        assert {
            "manifest.json",
            "events.jsonl",
            "ledger.jsonl",
            "heads.jsonl",
            "registry.json",
        } <= names
        assert not any(n.endswith((".pkl", ".pickle")) for n in names)
    done = _verify_bundle_elsewhere(bundle, base.public_key, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("audit: clean: "), done.stdout
    assert not (tmp_path / "empty-data").exists()  # nothing made: no store, no key

    data = bytearray(bundle.read_bytes())
    data[len(data) // 3] ^= 0x01  # one byte, inside the compressed event log
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(data))
    code = main(["audit", "verify", "--bundle", str(broken), "--public-key", str(base.public_key)])
    out = capsys.readouterr()
    assert code != 0, out
    assert "Traceback" not in out.err


def resummed(members: dict[str, bytes], name: str, content: bytes, tmp_path: Path) -> Path:
    """The bundle with member `name` replaced and the manifest's checksum of it recomputed, as
    whoever edits a bundle would: only the chains and the signatures can tell."""
    import hashlib

    members = dict(members, **{name: content})
    manifest = json.loads(members["manifest.json"])
    manifest["sha256"][name] = hashlib.sha256(content).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(edited, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return edited


def test_a_bundle_edited_and_resummed_is_caught_by_its_chains(
    base: Base, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An amount changed in the bundle's ledger and the manifest's checksum recomputed."""
    unit, year = base.chain.split("/")
    bundle = tmp_path / "bundle.zip"
    assert main(["audit", "export", "--store", base.dsn(base.db), "--unit", unit, "--year", year, "--out", str(bundle)]) == 0  # fmt: skip
    with zipfile.ZipFile(bundle) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    lines = members["ledger.jsonl"].decode().splitlines()
    second = json.loads(lines[1])
    second["applied"] = str(float(second["applied"]) + 1)
    lines[1] = json.dumps(second)
    edited = resummed(members, "ledger.jsonl", ("\n".join(lines) + "\n").encode(), tmp_path)
    capsys.readouterr()
    code = main(["audit", "verify", "--bundle", str(edited), "--public-key", str(base.public_key)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert (
        f"ledger {base.chain} position 2 (seq 2, entry {base.entry_ids[1]}): its content does not match"
        in out
    )


def test_a_bundle_with_an_event_edited_and_rehashed_names_the_event(
    base: Base, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The bundle carries each event's batch proof: an event's poster changed in the bundle, the
    event log's hashes and the manifest's checksum recomputed - verify names that event."""
    unit, year = base.chain.split("/")
    bundle = tmp_path / "bundle.zip"
    assert main(["audit", "export", "--store", base.dsn(base.db), "--unit", unit, "--year", year, "--out", str(bundle)]) == 0  # fmt: skip
    with zipfile.ZipFile(bundle) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    rows = [json.loads(line) for line in members["events.jsonl"].decode().splitlines()]
    assert all(is_proof(r["signature"]) for r in rows[:20])
    rows[6]["posted_by"] = "unit:someone-else"
    previous = ""
    for row in rows:  # as the store gives the rows back (tracker/audit_bundle.py)
        read = LoggedEvent.model_validate(row)
        values = dict(read.__dict__, at=local(read.at), received_at=local(read.received_at))
        row["digest"] = event_digest(values)
        row["chain"] = previous = link(previous, row["digest"])
    text = "".join(json.dumps(r) + "\n" for r in rows).encode()
    edited = resummed(members, "events.jsonl", text, tmp_path)
    capsys.readouterr()
    code = main(["audit", "verify", "--bundle", str(edited), "--public-key", str(base.public_key)])
    out = capsys.readouterr().out
    assert code == 1, out
    events = [line.strip() for line in out.splitlines() if line.strip().startswith("events")]
    assert events == [
        f"events partition 0 position 7 (seq 7, event {base.event_ids[6]}): its intake signature "
        "does not match its body, posted_by and received_at: modified after intake (its batch "
        "proof leads to a root that was never signed)"
    ], out


def test_without_a_trusted_public_key_verify_refuses(
    base: Base, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No --public-key and no key in the settings: a clear refusal, not a key from the store."""
    monkeypatch.setenv("TRACKER_SIGNING_KEY", str(tmp_path / "missing.key"))
    code = main(["audit", "verify", "--store", base.dsn(base.db)])
    err = capsys.readouterr().err
    assert code == 2 and "--public-key" in err, err
