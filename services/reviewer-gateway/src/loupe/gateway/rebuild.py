"""What Kafka history says the working set is, in memory bounded by the open work.

History (every decision and resolved label, then the review requests in batches) is indexed in
a temporary SQLite file instead of Python collections: the process holds SQLite's page cache
(``cache_kib``), one batch of records and the tasks of that batch still open, whatever the size
of the topics. Records are read with ``orjson`` and only the fields the rules need; the open
tasks' requests and votes (a small part of history) are validated in full.

The rules are the live projection's: a task is settled by a lead's final decision on its item,
or by a resolved label that closes it (``logic.resolution_closes``); it is complete (off the
queues, waiting for the resolver) once as many distinct reviewers voted as its overlap.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from loupe.gateway.labels import parse_label
from loupe.gateway.logic import VOTE_ACTIONS, vote_agrees_with
from loupe.schemas import (
    Action,
    Outcome,
    ResolutionMethod,
    ReviewDecision,
    ReviewRequest,
)

_VOTES = frozenset(action.value for action in VOTE_ACTIONS)
_ACTIONS = frozenset(action.value for action in Action)
_AUTO = ResolutionMethod.AUTO.value
_NEVER = -1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PARSED_LABELS = 10_000
"""Parsed labels kept while scoring (classification labels repeat; boxes rarely do)."""
"""``closes_us`` of an item whose labels are all automatic (they close nothing)."""

_SCHEMA = """
CREATE TABLE decisions (
  task_id TEXT, item_id TEXT, reviewer TEXT, action TEXT, seconds REAL, label TEXT, raw BLOB);
CREATE TABLE finals (item_id TEXT PRIMARY KEY);
CREATE TABLE labels (
  item_id TEXT PRIMARY KEY, revision INTEGER, raw BLOB, closes_us INTEGER, outcome TEXT,
  label TEXT, named TEXT);
CREATE TEMP TABLE batch (seq INTEGER PRIMARY KEY, request_id TEXT, item_id TEXT, created_us INT);
"""

_UPSERT_LABEL = """
INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET
  raw = CASE WHEN excluded.revision >= labels.revision THEN excluded.raw ELSE labels.raw END,
  outcome = CASE WHEN excluded.revision >= labels.revision
    THEN excluded.outcome ELSE labels.outcome END,
  label = CASE WHEN excluded.revision >= labels.revision THEN excluded.label ELSE labels.label END,
  revision = MAX(excluded.revision, labels.revision),
  closes_us = MAX(excluded.closes_us, labels.closes_us),
  named = labels.named || excluded.named
"""
"""One row per item: its latest label, the latest time a label people made closes tasks up
to, and every request id such labels named (``\x1f``-delimited)."""

_STILL_OPEN = """
SELECT b.seq FROM batch b LEFT JOIN labels l ON l.item_id = b.item_id
WHERE NOT EXISTS (SELECT 1 FROM finals f WHERE f.item_id = b.item_id)
  AND (l.item_id IS NULL
    OR (l.closes_us < b.created_us AND instr(l.named, char(31) || b.request_id || char(31)) = 0))
