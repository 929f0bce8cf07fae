"""The resolver's decision logic for one item: no I/O, deterministic outputs.

``Engine.on_request`` and ``Engine.on_decision`` take the item's state and one input event and
return the new state plus the events to publish. Every output's ids and timestamps derive from
the inputs (never the clock), so a replay after a crash republishes identical records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from loupe.resolver.consolidate import (
    COUNTED_ACTIONS,
    REJECTED,
    Consensus,
    answer_key,
    classify,
    same_label,
    spatial,
)
from loupe.resolver.reliability import OnlineReliability
from loupe.resolver.state import InputPosition, ItemState, Layer, Observation, StoredVote
from loupe.runtime.labels import DEFAULT_MIN_IOU
from loupe.schemas import (
    AUTO_REVISION,
    FIRST_HUMAN_REVISION,
    Action,
    Actor,
    AuditAction,
    AuditEvent,
    ClassificationLabel,
    ConflictRecord,
    Disagreement,
    Label,
    Outcome,
    Provenance,
    ReasonCode,
    Resolution,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewReason,
    ReviewRequest,
    TaskType,
    Tier,
    Vote,
    admit_by_fence,
    decision_identity,
    label_classes,
)
from loupe.schemas.events import MAX_VOTES
from loupe.schemas.policy import ConsolidationMethod

SERVICE = Actor(id="service:resolver", role="service")
MAX_ROUND_VOTES = 256
"""Votes kept for one round (the latest per reviewer and request); more is a flood that would
outgrow the table record. Votes for requests not seen yet are capped apart (``WAITING_VOTES``)."""
MAX_ROUND_REQUESTS = 16
"""Requests of one round (the root and its escalations: a handful of tiers)."""
_MAX_ID = 256
_RESOLUTION_OF = {
    ResolutionMethod.MAJORITY: Resolution.MAJORITY,
    ResolutionMethod.WEIGHTED: Resolution.WEIGHTED,
    ResolutionMethod.LEAD: Resolution.LEAD,
}


def derived_id(base: str, suffix: str) -> str:
    """``base~suffix``, hashed down when it would exceed the 256-character id limit."""
    candidate = f"{base}~{suffix}"
    if len(candidate) <= _MAX_ID:
        return candidate
    return f"{hashlib.sha256(base.encode()).hexdigest()}~{suffix}"[:_MAX_ID]


class ItemOverflowError(ValueError):
    """A round received more votes or requests than the resolver keeps."""


@dataclass
class Effects:
    """Events to publish after handling one input."""

    resolved: list[ResolvedLabel] = field(default_factory=list)
    conflicts: list[ConflictRecord] = field(default_factory=list)
    requests: list[ReviewRequest] = field(default_factory=list)
    audits: list[AuditEvent] = field(default_factory=list)
    stale: bool = False
    """The input was a decision made under a lease that had ended (``admit_by_fence``):
    ignored."""

    def __len__(self) -> int:
        return len(self.resolved) + len(self.conflicts) + len(self.requests) + len(self.audits)


def is_final(stored: StoredVote) -> bool:
    """A lead's decision, or one flagged final (an override), that labels or rejects."""
    final = stored.final or stored.vote.reviewer.tier is Tier.LEAD
    return final and stored.vote.action in COUNTED_ACTIONS


