"""What Kafka history says the working set is, in memory bounded by the open work.

History (every decision and resolved label, then the review requests in batches) is indexed in
a temporary SQLite file instead of Python collections: the process holds SQLite's page cache
(``cache_kib`` per file and connection: at most two of each), one batch of records and the
tasks of that batch still open, whatever the size of the topics. Records are read with
``orjson`` and only the fields the rules need; the open tasks' requests and votes (a small part
of history) are validated in full.

The rules are the live projection's: a task is settled by a lead's final decision on its item,
or by a resolved label that closes it (``logic.resolution_closes``); it is complete (off the
queues, waiting for the resolver) once as many distinct reviewers voted as its overlap. Tasks
that settled within the retention window (``kept_since_us``) are kept as well, as the live
projection keeps them, with when they settled: the rebuild gives their keys the time left.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    admit_by_fence,
)

_VOTES = frozenset(action.value for action in VOTE_ACTIONS)
_ACTIONS = frozenset(action.value for action in Action)
_AUTO = ResolutionMethod.AUTO.value
_NEVER = -1
"""``closes_us`` of an item whose labels are all automatic (they close nothing)."""
_NEVER_KEPT = 2**62
"""``kept_since_us`` when no settled task is kept."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PAGE_BYTES = 16_384
"""SQLite pages of 16 KiB: appending records took a quarter less CPU than with 4 KiB pages (in
a micro-benchmark of blob inserts)."""
_PARSED_LABELS = 10_000
"""Parsed labels kept while scoring (classification labels repeat; boxes rarely do)."""

_DECISIONS_SCHEMA = """
CREATE TABLE decisions (
  task_id TEXT, item_id TEXT, reviewer TEXT, action TEXT, seconds REAL, label BLOB, raw BLOB);
CREATE TABLE finals (item_id TEXT PRIMARY KEY, at_us INTEGER);
"""
"""What ``add_decisions`` fills: in the index itself, or in a part another process fills."""

_SCHEMA = """
CREATE TABLE labels (
  item_id TEXT PRIMARY KEY, revision INTEGER, closes_us INTEGER, outcome TEXT, label BLOB,
  named TEXT, raw BLOB);
CREATE TEMP TABLE batch (seq INTEGER PRIMARY KEY, request_id TEXT, item_id TEXT, created_us INT);
"""

_INSERT_DECISION = """
INSERT INTO decisions (rowid, task_id, item_id, reviewer, action, seconds, label, raw)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

_UPSERT_LABEL = """
INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET
  outcome = CASE WHEN excluded.revision >= labels.revision
    THEN excluded.outcome ELSE labels.outcome END,
  label = CASE WHEN excluded.revision >= labels.revision THEN excluded.label ELSE labels.label END,
  raw = CASE WHEN excluded.revision >= labels.revision THEN excluded.raw ELSE labels.raw END,
  revision = MAX(excluded.revision, labels.revision),
  closes_us = MAX(excluded.closes_us, labels.closes_us),
  named = labels.named || excluded.named
"""
"""One row per item: its latest label and record (the highest revision; of equal ones, the
later record), the latest time a label people made closes tasks up to, and every request id
such labels named (``\x1f``-delimited)."""

_INSERT_FINAL = """
INSERT INTO finals VALUES (?, ?) ON CONFLICT(item_id) DO UPDATE SET
  at_us = MAX(at_us, excluded.at_us)
"""

_KEPT = """
WITH s AS (
  SELECT b.seq AS seq, f.at_us AS final_us,
    CASE WHEN l.item_id IS NOT NULL AND (l.closes_us >= b.created_us
      OR instr(l.named, char(31) || b.request_id || char(31)) > 0)
    THEN l.closes_us END AS closed_us
  FROM batch b LEFT JOIN labels l ON l.item_id = b.item_id
  LEFT JOIN finals f ON f.item_id = b.item_id)
SELECT seq, by_final, settled_us FROM (
  SELECT seq, final_us IS NOT NULL AS by_final, closed_us,
    MAX(IFNULL(final_us, -1), IFNULL(closed_us, -1)) AS settled_us FROM s)
