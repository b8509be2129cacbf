"""Push the ClickHouse data source and the three dashboards into an existing Grafana, by uid.

Idempotent: the data source is created or updated under its fixed uid and every dashboard is
saved with `overwrite`, so pushing twice leaves Grafana as pushing once. Every failure surfaces
as one `GrafanaPushError` line that names the Grafana URL and never the token.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

from sinks.dsn import mask
from tracker import dashboard_json
from tracker.dashboard_json import DATASOURCE_TYPE, DATASOURCE_UID

# The client is imported where it is called: every CLI command imports this module at start,
# and the client takes about 0.3 s to load, which only the commands that talk to Grafana pay.
if TYPE_CHECKING:
    from grafana_client.api import GrafanaApi
    from grafana_client.client import GrafanaException

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0


class GrafanaPushError(Exception):
    """Grafana unreachable, the token rejected, or a payload refused; the message is one line."""


@dataclass
class PushResult:
    datasource: str  # "created" or "updated"
    folder_uid: str | None
    dashboards: list[str] = field(default_factory=list)


def clickhouse_datasource(
    store_dsn: str,
    *,
    uid: str = DATASOURCE_UID,
    name: str = "Tracker ClickHouse",
    username: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """The plugin's data source settings for a store DSN as Grafana reaches it:
    `http(s)://user:pass@host:8123/?database=tracker` (credentials may be given separately)."""
    parsed = urlparse(store_dsn)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise GrafanaPushError(
            f"the data source URL must be http(s)://USER:PASS@HOST:PORT/?database=NAME, "
            f"not {mask(store_dsn)!r}"
        )
    secure = parsed.scheme == "https"
    database = parse_qs(parsed.query).get("database", ["tracker"])[0]
    user = username if username is not None else unquote(parsed.username or "default")
    secret = password if password is not None else unquote(parsed.password or "")
    return {
        "uid": uid,
        "name": name,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "jsonData": {
            "host": parsed.hostname,
            "port": parsed.port or (8443 if secure else 8123),
            "protocol": "http",
            "secure": secure,
            "username": user,
            "defaultDatabase": database,
        },
        "secureJsonData": {"password": secret},
    }


def folder_uid(title: str) -> str:
    """A stable uid for a folder title (Grafana uids: at most 40 of [A-Za-z0-9_-])."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:20]
    digest = hashlib.sha1(title.encode("utf-8")).hexdigest()[:10]
    return f"tracker-{slug}-{digest}" if slug else f"tracker-{digest}"


