"""Operator subcommands: `tracker dashboards push` and `tracker access`.

`register(sub)` adds them to the main parser; each sets `handler`, which takes the parsed
arguments, returns the exit code and raises `UserError` for anything the operator can fix.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

from config.registry import ConfigFileError, load_registry
from config.settings import settings
from tracker import access
from tracker.commands import UserError
from tracker.grafana import GrafanaPushError, push

TOKEN_ENV = "GRAFANA_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dash = sub.add_parser("dashboards", help="the Grafana dashboards")
    actions = dash.add_subparsers(dest="dashboards_action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "push",
        help="upsert the ClickHouse data source and the three dashboards into a Grafana, by uid",
    )
    p.add_argument("--url", required=True, help="Grafana, e.g. http://127.0.0.1:3000")
    p.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"service-account token, or USER:PASSWORD (default: ${TOKEN_ENV})",
    )
    p.add_argument(
        "--datasource-url",
        default=None,
        metavar="DSN",
        help="the store as Grafana reaches it: http(s)://USER:PASS@HOST:8123/?database=NAME "
        "(default: $TRACKER_STORE when it is such a URL)",
    )
    p.add_argument("--folder", default=None, help="Grafana folder title (default: General)")
    p.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="dashboard JSON directory (default: ./dashboards, else the source tree's)",
    )
    p.set_defaults(handler=cmd_dashboards_push)

    p = sub.add_parser(
        "access", help="per-unit ClickHouse users, row policies and Grafana payloads"
    )
    p.add_argument("--units", required=True, type=Path, metavar="UNITS.yaml")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.add_argument(
        "--password-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="YAML map unit id -> password to reuse; units not in it get a random one",
    )
    p.add_argument("--database", default="tracker")
    p.add_argument(
        "--writer",
        action="append",
        default=None,
        metavar="USER",
        help="ClickHouse user the tracker writes with; keeps reading every row (default: tracker)",
    )
    p.add_argument(
        "--datasource-url",
        default="http://clickhouse:8123/?database=tracker",
        metavar="URL",
        help="ClickHouse as Grafana reaches it, for the per-unit data sources",
    )
    p.set_defaults(handler=cmd_access)


def cmd_dashboards_push(args: argparse.Namespace) -> int:
    if not args.token:
        raise UserError(f"give --token (or set ${TOKEN_ENV})")
    store = settings().store
    dsn = args.datasource_url or (store.get_secret_value() if store else "")
    if not dsn.startswith(("http://", "https://")):
        raise UserError(
            "give --datasource-url http(s)://USER:PASS@HOST:8123/?database=NAME: "
            "the store as Grafana reaches it"
        )
    try:
        result = push(
            args.url,
            args.token,
            store_dsn_for_grafana=dsn,
            folder=args.folder,
            dashboards_dir=args.dir,
        )
    except GrafanaPushError as exc:
        raise UserError(str(exc)) from None
    where = f"folder {result.folder_uid}" if result.folder_uid else "the General folder"
    print(f"data source tracker-clickhouse {result.datasource}")
    print(f"dashboards {', '.join(result.dashboards)} saved in {where}")
    return 0


def cmd_access(args: argparse.Namespace) -> int:
    try:
        registry = load_registry(args.units)
        known = _passwords(args.password_file) if args.password_file else {}
        result = access.plan(
            registry,
            database=args.database,
            writers=args.writer or ["tracker"],
            passwords=known,
            store_dsn_for_grafana=args.datasource_url,
        )
    except (ConfigFileError, access.AccessError) as exc:
        raise UserError(str(exc)) from None
    out: Path = args.out
    try:
        (out / "grafana").mkdir(parents=True, exist_ok=True)
        _secret(out / "access.sql", "".join(s + ";\n" for s in result.sql))
        _secret(
            out / "passwords.yaml",
            "# ClickHouse password of each unit's user; keep it out of version control\n"
            + yaml.safe_dump(result.passwords, allow_unicode=True, sort_keys=True),
        )
        for payload in result.grafana:
            name = access.user_name(payload["unit"]) + ".json"
            _secret(out / "grafana" / name, json.dumps(payload, ensure_ascii=False, indent=2))
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror}") from None
    units = len(registry.units)
    print(f"{out / 'access.sql'}: {len(result.sql)} statements for {units} units")
    print(f"{out / 'passwords.yaml'}: {units} passwords ({len(known)} reused)")
    print(f"{out / 'grafana'}: {units} team/folder/data source/dashboard payloads")
    return 0


def _passwords(path: Path) -> dict[str, str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in data.items()
    ):
        raise UserError(f"{path}: expected a map of unit id -> non-empty password")
    return data


def _secret(path: Path, text: str) -> None:
    """Write a file only its owner can read: it holds passwords."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)
