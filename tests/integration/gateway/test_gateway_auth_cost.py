"""What an unknown token costs in Redis (real Redis, counted with MONITOR): a spray of made-up
tokens must not cost several round trips each now that a miss has to tell "unknown" from
"users not reloaded yet" (issue 19 review: 4 GETs and 2 EXISTS per unknown token)."""

from __future__ import annotations

import asyncio
import threading
import uuid

import redis

SPRAY = 10


def _monitor(redis_url: str, marker: str, seen: list[tuple[str, str]], up: threading.Event) -> None:
    """Collect (client, command) pairs until the ``ECHO marker`` command shows up."""
    client = redis.Redis.from_url(redis_url)
    with client.monitor() as monitor:
        up.set()
        for entry in monitor.listen():
            command = str(entry["command"])
            if marker in command:
                break
            seen.append((f"{entry.get('client_address')}:{entry.get('client_port')}", command))
    client.close()


async def test_an_unknown_token_costs_one_redis_command(launch_gateway, redis_url) -> None:
    async with launch_gateway(sweep_interval_s=4.0) as gateway:
        prefix = gateway.settings.redis_prefix
        warm = await gateway.client.get("/v1/me", headers={"Authorization": "Bearer lp_warm"})
        assert warm.status_code == 401  # steady state: the working set is ready

        marker, seen, up = f"end-{uuid.uuid4().hex}", [], threading.Event()
        watcher = threading.Thread(target=_monitor, args=(redis_url, marker, seen, up))
        watcher.start()
        assert await asyncio.to_thread(up.wait, 10)
        await asyncio.sleep(0.2)  # MONITOR is registered once the server answered it
        for n in range(SPRAY):
            headers = {"Authorization": f"Bearer lp_made-up-{n}"}
            response = await gateway.client.get("/v1/me", headers=headers)
            assert response.status_code == 401, response.text
        sentinel = redis.Redis.from_url(redis_url)
        sentinel.echo(marker)
        sentinel.close()
        await asyncio.to_thread(watcher.join, 10)

    lookups = {client for client, command in seen if f"{prefix}tok:" in command}
    assert lookups, seen
    auth = [
        command
        for client, command in seen
        if client in lookups
        and any(f"{prefix}{key}" in command for key in ("tok:", "user:", "ready"))
    ]
    assert len(auth) == SPRAY, auth
