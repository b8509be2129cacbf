"""Who a Kafka client logs in as: SASL/SCRAM logins of the tracker's principals, where they are
kept, and the options each client library wants for them.

Principals (one SCRAM user each; their ACLs are in ``streams/kafka_acls.py``)::

    admin    super user: creates topics and ACLs, rotates passwords (operators only)
    intake   writes the events topic (``tracker serve``, ``tracker post``)
    worker   reads the events topic, owns the output topics, its groups and Faust's own topics
    ticker   writes clock ticks to the events topic, owns its own group

A process logs in as one principal. It is named by ``TRACKER_KAFKA_USER`` and
``TRACKER_KAFKA_PASSWORD`` (the compose stack and any remote broker), or else read from the
local broker's credentials folder (``TRACKER_KAFKA_CREDENTIALS``, default
``<data_dir>/kafka/credentials``), where ``tracker kafka start`` keeps one file per principal.
With neither, a client connects without SASL, which a locked-down broker refuses.

Stdlib only (the broker module writes these files before any Kafka client is imported).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from config.settings import Settings, settings

MECHANISM = "SCRAM-SHA-512"
SECURITY_PROTOCOL = "SASL_PLAINTEXT"
Principal = Literal["admin", "intake", "worker", "ticker"]
PRINCIPALS: tuple[Principal, ...] = ("admin", "intake", "worker", "ticker")
# Kafka's SCRAM user names are free text, but ours also name files and sit in JAAS strings.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Passwords we write sit in a JAAS string between double quotes: no quote, no backslash.
_PASSWORD = re.compile(r'[^"\\\s]{8,256}')
_JAAS = re.compile(
    r"^sasl\.jaas\.config=org\.apache\.kafka\.common\.security\.scram\.ScramLoginModule required "
    r'username="(?P<user>[^"\\]+)" password="(?P<password>[^"\\]+)";$',
    re.M,
)
_MECHANISM_LINE = re.compile(r"^sasl\.mechanism=(\S+)$", re.M)
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


class CredentialsError(RuntimeError):
    """A credentials file is missing, unreadable or not ours."""


@dataclass(frozen=True)
class KafkaLogin:
    """A SASL/SCRAM login. The password never shows in a repr, a log line or an error."""

    username: str
    password: str = field(repr=False)
    mechanism: str = MECHANISM

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.username):
            raise CredentialsError(f"not a usable Kafka user name: {self.username!r}")
        if not _PASSWORD.fullmatch(self.password):
            raise CredentialsError(
                f"the password of Kafka user {self.username} must be 8-256 characters "
                "without quotes, backslashes or spaces"
            )
        if self.mechanism not in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise CredentialsError(f"unsupported SASL mechanism {self.mechanism!r}")

    @property
    def principal(self) -> str:
        """The principal the broker's ACLs name (the default principal builder: User:<name>)."""
        return f"User:{self.username}"


def new_password() -> str:
    """43 URL-safe characters (256 bits): nothing in it needs quoting in JAAS or properties."""
    return secrets.token_urlsafe(32)


# -- client options -------------------------------------------------------------------------


def aiokafka_kwargs(login: KafkaLogin | None) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient; empty for an open broker."""
    if login is None:
        return {}
    return {
        "security_protocol": SECURITY_PROTOCOL,
        "sasl_mechanism": login.mechanism,
        "sasl_plain_username": login.username,
        "sasl_plain_password": login.password,
    }


def faust_credentials(login: KafkaLogin | None) -> Any:
    """`broker_credentials` for a faust.App (None for an open broker). Faust hands the same
    login to its consumer, producer and topic-creating admin client."""
    if login is None:
        return None
    import faust  # here: the broker module imports this file before Faust is needed

    return faust.SASLCredentials(
        username=login.username, password=login.password, mechanism=login.mechanism
    )


def java_properties(login: KafkaLogin) -> str:
    """A Java client properties file (``--command-config`` of Kafka's own tools)."""
    return (
        f"# Kafka login of principal {login.principal}; generated, keep private (mode 0600)\n"
        f"security.protocol={SECURITY_PROTOCOL}\n"
        f"sasl.mechanism={login.mechanism}\n"
        f"sasl.jaas.config={SCRAM_LOGIN_MODULE} required "
        f'username="{login.username}" password="{login.password}";\n'
    )


# -- credential files -----------------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, never readable by others even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)  # O_CREAT's mode is masked by the umask, and tmp may have existed
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_login(path: Path) -> KafkaLogin:
    """The login in a properties file written by `java_properties`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialsError(f"cannot read Kafka credentials {path}: {exc.strerror}") from None
    match = _JAAS.search(text)
    if match is None:
        raise CredentialsError(f"{path} holds no SCRAM login (sasl.jaas.config)")
    mechanism = _MECHANISM_LINE.search(text)
    return KafkaLogin(match["user"], match["password"], mechanism[1] if mechanism else MECHANISM)


@dataclass(frozen=True)
class CredentialStore:
    """One properties file per principal in a private folder (0700; files 0600)."""

    folder: Path

    def path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise CredentialsError(f"not a usable Kafka user name: {name!r}")
        return self.folder / f"{name}.properties"

    def load(self, name: str) -> KafkaLogin:
        return read_login(self.path(name))

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def save(self, login: KafkaLogin) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        path = self.path(login.username)
        write_private(path, java_properties(login))
        return path

    def ensure(self, names: Iterable[str] = PRINCIPALS) -> dict[str, KafkaLogin]:
        """Every named login, generating (and saving) those not there yet."""
        out = {}
        for name in names:
            if not self.exists(name):
                self.save(KafkaLogin(name, new_password()))
            out[name] = self.load(name)
        return out


def local_store(data_dir: Path) -> CredentialStore:
    """Where the local broker under `data_dir` keeps its principals' logins."""
    return CredentialStore(Path(data_dir).resolve() / "kafka" / "credentials")


def login_for(role: Principal, env: Settings | None = None) -> KafkaLogin | None:
    """The login this process uses in `role`: TRACKER_KAFKA_USER/PASSWORD when set (one
    process, one principal, whatever the role), else the role's file in the credentials folder,
    else None (connect without SASL)."""
    env = env or settings()
    if env.kafka_user or env.kafka_password:
        if not (env.kafka_user and env.kafka_password):
            raise CredentialsError("set both TRACKER_KAFKA_USER and TRACKER_KAFKA_PASSWORD")
        return KafkaLogin(
            env.kafka_user, env.kafka_password.get_secret_value(), env.kafka_mechanism
        )
    store = credentials_of(env)
    return store.load(role) if store.exists(role) else None


def credentials_of(env: Settings) -> CredentialStore:
    """The credentials folder: TRACKER_KAFKA_CREDENTIALS, else the local broker's."""
    return CredentialStore(Path(env.kafka_credentials or env.data_dir / "kafka" / "credentials"))


def local_admin(env: Settings | None = None) -> KafkaLogin | None:
    """The super user's login where this process may use it: the local broker's admin file,
    readable by the user who runs the broker and the tracker on one machine. Then a component
    that creates its topics grants their ACLs first (`streams.topics.ensure_topics`). Never
    when TRACKER_KAFKA_USER names the login: a process given its own principal acts as that
    alone, and the operator grants the ACLs (`python -m streams.kafka_acls`)."""
    env = env or settings()
    if env.kafka_user or env.kafka_password:
        return None
    store = credentials_of(env)
    return store.load("admin") if store.exists("admin") else None
