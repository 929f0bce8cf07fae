"""The router's memory per input partition, and its changelog records (pure, no I/O).

State is kept per partition of ``predictions`` so it moves with the partition on a rebalance:
per project, the class counts (for rare classes), the model versions, task types and data types
seen, and the novelty references. Every transaction that changes a piece of state also writes
that piece to the compacted changelog partition of the same number, so the state restored after
a crash or rebalance always matches the committed input offsets.

What is kept is bounded by the project's ``state_limits`` (see ``loupe.router.engine.observe``),
and no changelog record is larger than ``STATE_RECORD_BYTES`` (key plus value), half the
smallest ``max_record_bytes`` the settings allow: a piece of state that encodes larger (a
4,096-dimension reference, the class counts of a large label schema) is written as parts
``["part", i, *key]`` holding consecutive slices of its encoding, followed in the same
transaction by a header under its own key that names the number of parts, the size and a
digest. Restore reassembles a header's parts, which precede it in the log: compaction keeps
the latest record of every key, so the latest header always follows its own parts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from loupe.router.novelty import Reference

STATE_FORMAT = 1
STATE_RECORD_BYTES = 65_536
"""Largest changelog record (key plus value) the router writes: half the smallest allowed
``max_record_bytes`` (``loupe.runtime.settings.ServiceSettings``), whatever it is set to."""
PART_ROOM_BYTES = 64
"""Room in a part record for the ``["part", i, ...]`` key prefix beyond the logical key."""

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
    _parts: dict[bytes, int] = field(default_factory=dict, repr=False)
    """Number of parts last written (or restored) per encoded key of a piece in parts."""
    _pending: dict[bytes, dict[int, bytes]] = field(default_factory=dict, repr=False)
    """Restore: parts read whose header has not been read yet."""

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
                self._encode(records, ["meta", name], orjson.dumps(project.meta_json()))
                project.meta_dirty = False
            for key in sorted(project.dirty_references):
                value = {"format": STATE_FORMAT, **project.references[key].to_json()}
                self._encode(records, ["ref", name, *key], orjson.dumps(value))
            project.dirty_references.clear()
        return records

    def _encode(self, records: list[tuple[bytes, bytes]], key: list[str], value: bytes) -> None:
        """Append ``key``'s record, as parts plus a header when it is over the record limit."""
        encoded_key = orjson.dumps(key)
        written = self._parts.get(encoded_key, 0)
        if len(encoded_key) + len(value) <= STATE_RECORD_BYTES:
            count = 0
        else:
            room = STATE_RECORD_BYTES - len(encoded_key) - PART_ROOM_BYTES
            count = -(-len(value) // room)
            for index in range(count):
                part = value[index * room : (index + 1) * room]
                records.append((orjson.dumps(["part", index, *key]), part))
            header = {
                "format": STATE_FORMAT,
                "parts": count,
                "size": len(value),
                "digest": hashlib.blake2b(value, digest_size=16).hexdigest(),
            }
            value = orjson.dumps(header)
        # parts a longer encoding left behind are emptied (an empty part is dropped on restore)
        records.extend((orjson.dumps(["part", i, *key]), b"") for i in range(count, written))
        records.append((encoded_key, value))
        if count:
            self._parts[encoded_key] = count
        else:
            self._parts.pop(encoded_key, None)

    def restore(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one changelog record (later records for the same key replace earlier ones)."""
        try:
            parts = orjson.loads(key or b"null")
            if isinstance(parts, list) and parts and parts[0] == "part" and len(parts) > 2:
                self._restore_part(int(parts[1]), orjson.dumps(parts[2:]), value)
                return
            data = orjson.loads(value) if value is not None else None
            if data is not None and data.get("format") != STATE_FORMAT:
                raise StateError(f"unsupported state format {data.get('format')!r}")
            encoded_key = orjson.dumps(parts)
            if data is not None and "parts" in data:
                data = self._assemble(encoded_key, data)
                if data is None:  # not all its parts were read: a later header completes it
                    return
            else:
                self._parts.pop(encoded_key, None)
                self._pending.pop(encoded_key, None)
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
        except (
            orjson.JSONDecodeError,
            AttributeError,
            KeyError,
            TypeError,
            ValueError,
            IndexError,
        ) as exc:
            if isinstance(exc, StateError):
                raise
            message = f"partition {self.partition}: bad state record {key!r}: {exc}"
            raise StateError(message) from exc

    def _restore_part(self, index: int, encoded_key: bytes, value: bytes | None) -> None:
        if value:
            self._pending.setdefault(encoded_key, {})[index] = value
        else:  # emptied: a shorter encoding replaced the one it belonged to
            self._pending.get(encoded_key, {}).pop(index, None)

    def _assemble(self, encoded_key: bytes, header: dict[str, Any]) -> Any:
        """The decoded value a header's parts spell, or None when they do not (yet)."""
        pending = self._pending.pop(encoded_key, {})
        count = int(header["parts"])
        chunks = [pending.get(index) for index in range(count)]
        if any(chunk is None for chunk in chunks):
            return None
        blob = b"".join(chunk for chunk in chunks if chunk is not None)
        digest = hashlib.blake2b(blob, digest_size=16).hexdigest()
        if len(blob) != int(header["size"]) or digest != header["digest"]:
            return None
        self._parts[encoded_key] = count
        data = orjson.loads(blob)
        if data.get("format") != STATE_FORMAT:
            raise StateError(f"unsupported state format {data.get('format')!r}")
        return data
