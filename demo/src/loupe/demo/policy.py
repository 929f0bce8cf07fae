"""The demo project's review policy, tuned for the digits model (see docs/demo.md, "The math").

The numbers follow from the stream's make-up: the held-out class is ~10 % of the items and
nearly all model errors; with a 20 % review budget, about half of it goes to the held-out class
(caught as novel, or as low confidence when the novelty detector misses it), the rest to
low-confidence familiar digits and a small spot-check sample. Two reviewers look at every item so
that one careless reviewer cannot decide a label alone; disagreement escalates.
"""

from __future__ import annotations

from dataclasses import dataclass

from loupe.demo.model_serving import CLASSES, LABEL_SCHEMA
from loupe.schemas import (
    ConfidencePolicy,
    ConsolidationPolicy,
    LabelSchema,
    NoveltyPolicy,
    ProjectPolicy,
    ReviewPolicy,
    Tier,
)
from loupe.schemas.policy import ConsolidationMethod

PROJECT = "digits"


@dataclass(frozen=True)
class PolicyKnobs:
    """The tunable numbers of the demo policy."""

    confidence: float = 0.75
    novelty_warmup: int = 40
    """Embeddings per class before the novelty detector may flag (the stream's familiar-only
    prefix is long enough for every class to finish warming up before the held-out class
    appears)."""
    novelty_quantile: float = 0.9
    spot_check_rate: float = 0.01
    overlap: int = 2


def demo_policy(knobs: PolicyKnobs | None = None) -> ProjectPolicy:
    """The ``digits`` project's policy document."""
    knobs = knobs or PolicyKnobs()
    return ProjectPolicy(
        project=PROJECT,
        label_schema=LabelSchema(
            id=LABEL_SCHEMA.id, version=LABEL_SCHEMA.version, classes=list(CLASSES)
        ),
        confidence=ConfidencePolicy(default=knobs.confidence, margin=None),
        novelty=NoveltyPolicy(
            enabled=True,
            warmup=knobs.novelty_warmup,
            quantile=knobs.novelty_quantile,
            flag_unseen_model_versions=True,
            flag_unseen_task_types=True,
        ),
        review=ReviewPolicy(
            default_tier=Tier.REVIEWER,
            default_overlap=knobs.overlap,
            spot_check_rate=knobs.spot_check_rate,
            spot_check_salt="loupe-demo",
            rare_class_floor=0.01,
            rare_class_min_observations=500,
            show_votes=False,
        ),
        consolidation=ConsolidationPolicy(
            method=ConsolidationMethod.WEIGHTED, agreement=0.6, min_confidence=0.8
        ),
    )


def policy_document(policy: ProjectPolicy, version: int) -> dict[str, object]:
    """The policy as a router policy file (the document plus its ``version``)."""
    return {"version": version, **policy.model_dump(mode="json")}
