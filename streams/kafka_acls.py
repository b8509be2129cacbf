"""The Kafka ACLs of one topic prefix: who may write, read and create what.

For a prefix ``p`` (``streams.topics.Topics``), with every other operation refused:

| principal | resource | operations |
|---|---|---|
| intake | topic `p.events` | WRITE, DESCRIBE, CREATE |
| ticker | topic `p.events` | WRITE, DESCRIBE, CREATE |
| ticker | group `p-ticker`; topics starting `p-ticker-` (its Faust app) | READ, WRITE, DESCRIBE, CREATE |
| worker | topic `p.events` | READ, DESCRIBE, CREATE |
| worker | topics `p.accepted`, `.ledger`, `.deadlines`, `.dead-letters`, `.warnings` | READ, WRITE, DESCRIBE, CREATE |
| worker | groups `p-worker`, `p-processor`, `p-sink`; topics starting with those and `-` (Faust's own) | READ, WRITE, DESCRIBE, CREATE |
| admin | everything (a super user in the broker's config) | |

So only the intake (and the ticker, whose clock ticks are events in the same partitions) writes
the events topic, only the worker reads it, and only the worker touches the outputs and the
worker groups. CREATE lets whichever of them starts first create a missing topic with its
configuration; it gives no right to the records. Resource names are LITERAL, except Faust's
own topics, which are PREFIXED by the app id and a dash because Faust names them after it
(``<app id>-__assignor-__leader``, ``<app id>-<table>-changelog``); a group is its app id.

Principals are per broker, ACLs per prefix: two deployments sharing a broker should have their
own principals (``users``), or one's worker may read the other's events.

Granting is the admin's job (``grant``, run by ``tracker kafka start`` for the default prefix
and by the tests for theirs); it is idempotent, since Kafka ignores an ACL it already has.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request

from streams.kafka_auth import KafkaLogin, aiokafka_kwargs
from streams.topics import Topics


class ResourceType(IntEnum):
    # Kafka's org.apache.kafka.common.resource.ResourceType codes
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    # org.apache.kafka.common.resource.PatternType codes
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    # org.apache.kafka.common.acl.AclOperation codes
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(IntEnum):
    ANY = 1
    DENY = 2
    ALLOW = 3


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding (we grant no DENY: what is not allowed is refused)."""

    principal: str
    resource: ResourceType
    name: str
    pattern: PatternType
    operation: Operation

    def covers(self, principal: str, resource: ResourceType, name: str, op: Operation) -> bool:
        if (principal, resource) != (self.principal, self.resource):
            return False
        if self.pattern is PatternType.LITERAL and name != self.name:
            return False
        if self.pattern is PatternType.PREFIXED and not name.startswith(self.name):
            return False
        # Kafka: READ, WRITE, DELETE and ALTER each imply DESCRIBE.
        implied = op is Operation.DESCRIBE and self.operation in (
            Operation.READ,
            Operation.WRITE,
            Operation.DELETE,
            Operation.ALTER,
        )
        return self.operation in (op, Operation.ALL) or implied


WORKER_ROLES = ("worker", "processor", "sink")  # Topics.group(role): "all" is "worker"
USE = (Operation.READ, Operation.WRITE, Operation.DESCRIBE, Operation.CREATE)


def acls(topics: Topics, users: dict[str, str] | None = None) -> tuple[Acl, ...]:
    """The bindings of `topics`' prefix. `users` renames principals (role -> SCRAM user name),
    for a broker whose users are called otherwise."""
    users = {"intake": "intake", "worker": "worker", "ticker": "ticker", **(users or {})}
    intake, worker, ticker = (f"User:{users[r]}" for r in ("intake", "worker", "ticker"))
    T, G = ResourceType.TOPIC, ResourceType.GROUP
    LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
    W, R, D, C = Operation.WRITE, Operation.READ, Operation.DESCRIBE, Operation.CREATE
    out = [Acl(intake, T, topics.events, LIT, op) for op in (W, D, C)]
    out += [Acl(ticker, T, topics.events, LIT, op) for op in (W, D, C)]
    ticker_app = topics.group("ticker")
    out += [Acl(ticker, T, f"{ticker_app}-", PRE, op) for op in USE]
    out += [Acl(ticker, G, ticker_app, LIT, op) for op in (R, D)]
    out += [Acl(worker, T, topics.events, LIT, op) for op in (R, D, C)]
    outputs = [name for name in topics.all if name != topics.events]
    out += [Acl(worker, T, name, LIT, op) for name in outputs for op in USE]
    for role in WORKER_ROLES:
        app = topics.group(role)
        out += [Acl(worker, T, f"{app}-", PRE, op) for op in USE]
        out += [Acl(worker, G, app, LIT, op) for op in (R, D)]
    return tuple(out)


