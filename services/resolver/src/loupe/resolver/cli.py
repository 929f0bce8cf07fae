"""CLI: ``loupe resolver`` runs the streaming worker, ``loupe resolve batch`` the CSV mode."""

from __future__ import annotations

import time
from pathlib import Path

import click

from loupe.resolver.batch import (
    BatchInputError,
    BatchMethod,
    accuracy,
    consolidate,
    read_gold,
    read_votes,
    write_labels,
)


@click.group()
def resolve() -> None:
    """Consolidate votes offline (re-consolidation, backfills)."""


@resolve.command("batch")
@click.option(
    "--votes",
    "votes_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV with header item,worker,label.",
)
@click.option(
    "--method",
    type=click.Choice([m.value for m in BatchMethod]),
    default=BatchMethod.DAWID_SKENE.value,
    show_default=True,
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output CSV: item,label,confidence.",
)
@click.option(
    "--gold",
    "gold_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with header item,truth: seeds reliabilities and reports accuracy.",
)
def batch(votes_path: Path, method: str, out_path: Path, gold_path: Path | None) -> None:
    """Consolidate VOTES into one label per item."""
    chosen = BatchMethod(method)
    started = time.perf_counter()
    try:
        estimate = _estimate_rows(votes_path)
        stderr = click.get_text_stream("stderr")
        with click.progressbar(length=estimate, label="reading votes", file=stderr) as bar:
            table = read_votes(votes_path, bar.update)
            bar.update(max(0, estimate - bar.pos))
        gold = read_gold(gold_path, table) if gold_path else {}
    except BatchInputError as exc:
        raise click.ClickException(str(exc)) from None
    result = consolidate(table, chosen, gold)
    write_labels(out_path, result)
    elapsed = time.perf_counter() - started
    click.echo(
        f"{table.n_votes} votes, {len(table.item_names)} items, {len(table.worker_names)} "
        f"workers, {len(table.class_names)} classes -> {out_path} with {chosen.value} "
        f"in {elapsed:.2f}s",
        err=True,
    )
    if gold:
        seeded = chosen is BatchMethod.DAWID_SKENE
        blind = consolidate(table, chosen) if seeded else result
        note = " (estimated without the gold labels; the written labels are gold-seeded)"
        click.echo(
            f"accuracy on {len(gold)} gold items: {accuracy(blind, table, gold):.4f}"
            + (note if seeded else ""),
            err=True,
        )


def _estimate_rows(path: Path) -> int:
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
    lines = head.count(b"\n")
    size = path.stat().st_size
    return max(1, int(lines * size / max(1, len(head))))


@click.command()
def resolver() -> None:
    """Run the streaming resolver (Faust worker)."""
    from loupe.resolver.worker import run  # noqa: PLC0415  (Faust loads only for the worker)
    from loupe.runtime.kafka import KafkaAccessError, TopicLayoutError  # noqa: PLC0415

    try:
        run()
    except (KafkaAccessError, TopicLayoutError) as exc:  # say what is wrong, and stop
        raise click.ClickException(str(exc)) from None
