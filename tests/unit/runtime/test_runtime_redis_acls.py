"""The Redis ACL table: who gets a Redis user, with which keys and commands."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import SecretStr

from loupe.runtime.acls import Service
from loupe.runtime.redis_acls import (
    GATEWAY_REDIS_PREFIX,
    REDIS_GRANTS,
    redis_acl_config,
    redis_acl_rules,
)

PASSWORD = SecretStr("s3cret-password")


def test_only_the_gateway_and_metrics_get_a_redis_user() -> None:
    assert set(REDIS_GRANTS) == {Service.GATEWAY, Service.METRICS}
    for service in (Service.ROUTER, Service.RESOLVER, Service.MODEL):
        assert redis_acl_rules(service, PASSWORD) is None


def test_rules_confine_keys_and_store_only_the_password_hash() -> None:
    rules = redis_acl_rules(Service.GATEWAY, PASSWORD, prefix="acme:gw:")
    assert rules is not None
    assert rules[:2] == ["reset", "on"]
    assert f"#{hashlib.sha256(b's3cret-password').hexdigest()}" in rules
    assert "~acme:gw:*" in rules
    assert not any("s3cret" in rule for rule in rules)
    assert rules.index("-@dangerous") > rules.index("+@write")
    assert "-@admin" in rules


def test_metrics_may_only_read() -> None:
    rules = redis_acl_rules(Service.METRICS, PASSWORD)
    assert rules is not None
    assert {rule for rule in rules if "~" in rule} == {f"%R~{GATEWAY_REDIS_PREFIX}*"}
    assert not {"+@write", "+@scripting", "+@all", "+eval", "+evalsha"} & set(rules)


def test_the_gateway_reads_info_but_lists_no_keys_and_flushes_no_scripts() -> None:
    rules = redis_acl_rules(Service.GATEWAY, PASSWORD)
    assert rules is not None
    assert rules.index("+info") > rules.index("-@dangerous")
    assert "+time" in rules  # the claim's script floors its fencing tokens by Redis's clock
    assert {"-scan", "-randomkey", "-dbsize", "-select", "-function"} <= set(rules)
    assert "+@scripting" not in rules and "+script|load" in rules


@pytest.mark.parametrize("prefix", ["", "a*:", "gw :", "x?y:", "k[1]:", "loupe", "a\\:"])
def test_a_prefix_that_would_widen_the_pattern_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        redis_acl_rules(Service.GATEWAY, PASSWORD, prefix=prefix)


def test_config_names_each_user_after_its_service() -> None:
    lines = redis_acl_config({Service.GATEWAY: PASSWORD, Service.ROUTER: PASSWORD})
    assert len(lines) == 1 and lines[0].startswith("user loupe-gateway reset on #")
