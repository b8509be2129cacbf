"""What `tracker audit verify` and `tracker audit export` do (tracker/audit_cli.py declares
them): kept apart so that the CLI's start does not load the signature library, the bundle code
and the replay, which only these two commands use."""

from __future__ import annotations

from pathlib import Path

from config.holidays import official_calendar
from config.signing import Verifier, load_verifier, settings_verifier
from tracker import options
from tracker.audit import REBUILD, AuditData, verify
from tracker.audit_bundle import BundleError, export, load
from tracker.errors import UserError
from tracker.whatif import open_event_log


def run_verify(
    unit: str | None,
    year: int | None,
    store: str | None,
    public_key: Path | None,
    bundle: Path | None,
    holidays: Path | None,
) -> int:
    verifier = _verifier(public_key)
    if bundle is not None:
        if store is not None:
            raise UserError("give --bundle or --store, not both")
        try:
            data = load(bundle)
        except BundleError as exc:
            raise UserError(str(exc)) from None
        if (unit, year) != (None, None) and (unit, year) != (data.unit, data.year):
            raise UserError(f"the bundle is of {data.unit} {data.year}")
        return _report(data, verifier)
    sink = open_event_log(options.store_dsn(store))
    try:
        config = sink.load_config()
        if config is None:
            raise UserError("the store holds no data yet: nothing to verify")
        if sink.predates_chains():
            raise UserError(f"the store predates hash chains (issue 11): {REBUILD}")
        registry, books = config
        calendar = official_calendar(options.holidays_file(holidays))
        ledger = sink.ledger(unit, year)
        heads = sink.chain_heads()
        events = sink.logged_events()
        try:
            data = AuditData(registry, books, calendar, events, ledger, heads, unit, year)
            return _report(data, verifier)
        finally:
            close = getattr(events, "close", None)  # the stream blocks the store's client
            if close is not None:
                close()
    finally:
        sink.close()


def run_export(unit: str, year: int, out: Path, store: str | None, holidays: Path | None) -> int:
    sink = open_event_log(options.store_dsn(store))
    try:
        if sink.predates_chains():
            raise UserError(f"the store predates hash chains (issue 11): {REBUILD}")
        counts = export(sink, unit, year, out, options.holidays_file(holidays))
    except BundleError as exc:
        raise UserError(str(exc)) from None
    finally:
        sink.close()
    print(
        f"audit: wrote {out}: {counts['events']} events, {counts['ledger']} ledger entries of "
        f"{unit} {year}, {counts['heads']} signed heads"
    )
    return 0


def _verifier(public_key: Path | None) -> Verifier:
    if public_key is not None:
        return load_verifier(public_key)
    found = settings_verifier(options.current())
    if found is None:
        raise UserError(
            "no key to verify with: give --public-key FILE (the PEM public key the operator "
            "handed you), or set TRACKER_SIGNING_KEY"
        )
    return found


def _report(data: AuditData, verifier: Verifier) -> int:
    report = verify(data, verifier)
    if report.clean:
        print(report.summary(verifier.fingerprint()))
        return 0
    print(f"audit: FAILED: {len(report.findings)} finding(s)")
    for finding in report.findings:
        print(f"  {finding.line()}")
    return 1
