"""The token of a worker's read views (issue 10 item 4): who may read through a worker.

The views (streams/web.py) answer only a request carrying `Authorization: Bearer <token>`. The
token is TRACKER_WORKER_TOKEN when the worker's environment sets it; otherwise the worker makes
a random one at each start and writes it, mode 0600, where a reader on the same machine finds
it (`token_file`): beside its embedded store (`chdb:///DIR/chdb`, web port 6066 ->
`DIR/chdb.worker-6066.token`: whoever may open that directory may read the store anyway), else
(a server store, or none on disk) in the worker's data directory (`worker-6066.token`). One file
per web port: a processor and a sink worker may name the same store, never share a port, and a
reader knows the port from the worker's URL.
Standard library only, like sinks/remote.py.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from sinks.dsn import chdb_location

TOKEN_ENV = "TRACKER_WORKER_TOKEN"
TOKEN_BYTES = 32  # 256 bits of randomness, url-safe base64 in the file


def token_file(dsn: str, data_dir: Path, web_port: int) -> Path:
    """Where the worker on store `dsn`, web port `web_port`, keeps the token it made."""
    location = chdb_location(dsn)
    if location is not None:
        store_dir = location[0].resolve()
        return store_dir.with_name(f"{store_dir.name}.worker-{web_port}.token")
    return data_dir / f"worker-{web_port}.token"


def make_token_file(path: Path) -> str:
    """A new random token, written to `path` readable by its owner only (never anyone else,
    even for a moment: created 0600 under another name, then renamed over the old one)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(token + "\n")
        os.chmod(tmp, 0o600)  # O_CREAT's mode is masked by the umask, and tmp may have existed
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return token


def read_token_file(path: Path) -> str | None:
    """The token in `path`; None when it is missing, unreadable or not a token."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return text if text and text.isprintable() and " " not in text else None


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token` as a bearer token. The comparison takes
    the same time wherever the two differ (hmac.compare_digest), so timing tells nothing."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # bytes: compare_digest refuses non-ASCII text; "replace" never raises on odd headers
    offered = given.strip().encode("utf-8", "replace")
    return hmac.compare_digest(offered, token.encode("utf-8", "replace")) and bool(token)
