"""Who may use `tracker serve`: principals and their API tokens (docs/access.md).

A principal is a role (`centre`, `unit`, `auditor`, `ticker`, `worker`) with a scope (a unit id,
or None for the whole province). Its token is shown once, when it is made; the file keeps only a
salted hash of the token's secret, so a copy of the file lets nobody in. A token reads
`trk.<key>.<secret>`: the key finds the principal without trying every hash; the secret is 256
random bits, checked against the hash in constant time.

A revoked principal stays in the file as a tombstone (no hash, `revoked_at` set): its id is never
given again, so `posted_by` in the event log keeps naming one principal, and its old token is
refused as "revoked", not "unknown".

The file is JSON, mode 0600, replaced atomically (write a temporary file, fsync, rename) under an
exclusive `fcntl` lock on a lock file beside it, so two `tracker principals` runs, or one and a
serving process, never lose each other's changes. A serving process re-reads the file when it
changes, so a revocation takes effect at once, without a restart.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from config.settings import settings

Role = Literal["centre", "unit", "auditor", "ticker", "worker"]
ROLES: tuple[Role, ...] = get_args(Role)
WHOLE_PROVINCE = "*"
TOKEN_PREFIX = "trk"
# The secret is 256 random bits, so no guessing attack needs slowing down; the hash is there so
# that the file alone lets nobody in. PBKDF2 with a per-token salt, as the issue asks.
HASH_ITERATIONS = 10_000
FILE_VERSION = 1
_TOKEN = re.compile(r"trk\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")


class PrincipalError(ValueError):
    """A principals file or a request to change it that cannot be used; one line."""


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    role: Role
    scope: str | None  # a unit id; None: the whole province
    name: str = ""
    jurisdiction: bool = False  # a unit principal that reads and reports for its subtree

    @property
    def scope_text(self) -> str:
        return WHOLE_PROVINCE if self.scope is None else self.scope


@dataclass(frozen=True, slots=True)
class _Record:
    principal: Principal
    key: str
    salt: str
    hash: str
    created_at: str
    revoked_at: str | None


def default_path() -> Path:
    """$TRACKER_PRINCIPALS, else principals.json in the data directory."""
    return settings().principals_path()


def _digest(secret: str, salt: str, iterations: int = HASH_ITERATIONS) -> str:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), bytes.fromhex(salt), iterations).hex()


class PrincipalStore:
    """The principals file. Safe to share between threads; re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._loaded_from: tuple[int, int, int] | None = None
        self._records: dict[str, _Record] = {}  # by key
        # token digest -> principal id: verified tokens skip PBKDF2 until the file changes
        self._verified: dict[str, str] = {}

    # -- changing ------------------------------------------------------------------------------

    def add(
        self,
        role: str,
        scope: str | None,
        name: str = "",
        *,
        jurisdiction: bool = False,
    ) -> tuple[Principal, str]:
        """A new principal and its token (the only time the token exists in the clear)."""
        if role not in ROLES:
            raise PrincipalError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        scope = None if scope in (None, "", WHOLE_PROVINCE) else scope
        if role == "unit" and scope is None:
            raise PrincipalError("a unit principal needs --scope UNIT (its own unit id)")
        if jurisdiction and role != "unit":
            raise PrincipalError(
                "--jurisdiction is for unit principals (a centre's scope is a subtree)"
            )
        if role in ("auditor", "ticker", "worker") and scope is not None:
            raise PrincipalError(f"a {role} principal has no scope (it is province-wide)")
        if len(name) > 200 or not name.isprintable():
            raise PrincipalError("--name: at most 200 printable characters")
        with self._locked_file() as records:
            taken = {r.principal.id for r in records}
            base = f"{role}:{scope or WHOLE_PROVINCE}"
            pid, n = base, 1
            while pid in taken:
                n += 1
                pid = f"{base}#{n}"
            principal = Principal(pid, role, scope, name=name, jurisdiction=jurisdiction)
            key, secret, salt = (
                secrets.token_hex(8),
                secrets.token_urlsafe(32),
                secrets.token_hex(16),
            )
            records.append(
                _Record(
                    principal,
                    key,
                    salt,
                    _digest(secret, salt),
                    _now(),
                    None,
                )
            )
        return principal, f"{TOKEN_PREFIX}.{key}.{secret}"

    def revoke(self, principal_id: str) -> Principal:
        """Refuse the principal's token from now on; the id stays taken."""
        with self._locked_file() as records:
            for i, record in enumerate(records):
                if record.principal.id == principal_id:
                    if record.revoked_at is None:
                        records[i] = _Record(
                            record.principal, record.key, "", "", record.created_at, _now()
                        )
                    return record.principal
        raise PrincipalError(f"no principal {principal_id!r} (see `tracker principals list`)")

    # -- reading -------------------------------------------------------------------------------

    def list(self) -> builtins.list[tuple[Principal, str, str | None]]:
        """Every principal with its creation time and revocation time (None: active)."""
        with self._lock:
            self._refresh()
            return [(r.principal, r.created_at, r.revoked_at) for r in self._records.values()]

    def verified(self, token: str | None) -> Principal | None:
        """The active principal of a token this process has verified already (no PBKDF2: a
        look-up, fit for an event loop), else None, and `authenticate` decides."""
        if not token or _TOKEN.fullmatch(token) is None:
            return None
        seen = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            self._refresh()
            record = self._records.get(token.split(".")[1])
            if record is None or record.revoked_at is not None:
                return None
            return record.principal if self._verified.get(seen) == record.principal.id else None

    def authenticate(self, token: str | None) -> Principal | None:
        """The active principal the token belongs to, or None (missing, malformed, unknown,
        revoked: the caller answers 401 alike, so that a token's state is not revealed)."""
        if not token:
            return None
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        key, secret = match.groups()
        seen = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            self._refresh()
            record = self._records.get(key)
            if record is None or record.revoked_at is not None:
                return None
            if self._verified.get(seen) == record.principal.id:
                return record.principal
        # outside the lock: PBKDF2 takes milliseconds, other requests need not wait for it
        if not hmac.compare_digest(_digest(secret, record.salt), record.hash):
            return None
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[seen] = record.principal.id
        return record.principal

    # -- the file ------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Re-read the file when it changed since it was read (a revocation by another process)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._records, self._verified, self._loaded_from = {}, {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._loaded_from:
            return
        records = _parse(self.path)
        self._records = {r.key: r for r in records}
        self._verified = {}
        self._loaded_from = stamp

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[builtins.list[_Record]]:
        """The records, to change in place; written back atomically when the block ends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            records = _parse(self.path) if self.path.exists() else []
            yield records
            _write(self.path, records)
        finally:
            os.close(fd)  # closing releases the lock
        with self._lock:
            self._loaded_from = None


def _parse(path: Path) -> list[_Record]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PrincipalError(f"{path}: not a principals file ({exc})") from None
    try:
        if doc.get("version") != FILE_VERSION:
            raise PrincipalError(f"{path}: unknown principals file version {doc.get('version')!r}")
        out = []
        for item in doc["principals"]:
            role = item["role"]
            if role not in ROLES:
                raise PrincipalError(f"{path}: unknown role {role!r}")
            principal = Principal(
                id=str(item["id"]),
                role=role,
                scope=item["scope"],
                name=str(item.get("name", "")),
                jurisdiction=bool(item.get("jurisdiction", False)),
            )
            out.append(
                _Record(
                    principal,
                    str(item["key"]),
                    str(item["salt"]),
                    str(item["hash"]),
                    str(item["created_at"]),
                    item.get("revoked_at"),
                )
            )
        return out
    except (AttributeError, KeyError, TypeError) as exc:
        raise PrincipalError(f"{path}: malformed principals file ({exc!r})") from None


def _write(path: Path, records: list[_Record]) -> None:
    doc: dict[str, Any] = {
        "version": FILE_VERSION,
        "hash": f"pbkdf2_hmac-sha256-{HASH_ITERATIONS}",
        "principals": [
            {
                **asdict(r.principal),
                "key": r.key,
                "salt": r.salt,
                "hash": r.hash,
                "created_at": r.created_at,
                "revoked_at": r.revoked_at,
            }
            for r in records
        ],
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, ensure_ascii=False, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
