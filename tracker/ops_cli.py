"""Operator commands: `tracker dashboards push` and `tracker access`.

Each returns the exit code and raises `UserError` for anything the operator can fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import SecretStr

from config.registry import ConfigFileError, load_registry
from tracker import access, options
from tracker.errors import UserError
from tracker.grafana import GrafanaPushError, push

TOKEN_ENV = "GRAFANA_TOKEN"

dashboards_app = typer.Typer(
    help="The Grafana dashboards.", no_args_is_help=True, add_completion=False
)


def _token(value: str | None) -> SecretStr | None:
    # a token given on the command line is as secret as one from the environment
    return None if value is None else SecretStr(value)


Token = Annotated[
    SecretStr | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        parser=_token,
        help="Grafana service-account token, or USER:PASSWORD (never printed).",
        show_default="$TRACKER_GRAFANA_TOKEN, else $GRAFANA_TOKEN",
    ),
]


def _http_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{value!r} is not an http(s):// address")
    return value


@dashboards_app.command("push")
def cmd_dashboards_push(
    url: Annotated[
        str,
        typer.Option(
            "--url", metavar="URL", help="Grafana, e.g. http://127.0.0.1:3000.", callback=_http_url
        ),
    ],
    token: Token = None,
    datasource_url: Annotated[
        str | None,
        typer.Option(
            "--datasource-url",
            metavar="DSN",
            help="The store as Grafana reaches it: http(s)://USER:PASS@HOST:8123/?database=NAME.",
            show_default="$TRACKER_STORE when it is such a URL",
        ),
    ] = None,
    folder: Annotated[
        str | None,
        typer.Option(
            "--folder", metavar="TITLE", help="Grafana folder title.", show_default="General"
        ),
    ] = None,
    dashboards_dir: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Dashboard JSON folder.",
            show_default="./dashboards, else the source tree's",
        ),
    ] = None,
) -> int:
    """Upsert the ClickHouse data source and the three dashboards into a Grafana, by uid."""
    now = options.current()
    secret = token or now.grafana_token
    if secret is None or not secret.get_secret_value():
        raise UserError(f"give --token (or set TRACKER_GRAFANA_TOKEN or {TOKEN_ENV})")
    dsn = datasource_url or (now.store.get_secret_value() if now.store else "")
    if not dsn.startswith(("http://", "https://")):
        raise UserError(
            "give --datasource-url http(s)://USER:PASS@HOST:8123/?database=NAME: "
            "the store as Grafana reaches it"
        )
    try:
        result = push(
            url,
            secret.get_secret_value(),
            store_dsn_for_grafana=dsn,
            folder=folder,
            dashboards_dir=dashboards_dir,
        )
    except GrafanaPushError as exc:
        raise UserError(str(exc)) from None
    where = f"folder {result.folder_uid}" if result.folder_uid else "the General folder"
    print(f"data source tracker-clickhouse {result.datasource}")
    print(f"dashboards {', '.join(result.dashboards)} saved in {where}")
    return 0


def cmd_access(
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Where to write the SQL and payloads.")
    ],
    units: options.Units = None,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            metavar="FILE",
            help="YAML map unit id -> password to reuse; units not in it get a random one.",
            show_default="every unit gets a random one",
        ),
    ] = None,
    database: Annotated[
        str, typer.Option("--database", metavar="NAME", help="The store's ClickHouse database.")
    ] = "tracker",
    writer: Annotated[
        list[str] | None,
        typer.Option(
            "--writer",
            metavar="USER",
            help="ClickHouse user the tracker writes with; keeps reading every row (repeatable).",
            show_default="tracker",
        ),
    ] = None,
    datasource_url: Annotated[
        str,
        typer.Option(
            "--datasource-url",
            metavar="URL",
            help="ClickHouse as Grafana reaches it, for the per-unit data sources.",
        ),
    ] = "http://clickhouse:8123/?database=tracker",
) -> int:
    """Per-unit ClickHouse users, row policies and Grafana payloads."""
    path = options.units_path(units)
    try:
        registry = load_registry(path)
        known = _passwords(password_file) if password_file else {}
        result = access.plan(
            registry,
            database=database,
            writers=writer or ["tracker"],
            passwords=known,
            store_dsn_for_grafana=datasource_url,
        )
    except (ConfigFileError, access.AccessError) as exc:
        raise UserError(str(exc)) from None
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
    count = len(registry.units)
    print(f"{out / 'access.sql'}: {len(result.sql)} statements for {count} units")
    print(f"{out / 'passwords.yaml'}: {count} passwords ({len(known)} reused)")
    print(f"{out / 'grafana'}: {count} team/folder/data source/dashboard payloads")
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
