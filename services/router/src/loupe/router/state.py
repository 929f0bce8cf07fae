"""The router's memory per input partition, and its changelog records (pure, no I/O).

State is kept per partition of ``predictions`` so it moves with the partition on a rebalance:
per project, the class counts (for rare classes), the model versions, task types and data types
seen, and the novelty references. Every transaction that changes a piece of state also writes
that piece to the compacted changelog partition of the same number, so the state restored after
a crash or rebalance always matches the committed input offsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from loupe.router.novelty import Reference

STATE_FORMAT = 1

ReferenceKey = tuple[str, str]
"""(model ``name@version``, class) — the class is ``*`` for box and track embeddings."""


class StateError(ValueError):
    """A changelog record could not be understood."""


@dataclass
class ProjectState:
    """What the router has seen of one project in one partition."""

    class_counts: dict[str, int] = field(default_factory=dict)
    observations: int = 0
    model_versions: set[str] = field(default_factory=set)
    task_types: set[str] = field(default_factory=set)
    data_types: set[str] = field(default_factory=set)
    references: dict[ReferenceKey, Reference] = field(default_factory=dict)
    meta_dirty: bool = False
    dirty_references: set[ReferenceKey] = field(default_factory=set)

    def count_classes(self, classes: set[str]) -> None:
        """Count one item predicting ``classes`` towards the class shares."""
        self.observations += 1
        for name in classes:
            self.class_counts[name] = self.class_counts.get(name, 0) + 1
        self.meta_dirty = True

    def reference(self, key: ReferenceKey, dim: int) -> Reference:
        """The novelty reference for ``key`` (created empty on first use), marked changed."""
        reference = self.references.get(key)
        if reference is None:
            reference = self.references[key] = Reference(dim)
        self.dirty_references.add(key)
        return reference

    def meta_json(self) -> dict[str, Any]:
        """Everything but the references, JSON-ready."""
        return {
            "format": STATE_FORMAT,
            "class_counts": self.class_counts,
            "observations": self.observations,
            "model_versions": sorted(self.model_versions),
            "task_types": sorted(self.task_types),
            "data_types": sorted(self.data_types),
        }

    def load_meta(self, data: dict[str, Any]) -> None:
        """Restore everything but the references from ``meta_json`` output."""
        self.class_counts = {str(k): int(v) for k, v in data["class_counts"].items()}
        self.observations = int(data["observations"])
        self.model_versions = set(data["model_versions"])
        self.task_types = set(data["task_types"])
        self.data_types = set(data["data_types"])


@dataclass
class PartitionState:
    """The router's state for one input partition."""

    partition: int
    projects: dict[str, ProjectState] = field(default_factory=dict)

    def project(self, name: str) -> ProjectState:
        """The state of ``name`` (created empty on first use)."""
        state = self.projects.get(name)
        if state is None:
            state = self.projects[name] = ProjectState()
        return state

    def reference_count(self) -> int:
        """How many novelty references this partition holds."""
        return sum(len(p.references) for p in self.projects.values())

    def drain_changes(self) -> list[tuple[bytes, bytes]]:
        """Changelog (key, value) records for everything changed since the last drain."""
        records: list[tuple[bytes, bytes]] = []
        for name, project in self.projects.items():
            if project.meta_dirty:
                records.append((orjson.dumps(["meta", name]), orjson.dumps(project.meta_json())))
                project.meta_dirty = False
            for key in sorted(project.dirty_references):
                value = {"format": STATE_FORMAT, **project.references[key].to_json()}
                records.append((orjson.dumps(["ref", name, *key]), orjson.dumps(value)))
            project.dirty_references.clear()
        return records

    def restore(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one changelog record (later records for the same key replace earlier ones)."""
        try:
            parts = orjson.loads(key or b"null")
            data = orjson.loads(value) if value is not None else None
            if data is not None and data.get("format") != STATE_FORMAT:
                raise StateError(f"unsupported state format {data.get('format')!r}")
            kind = parts[0]
            if kind == "meta" and len(parts) == 2:
                if data is None:
                    self.projects.pop(parts[1], None)
                else:
                    self.project(parts[1]).load_meta(data)
            elif kind == "ref" and len(parts) == 4:
                project = self.project(parts[1])
                ref_key = (str(parts[2]), str(parts[3]))
                if data is None:
                    project.references.pop(ref_key, None)
                else:
                    project.references[ref_key] = Reference.from_json(data)
            else:
                raise StateError(f"unknown state key {key!r}")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
            if isinstance(exc, StateError):
                raise
            message = f"partition {self.partition}: bad state record {key!r}: {exc}"
            raise StateError(message) from exc
