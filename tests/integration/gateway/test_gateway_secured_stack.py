"""The reviewer gateway on the secured local stack (SASL_SSL SCRAM-SHA-512, TLS + password Redis).

``loupe gateway`` runs as a process configured only by the ``LOUPE_KAFKA_*`` / ``LOUPE_REDIS_*``
variables of the stack's connections (``process_env``), on Kafka as its own user with only the
gateway's grants (``loupe.runtime.acls``, the broker's authorizer on); the test's own clients
connect as the stack's client user. Given a wrong Kafka or Redis password, the gateway stops at
start with the reason and the variables to check, in bounded time, instead of staying unready
for ever.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from harness.kafka import produce, read_all
from harness.waiting import wait_for
from loupe.demo.processes import loupe_command
from loupe.gateway.app import create_app
from loupe.gateway.logic import Role
from loupe.gateway.settings import GatewaySettings
from loupe.gateway.users import User, UsersFile
from loupe.runtime.acls import Service
from loupe.runtime.connections import process_env, redis_kwargs
from loupe.runtime.redis_access import RedisAccessError
from loupe.runtime.redis_acls import GATEWAY_REDIS_PREFIX
from loupe.schemas import ReviewDecision, Tier, decode
from loupe.schemas.topics import REVIEW_DECISIONS, REVIEW_REQUESTS
from loupe.stack import StackInfo, free_port

from .conftest import PEPPER, request_for

REFUSAL_BOUND_S = 60.0
"""A refused gateway has exited by then (its Kafka check waits at most 10 s, Redis's 10 s)."""


def _start(
    secured: StackInfo, prefix: str, tmp_path: Path, **overrides: str
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``loupe gateway`` on the secured stack; returns the process, its URL and its log."""
    port = free_port()
    env = {
        **process_env(
            os.environ, secured.services[Service.GATEWAY], secured.redis_for(Service.GATEWAY)
        ),
        "LOUPE_TOPIC_PREFIX": prefix,
        "LOUPE_GATEWAY_USERS_FILE": str(tmp_path / "users.json"),
        "LOUPE_GATEWAY_TOKEN_PEPPER": PEPPER,
        "LOUPE_GATEWAY_REDIS_PREFIX": f"{GATEWAY_REDIS_PREFIX}{prefix}",
        **overrides,
    }
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*loupe_command(), "gateway", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}", log_path


def test_a_review_request_over_sasl_ssl_is_claimed_and_decided(
    secured: StackInfo, secured_prefix: str, tmp_path: Path
) -> None:
    users = UsersFile(tmp_path / "users.json")
    users.add(User(id="ann", role=Role.REVIEWER, tier=Tier.REVIEWER, projects=["*"]))
    token, _, _ = users.issue_token("ann", PEPPER)
    auth = {"Authorization": f"Bearer {token}"}
    produce(
        secured.kafka,
        f"{secured_prefix}{REVIEW_REQUESTS.name}",
        [("item-1", request_for("item-1"))],
    )
    process, url, log_path = _start(secured, secured_prefix, tmp_path)
    try:

        def claimed() -> httpx.Response | None:
            assert process.poll() is None, log_path.read_text()[-4_000:]
            try:
                response = httpx.post(f"{url}/v1/tasks/claim", headers=auth, timeout=5)
            except httpx.HTTPError:
                return None
            return response if response.status_code == 200 else None

        # the gateway read the request over SASL_SSL and queued it in Redis over TLS
        claim = wait_for(claimed, 120, "the request to become a claimable task")
        task = claim.json()["task"]
        assert task["item_id"] == "item-1"
        decision = httpx.post(
            f"{url}/v1/tasks/{task['task_id']}/decision",
            headers=auth,
            json={
                "action": "correct",
                "label": {"kind": "classification", "label": "dog"},
                "idempotency_key": "k1",
            },
            timeout=30,
        )
        assert decision.status_code == 200, decision.text  # Kafka acknowledged it
        records = read_all(secured.kafka, f"{secured_prefix}{REVIEW_DECISIONS.name}", expect=1)
        decisions = [decode(ReviewDecision, record.value()) for record in records]
        assert [d.decision_id for d in decisions] == [decision.json()["decision_id"]]
        with redis.Redis.from_url(**redis_kwargs(secured.redis), socket_timeout=5) as client:
            assert client.exists(f"{GATEWAY_REDIS_PREFIX}{secured_prefix}ready")
    finally:
        process.terminate()
        process.wait(30)
    log = log_path.read_text()
    gateway = secured.services[Service.GATEWAY]
    for secret in (secured.kafka.password, gateway.password, secured.redis.password):
        assert secret is not None and secret.get_secret_value() not in log


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("LOUPE_KAFKA_PASSWORD", "Kafka refused the credentials"),
        ("LOUPE_REDIS_PASSWORD", "Redis refused the credentials"),
    ],
)
def test_a_gateway_with_a_wrong_password_refuses_to_start(
    secured: StackInfo, secured_prefix: str, tmp_path: Path, variable: str, message: str
) -> None:
    process, _, log_path = _start(
        secured, secured_prefix, tmp_path, **{variable: "not-the-password"}
    )
    try:
        code = process.wait(REFUSAL_BOUND_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        pytest.fail(f"a refused gateway still runs after {REFUSAL_BOUND_S:.0f}s")
    log = log_path.read_text()
    assert code != 0, log
    assert message in log and variable in log, log
    assert "Traceback" not in log, log
    assert "not-the-password" not in log
    gateway = secured.services[Service.GATEWAY]
    for secret in (secured.kafka.password, gateway.password, secured.redis.password):
        assert secret is not None and secret.get_secret_value() not in log


async def test_an_embedded_gateway_with_a_wrong_redis_password_does_not_start(
    secured: StackInfo, secured_prefix: str, tmp_path: Path
) -> None:
    wrong = secured.redis_services[Service.GATEWAY].model_copy(
        update={"password": SecretStr("not-the-password")}
    )
    settings = GatewaySettings(
        kafka=secured.services[Service.GATEWAY],
        redis=wrong,
        topic_prefix=secured_prefix,
        redis_prefix=f"{GATEWAY_REDIS_PREFIX}{secured_prefix}",
        users_file=tmp_path / "users.json",
    )
    app = create_app(settings)
    with pytest.raises(RedisAccessError, match="LOUPE_REDIS_PASSWORD"):
        async with app.router.lifespan_context(app):
            pytest.fail("the gateway started")
