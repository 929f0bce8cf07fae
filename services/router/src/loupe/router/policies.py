"""The router's policy book: per-project policies from files, then live versions from Kafka."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from loupe.schemas import PolicyUpdate, ProjectPolicy

log = logging.getLogger(__name__)

POLICY_SUFFIXES = (".yaml", ".yml", ".json")


class PolicyFileError(ValueError):
    """A policy file could not be read or is not a valid project policy."""


@dataclass(frozen=True)
class ActivePolicy:
    """A project's policy in force and its version (0 for a file without one)."""

    policy: ProjectPolicy
    version: int
    source: str

    @cached_property
    def known_classes(self) -> frozenset[str]:
        """The classes of the policy's label schema (the only ones the router's state keeps)."""
        return frozenset(self.policy.label_schema.classes)


class PolicyBook:
    """The latest policy version of every project the router knows.

    Versions only move forward: an update whose version is not newer than the one in force is
    ignored, so replaying the compacted ``control.policy`` topic is harmless.
    """

    def __init__(self) -> None:
        self._active: dict[str, ActivePolicy] = {}

    def get(self, project: str) -> ActivePolicy | None:
        """The policy in force for ``project``, or None for an unknown project."""
        return self._active.get(project)

    def projects(self) -> dict[str, ActivePolicy]:
        """Every project's policy in force (a copy)."""
        return dict(self._active)

    def offer(self, policy: ProjectPolicy, version: int, source: str) -> bool:
        """Adopt ``policy`` unless a version at least as new is in force; say whether adopted."""
        current = self._active.get(policy.project)
        if current is not None and version <= current.version:
            log.info(
                "ignoring policy %s v%d from %s: v%d from %s is in force",
                policy.project,
                version,
                source,
                current.version,
                current.source,
            )
            return False
        self._active[policy.project] = ActivePolicy(policy, version, source)
        log.info(
            "policy %s v%d from %s is now in force (was %s)",
            policy.project,
            version,
            source,
            f"v{current.version}" if current else "none",
        )
        return True

    def apply(self, update: PolicyUpdate) -> bool:
        """Adopt a ``PolicyUpdate`` from ``control.policy`` if it is newer."""
        return self.offer(
            update.policy, update.version, f"control.policy by {update.changed_by.id}"
        )


def parse_policy_document(text: str, origin: str) -> tuple[ProjectPolicy, int]:
    """Parse a YAML or JSON policy document: a ``ProjectPolicy`` plus an optional ``version``."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{origin}: not valid YAML/JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PolicyFileError(f"{origin}: a policy file must hold one mapping")
    version = document.pop("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise PolicyFileError(f"{origin}: version must be a non-negative integer")
    try:
        policy = ProjectPolicy.model_validate_json(json.dumps(document), strict=True)
    except (TypeError, ValueError) as exc:
        detail = _validation_summary(exc) if isinstance(exc, ValidationError) else str(exc)
        raise PolicyFileError(f"{origin}: invalid project policy: {detail}") from None
    return policy, version


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    )


def load_policy_dir(directory: Path) -> list[tuple[ProjectPolicy, int, str]]:
    """Read every policy file in ``directory`` (sorted by name); one project per file."""
    if not directory.is_dir():
        raise PolicyFileError(f"policy directory {directory} does not exist")
    found: list[tuple[ProjectPolicy, int, str]] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in POLICY_SUFFIXES or not path.is_file():
            continue
        policy, version = parse_policy_document(path.read_text(encoding="utf-8"), str(path))
        if policy.project in seen:
            raise PolicyFileError(
                f"{path}: project {policy.project!r} is already defined in {seen[policy.project]}"
            )
        seen[policy.project] = path
        found.append((policy, version, f"file {path.name}"))
    return found
