"""The adaptive review controller: pure decisions, no I/O.

Per project, each model's spot-check error estimate (a Wilson interval over samples routed under
the current knobs) is compared with the target error:

* **raise** when some model's *lower* bound is above the target: multiply the project's
  spot-check rate by ``spot_up_factor`` and raise that model's confidence threshold by
  ``threshold_up_step`` (within limits);
* **lower** (slowly) when every model with evidence has its *upper* bound below
  ``target * lower_below`` (a dead band under the target) and ``min_samples_lower`` samples
  (more than ``min_samples_raise``): multiply the spot-check rate by ``spot_down_factor`` and
  lower thresholds by the smaller ``threshold_down_step``;
* otherwise hold.

Why it does not oscillate: the raise and lower conditions are separated by a dead band, so
repeated looks at a stationary stream cannot trigger both; each change restarts the evidence;
lowering needs more evidence and moves in smaller steps; and a model's threshold is never
lowered again after the controller had to raise it (its ``floor``) until a person changes the
knobs. On a stationary error stream the knobs change direction at most once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from loupe.metrics.stats import Interval


class Direction(StrEnum):
    """Which way a change moves the review effort."""

    RAISE = "raise"
    LOWER = "lower"


@dataclass(frozen=True)
class ControllerConfig:
    """Targets, evidence requirements, step sizes and hard limits."""

    target_error: float = 0.05
    lower_below: float = 0.8
    """Lower only when the upper bound is below ``target_error * lower_below``."""
    min_samples_raise: int = 50
    min_samples_lower: int = 200
    spot_check_min: float = 0.01
    spot_check_max: float = 0.5
    spot_up_factor: float = 2.0
    spot_down_factor: float = 0.8
    threshold_min: float = 0.5
    threshold_max: float = 0.99
    threshold_up_step: float = 0.05
    threshold_down_step: float = 0.01
    adjust_spot_check: bool = True
    adjust_threshold: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.target_error < 1.0:
            raise ValueError("target_error must be in (0, 1)")
        if not 0.0 < self.lower_below <= 1.0:
            raise ValueError("lower_below must be in (0, 1]")
        if not 0.0 <= self.spot_check_min <= self.spot_check_max <= 1.0:
            raise ValueError("need 0 <= spot_check_min <= spot_check_max <= 1")
        if not 0.0 <= self.threshold_min <= self.threshold_max <= 1.0:
            raise ValueError("need 0 <= threshold_min <= threshold_max <= 1")
        if self.spot_up_factor <= 1.0 or not 0.0 < self.spot_down_factor < 1.0:
            raise ValueError("need spot_up_factor > 1 and 0 < spot_down_factor < 1")
        if not 0.0 < self.threshold_down_step <= self.threshold_up_step:
            raise ValueError("need 0 < threshold_down_step <= threshold_up_step")
        if not 1 <= self.min_samples_raise <= self.min_samples_lower:
            raise ValueError("need 1 <= min_samples_raise <= min_samples_lower")


@dataclass(frozen=True)
class ModelView:
    """What the controller knows about one model of a project."""

    threshold: float
    evidence: Interval
    floor: float | None = None
    """Threshold the controller last had to raise from; while set, the threshold is not lowered."""


@dataclass(frozen=True)
class Adjustment:
    """A decided change to one project's knobs, with a human-readable reason."""

    direction: Direction
    spot_check_rate: tuple[float, float]
    thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)
    raised_from: dict[str, float] = field(default_factory=dict)
    reason: str = ""


def _verdict(config: ControllerConfig, evidence: Interval) -> Direction | None:
    if evidence.n >= config.min_samples_raise and evidence.lower > config.target_error:
        return Direction.RAISE
    floor = config.target_error * config.lower_below
    if evidence.n >= config.min_samples_lower and evidence.upper < floor:
        return Direction.LOWER
    return None


def _describe(name: str, evidence: Interval) -> str:
    return (
        f"{name}: spot-check error {evidence.estimate:.3f} "
        f"[{evidence.lower:.3f}, {evidence.upper:.3f}] n={evidence.n}"
    )


def decide(
    config: ControllerConfig, spot_check_rate: float, models: dict[str, ModelView]
) -> Adjustment | None:
    """The change to make to a project's knobs now, or None to hold."""
    verdicts = {name: _verdict(config, view.evidence) for name, view in models.items()}
    raising = sorted(name for name, verdict in verdicts.items() if verdict is Direction.RAISE)
    target = f"target {config.target_error:.3f}"
    if raising:
        new_rate = spot_check_rate
        if config.adjust_spot_check:
            raised = max(config.spot_check_min, spot_check_rate * config.spot_up_factor)
            new_rate = max(spot_check_rate, min(config.spot_check_max, raised))
        thresholds: dict[str, tuple[float, float]] = {}
        if config.adjust_threshold:
            for name in raising:
                old = models[name].threshold
                new = round(min(config.threshold_max, old + config.threshold_up_step), 6)
                if new > old:
                    thresholds[name] = (old, new)
        if new_rate <= spot_check_rate and not thresholds:
            return None
        evidence = "; ".join(_describe(name, models[name].evidence) for name in raising)
        return Adjustment(
            Direction.RAISE,
            (spot_check_rate, new_rate),
            thresholds,
            {name: models[name].threshold for name in thresholds},
            f"raise review: lower bound above {target} ({evidence})",
        )
    with_evidence = [name for name, view in models.items() if view.evidence.n > 0]
    if not with_evidence or any(verdicts[name] is not Direction.LOWER for name in with_evidence):
        return None
    new_rate = spot_check_rate
    if config.adjust_spot_check:
        new_rate = max(config.spot_check_min, spot_check_rate * config.spot_down_factor)
        new_rate = min(new_rate, spot_check_rate)
    lowered: dict[str, tuple[float, float]] = {}
    if config.adjust_threshold:
        for name in with_evidence:
            view = models[name]
            if view.floor is not None:
                continue
            new = round(max(config.threshold_min, view.threshold - config.threshold_down_step), 6)
            if new < view.threshold:
                lowered[name] = (view.threshold, new)
    if new_rate >= spot_check_rate and not lowered:
        return None
    evidence = "; ".join(_describe(name, models[name].evidence) for name in sorted(with_evidence))
    return Adjustment(
        Direction.LOWER,
        (spot_check_rate, new_rate),
        lowered,
        reason=(
            f"lower review: upper bound below {config.lower_below:.2f} x {target} ({evidence})"
        ),
    )