def allowed(
    bindings: Iterable[Acl], principal: str, resource: ResourceType, name: str, op: Operation
) -> bool:
    """What the broker's authorizer decides for a non-super user under these bindings alone."""
    return any(acl.covers(principal, resource, name, op) for acl in bindings)


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka: untyped here
    """CreateAcls v1 with many bindings in one request (aiokafka's own sends one)."""

    API_KEY = 30

    def __init__(self, bindings: Iterable[Acl]) -> None:
        self.creations = [
            (a.resource, a.name, a.pattern, a.principal, "*", a.operation, Permission.ALLOW)
            for a in bindings
        ]

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self.creations)


class _DescribeAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 29

    def __init__(self, principal: str | None) -> None:
        self.principal = principal

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        return request_struct_class(
            ResourceType.ANY, None, PatternType.ANY, self.principal, None, Operation.ANY,
            Permission.ANY,
        )  # fmt: skip


class AclError(RuntimeError):
    """The broker refused the ACLs, or could not be reached."""


async def _send(bootstrap: str, admin: KafkaLogin, request: Request[Any]) -> Any:
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=15_000, **aiokafka_kwargs(admin)
    )
    try:
        await client.bootstrap()
        return await client.send(client.get_random_node(), request)
    except KafkaError as exc:
        raise AclError(f"Kafka at {bootstrap}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def grant(
    bootstrap: str,
    admin: KafkaLogin,
    topics: Topics,
    users: dict[str, str] | None = None,
    attempts: int = 10,
) -> tuple[Acl, ...]:
    """Create the ACLs of `topics`' prefix, logged in as the super user; returns them.
    A broker that has just started may not know its SCRAM users for a moment: retried."""
    bindings = acls(topics, users)
    for attempt in range(1, attempts + 1):
        try:
            response = await _send(bootstrap, admin, _CreateAcls(bindings))
            break
        except AclError:
            if attempt == attempts:
                raise
            await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
    for acl, (code, message) in zip(bindings, response.creation_responses, strict=True):
        if code:
            error = for_code(code)
            raise AclError(f"cannot create ACL {acl}: {error.__name__} {message or ''}".strip())
    return bindings


async def granted(bootstrap: str, admin: KafkaLogin, principal: str | None = None) -> set[Acl]:
    """The ALLOW bindings the broker holds (of one principal, or all)."""
    response = await _send(bootstrap, admin, _DescribeAcls(principal))
    if response.error_code:
        raise AclError(f"cannot list ACLs: {for_code(response.error_code).__name__}")
    out = set()
    for resource, name, pattern, entries in response.resources:
        for who, _host, op, permission in entries:
            if permission == Permission.ALLOW:
                out.add(Acl(who, ResourceType(resource), name, PatternType(pattern), Operation(op)))
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m streams.kafka_acls [--topic-prefix P]`: grant a prefix's ACLs as the super
    user (the compose stack's `kafka-acls` step). The broker is TRACKER_KAFKA; the login is
    TRACKER_KAFKA_USER/PASSWORD, else the local broker's admin file."""
    import argparse

    from config.settings import settings
    from streams.kafka_auth import CredentialsError, login_for
    from streams.topics import DEFAULT_PREFIX

    parser = argparse.ArgumentParser(prog="python -m streams.kafka_acls", description=main.__doc__)
    parser.add_argument("--topic-prefix", default=DEFAULT_PREFIX)
    args = parser.parse_args(argv)
    env = settings()
    try:
        admin = login_for("admin", env)
    except CredentialsError as exc:
        parser.error(str(exc))
    if admin is None:
        parser.error("no Kafka login: set TRACKER_KAFKA_USER and TRACKER_KAFKA_PASSWORD")
    topics = Topics(args.topic_prefix)
    try:
        made = asyncio.run(grant(env.kafka, admin, topics))
    except AclError as exc:
        print(f"kafka-acls: {exc}")
        return 1
    print(f"kafka-acls: {len(made)} ACLs for prefix {topics.prefix!r} on {env.kafka}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
