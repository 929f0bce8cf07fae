"""The adaptive controller: decisions, limits, and no oscillation on simulated error streams."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from loupe.metrics.controller import ControllerConfig, Direction, ModelView, decide
from loupe.metrics.stats import wilson

CONFIG = ControllerConfig()


def view(errors: int, n: int, threshold: float = 0.8, floor: float | None = None) -> ModelView:
    return ModelView(threshold=threshold, evidence=wilson(errors, n), floor=floor)


def test_raises_when_lower_bound_above_target() -> None:
    change = decide(CONFIG, 0.05, {"m": view(20, 100)})
    assert change is not None and change.direction is Direction.RAISE
    assert change.spot_check_rate == (0.05, 0.1)
    assert change.thresholds == {"m": (0.8, 0.85)}
    assert change.raised_from == {"m": 0.8}
    assert "lower bound above target 0.050" in change.reason and "n=100" in change.reason


def test_holds_inside_the_band_and_without_enough_evidence() -> None:
    assert decide(CONFIG, 0.05, {"m": view(5, 100)}) is None  # interval straddles the target
    assert decide(CONFIG, 0.05, {"m": view(10, 20)}) is None  # too few samples to raise
    assert decide(CONFIG, 0.05, {"m": view(0, 100)}) is None  # too few samples to lower
    assert decide(CONFIG, 0.05, {}) is None


def test_lowers_slowly_when_upper_bound_clearly_below_target() -> None:
    change = decide(CONFIG, 0.1, {"m": view(1, 400)})
    assert change is not None and change.direction is Direction.LOWER
    assert change.spot_check_rate == (0.1, pytest.approx(0.08))
    assert change.thresholds == {"m": (0.8, 0.79)}


def test_never_lowers_a_threshold_it_had_to_raise() -> None:
    change = decide(CONFIG, 0.1, {"m": view(1, 400, threshold=0.85, floor=0.8)})
    assert change is not None and change.thresholds == {}
    assert change.spot_check_rate[1] < 0.1


def test_one_bad_model_blocks_lowering_and_raises_only_its_threshold() -> None:
    models = {"good": view(0, 400), "bad": view(30, 100)}
    change = decide(CONFIG, 0.05, models)
    assert change is not None and change.direction is Direction.RAISE
    assert set(change.thresholds) == {"bad"}
    straddling = {"good": view(0, 400), "unsure": view(4, 100)}
    assert decide(CONFIG, 0.05, straddling) is None


def test_respects_limits() -> None:
    at_max = decide(CONFIG, 0.5, {"m": view(50, 100, threshold=0.99)})
    assert at_max is None
    at_min = decide(CONFIG, 0.01, {"m": view(0, 1000, threshold=0.5)})
    assert at_min is None
    only_rate = ControllerConfig(adjust_threshold=False)
    change = decide(only_rate, 0.05, {"m": view(20, 100)})
    assert change is not None and change.thresholds == {} and change.spot_check_rate[1] == 0.1


def test_never_moves_a_knob_the_wrong_way_when_a_person_set_it_beyond_the_limits() -> None:
    raise_ = decide(CONFIG, 0.8, {"m": view(50, 100, threshold=0.8)})
    assert raise_ is not None and raise_.spot_check_rate == (0.8, 0.8)  # not cut to the max
    assert raise_.thresholds == {"m": (0.8, 0.85)}
    assert decide(CONFIG, 0.8, {"m": view(50, 100, threshold=0.995)}) is None
    lower = decide(CONFIG, 0.001, {"m": view(0, 1000, threshold=0.3)})
    assert lower is None  # rate below min and threshold below min: nothing to lower


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="target_error"):
        ControllerConfig(target_error=0.0)
    with pytest.raises(ValueError, match="threshold_down_step"):
        ControllerConfig(threshold_down_step=0.1, threshold_up_step=0.05)
    with pytest.raises(ValueError, match="min_samples"):
        ControllerConfig(min_samples_raise=300, min_samples_lower=200)


@dataclass
class Run:
    """A closed-loop simulation: the knobs the controller sets decide the next samples."""

    rate: float = 0.05
    threshold: float = 0.8
    floor: float | None = None
    errors: int = 0
    samples: int = 0
    history: list[Direction] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)

    @property
    def reversals(self) -> int:
        return sum(1 for a, b in zip(self.history, self.history[1:], strict=False) if a != b)


def simulate(
    error_of: Callable[[float, int], float],
    *,
    steps: int = 400,
    per_step: int = 25,
    seed: int = 0,
    config: ControllerConfig = CONFIG,
) -> Run:
    """Each step draws spot-check samples at the current threshold, then asks the controller."""
    rng = random.Random(seed)
    run = Run()
    for step in range(steps):
        p = error_of(run.threshold, step)
        run.errors += sum(rng.random() < p for _ in range(per_step))
        run.samples += per_step
        model = ModelView(run.threshold, wilson(run.errors, run.samples), run.floor)
        change = decide(config, run.rate, {"m": model})
        run.thresholds.append(run.threshold)
        if change is None:
            continue
        run.history.append(change.direction)
        run.rate = change.spot_check_rate[1]
        run.threshold = change.thresholds.get("m", (run.threshold, run.threshold))[1]
        if "m" in change.raised_from:
            run.floor = change.raised_from["m"]
        run.errors = run.samples = 0  # evidence restarts under the new knobs
    return run


def test_persistently_bad_model_only_ever_raises_up_to_the_limits() -> None:
    run = simulate(lambda _t, _s: 0.15)
    assert run.history and set(run.history) == {Direction.RAISE}
    assert run.rate == CONFIG.spot_check_max and run.threshold == CONFIG.threshold_max


def test_persistently_good_model_only_ever_lowers_down_to_the_limits() -> None:
    run = simulate(lambda _t, _s: 0.005, steps=2000)
    assert run.history and set(run.history) == {Direction.LOWER}
    assert run.rate == CONFIG.spot_check_min


def test_threshold_dependent_error_settles_without_oscillating() -> None:
    # bad below 0.9, good from 0.9: the controller climbs to 0.9, then only eases the rate
    run = simulate(lambda t, _s: 0.2 if t < 0.9 - 1e-9 else 0.01, steps=1500)
    assert run.reversals <= 1
    assert min(run.thresholds[run.thresholds.index(0.9) :]) == 0.9
    assert run.history[-1] is Direction.LOWER
    tail = run.thresholds[-500:]
    assert len(set(tail)) == 1


def test_a_real_change_in_error_gets_one_reversal() -> None:
    run = simulate(lambda _t, step: 0.005 if step < 600 else 0.2, steps=1200)
    assert Direction.LOWER in run.history and run.history[-1] is Direction.RAISE
    assert run.reversals == 1


@pytest.mark.parametrize("p", [0.0, 0.01, 0.02, 0.03, 0.07, 0.1, 0.2, 0.3])
def test_stationary_streams_rarely_reverse_and_never_far_from_the_target(p: float) -> None:
    """A statistical property, measured over 100 fixed seeds per error rate.

    The raise and lower tests are 95 % intervals looked at every step, so a stream whose error
    stays near the target can see one false raise among its lowerings (about 1 % of runs at
    p = 0.02 and 2 % at 0.03 against a target of 0.05; hypothesis found such a seed, so the old
    "never more than one reversal" claim was false). Far from the target none reverses.
    """
    runs = [simulate(lambda _t, _s: p, steps=300, seed=seed) for seed in range(100)]
    oscillating = [seed for seed, run in enumerate(runs) if run.reversals > 1]
    if abs(p - CONFIG.target_error) < 0.035:
        assert len(oscillating) <= 4, (p, oscillating)
    else:
        assert not any(run.reversals for run in runs), p
