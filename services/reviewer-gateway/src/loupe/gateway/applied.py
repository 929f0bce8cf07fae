"""Whether Redis came back older than the live events the gateway applied to it.

A restored snapshot, or a failover to a replica that lagged (Redis replicates asynchronously),
holds a consistent older working set: the ready marker and the sentinels are there, yet the
events applied after that state — review requests, labels — are gone from Redis while Kafka has
their offsets committed, so they would never be applied again (a task created then would never
be claimable). Before every offset commit the consumer records in ``<prefix>applied`` how far
it applied each partition; a commit never runs ahead of that record, and the rebuild records
the offsets it read to. So a partition whose record in Redis is below the offset committed in
Kafka means Redis went back: the gateway rebuilds (docs/architecture.md). It is checked every
second and before every record (which would otherwise raise the older record past the evidence).
"""

from __future__ import annotations

import redis
from confluent_kafka import Consumer, TopicPartition

from loupe.gateway.views import text

RECORD_APPLIED = """
-- ARGV: prefix, then triples ('<topic>:<partition>', offset committed in Kafka as far as the
-- caller knows (-1: none), next offset to apply). Refuses, naming the first, when a record is
-- below the committed offset (Redis went back); else keeps the highest of each (a replica that
-- lost a partition in a rebalance may still write an older one).
local key = ARGV[1] .. 'applied'
for i = 2, #ARGV, 3 do
  local stored = tonumber(redis.call('HGET', key, ARGV[i]))
  if stored and stored < tonumber(ARGV[i + 1]) then return {ARGV[i], stored, ARGV[i + 1]} end
end
for i = 2, #ARGV, 3 do
  local stored = tonumber(redis.call('HGET', key, ARGV[i]))
  if not stored or stored < tonumber(ARGV[i + 2]) then
    redis.call('HSET', key, ARGV[i], ARGV[i + 2])
  end
end
return {}
"""


class WentBackError(RuntimeError):
    """Redis holds less than Kafka says was applied: it came back older."""


Partition = tuple[str, int]


class AppliedPositions:
    """The live consumer's record of applied offsets in Redis, and the check against Kafka."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.key = f"{prefix}applied"
        self._record = client.register_script(RECORD_APPLIED)
        self._prefix = prefix
        self.committed: dict[Partition, int] = {}
        """Offsets known to be committed in Kafka (read once per partition, then our own)."""

    def commit(self, consumer: Consumer, positions: dict[Partition, int]) -> None:
        """Record ``positions`` (next offsets to apply) in Redis, then commit them to Kafka;
        raises ``WentBackError`` (recording and committing nothing) when Redis went back."""
        if not positions:
            return
        self._learn(consumer, [TopicPartition(t, p) for t, p in positions])
        args: list[str | int] = [self._prefix]
        for (topic, partition), offset in positions.items():
            args += [f"{topic}:{partition}", self.committed[(topic, partition)], offset]
        refused = self._record(args=args)
        if refused:
            field, stored, committed = (text(value) for value in refused)
            raise WentBackError(_went_back(field, stored, committed))
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        consumer.commit(offsets=offsets, asynchronous=False)
        self.committed.update(positions)

    def went_back(self, consumer: Consumer) -> str | None:
        """Why Redis holds less than Kafka says was applied (None: it does not)."""
        self._learn(consumer, consumer.assignment())
        applied = self.redis.hgetall(self.key)
        for (topic, partition), committed in sorted(self.committed.items()):
            stored = applied.get(f"{topic}:{partition}".encode())
            if stored is not None and int(stored) < committed:
                return _went_back(f"{topic}:{partition}", text(stored), str(committed))
        return None

    def _learn(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Read from Kafka the committed offsets of the partitions not known yet (once each;
        -1 for a partition the group never committed)."""
        unknown = [tp for tp in partitions if (tp.topic, tp.partition) not in self.committed]
        if unknown:
            for tp in consumer.committed(unknown, timeout=10):
                self.committed[(tp.topic, tp.partition)] = max(tp.offset, -1)

    def record_rebuilt(self, upto: dict[str, int]) -> None:
        """The rebuild applied every partition it read up to ``upto`` ('<topic>:<partition>'
        -> end offset): so recorded, a missing record never passes for one not written yet."""
        args: list[str | int] = [self._prefix]
        for field, offset in upto.items():
            args += [field, -1, offset]
        if upto:
            self._record(args=args)

    def forget(self) -> None:
        """A new consumer (another assignment): read the committed offsets again."""
        self.committed.clear()


def _went_back(field: str, stored: str, committed: str) -> str:
    return (
        f"Redis holds {field} applied up to offset {stored} but Kafka has it committed up to "
        f"{committed}: Redis came back older (a restored snapshot, a failover to a lagging "
        "replica)"
    )