"""

_COUNTED = """
CREATE TEMP TABLE counted AS SELECT MIN(rowid) AS id FROM decisions
WHERE action IN ('approve', 'correct', 'escalate', 'reject') GROUP BY task_id, reviewer
"""
"""The counted votes: the first vote (not a skip) of each reviewer on each task."""

_VOTES_OF = """
SELECT task_id, reviewer, action, raw FROM decisions
WHERE task_id IN (SELECT value FROM json_each(?)) ORDER BY rowid
"""

_LATEST = """
SELECT item_id, revision, raw FROM labels WHERE item_id IN (SELECT value FROM json_each(?))
"""

_QUALITY = """
SELECT reviewer, COUNT(*), SUM(seconds), SUM(action = 'escalate') FROM decisions
WHERE rowid IN (SELECT id FROM temp.counted) GROUP BY reviewer
"""

_SCORED = """
SELECT d.reviewer, d.action, d.label, l.outcome, l.label, COUNT(*)
FROM decisions d JOIN labels l ON l.item_id = d.item_id
WHERE d.rowid IN (SELECT id FROM temp.counted)
GROUP BY 1, 2, 3, 4, 5
"""
"""Counted votes against their item's latest label, grouped by what scoring depends on: the
agreement rule runs once per distinct (vote, outcome) pair, not once per vote."""


def _us(iso: str) -> int:
    """An ISO 8601 timestamp as epoch microseconds (exact, so comparisons match the models')."""
    return (datetime.fromisoformat(iso) - _EPOCH) // _MICROSECOND


@dataclass
class RebuiltTask:
    """One task the working set must hold (open, or complete and waiting for the resolver)."""

    request: ReviewRequest
    raw: bytes
    status: str
    voters: list[str] = field(default_factory=list)
    skippers: list[str] = field(default_factory=list)
    votes: list[ReviewDecision] = field(default_factory=list)
    """Counted votes, the first of each reviewer (oldest first)."""

    @property
    def done(self) -> int:
        """Distinct reviewers whose vote counted."""
        return len(self.voters)


@dataclass
class Quality:
    """One reviewer's counters, recomputed from history."""

    votes: int = 0
    seconds: float = 0.0
    escalations: int = 0
    skips: int = 0
    scored: int = 0
    agreed: int = 0


class HistoryIndex:
    """Indexes decisions and resolved labels, then settles review requests batch by batch.

    Feed ``add_decisions`` and ``add_resolved`` first (any order), call ``seal``, then stream the
    requests through ``settle``. Bad records are counted in ``bad`` and skipped.
    """

    def __init__(self, directory: Path | None = None, cache_kib: int = 16_384) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="loupe-rebuild-", dir=directory)
        self.db = sqlite3.connect(Path(self._dir.name) / "history.db", isolation_level=None)
        for pragma in (
            f"cache_size = -{cache_kib}",
            "journal_mode = OFF",
            "synchronous = OFF",
            "temp_store = FILE",
            "locking_mode = EXCLUSIVE",
        ):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript(_SCHEMA)
        self.bad = 0

    def close(self) -> None:
        """Drop the scratch file."""
        self.db.close()
        self._dir.cleanup()

    def __enter__(self) -> HistoryIndex:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def add_decisions(self, values: Iterable[bytes]) -> None:
        """Index decisions. Replays need no identity check here: every rule counts at most one
        vote per person per task and one skip per person per task (``decision_identity``
        duplicates share both), which ``seal`` builds from the first record of each."""
        rows: list[tuple[Any, ...]] = []
        finals: list[tuple[str]] = []
        loads, dumps, add = orjson.loads, orjson.dumps, rows.append
        for raw in values:
            try:
                d = loads(raw)
                action = d["action"]
                if action not in _ACTIONS:
                    raise ValueError(action)
                item_id, reviewer = str(d["item_id"]), str(d["reviewer"]["id"])
                label = d.get("label")
                text = None if label is None else dumps(label)
                seconds = float(d["seconds_spent"])
                add((str(d["task_id"]), item_id, reviewer, action, seconds, text, raw))
                if d.get("final") is True:
                    finals.append((item_id,))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.bad += 1
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO decisions VALUES (?,?,?,?,?,?,?)", rows)
        self.db.executemany("INSERT OR IGNORE INTO finals VALUES (?)", finals)
        self.db.execute("COMMIT")

    def add_resolved(self, values: Iterable[bytes]) -> None:
        """Index resolved labels: the latest per item, and what they close."""
        rows = []
        for raw in values:
            try:
                label = orjson.loads(raw)
                method = label["method"]
                closes = _NEVER if method == _AUTO else _us(label["resolved_at"])
                final = label.get("label")
                text = None if final is None else orjson.dumps(final).decode()
                named = ""
                if method != _AUTO:
                    ids = label["provenance"].get("request_ids", [])
                    named = "".join(f"\x1f{r}\x1f" for r in ids)
                item, revision = str(label["item_id"]), int(label["revision"])
                rows.append((item, revision, raw, closes, str(label["outcome"]), text, named))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                self.bad += 1
        self.db.execute("BEGIN")
        self.db.executemany(_UPSERT_LABEL, rows)
        self.db.execute("COMMIT")

    def seal(self) -> None:
        """Index what ``settle`` and ``quality`` look up (faster once, after the bulk load)."""
        self.db.execute("CREATE INDEX decisions_task ON decisions (task_id, reviewer)")
        self.db.execute(_COUNTED)
        self.db.execute("CREATE INDEX temp.counted_id ON counted (id)")

    def settle(self, requests: Sequence[bytes]) -> list[RebuiltTask]:
        """The tasks of a batch of review-request records that the working set must hold."""
        rows = []
        for seq, raw in enumerate(requests):
            try:
                r = orjson.loads(raw)
                rows.append((seq, str(r["request_id"]), str(r["item_id"]), _us(r["created_at"])))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.bad += 1
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM batch")
        self.db.executemany("INSERT INTO batch VALUES (?,?,?,?)", rows)
        self.db.execute("COMMIT")
        tasks: dict[str, RebuiltTask] = {}
        for (seq,) in self.db.execute(_STILL_OPEN).fetchall():
            try:
                request = ReviewRequest.model_validate_json(requests[seq])
            except ValidationError:
                self.bad += 1
                continue
            tasks.setdefault(request.request_id, RebuiltTask(request, requests[seq], "open"))
        if tasks:
            self._add_votes(tasks)
        return list(tasks.values())

    def _add_votes(self, tasks: dict[str, RebuiltTask]) -> None:
        wanted = orjson.dumps(list(tasks)).decode()
        for task_id, reviewer, action, raw in self.db.execute(_VOTES_OF, (wanted,)):
            task = tasks[task_id]
            if action == Action.SKIP.value:
                if reviewer not in task.skippers:
                    task.skippers.append(reviewer)
            elif action in _VOTES and reviewer not in task.voters:
                try:
                    task.votes.append(ReviewDecision.model_validate_json(raw))
                except ValidationError:
                    self.bad += 1
                    continue
                task.voters.append(reviewer)
        for task in tasks.values():
            if task.done >= task.request.required_overlap:
                task.status = "complete"

    def latest_resolved(self, item_ids: Iterable[str]) -> dict[str, tuple[int, bytes]]:
        """(revision, record) of the latest resolved label of each item that has one."""
        wanted = orjson.dumps(sorted(set(item_ids))).decode()
        rows = self.db.execute(_LATEST, (wanted,))
        return {item: (revision, raw) for item, revision, raw in rows}

    def quality(self) -> dict[str, Quality]:
        """Every reviewer's counters: counted votes, seconds, escalations, skipped tasks, and
        how many counted votes agree with their item's latest resolved label."""
        out: dict[str, Quality] = {}
        for reviewer, votes, seconds, escalations in self.db.execute(_QUALITY):
            out[reviewer] = Quality(int(votes), float(seconds), int(escalations))
        for reviewer, skips in self.db.execute(
            "SELECT reviewer, COUNT(DISTINCT task_id) FROM decisions WHERE action = 'skip' "
            "GROUP BY reviewer"
        ):
            out.setdefault(reviewer, Quality()).skips = int(skips)
        labels: dict[str | None, Any] = {None: None}
        for reviewer, action, vote, outcome, final, count in self.db.execute(_SCORED):
            try:
                if len(labels) > _PARSED_LABELS:
                    labels = {None: None}
                for text in (vote, final):
                    if text not in labels:
                        labels[text] = parse_label(orjson.loads(text))
                verdict = Outcome(outcome)
            except (ValidationError, orjson.JSONDecodeError, ValueError):
                continue
            agrees = vote_agrees_with(Action(action), labels[vote], verdict, labels[final])
            if agrees is not None:
                scores = out.setdefault(reviewer, Quality())
                scores.scored += count
                scores.agreed += count * int(agrees)
        return out
