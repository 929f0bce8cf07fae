"""Policy files and the policy book's version rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness import samples
from loupe.router.policies import (
    PolicyBook,
    PolicyFileError,
    load_policy_dir,
    parse_policy_document,
)
from loupe.schemas import Actor, PolicyUpdate, Tier

REPO = Path(__file__).resolve().parents[3]


def test_the_demo_policy_file_is_valid() -> None:
    ((policy, version, source),) = load_policy_dir(REPO / "services/router/policies")
    assert policy.project == "demo" and version == 1 and "demo.yaml" in source
    assert policy.label_schema.classes == [str(d) for d in range(10)]
    assert policy.classes["7"].safety_critical


def test_yaml_and_json_documents_parse_strictly() -> None:
    text = "project: p\nlabel_schema: {id: s, version: 2, classes: [a, b]}\n"
    policy, version = parse_policy_document(text, "x.yaml")
    assert version == 0 and policy.review.default_tier is Tier.REVIEWER
    json_text = (
        '{"project": "p", "version": 4, '
        '"label_schema": {"id": "s", "version": 1, "classes": ["a"]}}'
    )
    assert parse_policy_document(json_text, "x.json")[1] == 4


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- a\n- b\n", "one mapping"),
        ("project: p\nversion: -1\n", "non-negative"),
        ("project: p\n", "label_schema: Field required"),
        ("project: p\nlabel_schema: {id: s, version: 1, classes: [a]}\nbogus: 1\n", "bogus"),
        ("{unclosed", "not valid YAML"),
    ],
)
def test_bad_documents_are_refused_clearly(text: str, needle: str) -> None:
    with pytest.raises(PolicyFileError, match=needle):
        parse_policy_document(text, "bad.yaml")


def test_duplicate_projects_and_missing_dirs_are_refused(tmp_path: Path) -> None:
    doc = "project: p\nlabel_schema: {id: s, version: 1, classes: [a]}\n"
    (tmp_path / "a.yaml").write_text(doc)
    (tmp_path / "b.yml").write_text(doc)
    (tmp_path / "notes.txt").write_text("ignored")
    with pytest.raises(PolicyFileError, match="already defined"):
        load_policy_dir(tmp_path)
    with pytest.raises(PolicyFileError, match="does not exist"):
        load_policy_dir(tmp_path / "missing")


def test_versions_only_move_forward() -> None:
    book = PolicyBook()
    assert book.get("demo") is None
    assert book.offer(samples.policy(), 1, "file")
    update = PolicyUpdate(
        project="demo",
        version=1,
        policy=samples.policy(),
        changed_by=Actor(id="lead", role="lead"),
        at=datetime.now(UTC),
    )
    assert not book.apply(update)
    assert book.apply(update.model_copy(update={"version": 2}))
    active = book.get("demo")
    assert active is not None and active.version == 2 and "lead" in active.source
    assert list(book.projects()) == ["demo"]
