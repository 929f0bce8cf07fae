"""Glue between the aggregated spot-check evidence, the policy book and the controller (pure)."""

from __future__ import annotations

from datetime import datetime

from loupe.metrics.aggregate import MetricsState
from loupe.metrics.controller import ControllerConfig, ModelView, decide
from loupe.metrics.policies import adjusted
from loupe.schemas import AuditEvent, PolicyUpdate


def project_models(state: MetricsState, project: str) -> list[str]:
    """Models of a project that have spot-check samples."""
    return sorted({key[1] for key in state.keys("spot_samples") if key[0] == project})


def evaluate(
    state: MetricsState, config: ControllerConfig, project: str, at: datetime
) -> tuple[PolicyUpdate, AuditEvent] | None:
    """The audited policy update the controller wants for a project now, if any.

    Evidence counts only spot checks routed under the current knobs (policy version at or after
    the last knob change). Projects without a known policy are left alone.
    """
    entry = state.policies.projects.get(project)
    if entry is None:
        return None
    since = entry.knobs_version
    models = {
        model: ModelView(
            threshold=state.policies.threshold(project, model),
            evidence=state.spot_check(project, model, since_version=since),
            floor=state.policies.floor(project, model),
        )
        for model in project_models(state, project)
    }
    if not models:
        return None
    adjustment = decide(config, entry.update.policy.review.spot_check_rate, models)
    if adjustment is None:
        return None
    return adjusted(entry.update, adjustment, at)


def apply_locally(state: MetricsState, update: PolicyUpdate, audit: AuditEvent) -> None:
    """Apply our own published change at once (its echo from Kafka is then a no-op)."""
    state.on_policy(update)
    state.on_audit(audit)