class Engine:
    """Applies the consolidation policy to items, reading and training online reliability."""

    def __init__(self, reliability: OnlineReliability | None = None) -> None:
        self.reliability = reliability or OnlineReliability()

    # -- inputs -----------------------------------------------------------------------------

    def on_request(
        self, state: ItemState | None, request: ReviewRequest
    ) -> tuple[ItemState, Effects]:
        """Register a review request (the router's or an escalation) and act if votes suffice."""
        state = state or ItemState(item_id=request.item_id, project=request.project)
        effects = Effects()
        if state.knows_request(request.request_id):
            return state, effects
        current = state.request
        new_round = current is None or (
            state.status == "resolved" and request.escalation_level == 0
        )
        if new_round and state.root is not None and request.created_at < state.root.created_at:
            return state, effects  # an older round's request, delivered again: never reopen
        if not new_round and len(state.round_levels) >= MAX_ROUND_REQUESTS:
            raise ItemOverflowError(
                f"item {request.item_id!r} already has {MAX_ROUND_REQUESTS} requests this round"
            )
        if new_round:
            state.open_round()
        state.remember_request(request.request_id)
        if current is None or new_round:
            state.root = state.request = request
            state.round_levels = {request.request_id: request.escalation_level}
            state.escalation_path = [request.required_tier]
            state.layers = []
            state.status = "open"
            if request.spot_check and state.revision == 0:
                state.revision = AUTO_REVISION  # the router's label of a spot-checked item
        else:
            state.round_levels[request.request_id] = request.escalation_level
            if request.escalation_level >= current.escalation_level:
                state.request = request
                if state.escalation_path[-1] is not request.required_tier:
                    state.escalation_path.append(request.required_tier)
        if state.status == "open":
            self._evaluate(state, effects)
        return state, effects

    def on_decision(
        self, state: ItemState | None, decision: ReviewDecision
    ) -> tuple[ItemState, Effects]:
        """Count one decision (once per ``decision_identity``) and resolve or escalate when due."""
        state = state or ItemState(item_id=decision.item_id, project=decision.project)
        effects = Effects()
        identity = decision_identity(decision)
        if state.knows_key(identity):
            return state, effects
        if not admit_by_fence(state.fences, decision):
            state.remember_key(identity)
            effects.stale = True
            return state, effects
        if decision.action is Action.SKIP:
            state.remember_key(identity)
            return state, effects
        vote = Vote(
            decision_id=decision.decision_id,
            reviewer=decision.reviewer,
            action=decision.action,
            label=decision.label,
            decided_at=decision.decided_at,
        )
        stored = StoredVote(
            key=identity,
            request_id=decision.request_id,
            final=decision.final,
            vote=vote,
        )
        past_round = (
            decision.request_id not in state.round_levels
            and decision.request_id in state.known_requests
        )
        if not past_round:  # a vote of an earlier round can only still act as an override
            state.keep_vote(stored)
            if state.round_vote_count() > MAX_ROUND_VOTES:
                raise ItemOverflowError(
                    f"item {decision.item_id!r} already has {MAX_ROUND_VOTES} votes this round"
                )
        state.remember_key(identity)
        if state.request is None:
            return state, effects
        if is_final(stored) and state.status == "resolved":
            self._override(state, stored, effects)
        elif is_final(stored) and state.status == "open":
            self._resolve_final(state, stored, effects)
        elif state.status == "open" and stored.request_id in state.round_levels:
            self._evaluate(state, effects)
        return state, effects

    def replay(self, state: ItemState) -> None:
        """Feed a stored item's observations into reliability (rebuild after a restart)."""
        self._apply(state, state.observations, 1.0)

    def withdraw(self, state: ItemState, previous: list[Observation]) -> None:
        """Undo what handling one input did to reliability: ``state`` is the result that is
        being discarded, ``previous`` the item's observations before that input."""
        self._apply(state, state.observations, -1.0)
        self._apply(state, previous, 1.0)

    # -- decisions --------------------------------------------------------------------------

    def _evaluate(self, state: ItemState, effects: Effects) -> None:
        request, root = state.request, state.root
        assert request is not None and root is not None
        finals = [s for s in state.round_votes() if is_final(s)]
        if finals:
            self._resolve_final(state, finals[-1], effects)
            return
        policy = request.consolidation
        current = state.round_votes(request.escalation_level)
        asked = [s for s in current if s.vote.action is Action.ESCALATE]
        counted = [s for s in current if s.vote.action in COUNTED_ACTIONS]
        if asked and request.required_tier is not Tier.LEAD:
            self._escalate(state, "a reviewer asked for escalation", current, None, effects)
            return
        if len(counted) < request.required_overlap:
            return
        classification = root.prediction.task_type is TaskType.CLASSIFICATION
        pool = counted
        if classification and policy.method is ConsolidationMethod.WEIGHTED:
            pool = [s for s in state.round_votes() if s.vote.action in COUNTED_ACTIONS]
        consensus = self._consensus(state, [s.vote for s in pool], classification)
        if not consensus.passes(policy, classification):
            if request.required_tier is not Tier.LEAD:
                why = "tie" if consensus.tie else f"agreement {consensus.confidence:.2f} too low"
                self._escalate(state, why, pool, consensus, effects)
            return
        state.layers.append(Layer(tier=request.required_tier, label=consensus.label))
        if root.safety_critical and request.required_tier is not Tier.LEAD:
            agreeing = {
                layer.tier
                for layer in state.layers
                if same_label(layer.label, consensus.label, policy.min_box_iou)
            }
            if len(agreeing) < policy.safety_approval_layers:
                why = f"safety approval {len(agreeing)}/{policy.safety_approval_layers}"
                attach = None if consensus.unanimous else consensus
                self._escalate(state, why, pool, attach, effects)
                return
        method = (
            ResolutionMethod.WEIGHTED
            if classification and policy.method is ConsolidationMethod.WEIGHTED
            else ResolutionMethod.MAJORITY
        )
        self._resolve(state, consensus, method, pool, None, effects=effects)

    def _consensus(self, state: ItemState, votes: list[Vote], classification: bool) -> Consensus:
        request, root = state.request, state.root
        assert request is not None and root is not None
        project = root.project
        if classification:
            return classify(
                votes, request.consolidation, root.allowed_classes, self.reliability, project
            )
        return spatial(votes, request.consolidation, self.reliability, project)

    def _resolve_final(self, state: ItemState, final: StoredVote, effects: Effects) -> None:
        pool = [s for s in state.round_votes() if s.vote.action in COUNTED_ACTIONS]
        label = None if final.vote.action is Action.REJECT else final.vote.label
        keys = {_key(s.vote.label, s.vote.action) for s in pool}
        # a final call on an item never requested has no policy: the shared default IoU then
        min_iou = state.root.consolidation.min_box_iou if state.root else DEFAULT_MIN_IOU
        answers = [answer for s in pool if (answer := _vote_label(s.vote)) is not None]
        consensus = Consensus(
            label=label,
            confidence=1.0,
            tie=False,
            unanimous=len(keys) <= 1,
            disagreement=Disagreement(
                agreement=sum(1 for s in pool if same_label(_vote_label(s.vote), label, min_iou))
                / max(len(pool), 1)
            ),
            classes=sorted(set().union(*map(label_classes, answers)))[:1000],
        )
        self._resolve(state, consensus, ResolutionMethod.LEAD, pool, final, effects=effects)

    def _override(self, state: ItemState, final: StoredVote, effects: Effects) -> None:
        assert state.resolved is not None and state.root is not None
        label = None if final.vote.action is Action.REJECT else final.vote.label
        min_iou = state.root.consolidation.min_box_iou
        if same_label(label, state.resolved.label, min_iou):
            return
        self._resolve_final(state, final, effects)

    def _escalate(
        self,
        state: ItemState,
        why: str,
        pool: list[StoredVote],
        consensus: Consensus | None,
        effects: Effects,
    ) -> None:
        request, root = state.request, state.root
        assert request is not None and root is not None
        up = request.required_tier.next_up()
        level = request.escalation_level + 1
        at = _latest(pool, request.created_at)
        request_id = derived_id(root.request_id, f"esc{level}")
        conflict = None
        if consensus is not None:
            conflict = ConflictRecord(
                conflict_id=derived_id(request_id, "conflict"),
                item_id=state.item_id,
                project=root.project,
                request_id=request.request_id,
                votes=[s.vote for s in pool][-MAX_VOTES:],
                disagreement=consensus.disagreement,
                resolution=Resolution.ESCALATED,
                escalated_to=up,
                classes=consensus.classes,
                created_at=at,
            )
            effects.conflicts.append(conflict)
        escalated = request.model_copy(
            update={
                "request_id": request_id,
                "reasons": [ReviewReason(code=ReasonCode.ESCALATION, detail=why[:512])],
                "priority": min(100, request.priority + 10),
                "required_tier": up,
                "required_overlap": 1,
                "escalation_level": level,
                "conflict": conflict,
                "created_at": at,
            }
        )
        state.request = escalated
        state.round_levels[request_id] = level
        state.remember_request(request_id)
        state.escalation_path.append(up)
        effects.requests.append(escalated)
        effects.audits.append(
            self._audit(
                state,
                AuditAction.ESCALATION,
                f"escalated to {up.value}: {why}",
                at,
                {"request_id": request_id, "level": level},
            )
        )

    def _resolve(
        self,
        state: ItemState,
        consensus: Consensus,
        method: ResolutionMethod,
        pool: list[StoredVote],
        final: StoredVote | None,
        *,
        effects: Effects,
    ) -> None:
        root = state.root
        assert root is not None
        at = _latest(pool + ([final] if final else []), root.created_at)
        history = [s for s in state.round_votes() if s.vote.action in COUNTED_ACTIONS]
        if final is not None and all(s.key != final.key for s in history):
            history.append(final)
        self._learn(state, consensus.label, history, final)
        state.status = "resolved"
        prediction = root.prediction
        min_iou = root.consolidation.min_box_iou
        if final is not None:
            decided_by = [final.vote.reviewer.id]
        else:
            decided_by = [
                s.vote.reviewer.id
                for s in pool
                if same_label(_vote_label(s.vote), consensus.label, min_iou)
                or prediction.task_type is not TaskType.CLASSIFICATION
            ]
        spot_confirmed = (
            root.spot_check
            and state.revision <= AUTO_REVISION
            and same_label(consensus.label, prediction.label, min_iou)
        )
        revision = (
            state.revision if spot_confirmed else max(state.revision + 1, FIRST_HUMAN_REVISION)
        )
        resolved = ResolvedLabel(
            item_id=state.item_id,
            project=root.project,
            revision=max(revision, AUTO_REVISION),
            outcome=Outcome.LABELLED if consensus.label is not None else Outcome.REJECTED,
            label=consensus.label,
            confidence=consensus.confidence,
            method=ResolutionMethod.AUTO if spot_confirmed else method,
            provenance=Provenance(
                prediction=prediction,
                votes=[s.vote for s in history][-MAX_VOTES:],
                decided_by=decided_by[:MAX_VOTES],
                escalation_path=state.escalation_path[-8:],
                request_ids=list(state.round_levels)[-16:],
                reasons=[r.code for r in root.reasons],
            ),
            spot_checked=root.spot_check,
            first_seen_at=root.created_at,
            resolved_at=at,
        )
        state.resolved = resolved
        if not spot_confirmed:
            state.revision = resolved.revision
            effects.resolved.append(resolved)
        if not consensus.unanimous:
            effects.conflicts.append(
                ConflictRecord(
                    conflict_id=derived_id(f"{state.item_id}~r{resolved.revision}", method.value),
                    item_id=state.item_id,
                    project=root.project,
                    request_id=(state.request or root).request_id,
                    votes=[s.vote for s in history][-MAX_VOTES:],
                    disagreement=consensus.disagreement,
                    resolution=_RESOLUTION_OF[method],
                    classes=consensus.classes,
                    created_at=at,
                )
            )
        note = "spot check confirmed the model" if spot_confirmed else f"resolved by {method.value}"
        effects.audits.append(
            self._audit(
                state,
                AuditAction.RESOLUTION,
                note,
                at,
                {
                    "revision": resolved.revision,
                    "method": method.value,
                    "outcome": resolved.outcome.value,
                },
            )
        )

    # -- reliability ------------------------------------------------------------------------

    def _learn(
        self,
        state: ItemState,
        label: Label | None,
        pool: list[StoredVote],
        final: StoredVote | None,
    ) -> None:
        root = state.root
        assert root is not None
        if root.prediction.task_type is not TaskType.CLASSIFICATION:
            return
        truth = label.label if isinstance(label, ClassificationLabel) else REJECTED
        fresh = [
            Observation(
                reviewer=s.vote.reviewer.id,
                tier=s.vote.reviewer.tier,
                answer=answer_key(s.vote),
                truth=truth,
            )
            for s in pool
            if final is None or s.key != final.key
        ]
        self._apply(state, state.observations, -1.0)
        state.observations = fresh
        self._apply(state, fresh, 1.0)

    def _apply(self, state: ItemState, observations: list[Observation], weight: float) -> None:
        project = state.project or (state.root.project if state.root else "")
        for o in observations:
            self.reliability.observe(project, o.reviewer, o.tier, o.answer, o.truth, weight=weight)

    def _audit(
        self,
        state: ItemState,
        action: AuditAction,
        reason: str,
        at: datetime,
        details: dict[str, object],
    ) -> AuditEvent:
        return AuditEvent(
            event_id=derived_id(
                f"{state.item_id}~{state.requests_seen}~r{state.revision}", f"{action.value}"
            ),
            at=at,
            actor=SERVICE,
            action=action,
            item_id=state.item_id,
            project=state.root.project if state.root else None,
            reason=reason[:512],
            details=details,
        )


