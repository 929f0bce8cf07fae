"""Tokens and people (issue 13, point 6), on real Kafka and Redis: tokens expire, are revoked one
by one, record their last use; a revocation denies on every replica within the auth cache time,
even when its durable write failed half way; admin actions are on `audit` before their answer."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from loupe.gateway.logic import Role
from loupe.gateway.projector import Projector
from loupe.gateway.users import User, UsersFile
from loupe.runtime.kafka import consumer_config
from loupe.schemas import utcnow

from .conftest import PEPPER, gateway_settings, start_gateway

CACHE_S = 1.0


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _load(settings, users_file: Path | None = None) -> None:
    """Load the users file (or another copy of it) into Redis, as a start or the CLI does."""
    import redis  # noqa: PLC0415

    from loupe.runtime.connections import redis_kwargs  # noqa: PLC0415

    client = redis.Redis.from_url(**redis_kwargs(settings.redis))
    Projector(client, settings.redis_prefix).load_users(
        UsersFile(users_file or settings.users_file)
    )
    client.close()


def _redis_user(settings, user_id: str) -> User:
    """The user record every replica reads."""
    import redis  # noqa: PLC0415

    from loupe.runtime.connections import redis_kwargs  # noqa: PLC0415

    client = redis.Redis.from_url(**redis_kwargs(settings.redis))
    try:
        return User.model_validate_json(client.get(f"{settings.redis_prefix}user:{user_id}"))
    finally:
        client.close()


def _audit_events(settings, user_id: str) -> list[dict]:
    """Every audit event about ``user_id`` on this test's audit topic (read to the end)."""
    topic = settings.topic("audit")
    consumer = Consumer(
        consumer_config(settings.kafka, f"audit-reader-{uuid.uuid4().hex}")
        | {"auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1]
            for p in metadata.partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        events, deadline = [], time.monotonic() + 30
        done = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            event = orjson.loads(message.value())
            if event["details"].get("user") == user_id:
                events.append(event)
            if message.offset() + 1 >= ends[message.partition()]:
                done.add(message.partition())
        return events
    finally:
        consumer.close()


@contextlib.asynccontextmanager
async def _two_replicas(kafka_bootstrap, redis_url, topic_prefix, tmp_path: Path, **overrides):
    """Two gateway apps sharing one Redis (same key prefix) and one users file."""
    values = {"redis_prefix": f"gw{uuid.uuid4().hex[:6]}:", "auth_cache_s": CACHE_S, **overrides}
    a_settings = gateway_settings(kafka_bootstrap, redis_url, topic_prefix, tmp_path, **values)
    b_settings = gateway_settings(
        kafka_bootstrap, redis_url, topic_prefix, tmp_path, start_consumer=False, **values
    )
    async with start_gateway(a_settings) as a, start_gateway(b_settings) as b:
        a.users_file.add(User(id="boss", role=Role.ADMIN, projects=["*"]))
        a.tokens["boss"] = a.users_file.issue_token("boss", PEPPER)[0]
        a.users_file.add(User(id="ann", role=Role.REVIEWER, projects=["*"]))
        _load(a_settings)
        yield a, b


async def _issue(gateway, user_id: str, **body) -> dict:
    response = await gateway.call("POST", f"/v1/users/{user_id}/tokens", "boss", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _denied_within_cache_time(gateway, token: str) -> int:
    """The status a replica answers once its auth cache of ``token`` has surely run out."""
    await asyncio.sleep(CACHE_S + 0.5)
    return (await gateway.client.get("/v1/me", headers=_bearer(token))).status_code


async def test_one_token_is_revoked_on_every_replica_within_the_cache_time(
    kafka_bootstrap, redis_url, topic_prefix, tmp_path
):
    async with _two_replicas(kafka_bootstrap, redis_url, topic_prefix, tmp_path) as (a, b):
        laptop = await _issue(a, "ann", name="laptop")
        phone = await _issue(a, "ann", name="phone")
        for replica in (a, b):  # b's cache now holds both tokens
            for token in (laptop, phone):
                me = await replica.client.get("/v1/me", headers=_bearer(token["token"]))
                assert me.status_code == 200, me.text

        revoked = await a.call("DELETE", f"/v1/users/ann/tokens/{laptop['token_id']}", "boss")
        assert revoked.status_code == 200, revoked.text
        assert (await a.client.get("/v1/me", headers=_bearer(laptop["token"]))).status_code == 401
        assert await _denied_within_cache_time(b, laptop["token"]) == 401
        for replica in (a, b):  # the other token is untouched
            me = await replica.client.get("/v1/me", headers=_bearer(phone["token"]))
            assert me.status_code == 200, me.text

        listed = (await a.call("GET", "/v1/users/ann/tokens", "boss")).json()["tokens"]
        by_id = {t["token_id"]: t for t in listed}
        assert by_id[laptop["token_id"]]["revoked_at"] is not None
        assert by_id[phone["token_id"]]["revoked_at"] is None
        assert all(t["expires_at"] for t in listed)
        assert laptop["token"] not in str(listed)

        missing = await a.call("DELETE", "/v1/users/ann/tokens/not-a-token-id", "boss")
        assert missing.status_code == 404, missing.text


async def test_a_revocation_whose_durable_write_failed_still_denies_everywhere(
    kafka_bootstrap, redis_url, topic_prefix, tmp_path
):
    async with _two_replicas(kafka_bootstrap, redis_url, topic_prefix, tmp_path) as (a, b):
        token = (await _issue(a, "ann"))["token"]
        for replica in (a, b):
            assert (await replica.client.get("/v1/me", headers=_bearer(token))).status_code == 200

        # the users file cannot be written (its lock is a folder): the revocation fails half way
        lock = a.settings.users_file.with_name(a.settings.users_file.name + ".lock")
        lock.unlink(missing_ok=True)
        lock.mkdir()
        failed = await a.call("DELETE", "/v1/users/ann/tokens", "boss")
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"]["code"] == "revocation_not_durable"
        assert (await a.client.get("/v1/me", headers=_bearer(token))).status_code == 401
        assert await _denied_within_cache_time(b, token) == 401

        # a reload of the users file (the CLI, a restart) does not bring the token back
        _load(a.settings)
        assert (await b.client.get("/v1/me", headers=_bearer(token))).status_code == 401

        # the retry, once the file can be written, records it durably
        lock.rmdir()
        retried = await a.call("DELETE", "/v1/users/ann/tokens", "boss")
        assert retried.status_code == 200, retried.text
        stored = a.users_file.read()["users"]["ann"]["tokens"]
        assert all(t["revoked_at"] for t in stored.values())


async def test_a_deactivation_whose_durable_write_failed_still_denies_everywhere(
    kafka_bootstrap, redis_url, topic_prefix, tmp_path
):
    async with _two_replicas(kafka_bootstrap, redis_url, topic_prefix, tmp_path) as (a, b):
        token = (await _issue(a, "ann"))["token"]
        for replica in (a, b):
            assert (await replica.client.get("/v1/me", headers=_bearer(token))).status_code == 200

        lock = a.settings.users_file.with_name(a.settings.users_file.name + ".lock")
        lock.unlink(missing_ok=True)
        lock.mkdir()
        failed = await a.call("PATCH", "/v1/users/ann", "boss", json={"active": False})
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"]["code"] == "not_durable"
        assert (await a.client.get("/v1/me", headers=_bearer(token))).status_code == 401
        assert await _denied_within_cache_time(b, token) == 401

        # a load of the users file (the CLI, a restart, a rebuild) does not bring the user back
        _load(a.settings)
        assert await _denied_within_cache_time(b, token) == 401

        lock.rmdir()
        retried = await a.call("PATCH", "/v1/users/ann", "boss", json={"active": False})
        assert retried.status_code == 200, retried.text
        assert a.users_file.find("ann").active is False
        assert _redis_user(a.settings, "ann") == a.users_file.find("ann")


async def test_a_load_that_read_the_file_before_a_deactivation_does_not_undo_it(
    kafka_bootstrap, redis_url, topic_prefix, tmp_path
):
    async with _two_replicas(kafka_bootstrap, redis_url, topic_prefix, tmp_path) as (a, b):
        token = (await _issue(a, "ann"))["token"]
        assert (await b.client.get("/v1/me", headers=_bearer(token))).status_code == 200
        # a load reads the file, a deactivation lands, then the load writes Redis
        read_before = tmp_path / "read-before.json"
        read_before.write_bytes(a.settings.users_file.read_bytes())
        patched = await a.call("PATCH", "/v1/users/ann", "boss", json={"active": False})
        assert patched.status_code == 200, patched.text
        _load(a.settings, users_file=read_before)
        assert await _denied_within_cache_time(b, token) == 401
        assert _redis_user(a.settings, "ann") == a.users_file.find("ann")


async def test_concurrent_changes_of_one_user_agree_in_redis_and_the_file(
    kafka_bootstrap, redis_url, topic_prefix, tmp_path
):
    async with _two_replicas(kafka_bootstrap, redis_url, topic_prefix, tmp_path) as (a, b):
        a.users_file.add(User(id="lee", role=Role.LEAD, projects=["*"]))
        _load(a.settings)
        # both changes reach the file only after both were made in Redis (its lock is held)
        lock = a.settings.users_file.with_name(a.settings.users_file.name + ".lock")
        with lock.open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            demote = asyncio.create_task(
                a.call("PATCH", "/v1/users/lee", "boss", json={"role": "reviewer"})
            )
            rename = asyncio.create_task(
                b.client.patch("/v1/users/lee", headers=a.auth("boss"), json={"name": "Lee"})
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if len(await asyncio.to_thread(_audit_events, a.settings, "lee")) >= 2:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            fcntl.flock(held, fcntl.LOCK_UN)
        answers = await asyncio.wait_for(asyncio.gather(demote, rename), 30)
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        stored = a.users_file.find("lee")
        assert (stored.role, stored.name) == (Role.REVIEWER, "Lee")
        assert _redis_user(a.settings, "lee") == stored


async def test_an_expired_token_is_refused(gateway):
    gateway.add_user("boss", Role.ADMIN)
    gateway.add_user("ann", Role.REVIEWER)
    soon = utcnow() + timedelta(seconds=2)
    issued = await _issue(gateway, "ann", expires_at=soon.isoformat())
    assert datetime.fromisoformat(issued["expires_at"]) == soon
    headers = _bearer(issued["token"])
    deadline = time.monotonic() + 20
    statuses = []
    while time.monotonic() < deadline:
        statuses.append((await gateway.client.get("/v1/me", headers=headers)).status_code)
        if statuses[-1] == 401:
            break
        await asyncio.sleep(0.2)
    assert statuses[0] == 200 and statuses[-1] == 401, statuses

    past = await gateway.call(
        "POST", "/v1/users/ann/tokens", "boss", json={"expires_at": utcnow().isoformat()}
    )
    assert past.status_code == 422, past.text
    forever = utcnow() + timedelta(days=gateway.settings.token_ttl_days + 1)
    too_long = await gateway.call(
        "POST", "/v1/users/ann/tokens", "boss", json={"expires_at": forever.isoformat()}
    )
    assert too_long.status_code == 422, too_long.text
    default = await _issue(gateway, "ann")
    lifetime = datetime.fromisoformat(default["expires_at"]) - utcnow()
    assert timedelta(days=gateway.settings.token_ttl_days - 1) < lifetime
    assert lifetime <= timedelta(days=gateway.settings.token_ttl_days)


async def test_last_use_is_recorded(launch_gateway):
    async with launch_gateway(token_use_flush_s=1.0) as gateway:
        gateway.add_user("boss", Role.ADMIN)
        gateway.add_user("ann", Role.REVIEWER)
        issued = await _issue(gateway, "ann")

        async def last_use():
            tokens = (await gateway.call("GET", "/v1/users/ann/tokens", "boss")).json()["tokens"]
            return {t["token_id"]: t for t in tokens}[issued["token_id"]]["last_used_at"]

        assert await last_use() is None
        before = utcnow()
        for _ in range(20):
            me = await gateway.client.get("/v1/me", headers=_bearer(issued["token"]))
            assert me.status_code == 200

        last_used = await gateway.wait_for(last_use, timeout_s=20, what="last use recorded")
        assert datetime.fromisoformat(last_used) >= before - timedelta(seconds=1)


async def test_admin_actions_are_on_audit_before_the_answer(gateway):
    gateway.add_user("boss", Role.ADMIN)
    created = await gateway.call(
        "POST", "/v1/users", "boss", json={"id": "ann", "role": "reviewer"}
    )
    assert created.status_code == 201, created.text
    changed = await gateway.call(
        "PATCH", "/v1/users/ann", "boss", json={"role": "senior", "tier": "reviewer"}
    )
    assert changed.status_code == 200, changed.text
    issued = await _issue(gateway, "ann", name="laptop")
    one = await gateway.call("DELETE", f"/v1/users/ann/tokens/{issued['token_id']}", "boss")
    assert one.status_code == 200, one.text
    every = await gateway.call("DELETE", "/v1/users/ann/tokens", "boss")
    assert every.status_code == 200, every.text

    events = _audit_events(gateway.settings, "ann")
    changes = [e["details"]["change"] for e in events]
    assert changes == [
        "user_created",
        "user_updated",
        "token_issued",
        "token_revoked",
        "tokens_revoked",
    ], changes
    assert all(e["actor"] == {"id": "boss", "role": "admin"} for e in events)
    updated = events[1]["details"]
    assert updated["before"] == {"role": "reviewer", "tier": None}
    assert updated["after"] == {"role": "senior", "tier": "reviewer"}
    assert events[2]["details"]["token_id"] == issued["token_id"]
    assert issued["token"] not in orjson.dumps(events).decode()
    assert all(e["details"]["client"] for e in events)


async def test_an_admin_action_kafka_does_not_acknowledge_fails_and_changes_nothing(
    own_kafka, redis_url, tmp_path
):
    from loupe.runtime.kafka import ensure_topics  # noqa: PLC0415

    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(own_kafka.connection(), prefix=prefix)
    settings = gateway_settings(
        own_kafka.settings.kafka_bootstrap, redis_url, prefix, tmp_path, kafka_timeout_s=2.0
    )
    async with start_gateway(settings) as gateway:
        gateway.add_user("boss", Role.ADMIN)
        gateway.add_user("ann", Role.REVIEWER)
        own_kafka.down()
        attempts = [
            ("POST", "/v1/users", {"id": "bob", "role": "reviewer"}),
            ("PATCH", "/v1/users/ann", {"role": "lead"}),
            ("POST", "/v1/users/ann/tokens", {}),
            ("DELETE", "/v1/users/ann/tokens", None),
        ]
        for method, path, body in attempts:
            response = await gateway.call(method, path, "boss", json=body)
            assert response.status_code == 503, f"{method} {path}: {response.text}"
            assert response.json()["error"]["code"] == "audit_unavailable"
        assert sorted(u.id for u in gateway.users_file.users()) == ["ann", "boss"]
        assert gateway.users_file.find("ann").role is Role.REVIEWER
        assert len(gateway.users_file.read()["users"]["ann"]["tokens"]) == 1
        me = await gateway.call("GET", "/v1/me", "ann")
        assert me.status_code == 200 and me.json()["role"] == "reviewer", me.text


async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(gateway):
    """An admin API that can remove its last admin locks everyone out of it (only the server's
    CLI could recover): the change is refused with 409 last_admin; with a second admin it holds."""
    gateway.add_user("root", Role.ADMIN)
    gateway.add_user("old", Role.ADMIN)
    retired = await gateway.call("PATCH", "/v1/users/old", "root", json={"active": False})
    assert retired.status_code == 200, retired.text
    for change in ({"role": "lead"}, {"active": False}):
        refused = await gateway.call("PATCH", "/v1/users/root", "root", json=change)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "last_admin"
    assert (await gateway.call("GET", "/v1/me", "root")).json()["role"] == "admin"

    gateway.add_user("heir", Role.ADMIN)
    stepped_down = await gateway.call("PATCH", "/v1/users/root", "root", json={"role": "lead"})
    assert stepped_down.status_code == 200, stepped_down.text
    last = await gateway.call("PATCH", "/v1/users/heir", "heir", json={"role": "lead"})
    assert last.json()["error"]["code"] == "last_admin"
