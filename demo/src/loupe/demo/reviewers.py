"""Simulated reviewers working through the gateway's HTTP API exactly as the web UI does.

Each reviewer loops: claim a task → look at the item → think (compressed simulated time, with
heartbeats when the think time nears the lease) → post a decision with an idempotency key
(retried with the same key on transient failures) → claim again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from loupe.demo.crowd import ReviewerProfile, decide

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
_DECISION_ATTEMPTS = 6


@dataclass
class ReviewerStats:
    """What one simulated reviewer did (for the live display)."""

    claims: int = 0
    decisions: int = 0
    lost_leases: int = 0
    errors: int = 0
    last_error: str = ""


@dataclass
class Crowd:
    """The running crowd: profiles with their tokens and live stats."""

    members: list[tuple[ReviewerProfile, str]]
    stats: dict[str, ReviewerStats] = field(default_factory=dict)


class GatewayError(RuntimeError):
    """The gateway answered with an error the reviewer cannot recover from."""


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, waking early when ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise GatewayError(f"{what}: HTTP {response.status_code} {response.text[:300]}")


@dataclass
class SimulatedReviewer:
    """One simulated person with their API token, working until told to stop."""

    client: httpx.AsyncClient
    profile: ReviewerProfile
    token: str
    truth: Mapping[str, str]
    project: str
    time_scale: float
    """Real seconds per simulated second of think time."""
    stop: asyncio.Event
    stats: ReviewerStats
    rng: random.Random

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def run(self) -> None:
        """Claim, decide, repeat until ``stop`` is set; errors are counted, never fatal."""
        idle = 0.2
        while not self.stop.is_set():
            try:
                claimed = await self._claim()
                if claimed is None:
                    await _sleep(self.stop, idle)
                    idle = min(idle * 1.5, 1.0)
                    continue
                idle = 0.2
                self.stats.claims += 1
                await self._work_on(claimed)
            except (httpx.HTTPError, GatewayError) as exc:
                self.stats.errors += 1
                self.stats.last_error = str(exc)[:200] or type(exc).__name__
                log.warning("reviewer %s: %s", self.profile.id, self.stats.last_error)
                await _sleep(self.stop, 1.0)

    async def _claim(self) -> dict[str, Any] | None:
        response = await self.client.post(
            "/v1/tasks/claim", json={"project": self.project}, headers=self._headers
        )
        if response.status_code == 204 or response.status_code in RETRYABLE_STATUS:
            return None
        _raise_for(response, "claim")
        body: dict[str, Any] = response.json()
        return body

    async def _work_on(self, claimed: dict[str, Any]) -> None:
        task = claimed["task"]
        task_id = task["task_id"]
        item_id = task["item_id"]
        if item_id not in self.truth:
            # Not one of the demo's items (e.g. a person's own test data): leave it to others.
            await self.client.post(f"/v1/tasks/{task_id}/release", headers=self._headers)
            return
        answer = decide(
            self.profile,
            truth=self.truth[item_id],
            suggested=task["prediction"]["label"]["label"],
            allowed=list(task["allowed_classes"]),
            rng=self.rng,
        )
        lease_seconds = float(claimed["lease"]["seconds"])
        if not await self._think(task_id, answer.seconds * self.time_scale, lease_seconds):
            self.stats.lost_leases += 1
            return
        body = {
            "action": answer.action.value,
            "label": {"kind": "classification", "label": answer.label},
            "seconds_spent": answer.seconds,
            "idempotency_key": f"{self.profile.id}-{task_id}",
        }
        await self._decide(task_id, body)

    async def _decide(self, task_id: str, body: dict[str, Any]) -> None:
        """Post the decision; retry transient failures with the same idempotency key."""
        for attempt in range(_DECISION_ATTEMPTS):
            try:
                response = await self.client.post(
                    f"/v1/tasks/{task_id}/decision", json=body, headers=self._headers
                )
            except httpx.TransportError:
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            if response.status_code == 200:
                self.stats.decisions += 1
                return
            if response.status_code == 409:
                self.stats.lost_leases += 1
                return
            if response.status_code not in RETRYABLE_STATUS:
                _raise_for(response, "decision")
            await asyncio.sleep(0.2 * (attempt + 1))
        raise GatewayError(f"decision on {task_id} not accepted after {_DECISION_ATTEMPTS} tries")

    async def _think(self, task_id: str, seconds: float, lease_seconds: float) -> bool:
        """Spend ``seconds`` on the item, heartbeating every third of the lease.

        Returns False when the lease was lost or the demo is stopping (the task is released).
        """
        interval = max(lease_seconds / 3, 0.5)
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            await _sleep(self.stop, min(remaining, interval))
            if self.stop.is_set():
                await self.client.post(f"/v1/tasks/{task_id}/release", headers=self._headers)
                return False
            if deadline - time.monotonic() > 0:
                response = await self.client.post(
                    f"/v1/tasks/{task_id}/heartbeat", headers=self._headers
                )
                if response.status_code == 409:
                    return False
                _raise_for(response, "heartbeat")
        return True


async def run_crowd(
    base_url: str,
    crowd: Crowd,
    *,
    truth: Mapping[str, str],
    project: str,
    time_scale: float,
    stop: asyncio.Event,
    seed: int,
) -> None:
    """Run every simulated reviewer concurrently until ``stop`` is set."""
    limits = httpx.Limits(max_connections=len(crowd.members) * 2)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:
        reviewers = [
            SimulatedReviewer(
                client=client,
                profile=profile,
                token=token,
                truth=truth,
                project=project,
                time_scale=time_scale,
                stop=stop,
                stats=crowd.stats.setdefault(profile.id, ReviewerStats()),
                rng=random.Random(f"{seed}-{profile.id}"),  # noqa: S311  (simulation, not crypto)
            )
            for profile, token in crowd.members
        ]
        await asyncio.gather(*(reviewer.run() for reviewer in reviewers))
