"""Where the reviewer gateway keeps its review queues in Redis: the one home of these key names
(the gateway writes them, in Lua built from these templates; the metrics service reads them).

A tier's queue is split by project and by required-skill set, and each of those in two: ``f``
(fresh: nobody holds, voted on or skipped the task, so anyone who may see the queue may take its
head) and ``t`` (touched). Keys are relative to the gateway's prefix (``GATEWAY_REDIS_PREFIX``).
"""

from __future__ import annotations

QUEUE_PROJECTS = "qp:{rank}"
"""Set of the projects with a non-empty queue at tier rank ``rank`` (0 annotator … 3 lead)."""

QUEUE_INDEX = "qx:{rank}:{project}"
"""Set of a project's non-empty queues at a rank, each named by its kind and its tasks' skills
as a sorted JSON list (the task hash's ``skills``): ``f[]``, ``t["de","medical"]``."""

QUEUE = "q:{rank}:{project}:{queue}"
"""Sorted set of the ids of the tasks with a free slot in that queue, by queue score (lowest
first). Project names hold no ``:``, so the name is unambiguous."""

TASK = "t:{task_id}"
"""Hash of one task: ``project``, ``status`` (``open`` counts as queued), ``created_ms``..."""


def queue_projects_key(prefix: str, rank: int) -> str:
    """``QUEUE_PROJECTS`` under ``prefix``."""
    return prefix + QUEUE_PROJECTS.format(rank=rank)


def queue_index_key(prefix: str, rank: int, project: str) -> str:
    """``QUEUE_INDEX`` under ``prefix``."""
    return prefix + QUEUE_INDEX.format(rank=rank, project=project)


def queue_key(prefix: str, rank: int, project: str, queue: str) -> str:
    """``QUEUE`` under ``prefix`` (``queue``: a member of the project's ``QUEUE_INDEX``)."""
    return prefix + QUEUE.format(rank=rank, project=project, queue=queue)


def task_key(prefix: str, task_id: str) -> str:
    """``TASK`` under ``prefix``."""
    return prefix + TASK.format(task_id=task_id)
