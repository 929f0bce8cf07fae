"""Kafka ACLs per service: the one table of what each Loupe principal may do on the broker.

With the broker's authorizer on (KRaft ``StandardAuthorizer``, ``allow.everyone.if.no.acl.found
=false``), a principal can do only what an ACL allows. Each service connects as its own principal
and is granted exactly what its code does: the topics it reads and writes, its consumer groups,
its transactional ids and the topics it creates. So a leaked router password cannot forge a
lead's decision (only the gateway writes ``review.decisions``), and nothing but the metrics
service's adaptive review and the gateway's leads can change a policy (``control.policy``).

Names follow the deployment: topics carry the topic prefix, and the ids a service's settings
name (consumer groups, transactional ids, the resolver's Faust app id) are read from the same
variables the services read (``AclNames``), so ``loupe topics acls`` run with a service's
environment grants what that service will ask for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)
from pydantic import AliasChoices, Field

from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import admin_client
from loupe.runtime.settings import ServiceSettings
from loupe.schemas.topics import (
    AUDIT,
    CONTROL_POLICY,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    PREDICTIONS,
    PREDICTIONS_DLQ,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
    TOPICS,
    TopicSpec,
)


class Service(StrEnum):
    """A principal of its own: the four services and the model that publishes predictions."""

    ROUTER = "router"
    RESOLVER = "resolver"
    GATEWAY = "gateway"
    METRICS = "metrics"
    MODEL = "model"
    """Whatever publishes predictions (the model's serving code, the demo's, a bench's)."""


class Resource(StrEnum):
    """Kind of thing an ACL is on (Kafka's resource types Loupe uses)."""

    TOPIC = "topic"
    GROUP = "group"
    TRANSACTIONAL_ID = "transactional-id"
    CLUSTER = "cluster"


class Op(StrEnum):
    """Kafka ACL operations Loupe grants."""

    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DESCRIBE = "Describe"
    DESCRIBE_CONFIGS = "DescribeConfigs"
    IDEMPOTENT_WRITE = "IdempotentWrite"


CLUSTER_NAME = "kafka-cluster"
"""Kafka's name of the one cluster resource."""
ROUTER_READER_GROUP_PREFIX = "loupe-router-"
"""The router's assigning readers (the policy follower, the state restore) name a fresh group
from this each time; they commit nothing, but a consumer with a group id still looks up the
group's coordinator."""
GATEWAY_REBUILD_GROUP_PREFIX = "gw-rebuild-"
"""The gateway's rebuild reads with a fresh group named from this prefix each time."""


@dataclass(frozen=True)
class Grant:
    """One row of the table: ``service`` may do ``operations`` on a resource, for a reason."""

    service: Service
    resource: Resource
    name: str
    operations: tuple[Op, ...]
    why: str
    prefixed: bool = False
    """The name is a prefix (Kafka's PREFIXED pattern) rather than one literal name."""


class AclNames(ServiceSettings):
    """The names the grants are for, read from the services' own variables.

    The defaults are the services' defaults; a deployment that renames a group or an app id sets
    the same variable for ``loupe topics acls`` as for the service.
    """

    router_group: str = Field(
        default="loupe-router", validation_alias=AliasChoices("LOUPE_ROUTER_GROUP_ID")
    )
    """Router consumer group; its transactional ids are ``<group>-<instance>``, its state
    topic ``<topic prefix><group>.state``."""
    resolver_app_id: str = Field(
        default="loupe-resolver", validation_alias=AliasChoices("LOUPE_RESOLVER_APP_ID")
    )
    """The resolver's Faust app id (after the topic prefix): its group and its topics' prefix."""
    gateway_group: str = Field(
        default="loupe-gateway", validation_alias=AliasChoices("LOUPE_GATEWAY_CONSUMER_GROUP")
    )
    """The gateway's live consumer group (after the topic prefix)."""
    metrics_group: str = Field(
        default="loupe-metrics", validation_alias=AliasChoices("LOUPE_METRICS_CONSUMER_GROUP")
    )
    metrics_transactional_id: str = Field(
        default="loupe-metrics-adaptive",
        validation_alias=AliasChoices("LOUPE_METRICS_TRANSACTIONAL_ID"),
    )


def service_grants(names: AclNames) -> list[Grant]:
    """Every grant of every service for the deployment ``names`` describes (the one table)."""
    prefix = names.topic_prefix

    def topic(spec: TopicSpec) -> str:
        return spec.full_name(prefix)

    def reads(service: Service, specs: Iterable[TopicSpec], why: str) -> list[Grant]:
        return [
            Grant(service, Resource.TOPIC, topic(s), (Op.READ, Op.DESCRIBE), why) for s in specs
        ]

    def writes(service: Service, specs: Iterable[TopicSpec], why: str) -> list[Grant]:
        return [
            Grant(service, Resource.TOPIC, topic(s), (Op.WRITE, Op.DESCRIBE), why) for s in specs
        ]

    def idempotent(service: Service) -> Grant:
        return Grant(
            service,
            Resource.CLUSTER,
            CLUSTER_NAME,
            (Op.IDEMPOTENT_WRITE,),
            "idempotent producer (enable.idempotence)",
        )

    router, resolver, gateway, metrics, model = Service
    resolver_id = f"{prefix}{names.resolver_app_id}"
    gateway_group = f"{prefix}{names.gateway_group}"
    state_topic = f"{prefix}{names.router_group}.state"
    groups_read_by_others = (names.router_group, resolver_id, gateway_group)
    return [
        *writes(model, [PREDICTIONS], "publishes predictions"),
        idempotent(model),
        # router: predictions in, routed outputs out, in one transaction per batch
        *reads(router, [PREDICTIONS], "routes predictions"),
        *reads(router, [CONTROL_POLICY], "follows policies (assigned, no group)"),
        *writes(
            router,
            [LABELS_RESOLVED, REVIEW_REQUESTS, PREDICTIONS_DLQ, AUDIT],
            "routed outputs, dead letters and audit, in the batch's transaction",
        ),
        Grant(
            router,
            Resource.TOPIC,
            state_topic,
            (Op.CREATE, Op.READ, Op.WRITE, Op.DESCRIBE),
            "its per-partition state changelog (created at start)",
        ),
        Grant(router, Resource.GROUP, names.router_group, (Op.READ,), "consumer group, offsets"),
        Grant(
            router,
            Resource.GROUP,
            ROUTER_READER_GROUP_PREFIX,
            (Op.DESCRIBE,),
            "its readers' groups (policy follower, state restore: coordinator lookup only)",
            prefixed=True,
        ),
        Grant(
            router,
            Resource.TRANSACTIONAL_ID,
            f"{names.router_group}-",
            (Op.WRITE, Op.DESCRIBE),
            "one transactional id per instance: <group>-<instance>",
            prefixed=True,
        ),
        idempotent(router),
        # resolver: requests, votes and labels in; labels, conflicts and escalations out
        *reads(
            resolver,
            [REVIEW_REQUESTS, REVIEW_DECISIONS, LABELS_RESOLVED],
            "consolidates votes (labels: to keep a person's label last)",
        ),
        *writes(
            resolver,
            [LABELS_RESOLVED, LABELS_CONFLICTS, REVIEW_REQUESTS, AUDIT, PREDICTIONS_DLQ],
            "resolved labels, conflicts, escalations, audit and dead letters",
        ),
        *[
            Grant(
                resolver,
                Resource.TOPIC,
                topic(s),
                (Op.DESCRIBE,),
                "sees every registry topic exists at start (else it would try to create it)",
            )
            for s in (PREDICTIONS, CONTROL_POLICY)
        ],
        Grant(
            resolver,
            Resource.TOPIC,
            f"{resolver_id}-",
            (Op.CREATE, Op.READ, Op.WRITE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS),
            "Faust's own topics: the table's changelog, the assignor's leader topic",
            prefixed=True,
        ),
        Grant(resolver, Resource.GROUP, resolver_id, (Op.READ,), "the Faust app's group"),
        idempotent(resolver),
        # gateway: tasks in, decisions, policies and audit out
        *reads(
            gateway,
            [REVIEW_REQUESTS, LABELS_RESOLVED, LABELS_CONFLICTS, CONTROL_POLICY, AUDIT],
            "tasks, labels, conflicts, policies and history",
        ),
        Grant(
            gateway,
            Resource.TOPIC,
            topic(REVIEW_DECISIONS),
            (Op.READ, Op.WRITE, Op.DESCRIBE),
            "the only writer of decisions (and a lead's final call); reads them to rebuild",
        ),
        *writes(gateway, [CONTROL_POLICY], "a lead's policy change"),
        *writes(gateway, [AUDIT], "audit of every decision and admin action"),
        *[
            Grant(
                gateway,
                Resource.TOPIC,
                topic(s),
                (Op.DESCRIBE_CONFIGS,),
                "the rebuild refuses topics whose retention is too short",
            )
            for s in (REVIEW_REQUESTS, REVIEW_DECISIONS)
        ],
        Grant(gateway, Resource.GROUP, gateway_group, (Op.READ,), "live consumer group"),
        Grant(
            gateway,
            Resource.GROUP,
            GATEWAY_REBUILD_GROUP_PREFIX,
            (Op.READ,),
            "a fresh group per rebuild",
            prefixed=True,
        ),
        idempotent(gateway),
        # metrics: everything in; adaptive review's policy changes out
        *reads(metrics, TOPICS, "counts every event"),
        *writes(metrics, [CONTROL_POLICY, AUDIT], "adaptive review's policy change and audit"),
        Grant(metrics, Resource.GROUP, names.metrics_group, (Op.READ,), "its consumer group"),
        *[
            Grant(metrics, Resource.GROUP, group, (Op.DESCRIBE,), "exports this group's lag")
            for group in groups_read_by_others
        ],
        Grant(
            metrics,
            Resource.TRANSACTIONAL_ID,
            names.metrics_transactional_id,
            (Op.WRITE, Op.DESCRIBE),
            "policy and audit in one transaction",
        ),
        idempotent(metrics),
    ]


_RESOURCE_TYPES = {
    Resource.TOPIC: ResourceType.TOPIC,
    Resource.GROUP: ResourceType.GROUP,
    Resource.TRANSACTIONAL_ID: ResourceType.TRANSACTIONAL_ID,
    Resource.CLUSTER: ResourceType.BROKER,
}


def user_name(service: Service, user_prefix: str = "loupe-") -> str:
    """The user a service connects as, on the broker (SCRAM) and in Redis (ACL user):
    ``<user_prefix><service>``, one identity per service."""
    return f"{user_prefix}{service.value}"


def principal(service: Service, user_prefix: str = "loupe-") -> str:
    """The principal a service connects as: ``User:<user_prefix><service>``."""
    return f"User:{user_name(service, user_prefix)}"


def principals(user_prefix: str = "loupe-") -> dict[Service, str]:
    """Every service's principal (``principal``)."""
    return {service: principal(service, user_prefix) for service in Service}


def acl_bindings(grants: Iterable[Grant], principals: Mapping[Service, str]) -> list[AclBinding]:
    """The ALLOW bindings that give each service's principal its grants (any host), each once
    (a topic read and written is described once; the broker refuses repeated bindings)."""
    unique = {
        (grant.resource, grant.name, grant.prefixed, principals[grant.service], operation): None
        for grant in grants
        for operation in grant.operations
        if grant.service in principals
    }
    return [
        AclBinding(
            _RESOURCE_TYPES[resource],
            name,
            ResourcePatternType.PREFIXED if prefixed else ResourcePatternType.LITERAL,
            who,
            "*",
            AclOperation[operation.name],
            AclPermissionType.ALLOW,
        )
        for resource, name, prefixed, who, operation in unique
    ]


def grant_services(kafka: KafkaConnection, names: AclNames) -> int:
    """Give every service's principal its grants for ``names`` (``apply_acls``)."""
    return apply_acls(kafka, acl_bindings(service_grants(names), principals()))


def apply_acls(kafka: KafkaConnection, bindings: list[AclBinding], timeout_s: float = 30.0) -> int:
    """Create ``bindings`` on the broker (idempotent: an existing binding is kept) and return
    their number once the broker lists them all: the controller acknowledges a binding before
    the broker's authorizer has it, and a client started in between would be refused.

    ``kafka`` must be allowed to alter ACLs (a super user). Raises ``TimeoutError`` when the
    broker does not list them within ``timeout_s``.
    """
    if not bindings:
        return 0
    admin = admin_client(kafka)
    for future in admin.create_acls(bindings, request_timeout=timeout_s).values():
        future.result(timeout=timeout_s)
    # None matches any name, principal and host (documented); the stubs only say str
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    wanted = set(bindings)
    deadline = time.monotonic() + timeout_s
    while True:
        listed = admin.describe_acls(everything, request_timeout=timeout_s).result(timeout_s)
        if wanted <= set(listed):
            return len(bindings)
        if time.monotonic() >= deadline:
            missing = len(wanted - set(listed))
            raise TimeoutError(f"{missing} ACL bindings not in force after {timeout_s:.0f}s")
        time.sleep(0.1)
