"""Kafka logins, their files and client options, the ACL table of a prefix, and the broker's
security settings (no broker: the integration tests check that the broker enforces them)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from config.settings import Settings
from streams.broker import LocalKafka
from streams.kafka_acls import Operation, ResourceType, acls, allowed
from streams.kafka_auth import (
    PRINCIPALS,
    CredentialsError,
    CredentialStore,
    KafkaLogin,
    aiokafka_kwargs,
    faust_credentials,
    java_properties,
    login_for,
    read_login,
)
from streams.topics import Topics

LOGIN = KafkaLogin("intake", "s3cret-Password_1")


def test_client_options_for_aiokafka_and_faust_agree() -> None:
    assert aiokafka_kwargs(None) == {}
    assert faust_credentials(None) is None
    expected = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "intake",
        "sasl_plain_password": "s3cret-Password_1",
    }
    assert aiokafka_kwargs(LOGIN) == expected
    # Faust turns its credentials into aiokafka options itself: the same ones
    via_faust = credentials_to_aiokafka_auth(faust_credentials(LOGIN))
    assert {k: via_faust[k] for k in expected} == expected
    assert via_faust.get("ssl_context") is None


def test_the_password_never_shows() -> None:
    assert LOGIN.password not in repr(LOGIN)
    assert LOGIN.password not in repr(faust_credentials(LOGIN))
    assert LOGIN.principal == "User:intake"


@pytest.mark.parametrize(
    ("username", "password", "mechanism"),
    [
        ("", "long-enough-pw", "SCRAM-SHA-512"),  # no name
        ("in take", "long-enough-pw", "SCRAM-SHA-512"),  # space: not a file name, not JAAS-safe
        ('in"take', "long-enough-pw", "SCRAM-SHA-512"),  # a quote would end the JAAS string
        ("intake", "short", "SCRAM-SHA-512"),  # under 8 characters
        ("intake", 'pass"word-long', "SCRAM-SHA-512"),  # quote in the password
        ("intake", "pass\\word-long", "SCRAM-SHA-512"),  # backslash: JAAS escape
        ("intake", "pass word long", "SCRAM-SHA-512"),  # whitespace
        ("intake", "long-enough-pw", "PLAIN"),  # plain-text passwords on the wire: no
    ],
)
def test_unusable_logins_are_refused(username: str, password: str, mechanism: str) -> None:
    with pytest.raises(CredentialsError):
        KafkaLogin(username, password, mechanism)


def test_properties_round_trip_and_java_format(tmp_path: Path) -> None:
    text = java_properties(LOGIN)
    assert "security.protocol=SASL_PLAINTEXT\n" in text
    assert "sasl.mechanism=SCRAM-SHA-512\n" in text
    assert 'ScramLoginModule required username="intake" password="s3cret-Password_1";\n' in text
    path = tmp_path / "intake.properties"
    path.write_text(text)
    assert read_login(path) == LOGIN
    path.write_text("security.protocol=SASL_PLAINTEXT\n")
    with pytest.raises(CredentialsError, match="no SCRAM login"):
        read_login(path)
    with pytest.raises(CredentialsError, match="cannot read"):
        read_login(tmp_path / "missing.properties")


def test_store_generates_once_and_keeps_files_private(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the files must be private whatever the umask
    try:
        store = CredentialStore(tmp_path / "credentials")
        first = store.ensure(PRINCIPALS)
    finally:
        os.umask(old_umask)
    assert set(first) == set(PRINCIPALS)
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    for name in PRINCIPALS:
        assert stat.S_IMODE(store.path(name).stat().st_mode) == 0o600
    assert store.ensure(PRINCIPALS) == first, "a second start must not change any password"
    assert len({login.password for login in first.values()}) == len(PRINCIPALS)
    assert not list(store.folder.glob(".*tmp*")), "no temporary file left behind"
    with pytest.raises(CredentialsError):
        store.path("../admin")


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key in list(os.environ):
        if key.startswith("TRACKER_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_which_login_a_process_uses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "data" / "kafka" / "credentials")
    logins = store.ensure(PRINCIPALS)
    other = CredentialStore(tmp_path / "elsewhere")
    other_logins = other.ensure(["worker"])
    data = str(tmp_path / "data")
    # no setting, no file: no SASL (an open broker)
    assert login_for("worker", _settings(monkeypatch, TRACKER_DATA=str(tmp_path))) is None
    # the local broker's files under the data directory, one per role
    assert login_for("worker", _settings(monkeypatch, TRACKER_DATA=data)) == logins["worker"]
    assert login_for("intake", _settings(monkeypatch, TRACKER_DATA=data)) == logins["intake"]
    # another credentials folder
    env = _settings(monkeypatch, TRACKER_DATA=data, TRACKER_KAFKA_CREDENTIALS=str(other.folder))
    assert login_for("worker", env) == other_logins["worker"]
    assert login_for("intake", env) is None
    # an explicit login wins, whatever the role asked for
    env = _settings(
        monkeypatch,
        TRACKER_DATA=data,
        TRACKER_KAFKA_USER="svc-intake",
        TRACKER_KAFKA_PASSWORD="from-the-env-123",
        TRACKER_KAFKA_MECHANISM="SCRAM-SHA-256",
    )
    assert login_for("worker", env) == KafkaLogin("svc-intake", "from-the-env-123", "SCRAM-SHA-256")
    assert "from-the-env-123" not in repr(env)
    # half a login is an error, not an anonymous client
    env = _settings(monkeypatch, TRACKER_DATA=data, TRACKER_KAFKA_USER="svc-intake")
    with pytest.raises(CredentialsError, match="both"):
        login_for("worker", env)


T = Topics("fj")
TOPIC, GROUP = ResourceType.TOPIC, ResourceType.GROUP
R, W, C, D = Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE
DELETE, ALTER = Operation.DELETE, Operation.ALTER
ACL_CASES = [
    # the intake posts events and does nothing else
    ("intake", TOPIC, "fj.events", W, True),
    ("intake", TOPIC, "fj.events", D, True),  # producers need the topic's metadata
    ("intake", TOPIC, "fj.events", R, False),  # posting is not reading: the log is the worker's
    ("intake", TOPIC, "fj.ledger", W, False),  # forging an output
    ("intake", TOPIC, "fj.dead-letters", R, False),
    ("intake", GROUP, "fj-worker", R, False),  # joining the worker's group steals partitions
    ("intake", TOPIC, "fj-worker-__assignor-__leader", W, False),
    ("intake", TOPIC, "fj.events", DELETE, False),  # no one but the admin deletes the log
    # the ticker's clock ticks are events in the same partitions
    ("ticker", TOPIC, "fj.events", W, True),
    ("ticker", TOPIC, "fj.events", R, False),
    ("ticker", TOPIC, "fj.accepted", W, False),
    ("ticker", GROUP, "fj-ticker", R, True),  # its own Faust app's group
    ("ticker", TOPIC, "fj-ticker-__assignor-__leader", W, True),
    ("ticker", GROUP, "fj-worker", R, False),
    # the worker reads events, owns outputs, its groups and Faust's topics
    ("worker", TOPIC, "fj.events", R, True),
    ("worker", TOPIC, "fj.events", W, False),  # only the intake and the ticker write it
    ("worker", TOPIC, "fj.events", C, True),  # whoever starts first may create it
    ("worker", TOPIC, "fj.events", ALTER, False),  # e.g. its retention: the admin's
    ("worker", TOPIC, "fj.accepted", W, True),
    ("worker", TOPIC, "fj.ledger", R, True),
    ("worker", TOPIC, "fj.deadlines", W, True),
    ("worker", TOPIC, "fj.dead-letters", W, True),
    ("worker", TOPIC, "fj.warnings", W, True),
    ("worker", GROUP, "fj-worker", R, True),  # role all
    ("worker", GROUP, "fj-processor", R, True),
    ("worker", GROUP, "fj-sink", R, True),
    ("worker", TOPIC, "fj-worker-__assignor-__leader", W, True),
    ("worker", TOPIC, "fj-processor-anything-changelog", C, True),
    ("worker", GROUP, "fj-ticker", R, False),  # the ticker's group is not the worker's
    ("worker", GROUP, "someone-else", R, False),
    # another prefix is another set of ACLs
    ("worker", TOPIC, "fjx.events", R, False),
    ("intake", TOPIC, "other.events", W, False),
    ("worker", TOPIC, "fj-workerx.events", R, False),  # prefix "fj-workerx" is not Faust's
    ("worker", GROUP, "fj-workerx", R, False),  # groups are exact
    # nobody else
    ("mallory", TOPIC, "fj.events", W, False),
    ("ANONYMOUS", TOPIC, "fj.events", D, False),
]


@pytest.mark.parametrize(("user", "resource", "name", "op", "expected"), ACL_CASES)
def test_the_acl_table(
    user: str, resource: ResourceType, name: str, op: Operation, expected: bool
) -> None:
    assert allowed(acls(T), f"User:{user}", resource, name, op) is expected


def test_acls_name_renamed_users() -> None:
    bindings = acls(T, users={"intake": "svc-intake"})
    assert allowed(bindings, "User:svc-intake", TOPIC, "fj.events", W)
    assert not allowed(bindings, "User:intake", TOPIC, "fj.events", W)


def test_the_broker_config_is_locked_down(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path, port=19092, controller_port=19093)
    assert broker.secure, "secure is the default"
    broker._write_config()
    props = dict(
        line.split("=", 1)
        for line in (broker.config_dir / "server.properties").read_text().splitlines()
    )
    assert props["listeners"] == "CLIENT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert "PLAINTEXT://" not in props["listeners"] + props["advertised.listeners"]
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    assert stat.S_IMODE((broker.config_dir / "server.properties").stat().st_mode) == 0o600
    # the broker's own logins: the admin's SCRAM password, a fresh controller password
    admin = broker.login("admin")
    assert (
        f'password="{admin.password}"'
        in props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    )
    first_controller = props["listener.name.controller.plain.sasl.jaas.config"]
    broker._write_config()
    again = (broker.config_dir / "server.properties").read_text()
    assert first_controller not in again, "the controller password is new at each start"

    open_broker = LocalKafka(tmp_path / "open", secure=False)
    open_broker._write_config()
    text = (open_broker.config_dir / "server.properties").read_text()
    assert "authorizer" not in text and "sasl" not in text
    assert not open_broker.credentials.folder.exists()
