"""The grant table: each service's principal may do what its code does, and nothing more."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from loupe.gateway.settings import GatewaySettings
from loupe.metrics.settings import MetricsSettings
from loupe.resolver.settings import ResolverSettings
from loupe.router.settings import RouterSettings
from loupe.runtime import cli
from loupe.runtime.acls import (
    AclNames,
    Grant,
    Op,
    Resource,
    Service,
    acl_bindings,
    principal,
    service_grants,
)
from loupe.schemas.topics import (
    CONTROL_POLICY,
    LABELS_RESOLVED,
    PREDICTIONS,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
    TOPICS,
)

PREFIX = "acme."


@pytest.fixture
def grants() -> list[Grant]:
    return service_grants(AclNames(topic_prefix=PREFIX))


def _who(grants: list[Grant], name: str, operation: Op) -> set[Service]:
    return {g.service for g in grants if g.name == name and operation in g.operations}


def test_only_the_owners_write_the_topics_that_matter(grants: list[Grant]) -> None:
    def writers(name: str) -> set[Service]:
        return _who(grants, f"{PREFIX}{name}", Op.WRITE)

    assert writers(REVIEW_DECISIONS.name) == {Service.GATEWAY}
    assert writers(CONTROL_POLICY.name) == {Service.GATEWAY, Service.METRICS}
    assert writers(LABELS_RESOLVED.name) == {Service.ROUTER, Service.RESOLVER}
    assert writers(REVIEW_REQUESTS.name) == {Service.ROUTER, Service.RESOLVER}
    assert writers(PREDICTIONS.name) == {Service.MODEL}


def test_every_topic_grant_is_under_the_prefix_and_nothing_is_administered(
    grants: list[Grant],
) -> None:
    topics = [g for g in grants if g.resource is Resource.TOPIC]
    assert all(g.name.startswith(PREFIX) for g in topics)
    assert {t.full_name(PREFIX) for t in TOPICS} <= {g.name for g in topics}
    creators = {(g.service, g.name, g.prefixed) for g in grants if Op.CREATE in g.operations}
    assert creators == {
        (Service.ROUTER, f"{PREFIX}loupe-router.state", False),  # its own state changelog
        (Service.RESOLVER, f"{PREFIX}loupe-resolver-", True),  # Faust's own topics
    }
    clusters = {(g.service, g.operations) for g in grants if g.resource is Resource.CLUSTER}
    assert clusters == {(service, (Op.IDEMPOTENT_WRITE,)) for service in Service}


def test_groups_and_transactional_ids_follow_the_services_own_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOUPE_TOPIC_PREFIX", PREFIX)
    monkeypatch.setenv("LOUPE_ROUTER_GROUP_ID", "routers")
    monkeypatch.setenv("LOUPE_METRICS_TRANSACTIONAL_ID", "adaptive-1")
    grants = service_grants(AclNames())
    ids = {(g.service, g.resource, g.name, g.prefixed) for g in grants}
    assert (Service.ROUTER, Resource.GROUP, "routers", False) in ids
    assert (Service.ROUTER, Resource.TRANSACTIONAL_ID, "routers-", True) in ids
    assert (Service.ROUTER, Resource.TOPIC, f"{PREFIX}routers.state", False) in ids
    assert (Service.ROUTER, Resource.GROUP, "loupe-router-", True) in ids  # its readers
    assert (Service.METRICS, Resource.TRANSACTIONAL_ID, "adaptive-1", False) in ids
    assert (Service.RESOLVER, Resource.GROUP, f"{PREFIX}loupe-resolver", False) in ids
    assert (Service.GATEWAY, Resource.GROUP, f"{PREFIX}loupe-gateway", False) in ids


def test_bindings_are_unique_and_go_to_each_services_principal(grants: list[Grant]) -> None:
    principals = {service: principal(service, "prod-") for service in Service}
    bindings = acl_bindings(grants, principals)
    assert len(bindings) == len(set(bindings))  # the broker refuses repeated bindings
    assert {b.principal for b in bindings} == {f"User:prod-{s.value}" for s in Service}
    only_router = acl_bindings(grants, {Service.ROUTER: "User:r"})
    assert only_router and {b.principal for b in only_router} == {"User:r"}


def test_loupe_topics_acls_prints_one_line_per_grant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOUPE_TOPIC_PREFIX", PREFIX)
    result = CliRunner().invoke(cli.main, ["topics", "acls", "--user-prefix", "prod-"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert len(rows) == len(service_grants(AclNames(topic_prefix=PREFIX)))
    writers = {
        row[0] for row in rows if row[2] == f"{PREFIX}review.decisions" and "Write" in row[3]
    }
    assert writers == {"User:prod-gateway"}
    assert ["User:prod-router", "transactional-id", "loupe-router-*"] in [r[:3] for r in rows]


def test_the_default_names_are_the_services_defaults() -> None:
    """The grants name what the services use when nothing is set (their settings own it)."""
    names = AclNames.model_fields
    assert names["router_group"].default == RouterSettings.model_fields["group_id"].default
    assert names["resolver_app_id"].default == ResolverSettings.model_fields["app_id"].default
    gateway = GatewaySettings.model_fields["consumer_group"].default
    assert names["gateway_group"].default == gateway
    metrics = MetricsSettings.model_fields
    assert names["metrics_group"].default == metrics["consumer_group"].default
    assert names["metrics_transactional_id"].default == metrics["transactional_id"].default
