"""`tracker audit export`: a self-contained audit bundle of one unit and year (issue 11, item 4).

A zip of plain JSON (no pickle, nothing executable), enough to run every check of
`tracker audit verify` on a machine with no access to the store:

    manifest.json      format, version, unit, year, counts, the SHA-256 of every other member
    events.jsonl       the whole event log (a replay needs every event: jurisdiction roll-ups,
                       the event clock), with envelopes, intake signatures and hash chains
    ledger.jsonl       the unit's ledger entries of that year, with their hash chains
    heads.jsonl        the signed heads of the event log and of that ledger chain
    registry.json      the registry the store recorded
    rulebooks/ID.json  the rulebooks it names
    holidays.yaml      the holiday override the exporter ran with, when there was one

The public key is NOT in the bundle: the auditor verifies with a key from a trusted source
(`--public-key`). A bundle read back is input like any other: a member that is missing, not
JSON or not of its schema is a clear error, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from config.holidays import official_calendar
from engine.clock import local
from schemas.ledger import ChainHead, LedgerEntry, LoggedEvent
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import Store
from tracker.audit import AuditData

M = TypeVar("M", bound=BaseModel)
FORMAT = "tracker-audit-bundle"
VERSION = 1
MAX_MEMBER_BYTES = 4 << 30  # a member larger than this is refused before it is read


class BundleError(ValueError):
    """The bundle cannot be read or is not a bundle; the message says which member and why."""


def export(store: Store, unit: str, year: int, out: Path, holidays: Path | None) -> dict[str, int]:
    """Write the bundle of `unit` and `year`; returns the counts written."""
    config = store.load_config()
    if config is None:
        raise BundleError("the store holds no data yet: nothing to export")
    registry, books = config
    if registry.unit(unit) is None:
        raise BundleError(f"unknown unit {unit!r} (not in the store's registry)")
    ledger = store.ledger(unit, year)
    key = f"{unit}/{year}"
    heads = [h for h in store.chain_heads() if h.chain == "events" or h.key == key]
    used = {a.rulebook for a in registry.assessments}
    members: dict[str, bytes] = {
        "ledger.jsonl": _jsonl(ledger),
        "heads.jsonl": _jsonl(heads),
        "registry.json": registry.model_dump_json().encode(),
    }
    for book_id in sorted(used & set(books)):
        members[f"rulebooks/{book_id}.json"] = books[book_id].model_dump_json().encode()
    if holidays is not None:
        members["holidays.yaml"] = holidays.read_bytes()
    counts = {"ledger": len(ledger), "heads": len(heads)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        # the event log streamed into its member: it may be large
        digest = hashlib.sha256()
        counts["events"] = 0
        events = store.logged_events()
        try:
            info = zipfile.ZipInfo("events.jsonl", datetime.now().timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as member:
                for e in events:
                    line = e.model_dump_json().encode() + b"\n"
                    digest.update(line)
                    member.write(line)
                    counts["events"] += 1
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
        sums = {"events.jsonl": digest.hexdigest()}
        for name, data in members.items():
            zf.writestr(name, data)
            sums[name] = hashlib.sha256(data).hexdigest()
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "unit": unit,
            "year": year,
            "exported_at": datetime.now(UTC).isoformat(),
            "counts": counts,
            "sha256": dict(sorted(sums.items())),
        }
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    tmp.replace(out)
    return counts


def load(path: Path) -> AuditData:
    """The bundle's content as the verifier reads a store's."""
    try:
        with zipfile.ZipFile(path) as zf:
            return _load(zf)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise BundleError(f"{path} is not a readable audit bundle: {exc}") from None
    except (ValueError, KeyError) as exc:  # zlib/CRC errors of a damaged member surface here
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{path} is damaged: {exc}") from None


def _load(zf: zipfile.ZipFile) -> AuditData:
    manifest = _json(_read(zf, "manifest.json"), "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError("manifest.json does not describe a tracker audit bundle")
    if manifest.get("version") != VERSION:
        raise BundleError(f"bundle version {manifest.get('version')!r} is not {VERSION}")
    sums = manifest.get("sha256")
    if not isinstance(sums, dict):
        raise BundleError("manifest.json lists no member checksums")
    data: dict[str, bytes] = {}
    for name in zf.namelist():
        if name == "manifest.json":
            continue
        content = _read(zf, name)
        if sums.get(name) != hashlib.sha256(content).hexdigest():
            raise BundleError(f"{name} does not match its checksum in manifest.json: altered")
        data[name] = content
    for name in sums:
        if name not in data:
            raise BundleError(f"{name}, listed in manifest.json, is missing: removed")
    unit, year = manifest.get("unit"), manifest.get("year")
    if not isinstance(unit, str) or not isinstance(year, int):
        raise BundleError("manifest.json names no unit and year")
    registry = _model(Registry, data.get("registry.json"), "registry.json")
    books = {}
    for name, content in data.items():
        if name.startswith("rulebooks/"):
            book = _model(Rulebook, content, name)
            books[book.id] = book
    holidays = data.get("holidays.yaml")
    return AuditData(
        registry=registry,
        rulebooks=books,
        calendar=_calendar(holidays),
        events=[_event(v) for v in _rows(data, "events.jsonl", LoggedEvent)],
        ledger=[_entry(v) for v in _rows(data, "ledger.jsonl", LedgerEntry)],
        heads=list(_rows(data, "heads.jsonl", ChainHead)),
        unit=unit,
        year=year,
    )


def _read(zf: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise BundleError(f"the bundle has no {name}") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise BundleError(f"{name} is larger than {MAX_MEMBER_BYTES} bytes")
    return zf.read(name)


def _json(content: bytes, name: str) -> Any:
    try:
        return json.loads(content)
    except ValueError as exc:
        raise BundleError(f"{name} is not JSON: {exc}") from None


def _model(model: type[M], content: bytes | None, name: str) -> M:
    if content is None:
        raise BundleError(f"the bundle has no {name}")
    try:
        return model.model_validate_json(content)
    except ValidationError as exc:
        raise BundleError(f"{name}: {_first(exc)}") from None


def _rows(data: dict[str, bytes], name: str, model: type[M]) -> Iterable[M]:
    content = data.get(name)
    if content is None:
        raise BundleError(f"the bundle has no {name}")
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(model.model_validate_json(line))
        except ValidationError as exc:
            raise BundleError(f"{name} line {number}: {_first(exc)}") from None
    return rows


def _first(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _event(e: LoggedEvent) -> LoggedEvent:
    # instants as the store gives them back (+08:00), which the canonical form assumes anyway
    return e.model_copy(update={"at": local(e.at), "received_at": local(e.received_at)})


def _entry(e: LedgerEntry) -> LedgerEntry:
    return e.model_copy(update={"effective_at": local(e.effective_at)})


def _calendar(holidays: bytes | None) -> Any:
    if holidays is None:
        return official_calendar(None)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "holidays.yaml"
        path.write_bytes(holidays)
        return official_calendar(path)


def _jsonl(rows: Iterable[BaseModel]) -> bytes:
    return b"".join(r.model_dump_json().encode() + b"\n" for r in rows)
