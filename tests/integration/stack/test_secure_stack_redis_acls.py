"""Redis ACL users per service on the secured local stack, against redis-server's own ACLs.

Only the gateway and the metrics service have a Redis user: the gateway's may read and write
the gateway's keys and nothing else, the metrics service's may only read them, and the other
services get no Redis credentials at all (issue 13: a leaked router password is not the Redis
password).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from loupe.runtime.acls import Service
from loupe.runtime.connections import RedisConnection, redis_kwargs
from loupe.runtime.redis_acls import GATEWAY_REDIS_PREFIX
from loupe.stack import StackInfo

pytestmark = pytest.mark.integration


def _client(connection: RedisConnection) -> redis.Redis:
    return redis.Redis.from_url(**redis_kwargs(connection), socket_timeout=5)


@pytest.fixture
def gateway_key(secured: StackInfo) -> Iterator[str]:
    """A key under the gateway's prefix, written by the developer's super user."""
    key = f"{GATEWAY_REDIS_PREFIX}{uuid.uuid4().hex[:8]}:t:task-1"
    with _client(secured.redis) as admin:
        admin.hset(key, mapping={"status": "open"})
        yield key
        admin.delete(key)


def test_only_the_gateway_and_metrics_have_redis_credentials(secured: StackInfo) -> None:
    assert set(secured.redis_services) == {Service.GATEWAY, Service.METRICS}
    for service in Service:
        env = secured.env(service)
        has_redis = any(name.startswith("LOUPE_REDIS_") for name in env)
        assert has_redis == (service in {Service.GATEWAY, Service.METRICS}), service
        password = secured.redis.password
        assert password is not None and password.get_secret_value() not in env.values()


def test_the_gateway_user_owns_the_gateway_keys_and_nothing_else(
    secured: StackInfo, gateway_key: str
) -> None:
    gateway = secured.redis_for(Service.GATEWAY)
    assert gateway is not None and gateway.username is not None
    with _client(gateway) as client:
        client.hset(gateway_key, "status", "resolved")
        assert client.eval("return redis.call('HGET', KEYS[1], 'status')", 1, gateway_key) == (
            b"resolved"
        )
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set(f"elsewhere:{uuid.uuid4().hex}", "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.eval("return redis.call('SET', KEYS[1], '1')", 1, "elsewhere:x")
        denied = (
            ("FLUSHALL",),
            ("CONFIG", "GET", "requirepass"),
            ("KEYS", "*"),
            ("SCAN", "0"),
            ("RANDOMKEY",),
            ("DBSIZE",),
            ("SCRIPT", "FLUSH"),
            ("FUNCTION", "FLUSH"),
            ("SELECT", "1"),
        )
        for command in denied:
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        assert "evicted_keys" in client.info("stats")  # a partial loss is noticed
        # the claim's script reads Redis's clock (the floor of the fencing tokens)
        assert len(client.eval("return redis.call('TIME')", 0)) == 2
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.acl_list()


def test_the_metrics_user_only_reads_the_gateway_keys(secured: StackInfo, gateway_key: str) -> None:
    metrics = secured.redis_for(Service.METRICS)
    assert metrics is not None
    with _client(metrics) as client:
        assert client.hgetall(gateway_key) == {b"status": b"open"}
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.hset(gateway_key, "status", "resolved")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.delete(gateway_key)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.eval("return 1", 0)


def test_a_service_password_is_not_the_default_users(secured: StackInfo) -> None:
    gateway = secured.redis_for(Service.GATEWAY)
    assert gateway is not None
    as_default = gateway.model_copy(update={"username": None})
    with pytest.raises(redis.exceptions.AuthenticationError), _client(as_default) as client:
        client.ping()
