"""Fold Loupe's events into the numbers the metrics service exports (pure, no I/O).

Event counters (throughput, DLQ, decisions, histograms) count records. Item-level quality
numbers are kept exact under duplicates, replays and any arrival order through per-item state
(see ``items``). Only items that needed people are kept in memory; auto-accepted items are
counted but not stored.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from loupe.metrics.histogram import RESOLUTION_SECONDS_BUCKETS, REVIEW_SECONDS_BUCKETS, Histogram
from loupe.metrics.items import DecisionRecord, ItemState, Tally, VoteRecord
from loupe.metrics.policies import PolicyBook
from loupe.metrics.stats import Interval, wilson
from loupe.runtime.labels import DEFAULT_MIN_IOU, labels_agree
from loupe.schemas import (
    AUTO_REVISION,
    AuditAction,
    AuditEvent,
    ConflictRecord,
    DeadLetter,
    PolicyUpdate,
    Prediction,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
    admit_by_fence,
    decision_identity,
)

MAX_REVISION_LABEL = 5
"""Revisions at or above this are reported together as ``"5+"`` (bounded cardinality)."""


UNKNOWN_PROJECT = "_unknown"
"""Label value of every project without a known policy (the router rejects their predictions).
Project names cannot start with ``_`` (``ProjectName``), so no real project shares it."""
OTHER_MODEL = "_other"
"""Label value of the models beyond a project's ``MAX_MODELS_PER_PROJECT`` (see ``model_value``:
a real model whose name starts with ``_`` is exported with one more ``_``)."""
FOLDED = ""
"""The key the models labelled ``OTHER_MODEL`` are counted under in memory (model names are
never empty)."""
MAX_MODELS_PER_PROJECT = 20
"""Models of a project that get a label value of their own, besides those its policy names."""
MAX_UNKNOWN_PROJECTS = 100
"""Unknown project names remembered during the start-up replay (their policy may still arrive:
topics replay in no particular order); predictions of further unknown names are counted as
``UNKNOWN_PROJECT`` at once."""


def model_value(key: str) -> str:
    """The exported label value of a model key: ``OTHER_MODEL`` for the folded models, the name
    itself otherwise, with one ``_`` more when it starts with ``_`` (so a model really named
    ``_other`` is exported as ``__other`` and never merges with the folded series)."""
    if key == FOLDED:
        return OTHER_MODEL
    return f"_{key}" if key.startswith("_") else key


def revision_label(revision: int) -> str:
    """The bounded label value for a revision number."""
    return f"{MAX_REVISION_LABEL}+" if revision >= MAX_REVISION_LABEL else str(revision)


@dataclass
class MetricsState:
    """Everything the exporter shows, updated one event at a time."""

    window: int = 200
    """Sliding disagreement window: the last N multi-vote items per project and class."""
    min_iou: float = DEFAULT_MIN_IOU
    counters: Counter[tuple[str, ...]] = field(default_factory=Counter)
    sums: dict[tuple[str, ...], float] = field(default_factory=dict)
    aggregates: Tally = field(default_factory=Counter)
    items: dict[str, ItemState] = field(default_factory=dict)
    windows: dict[tuple[str, str], deque[str]] = field(default_factory=dict)
    review_seconds: Histogram = field(default_factory=lambda: Histogram(REVIEW_SECONDS_BUCKETS))
    resolution_seconds: Histogram = field(
        default_factory=lambda: Histogram(RESOLUTION_SECONDS_BUCKETS)
    )
    policies: PolicyBook = field(default_factory=PolicyBook)
    models_seen: dict[str, set[str]] = field(default_factory=dict)
    """Per project, the models (not named by its policy) that got a label of their own when
    they first arrived (at most ``MAX_MODELS_PER_PROJECT``; never changed afterwards)."""
    live: bool = True
    """False while the service replays the topics at start (nothing is exported yet): then
    predictions of projects without a policy are kept by name (at most
    ``MAX_UNKNOWN_PROJECTS``) and count for the project if its policy is read later.
    ``go_live`` folds what is left into ``UNKNOWN_PROJECT``; from then on every prediction is
    counted under the label it has when it arrives and never moves (counters only grow)."""
    unknown_projects: set[str] = field(default_factory=set)

    # --- label values -------------------------------------------------------------------------

    def go_live(self) -> None:
        """The start-up replay is complete: fold the predictions of projects still without a
        policy into ``UNKNOWN_PROJECT`` for good."""
        self.live = True
        pending = [key for key in self.counters if key[0] == "predictions"]
        for key in pending:
            if key[1] in self.unknown_projects:
                self.counters["predictions", UNKNOWN_PROJECT, FOLDED] += self.counters.pop(key)
        for project in self.unknown_projects:
            self.models_seen.pop(project, None)
        self.unknown_projects.clear()

    def model_key(self, project: str, model: str) -> str:
        """The key a model is counted under: its name when the project's policy names it or it
        was among the project's first ``MAX_MODELS_PER_PROJECT`` other models to arrive, else
        ``FOLDED`` (producers name models freely). Called when an event arrives, never while
        exporting, so a model's label does not depend on when (or whether) anyone scrapes."""
        entry = self.policies.projects.get(project)
        if entry is not None and model in entry.update.policy.confidence.per_model:
            return model
        seen = self.models_seen.setdefault(project, set())
        if model in seen:
            return model
        if len(seen) < MAX_MODELS_PER_PROJECT:
            seen.add(model)
            return model
        return FOLDED

    # --- events -------------------------------------------------------------------------------

    def on_prediction(self, event: Prediction) -> None:
        """A prediction arrived from model serving (any project name a producer sends: names
        without a policy are counted as ``UNKNOWN_PROJECT``, see ``live``)."""
        project = event.project
        if project not in self.policies.projects:
            remember = not self.live and (
                project in self.unknown_projects
                or len(self.unknown_projects) < MAX_UNKNOWN_PROJECTS
            )
            if not remember:
                self.counters["predictions", UNKNOWN_PROJECT, FOLDED] += 1
                return
            self.unknown_projects.add(project)
        self.counters["predictions", project, self.model_key(project, event.model.name)] += 1

    def on_dead_letter(self, event: DeadLetter) -> None:
        """An input was dead-lettered."""
        self.counters["dlq", event.error_kind.value, event.service] += 1

    def on_review_request(self, event: ReviewRequest) -> None:
        """A review request (first level, spot check or escalation)."""
        item = self.items.get(event.item_id)
        if item is not None and event.request_id in item.request_ids:
            return
        project = event.project
        model = self.model_key(project, event.prediction.model.name)
        self.counters["requests", project, event.required_tier.value] += 1
        for reason in {reason.code.value for reason in event.reasons}:
            self.counters["request_reasons", project, reason] += 1
        first_level = event.escalation_level == 0
        if first_level and not event.spot_check:
            self.counters["routed", project, model, "review"] += 1

        def update(state: ItemState) -> None:
            state.request_ids.add(event.request_id)
            state.model = model
            state.prediction = event.prediction.label
            if event.escalation_level > 0:
                state.escalated = True
            elif event.spot_check:
                state.review_requested = True
                state.spot_check = True
                state.spot_overlap = event.required_overlap
                state.spot_policy_version = event.policy_version
            else:
                state.review_requested = True
                state.routed_to_review = True

        self._update(event.item_id, project, update)

    def on_decision(self, event: ReviewDecision) -> None:
        """A reviewer's decision."""
        identity = decision_identity(event)  # the one dedupe rule (loupe.schemas.decisions)
        item = self.items.get(event.item_id)
        if item is not None and identity in item.decisions:
            return
        tier = event.reviewer.tier.value
        self.counters["decisions", event.project, tier, event.action.value] += 1
        self.counters["reviewer_decisions", event.reviewer.id, event.action.value] += 1
        key = ("review_seconds", event.project)
        self.sums[key] = self.sums.get(key, 0.0) + event.seconds_spent
        self.review_seconds.observe((tier,), event.seconds_spent)
        record = DecisionRecord(event.reviewer.id, event.action, event.label, event.request_id)

        def update(state: ItemState) -> None:
            # a decision under a lease that had ended (``admit_by_fence``) was work done, but
            # not a vote: the resolver ignores it, so agreement and spot checks do too
            if admit_by_fence(state.fences, event):
                state.decisions[identity] = record

        self._update(event.item_id, event.project, update)

    def on_resolved(self, event: ResolvedLabel) -> None:
        """A final label (``AUTO_REVISION`` from the router, later ones from the resolver)."""
        item = self.items.get(event.item_id)
        if item is not None and event.revision <= item.revision:
            return
        project = event.project
        model = self.model_key(project, event.provenance.prediction.model.name)
        revision = revision_label(event.revision)
        person_made = event.person_made
        if event.revision == AUTO_REVISION and not person_made:
            self.counters["routed", project, model, "auto"] += 1
        previous = (
            item.last_label
            if item is not None and item.revision > 0
            else event.provenance.prediction.label
        )
        self.counters["revisions", project, revision] += 1
        if person_made and not labels_agree(previous, event.label, self.min_iou):
            self.counters["corrections", project, revision] += 1
        if item is None and not person_made:
            return  # auto-accepted and not (yet) reviewed: counted, not stored
        if person_made:
            seconds = (event.resolved_at - event.first_seen_at).total_seconds()
            self.resolution_seconds.observe((project, event.method.value), seconds)
        votes = tuple(VoteRecord(v.action, v.label) for v in event.provenance.votes)

        def update(state: ItemState) -> None:
            state.revision = event.revision
            state.last_label = event.label
            state.model = model
            state.prediction = event.provenance.prediction.label
            if person_made:
                state.human_final = event.label
                state.human_outcome = event.outcome
                state.votes = votes

        self._update(event.item_id, project, update)

    def on_conflict(self, event: ConflictRecord) -> None:
        """Votes on an item disagreed."""
        item = self.items.get(event.item_id)
        if item is not None and event.conflict_id in item.conflict_ids:
            return
        self.counters["conflicts", event.project, event.resolution.value] += 1

        def update(state: ItemState) -> None:
            state.conflict_ids.add(event.conflict_id)
            state.conflict = True

        self._update(event.item_id, event.project, update)

    def on_audit(self, event: AuditEvent) -> None:
        """Audit records: lease expiries are counted, policy changes feed the controller, and a
        resolution at revision 1 confirms a spot check (the resolver publishes no new label)."""
        if event.action is AuditAction.LEASE_EXPIRED:
            self.counters["lease_expiries", event.project or UNKNOWN_PROJECT] += 1
        elif event.action is AuditAction.POLICY_CHANGE:
            self.policies.on_audit(event)
        elif (
            event.action is AuditAction.RESOLUTION
            and event.item_id is not None
            and event.project is not None
            and event.details.get("revision") == 1
        ):

            def update(state: ItemState) -> None:
                state.confirmed_at_revision_1 = True

            self._update(event.item_id, event.project, update)

    def on_policy(self, event: PolicyUpdate) -> None:
        """A project's policy changed."""
        self.unknown_projects.discard(event.project)
        if self.policies.on_update(event):
            self.counters["policy_changes", event.project, event.changed_by.role] += 1

    # --- derived numbers ----------------------------------------------------------------------

    def sliding_disagreement(self, project: str, name: str) -> tuple[float, int]:
        """(share of disagreeing items, items) over the last ``window`` multi-vote items."""
        ids = self.windows.get((project, name), deque())
        flags = [self.items[item_id].disagreed(self.min_iou) for item_id in ids]
        return (sum(flags) / len(flags) if flags else 0.0), len(flags)

    def spot_check(self, project: str, model: str, since_version: int = 0) -> Interval:
        """Wilson interval of the auto-accept error (spot checks routed at ``since_version``+)."""
        return wilson(*self.spot_counts(project, model, since_version))

    def spot_counts(self, project: str, model: str, since_version: int = 0) -> tuple[int, int]:
        """(errors, samples) of completed spot checks routed at ``since_version`` or later."""
        samples = errors = 0
        for key, amount in self.aggregates.items():
            wanted = key[0] == "spot_samples" and key[1:3] == (project, model)
            if wanted and int(key[3]) >= since_version:
                samples += amount
                errors += self.aggregates["spot_errors", *key[1:]]
        return errors, samples

    def keys(self, metric: str) -> list[tuple[str, ...]]:
        """Label tuples present for an aggregate or counter metric, sorted."""
        found = {key[1:] for key in self.aggregates if key[0] == metric}
        found |= {key[1:] for key in self.counters if key[0] == metric}
        return sorted(found)

    # --- internals ----------------------------------------------------------------------------

    def _update(self, item_id: str, project: str, mutate: Callable[[ItemState], None]) -> None:
        item = self.items.get(item_id)
        if item is None:
            item = self.items[item_id] = ItemState(project=project)
        self.aggregates.subtract(item.tally(self.min_iou))
        mutate(item)
        self.aggregates.update(item.tally(self.min_iou))
        if item.multi_vote and not item.in_window:
            item.in_window = True
            for name in item.classes():
                ids = self.windows.setdefault((project, name), deque(maxlen=self.window))
                ids.append(item_id)
