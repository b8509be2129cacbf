"""What the local broker's JVM is configured with: its ``server.properties`` and log4j2 setup.

``LocalKafka`` (``streams/broker.py``) rewrites both at each start from these. One node is
broker and controller at once, on two listeners. Locked down (``secure=True``), both listeners
speak SASL and the StandardAuthorizer allows nothing an ACL does not: the client listener takes
SCRAM only, the controller listener PLAIN with a password made at each start, so no one but
the broker itself can use it. Open (``secure=False``), both are plaintext and unauthorized.

Stdlib only, like the broker module.
"""

from __future__ import annotations

from pathlib import Path

from streams.kafka_auth import (
    MECHANISM,
    SCRAM_LOGIN_MODULE,
    CredentialStore,
    KafkaLogin,
    new_password,
)

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SUPER_USER = "admin"
# The broker's own login to its controller listener (the same JVM): not a client principal.
CONTROLLER_USER = "controller"
# Size-capped so a broker left running for weeks cannot fill the disk with its own log.
_LOG4J2 = """\
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""


def log4j2_properties(log: Path) -> str:
    return _LOG4J2.format(log=log)


def server_properties(
    port: int,
    controller_port: int,
    log_dirs: Path,
    credentials: CredentialStore,
    secure: bool,
    bootstrap_login: KafkaLogin | None = None,
) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # A static voter set keeps formatting a plain `format -t <id>` with no --standalone.
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dirs),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        # One broker: internal topics cannot have more than one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Tests create many short-lived groups; the default 3 s delay would slow each one.
        "group.initial.rebalance.delay.ms": "0",
    }
    if secure:
        # replaces the open ones
        props.update(_security_properties(port, controller_port, credentials, bootstrap_login))
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _security_properties(
    port: int,
    controller_port: int,
    credentials: CredentialStore,
    bootstrap_login: KafkaLogin | None,
) -> dict[str, str]:
    """SASL on both listeners, ACLs enforced. The client listener takes SCRAM only; the
    broker logs in to it as the super user (inter-broker traffic, none on one node but
    Kafka requires the login). The controller listener takes PLAIN with a password made
    now: its only client is this JVM's broker half. `bootstrap_login` (adding the users to
    an old store) also opens PLAIN on the client listener, for that one login alone."""
    admin = credentials.load(SUPER_USER)
    controller = new_password()
    scram = (
        f'{SCRAM_LOGIN_MODULE} required username="{admin.username}" password="{admin.password}";'
    )
    plain = (
        f'{PLAIN_LOGIN_MODULE} required username="{CONTROLLER_USER}" '
        f'password="{controller}" user_{CONTROLLER_USER}="{controller}";'
    )
    props = {
        "listeners": f"CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"CLIENT://127.0.0.1:{port}",
        "inter.broker.listener.name": "CLIENT",
        "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.client.sasl.enabled.mechanisms": MECHANISM,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        f"listener.name.client.{MECHANISM.lower()}.sasl.jaas.config": scram,
        "listener.name.controller.plain.sasl.jaas.config": plain,
        "authorizer.class.name": AUTHORIZER,
        "super.users": f"User:{SUPER_USER};User:{CONTROLLER_USER}",
        # The default already, stated: a resource without ACLs is closed to all but super users.
        "allow.everyone.if.no.acl.found": "false",
    }
    if bootstrap_login is not None:
        user, password = bootstrap_login.username, bootstrap_login.password
        props |= {
            "listener.name.client.sasl.enabled.mechanisms": f"{MECHANISM},PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.client.plain.sasl.jaas.config": (
                f'{PLAIN_LOGIN_MODULE} required username="{user}" '
                f'password="{password}" user_{user}="{password}";'
            ),
        }
    return props
