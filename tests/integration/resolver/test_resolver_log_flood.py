"""Issue 19, defect 8: a broker outage must not flood the resolver's log.

During a 15 s outage the resolver logged 20,217 ERROR lines (2.2 MB), almost all the same few
messages from the Kafka client libraries. The test runs on the fault tests' broker (the session's
broker is shared by every test, so it cannot be stopped): the resolver resolves an item, the broker
is stopped for 15 s and started again, the resolver resolves another item, and its log is counted.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from harness.kafka import produce
from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import simulate
from loupe.runtime.kafka import ensure_topics
from loupe.schemas import ClassificationLabel
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS
from loupe.stack.kafka import KafkaBroker

OUTAGE_S = 15.0
MAX_ERROR_LINES = 300
"""Far below the 20,217 seen before; the limiter lets 5 of each message through per minute."""


def _resolve_one(bootstrap: str, prefix: str, item: str, worker: ResolverProcess) -> None:
    request = simulate.request(item, ClassificationLabel(label="cat"), ["cat", "dog"], overlap=1)
    vote = simulate.decision(request, "r1", label=ClassificationLabel(label="dog"))
    produce(bootstrap, f"{prefix}{REVIEW_REQUESTS.name}", [(item, request)])
    produce(bootstrap, f"{prefix}{REVIEW_DECISIONS.name}", [(item, vote)])
    collect(
        bootstrap,
        f"{prefix}{LABELS_RESOLVED.name}",
        until=lambda got: any(m.key() == item.encode() for m in got),
        workers=[worker],
        timeout_s=180,
        idle_s=1.0,
    )


def test_a_broker_outage_does_not_flood_the_resolver_log(
    own_kafka: KafkaBroker, tmp_path: Path
) -> None:
    bootstrap = own_kafka.settings.kafka_bootstrap
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(bootstrap, prefix=prefix)
    log_path = tmp_path / "resolver.log"
    worker = ResolverProcess(bootstrap, prefix, tmp_path / "state", log_path)
    worker.env["LOUPE_RESOLVER_LOG_LEVEL"] = "info"
    worker.start()
    try:
        _resolve_one(bootstrap, prefix, "before", worker)
        own_kafka.down()
        time.sleep(OUTAGE_S)
        own_kafka.up()
        _resolve_one(bootstrap, prefix, "after", worker)
    finally:
        worker.stop()
    text = log_path.read_text(errors="replace")
    lines = text.splitlines()
    errors = [line for line in lines if "ERROR" in line]
    summary = f"{len(lines)} lines, {len(errors)} ERROR, {len(text)} bytes; tail:\n{text[-3000:]}"
    print(summary)
    assert len(errors) <= MAX_ERROR_LINES, summary
    assert len(text) < 500_000, summary
    assert "suppressed" in text, summary
