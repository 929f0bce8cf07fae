"""The per-person lease cap (issue 12, point 4): a person holds at most their projects'
``review.max_leases_per_person`` tasks at once, even with concurrent claims; a decided, released
or expired lease frees a place; each project's cap applies to its own tasks, counting the
person's leases in every project. Real gateway, Redis and Kafka."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from harness.kafka import produce
from loupe.gateway.logic import Role
from loupe.schemas import LabelSchema, ProjectPolicy, ReviewPolicy
from loupe.schemas.policy import DEFAULT_MAX_LEASES_PER_PERSON
from loupe.schemas.topics import REVIEW_REQUESTS

CAP = 3
CLAIMS = 10


def _policy(project: str, cap: int) -> dict[str, object]:
    policy = ProjectPolicy(
        project=project,
        label_schema=LabelSchema(id="animals", version=1, classes=["cat", "dog"]),
        review=ReviewPolicy(max_leases_per_person=cap),
    )
    return {"policy": policy.model_dump(mode="json")}


async def test_a_person_at_the_cap_claims_nothing_more_until_a_lease_ends(
    gateway, kafka_bootstrap, topic_prefix, make_request
):
    gateway.add_user("lee", Role.LEAD)
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("bob", Role.REVIEWER)
    answer = await gateway.call("PUT", "/v1/policy/demo", "lee", json=_policy("demo", CAP))
    assert answer.status_code == 200, answer.text
    topic = f"{topic_prefix}{REVIEW_REQUESTS.name}"
    demo = [make_request(f"cap-{i}", age_s=100 - i) for i in range(CLAIMS + 4)]
    produce(kafka_bootstrap, topic, [(r.item_id, r) for r in demo])

    async def queued(expected: int):
        async def check() -> bool:
            return await gateway.queue_size("bob", "reviewer") >= expected

        return check

    await gateway.wait_for(await queued(len(demo)), what="demo tasks queued")

    async def claim(user: str = "ann"):
        return await gateway.call("POST", "/v1/tasks/claim", user)

    # concurrent claims (tabs, a script): the cap holds, the others are told why
    answers = await asyncio.gather(*(claim() for _ in range(CLAIMS)))
    assert sorted(a.status_code for a in answers) == [200] * CAP + [409] * (CLAIMS - CAP)
    held = [a.json()["task"]["task_id"] for a in answers if a.status_code == 200]
    refused = next(a for a in answers if a.status_code == 409).json()["error"]
    assert refused["code"] == "lease_limit"
    assert f"at most {CAP}" in refused["message"]
    assert refused["details"] == {"cap": CAP, "held": CAP}
    assert len((await gateway.call("GET", "/v1/me", "ann")).json()["leases"]) == CAP

    # another person is not affected
    assert (await claim("bob")).status_code == 200

    # a decision frees one place, and one only
    decided = await gateway.call(
        "POST",
        f"/v1/tasks/{held.pop()}/decision",
        "ann",
        json={"action": "approve", "label": {"kind": "classification", "label": "dog"}},
        headers={"Idempotency-Key": "cap-decision"},
    )
    assert decided.status_code == 200, decided.text
    again = await claim()
    assert again.status_code == 200, again.text
    held.append(again.json()["task"]["task_id"])
    assert (await claim()).status_code == 409

    # so does a release
    assert (await gateway.call("POST", f"/v1/tasks/{held.pop()}/release", "ann")).status_code == 200
    again = await claim()
    assert again.status_code == 200, again.text
    held.append(again.json()["task"]["task_id"])
    assert (await claim()).status_code == 409

    # a lease past its expiry counts nothing, even before the sweep returned it (its entry in
    # the sweep's index still says later, so the sweep leaves it where it is)
    client = aioredis.Redis.from_url(gateway.settings.redis_url)
    try:
        p = gateway.settings.redis_prefix
        expired = held.pop()
        lease_id = (await client.hget(f"{p}holders:{expired}", "ann")).decode().split("|")[0]
        await client.hset(f"{p}holders:{expired}", "ann", f"{lease_id}|1")
        assert await client.sismember(f"{p}mine:ann", expired)
    finally:
        await client.aclose()
    again = await claim()
    assert again.status_code == 200, again.text
    assert (await claim()).status_code == 409

    # a project without a policy has the default cap, for its own tasks: at 3 leases, ann may
    # still take 'other' tasks (cap 5) but no 'demo' one (cap 3)
    other = [make_request(f"oth-{i}", project="other") for i in range(3)]
    produce(kafka_bootstrap, topic, [(r.item_id, r) for r in other])
    # six demo tasks are out of the queue: ann's decided one, her three live leases and the
    # expired one, and bob's
    await gateway.wait_for(await queued(len(demo) - 6 + len(other)), what="other tasks queued")
    for _ in range(DEFAULT_MAX_LEASES_PER_PERSON - CAP):
        taken = await claim()
        assert taken.status_code == 200, taken.text
        assert taken.json()["task"]["project"] == "other"
    refused = (await claim()).json()["error"]
    assert refused["code"] == "lease_limit"
    assert refused["details"] == {
        "cap": DEFAULT_MAX_LEASES_PER_PERSON,
        "held": DEFAULT_MAX_LEASES_PER_PERSON,
    }
