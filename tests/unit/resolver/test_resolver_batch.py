"""Batch mode: CSV in, one label per item out, same tie rules as streaming, clear input errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from loupe.resolver.batch import BatchInputError, BatchMethod, consolidate, read_votes
from loupe.resolver.cli import resolve
from loupe.resolver.synthetic import generate


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_out(path: Path) -> dict[str, tuple[str, float]]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {r["item"]: (r["label"], float(r["confidence"])) for r in rows}


def test_majority_with_ties_broken_by_class_name(tmp_path: Path) -> None:
    votes = write(
        tmp_path / "v.csv",
        ["item", "worker", "label"],
        [
            ["b", "w1", "zebra"],
            ["b", "w2", "ant"],
            ["a", "w1", "cat"],
            ["a", "w2", "cat"],
            ["a", "w3", "dog"],
        ],
    )
    out = tmp_path / "o.csv"
    result = CliRunner().invoke(
        resolve, ["batch", "--votes", str(votes), "--method", "majority", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    labels = read_out(out)
    assert list(labels) == ["b", "a"]  # first-appearance order
    assert labels["b"] == ("ant", 0.5)
    assert labels["a"][0] == "cat" and abs(labels["a"][1] - 2 / 3) < 1e-6


def test_default_method_is_dawid_skene_and_gold_reports_accuracy(tmp_path: Path) -> None:
    crowd = generate(
        n_items=600, accuracies=[0.9, 0.8, 0.6, 0.55, 0.5], n_classes=3, overlap=3, seed=11
    )
    rows = [
        [f"i{i}", f"w{w}", f"c{label}"]
        for i, w, label in zip(
            crowd.items.tolist(), crowd.workers.tolist(), crowd.labels.tolist(), strict=True
        )
    ]
    votes = write(tmp_path / "v.csv", ["item", "worker", "label"], rows)
    gold = write(
        tmp_path / "g.csv",
        ["item", "truth"],
        [[f"i{i}", f"c{crowd.truth[i]}"] for i in range(0, 600, 5)],
    )
    out = tmp_path / "o.csv"
    result = CliRunner().invoke(
        resolve, ["batch", "--votes", str(votes), "--out", str(out), "--gold", str(gold)]
    )
    assert result.exit_code == 0, result.output
    assert "dawid-skene" in result.output and "accuracy on 120 gold items" in result.output
    labels = read_out(out)
    assert len(labels) == 600
    hits = sum(labels[f"i{i}"][0] == f"c{t}" for i, t in enumerate(crowd.truth.tolist()))
    assert hits / 600 > 0.85


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["item", "annotator", "label"], [["a", "b", "c"]], "header must be"),
        (["item", "worker", "label"], [["a", "", "c"]], "expected 3 non-empty fields"),
        (["item", "worker", "label"], [], "no votes"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path, header: list[str], rows: list[list[str]], message: str
) -> None:
    votes = write(tmp_path / "v.csv", header, rows)
    with pytest.raises(BatchInputError, match=message):
        read_votes(votes)
    result = CliRunner().invoke(
        resolve, ["batch", "--votes", str(votes), "--out", str(tmp_path / "o.csv")]
    )
    assert result.exit_code != 0 and message in result.output


def test_gold_with_an_unknown_class_is_rejected(tmp_path: Path) -> None:
    votes = write(tmp_path / "v.csv", ["item", "worker", "label"], [["a", "w", "cat"]])
    gold = write(tmp_path / "g.csv", ["item", "truth"], [["a", "unicorn"]])
    result = CliRunner().invoke(
        resolve, ["batch", "--votes", str(votes), "--out", str(tmp_path / "o"), "--gold", str(gold)]
    )
    assert result.exit_code != 0 and "not a voted class" in result.output


def test_consolidate_majority_matches_the_streaming_tally(tmp_path: Path) -> None:
    votes = write(
        tmp_path / "v.csv",
        ["item", "worker", "label"],
        [["x", "w1", "b"], ["x", "w2", "a"], ["x", "w3", "c"]],
    )
    result = consolidate(read_votes(votes), BatchMethod.MAJORITY)
    assert result.labels == ["a"]
