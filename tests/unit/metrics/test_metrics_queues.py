"""Queue depth and oldest age from the gateway's queued tasks."""

from __future__ import annotations

from loupe.metrics.queues import QueuedTask, summarise


def test_counts_open_tasks_per_project_and_tier_with_oldest_age() -> None:
    now = 1_000_000
    stats = summarise(
        [
            QueuedTask("reviewer", "a", "open", now - 5_000),
            QueuedTask("reviewer", "a", "open", now - 65_000),
            QueuedTask("reviewer", "a", "complete", now - 900_000),
            QueuedTask("senior", "a", "open", None),
            QueuedTask("reviewer", "b", "open", now + 1_000),
        ],
        now,
    )
    assert stats.up and not stats.truncated
    assert stats.depth == {("a", "reviewer"): 2, ("a", "senior"): 1, ("b", "reviewer"): 1}
    assert stats.oldest_age_s == {("a", "reviewer"): 65.0, ("b", "reviewer"): 0.0}
