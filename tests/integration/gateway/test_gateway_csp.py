"""The CSP follows the projects' policies: their ``review.media_origins``, however a policy
reached the gateway (a lead's change or ``control.policy``), and nothing else."""

from __future__ import annotations

import redis

from harness.kafka import produce
from loupe.gateway.logic import Role
from loupe.schemas import Actor, LabelSchema, PolicyUpdate, ProjectPolicy, ReviewPolicy, utcnow
from loupe.schemas.topics import CONTROL_POLICY


def _policy(project: str, origins: list[str]) -> ProjectPolicy:
    return ProjectPolicy(
        project=project,
        label_schema=LabelSchema(id="animals", version=1, classes=["cat", "dog"]),
        review=ReviewPolicy(media_origins=origins),
    )


async def test_the_csp_allows_media_from_the_projects_listed_origins_only(
    launch_gateway, kafka_bootstrap, topic_prefix, redis_url
) -> None:
    async with launch_gateway(media_origins_refresh_s=0.2) as gateway:
        gateway.add_user("lee", Role.LEAD)

        async def img_src() -> list[str]:
            csp = (await gateway.client.get("/")).headers["content-security-policy"]
            directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
            assert directives["media-src"] == directives["img-src"]
            return directives["img-src"]

        assert await img_src() == ["'self'", "data:"]

        # a lead's change, stored by the HTTP side
        body = {"policy": _policy("demo", ["https://media.example.com"]).model_dump(mode="json")}
        assert (await gateway.call("PUT", "/v1/policy/demo", "lee", json=body)).status_code == 200
        # another project's policy, applied by the consumer
        update = PolicyUpdate(
            project="other",
            version=1,
            policy=_policy("other", ["https://cdn.other.example:8443", "http://127.0.0.1:9000"]),
            changed_by=Actor(id="lee", role="lead"),
            reason="media",
            at=utcnow(),
        )
        produce(kafka_bootstrap, f"{topic_prefix}{CONTROL_POLICY.name}", [("other", update)])
        union = [
            "'self'",
            "data:",
            "http://127.0.0.1:9000",
            "https://cdn.other.example:8443",
            "https://media.example.com",
        ]

        async def listed() -> bool:
            return await img_src() == union

        await gateway.wait_for(listed, what="both projects' origins in the CSP")
        api = await gateway.call("GET", "/v1/me", "lee")
        assert (
            api.headers["content-security-policy"]
            == ((await gateway.client.get("/")).headers["content-security-policy"])
        )

        # a newer policy without origins takes the project's origins out again
        body = {"policy": _policy("demo", []).model_dump(mode="json"), "expected_version": 1}
        assert (await gateway.call("PUT", "/v1/policy/demo", "lee", json=body)).status_code == 200

        async def withdrawn() -> bool:
            return await img_src() == union[:-1]

        await gateway.wait_for(withdrawn, what="demo's origin out of the CSP")

        # Redis loses the gateway's data: the rebuild brings the origins back from control.policy
        client = redis.Redis.from_url(redis_url)
        key = f"{gateway.settings.redis_prefix}media-origins"
        client.delete(*client.keys(f"{gateway.settings.redis_prefix}*"))
        assert not client.exists(key)

        async def restored() -> bool:
            return client.hgetall(key) == {
                b"other": b"https://cdn.other.example:8443 http://127.0.0.1:9000"
            }

        await gateway.wait_for(restored, what="the rebuild writing the projects' origins")
        client.close()
        await gateway.wait_for(withdrawn, what="the origins in the CSP after the rebuild")