def push(
    url: str,
    token: str,
    *,
    store_dsn_for_grafana: str,
    folder: str | None = None,
    dashboards_dir: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> PushResult:
    """Upsert the data source, the folder (when named) and the three dashboards."""
    try:
        dashboards = dashboard_json.load(dashboards_dir)
    except (OSError, ValueError) as exc:
        raise GrafanaPushError(f"cannot read the dashboards: {exc}") from None
    datasource = clickhouse_datasource(store_dsn_for_grafana)
    api = connect(url, token, timeout=timeout)
    call = _caller(mask(url))
    result = PushResult(
        datasource=upsert_datasource(api, datasource, call),
        folder_uid=upsert_folder(api, folder, call) if folder else None,
    )
    boards: Any = api.dashboard  # grafana-client has no type hints
    for uid, dashboard in dashboards.items():
        body = dashboard_payload(dashboard, result.folder_uid)
        call(f"save dashboard {uid}", partial(boards.update_dashboard, body))
        result.dashboards.append(uid)
    return result


def connect(url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT) -> GrafanaApi:
    """A client for `url`; checks that a Grafana answers there (the health call needs no token).

    `token` is a service-account token, or `user:password` for basic authentication."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise GrafanaPushError(f"the Grafana URL must be http(s)://HOST:PORT, not {mask(url)!r}")
    # grafana-client appends "api" to the path as is: keep exactly one slash before it
    base = url.split("?", 1)[0].rstrip("/") + "/"
    user, sep, password = token.partition(":")
    credential: str | tuple[str, str] = (user, password) if sep else token
    from grafana_client.api import GrafanaApi

    api: GrafanaApi = GrafanaApi.from_url(base, credential=credential, timeout=timeout)
    shown = mask(url)
    # /api/health answers without a token (grafana-client's health.check reads a signed-in page)
    health = _caller(shown)("reach /api/health", lambda: api.client.GET("/health"))
    if not isinstance(health, Mapping) or "database" not in health:
        raise GrafanaPushError(f"{shown} answered, but not like Grafana (no /api/health)")
    return api


def upsert_datasource(
    api: GrafanaApi, payload: dict[str, Any], call: Callable[[str, Callable[[], T]], T]
) -> str:
    uid = payload["uid"]
    sources: Any = api.datasource  # grafana-client has no type hints
    if _exists(lambda: sources.get_datasource_by_uid(uid), call, f"read data source {uid}"):
        call(
            f"update data source {uid}",
            lambda: sources.update_datasource_by_uid(uid, payload),
        )
        return "updated"
    call(f"create data source {uid}", lambda: sources.create_datasource(payload))
    return "created"


def upsert_folder(api: GrafanaApi, title: str, call: Callable[[str, Callable[[], T]], T]) -> str:
    uid = folder_uid(title)
    folders: Any = api.folder  # grafana-client has no type hints
    if not _exists(lambda: folders.get_folder(uid), call, f"read folder {uid}"):
        call(f"create folder {title!r}", lambda: folders.create_folder(title, uid=uid))
    return uid


def dashboard_payload(dashboard: Mapping[str, Any], folder: str | None) -> dict[str, Any]:
    """POST /api/dashboards/db body: saved by uid (no numeric id), replacing what is there."""
    body = copy.deepcopy(dict(dashboard))
    body["id"] = None
    return {
        "dashboard": body,
        "folderUid": folder or "",
        "overwrite": True,
        "message": "tracker dashboards push",
    }


def _exists(
    get: Callable[[], Any], call: Callable[[str, Callable[[], Any]], Any], what: str
) -> bool:
    from grafana_client.client import GrafanaClientError

    def probe() -> bool:
        try:
            get()
        except GrafanaClientError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    return bool(call(what, probe))


def _caller(url: str) -> Callable[[str, Callable[[], T]], T]:
    """Run one API call, turning every client failure into a one-line GrafanaPushError."""
    import niquests
    from grafana_client.client import GrafanaException, GrafanaTimeoutError

    def call(what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except GrafanaTimeoutError:
            raise GrafanaPushError(f"Grafana at {url} did not answer in time ({what})") from None
        except GrafanaException as exc:
            raise GrafanaPushError(_refusal(url, what, exc)) from None
        except niquests.exceptions.RequestException as exc:
            raise GrafanaPushError(f"cannot reach Grafana at {url}: {_network(exc)}") from None

    return call


def _refusal(url: str, what: str, exc: GrafanaException) -> str:
    code = exc.status_code
    detail = exc.response.get("message") if isinstance(exc.response, dict) else None
    detail = _one_line(detail or exc.message)
    if code == 401:
        return f"Grafana at {url} rejected the token (HTTP 401: {detail}); check --token"
    if code == 403:
        return (
            f"Grafana at {url} refused to {what} with this token (HTTP 403: {detail}); "
            "it needs the Admin role (data sources) or Editor on the folder, "
            "and provisioned items cannot be changed through the API"
        )
    if code == 0:
        return f"cannot reach Grafana at {url}: {detail}"
    return f"Grafana at {url} refused to {what}: HTTP {code}: {detail}"


def _network(exc: Exception) -> str:
    """The socket-level reason ("Connection refused", "Name or service not known"), not the
    client library's nested wrapper text."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    if "NameResolutionError" in text or "Failed to resolve" in text:
        return "host name not found"
    if "timed out" in text.lower():
        return "timed out"
    return _one_line(text) or type(exc).__name__


def _one_line(value: object) -> str:
    text = str(value or "").strip()
    return (text.splitlines() or [""])[0][:200]