WHERE settled_us >= ? OR (NOT by_final AND closed_us IS NULL)
"""
"""The tasks of the batch still open, and those settled (by a lead's final call on the item, or
a label people made that closes them) at or after a time: (seq, by a final call, settled at;
-1 when open)."""

_COUNTED = """
INSERT INTO counted SELECT MIN(rowid) FROM decisions
WHERE action IN ('approve', 'correct', 'escalate', 'reject') GROUP BY task_id, reviewer
"""
"""The counted votes: the first vote (not a skip) of each reviewer on each task."""

_VOTES_OF = """
SELECT d.task_id, d.reviewer, d.action, d.raw FROM decisions d
WHERE d.task_id IN (SELECT value FROM json_each(?)) ORDER BY d.rowid
"""

_LATEST = """
SELECT item_id, revision, raw FROM labels WHERE item_id IN (SELECT value FROM json_each(?))
"""

_QUALITY = """
SELECT d.reviewer, COUNT(*), TOTAL(d.seconds), TOTAL(d.action = 'escalate'),
  TOTAL(d.action = 'reject' AND l.item_id IS NOT NULL),
  TOTAL(d.action = 'reject' AND l.outcome IS 'rejected'),
  TOTAL(d.action IN ('approve', 'correct') AND d.label IS l.label AND l.label IS NOT NULL)
