"""``review.max_leases_per_person``: how many tasks one person may hold leased at once."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from loupe.schemas import ReviewPolicy
from loupe.schemas.policy import DEFAULT_MAX_LEASES_PER_PERSON, MAX_LEASES_PER_PERSON


def test_the_default_leaves_a_person_a_few_tasks_at_once() -> None:
    assert ReviewPolicy().max_leases_per_person == DEFAULT_MAX_LEASES_PER_PERSON == 5


@pytest.mark.parametrize("cap", [1, 20, MAX_LEASES_PER_PERSON])
def test_a_cap_within_bounds_is_kept(cap: int) -> None:
    assert ReviewPolicy(max_leases_per_person=cap).max_leases_per_person == cap


@pytest.mark.parametrize("cap", [0, -1, MAX_LEASES_PER_PERSON + 1])
def test_a_cap_outside_bounds_is_refused(cap: int) -> None:
    with pytest.raises(ValidationError):
        ReviewPolicy(max_leases_per_person=cap)


def test_a_policy_stored_before_the_field_existed_gets_the_default() -> None:
    raw = ReviewPolicy().model_dump(mode="json")
    del raw["max_leases_per_person"]
    old = ReviewPolicy.model_validate_json(json.dumps(raw))
    assert old.max_leases_per_person == DEFAULT_MAX_LEASES_PER_PERSON