def supersede(state: ItemState, label: ResolvedLabel, at: InputPosition) -> Effects:
    """What an automatic label read on ``labels.resolved`` at ``at`` calls for: the item's
    human label again, when it was written before the automatic one.

    ``labels.resolved`` is compacted: a reader starting from scratch sees an item's last
    record, so a human label must stay last. Republishing ``state.resolved`` unchanged (same
    revision, ids and times) keeps that true; a replay republishes the same bytes and audit id.
    Nothing is needed when the item has no human label (none yet, or a spot check confirmed the
    model) or when its human label was written after this record.
    """
    effects = Effects()
    human = state.resolved
    if (
        label.person_made
        or label.item_id != state.item_id
        or human is None
        or not human.person_made
        or (
            state.published is not None
            and state.published.covers(at.partition, at.offset, at.timestamp_ms)
        )
    ):
        return effects
    prediction_id = label.provenance.prediction.prediction_id
    effects.resolved.append(human)
    effects.audits.append(
        AuditEvent(
            event_id=derived_id(f"{state.item_id}~r{human.revision}~{prediction_id}", "superseded"),
            at=label.resolved_at,
            actor=SERVICE,
            action=AuditAction.RESOLUTION,
            item_id=state.item_id,
            project=human.project,
            reason=(
                f"automatic label of prediction {prediction_id} superseded by the human label "
                f"(revision {human.revision})"
            )[:512],
            details={
                "superseded": ResolutionMethod.AUTO.value,
                "prediction_id": prediction_id,
                "human_revision": human.revision,
                "method": human.method.value,
            },
        )
    )
    return effects


def _vote_label(vote: Vote) -> Label | None:
    return None if vote.action is Action.REJECT else vote.label


def _key(label: Label | None, action: Action) -> str:
    if action is Action.REJECT or label is None:
        return REJECTED
    if isinstance(label, ClassificationLabel):
        return label.label
    return label.model_dump_json()


def _latest(pool: list[StoredVote], default: datetime) -> datetime:
    return max((s.vote.decided_at for s in pool), default=default)
