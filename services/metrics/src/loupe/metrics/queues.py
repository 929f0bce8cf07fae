"""Queue depth and oldest-task age per project and tier, read from the gateway's Redis.

Contract (the gateway's working set, key names in ``loupe.runtime.gateway_queues``): with the
gateway's key prefix ``<p>`` (default ``loupe:gw:``), the queues of tasks with a free review slot
at tier rank ``rank`` (0 annotator … 3 lead) are listed per project in ``QUEUE_INDEX``, the
projects in ``QUEUE_PROJECTS``, and the task hash ``TASK`` has the fields ``project``, ``status``
(only ``open`` counts) and ``created_ms`` (epoch millis). Only reads; nothing here writes to the
gateway's keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from loupe.runtime.gateway_queues import (
    queue_index_key,
    queue_key,
    queue_projects_key,
    task_key,
)
from loupe.schemas import Tier

TIERS = (Tier.ANNOTATOR, Tier.REVIEWER, Tier.SENIOR, Tier.LEAD)
_BATCH = 1_000


@dataclass(frozen=True)
class QueuedTask:
    """One queued task as the metrics need it."""

    tier: str
    project: str
    status: str
    created_ms: int | None


@dataclass
class QueueStats:
    """Depth and oldest age per (project, tier); ``up`` is False when Redis could not be read."""

    depth: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_age_s: dict[tuple[str, str], float] = field(default_factory=dict)
    up: bool = False
    truncated: bool = False


def summarise(tasks: Iterable[QueuedTask], now_ms: int, truncated: bool = False) -> QueueStats:
    """Count open tasks per (project, tier) and the age of the oldest one."""
    stats = QueueStats(up=True, truncated=truncated)
    for task in tasks:
        if task.status != "open":
            continue
        key = (task.project, task.tier)
        stats.depth[key] = stats.depth.get(key, 0) + 1
        if task.created_ms is not None:
            age = max(0.0, (now_ms - task.created_ms) / 1000.0)
            stats.oldest_age_s[key] = max(stats.oldest_age_s.get(key, 0.0), age)
    return stats


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _millis(value: bytes | str | None) -> int | None:
    text = _text(value)
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _tier_ids(
    client: redis.Redis, prefix: str, rank: int, scan_limit: int
) -> tuple[list[str], bool]:
    """The ids queued at a rank (at most ``scan_limit``) and whether there were more."""
    ids: list[str] = []
    projects: set[bytes | str] = client.smembers(queue_projects_key(prefix, rank))
    for project in sorted(_text(name) or "" for name in projects):
        queues: set[bytes | str] = client.smembers(queue_index_key(prefix, rank, project))
        for queue in sorted(_text(name) or "" for name in queues):
            left = scan_limit - len(ids)
            key = queue_key(prefix, rank, project, queue)
            some: list[bytes | str] = client.zrange(key, 0, left)  # type: ignore[assignment]
            ids += [_text(task_id) or "" for task_id in some[:left]]
            if len(some) > left:
                return ids, True
    return ids, False


def read_queued(client: redis.Redis, prefix: str, scan_limit: int) -> tuple[list[QueuedTask], bool]:
    """Every queued task (at most ``scan_limit`` per tier) and whether any tier was cut short."""
    tasks: list[QueuedTask] = []
    truncated = False
    for tier in TIERS:
        ids, cut = _tier_ids(client, prefix, tier.rank, scan_limit)
        truncated = truncated or cut
        for start in range(0, len(ids), _BATCH):
            pipe = client.pipeline(transaction=False)
            for task_id in ids[start : start + _BATCH]:
                pipe.hmget(task_key(prefix, task_id), "project", "status", "created_ms")
            for project, status, created in pipe.execute():
                if project is None:
                    continue
                tasks.append(
                    QueuedTask(
                        tier=tier.value,
                        project=_text(project) or "unknown",
                        status=_text(status) or "",
                        created_ms=_millis(created),
                    )
                )
    return tasks, truncated