FROM counted c JOIN decisions d ON d.rowid = c.id LEFT JOIN labels l ON l.item_id = d.item_id
GROUP BY d.reviewer
"""
"""Per reviewer, in one pass over the counted votes: votes, seconds, escalations, and what the
agreement rule decides without a label comparison (a reject agrees with a rejected outcome; a
label byte-identical to the item's latest one agrees)."""

_COMPARED = """
SELECT d.reviewer, d.label, l.label, COUNT(*)
FROM counted c JOIN decisions d ON d.rowid = c.id JOIN labels l ON l.item_id = d.item_id
WHERE d.action IN ('approve', 'correct') AND d.label IS NOT NULL
  AND (l.label IS NULL OR d.label != l.label)
GROUP BY 1, 2, 3
"""
"""The votes whose agreement needs the rule's label comparison, grouped: it runs once per
distinct (vote label, final label) pair."""


def _us(iso: str) -> int:
    """An ISO 8601 timestamp as epoch microseconds (exact, so comparisons match the models')."""
    return (datetime.fromisoformat(iso) - _EPOCH) // _MICROSECOND


@dataclass
class RebuiltTask:
    """One task the working set must hold: open, complete and waiting for the resolver, or
    settled within the retention window (``resolved`` by a label, ``closed`` by a final call)."""

    request: ReviewRequest
    raw: bytes
    status: str
    settled_us: int = -1
    """When the task settled (epoch µs; -1: open or complete)."""
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

    def __init__(
        self,
        directory: Path | None = None,
        cache_kib: int = 16_384,
        *,
        path: Path | None = None,
        kept_since_us: int | None = None,
    ) -> None:
        """A scratch index in a temporary folder under ``directory``, or (``path``) a part that
        another process fills with decisions and an index ``attach``es; a part's file is left
        to its owner.
        ``settle`` also returns the tasks settled at or after ``kept_since_us`` (the retention
        window; None: only the open ones)."""
        self.kept_since_us = _NEVER_KEPT if kept_since_us is None else kept_since_us
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._dir = tempfile.TemporaryDirectory(prefix="loupe-rebuild-", dir=directory)
            path = Path(self._dir.name) / "history.db"
        self.folder = path.parent
        self._path = path
        self._part: Path | None = None
        self.db = sqlite3.connect(path, isolation_level=None)
        self._cache = -cache_kib
        self._aside: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        for pragma in (
            f"page_size = {_PAGE_BYTES}",
            f"cache_size = -{cache_kib}",
            "journal_mode = OFF",
            "synchronous = OFF",
            "temp_store = FILE",
            "locking_mode = EXCLUSIVE",
        ):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript(
            _DECISIONS_SCHEMA if self._dir is None else _SCHEMA + _DECISIONS_SCHEMA
        )
        self._own_decisions = True
        self.bad = 0
        self._decisions = 0

    def close(self) -> None:
        """Close the index and drop its scratch folder (not a part's file); a ``quality_aside``
        still running is interrupted."""
        if self._aside is not None:
            if (reader := self._reader) is not None:
                reader.interrupt()
            self._aside.shutdown(wait=True)
        self.db.close()
        if self._dir is not None:
            self._dir.cleanup()

    def attach(self, part: Path) -> None:
        """Read the decisions a sealed part holds (indexed in another process, while this one
        indexed the resolved labels) where they are, instead of this index's own (empty)."""
        if self._decisions:
            raise ValueError("this index holds decisions of its own")
        self.db.executescript("DROP TABLE decisions; DROP TABLE finals")
        self.db.execute("ATTACH DATABASE ? AS part", (str(part),))
        self.db.execute(f"PRAGMA part.cache_size = {self._cache}")
        self._part = part
        self._own_decisions = False

    def __enter__(self) -> HistoryIndex:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def add_decisions(self, values: Iterable[bytes]) -> None:
        """Index decisions. Replays need no identity check here: every rule counts at most one
        vote per person per task and one skip per person per task (``decision_identity``
        duplicates share both), which ``seal`` builds from the first record of each."""
        rows: list[tuple[Any, ...]] = []
        finals: list[tuple[str, int]] = []
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
                self._decisions += 1
                add(
                    (
                        self._decisions,
                        str(d["task_id"]),
                        item_id,
                        reviewer,
                        action,
                        seconds,
                        text,
                        raw,
                    )
                )
                if d.get("final") is True:
                    finals.append((item_id, _us(d["decided_at"])))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.bad += 1
        self.db.execute("BEGIN")
        self.db.executemany(_INSERT_DECISION, rows)
        self.db.executemany(_INSERT_FINAL, finals)
        self.db.execute("COMMIT")

    def add_resolved(self, records: Iterable[tuple[str, bytes]]) -> None:
        """Index resolved labels ((key, value) records): the latest per item, and what they
        close. A label keyed by another item than its own is a bad record, as the live consumer
        (which selects labels by key) holds it: the registry keys the topic by item id."""
        rows = []
        for key, raw in records:
            try:
                label = orjson.loads(raw)
                method = label["method"]
                closes = _NEVER if method == _AUTO else _us(label["resolved_at"])
                final = label.get("label")
                text = None if final is None else orjson.dumps(final)
                named = ""
                if method != _AUTO:
                    ids = label["provenance"].get("request_ids", [])
                    named = "".join(f"\x1f{r}\x1f" for r in ids)
                item, revision = str(label["item_id"]), int(label["revision"])
                if item != key:
                    self.bad += 1
                    continue
                rows.append((item, revision, closes, str(label["outcome"]), text, named, raw))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                self.bad += 1
        self.db.execute("BEGIN")
        self.db.executemany(_UPSERT_LABEL, rows)
        self.db.execute("COMMIT")

    def seal_decisions(self) -> None:
        """Index what ``settle`` and ``quality`` look up in the decisions (faster once, after
        the bulk load; a part is sealed by the process that filled it)."""
        self.db.execute("CREATE INDEX decisions_task ON decisions (task_id, reviewer)")
        self.db.execute("CREATE TABLE counted (id INTEGER PRIMARY KEY)")
        self.db.execute(_COUNTED)

    def seal(self) -> None:
        """Index what ``settle`` and ``quality`` look up (faster once, after the bulk load)."""
        if self._own_decisions:
            self.seal_decisions()
        # nothing writes the files from now on: let ``quality_aside`` read them (the batches
        # ``settle`` writes are in the connection's own temporary database)
        self.db.execute("PRAGMA locking_mode = NORMAL")
        self.db.execute("SELECT count(*) FROM sqlite_master").fetchall()

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
        for seq, by_final, settled_us in self.db.execute(_KEPT, (self.kept_since_us,)).fetchall():
            try:
                request = ReviewRequest.model_validate_json(requests[seq])
            except ValidationError:
                self.bad += 1
                continue
            status = "open" if settled_us < 0 else "closed" if by_final else "resolved"
            task = RebuiltTask(request, requests[seq], status, settled_us=int(settled_us))
            tasks.setdefault(request.request_id, task)
        if tasks:
            self._add_votes(tasks)
        return list(tasks.values())

    def _add_votes(self, tasks: dict[str, RebuiltTask]) -> None:
        """The tasks' votes and skips, in the order Kafka has them; a decision made under a
        lease that had ended (``admit_by_fence``: the resolver drops it too) counts nothing."""
        wanted = orjson.dumps(list(tasks)).decode()
        fences: dict[str, dict[str, int]] = {}
        for task_id, reviewer, action, raw in self.db.execute(_VOTES_OF, (wanted,)):
            task = tasks[task_id]
            try:
                decision = ReviewDecision.model_validate_json(raw)
            except ValidationError:
                self.bad += 1
                continue
            if not admit_by_fence(fences.setdefault(task_id, {}), decision):
                continue
            if action == Action.SKIP.value:
                if reviewer not in task.skippers:
                    task.skippers.append(reviewer)
            elif action in _VOTES and reviewer not in task.voters:
                task.votes.append(decision)
                task.voters.append(reviewer)
        for task in tasks.values():
            if task.status == "open" and task.done >= task.request.required_overlap:
                task.status = "complete"

    def latest_resolved(self, item_ids: Iterable[str]) -> dict[str, tuple[int, bytes]]:
        """(revision, record) of the latest resolved label of each item that has one."""
        wanted = orjson.dumps(sorted(set(item_ids))).decode()
        return {
            item: (revision, raw) for item, revision, raw in self.db.execute(_LATEST, (wanted,))
        }

    def quality_aside(self) -> Future[dict[str, Quality]]:
        """``quality`` computed on a thread with a connection of its own, once sealed, while
        this one settles the requests: its queries run in SQLite, without the GIL, on the
        other core."""
        self._aside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gw-rebuild-quality")
        return self._aside.submit(self._quality_on_own_connection)

    def _quality_on_own_connection(self) -> dict[str, Quality]:
        db = sqlite3.connect(self._path, isolation_level=None)
        self._reader = db
        try:
            db.execute(f"PRAGMA cache_size = {self._cache}")
            if self._part is not None:
                db.execute("ATTACH DATABASE ? AS part", (str(self._part),))
                db.execute(f"PRAGMA part.cache_size = {self._cache}")
            return self.quality(db)
        finally:
            self._reader = None
            db.close()

    def quality(self, db: sqlite3.Connection | None = None) -> dict[str, Quality]:
        """Every reviewer's counters: counted votes, seconds, escalations, skipped tasks, and
        how many counted votes agree with their item's latest resolved label."""
        db = self.db if db is None else db
        out: dict[str, Quality] = {}
        for reviewer, votes, seconds, escalations, rejects, rejected, same in db.execute(_QUALITY):
            scored, agreed = int(rejects) + int(same), int(rejected) + int(same)
            out[reviewer] = Quality(
                int(votes), float(seconds), int(escalations), scored=scored, agreed=agreed
            )
        for reviewer, skips in db.execute(
            "SELECT reviewer, COUNT(DISTINCT task_id) FROM decisions WHERE action = 'skip' "
            "GROUP BY reviewer"
        ):
            out.setdefault(reviewer, Quality()).skips = int(skips)
        labels: dict[bytes | None, Any] = {None: None}
        for reviewer, vote, final, count in db.execute(_COMPARED):
            try:
                if len(labels) > _PARSED_LABELS:
                    labels = {None: None}
                for text in (vote, final):
                    if text not in labels:
                        labels[text] = parse_label(orjson.loads(text))
            except (ValidationError, orjson.JSONDecodeError):
                continue
            # approve or correct: the outcome plays no part, only the two labels
            agrees = vote_agrees_with(Action.APPROVE, labels[vote], Outcome.LABELLED, labels[final])
            if agrees is not None:
                scores = out.setdefault(reviewer, Quality())
                scores.scored += count
                scores.agreed += count * int(agrees)
        return out
