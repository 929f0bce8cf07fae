"""Whether Redis came back older than the live events the gateway applied to it.

A restored snapshot, or a failover to a replica that lagged (Redis replicates asynchronously),
holds a consistent older working set: the ready marker and the sentinels are there, yet the
events applied after that state — review requests, labels — are gone from Redis while Kafka has
their offsets committed, so they would never be applied again (a task created then would never
be claimable). Before every offset commit the consumer records in ``<prefix>applied`` how far
it applied each partition; a commit never runs ahead of that record. So a partition whose
record in Redis is below the offset committed in Kafka means Redis went back: the gateway
rebuilds (docs/architecture.md).
"""

from __future__ import annotations

import redis
from confluent_kafka import Consumer, TopicPartition

RECORD_APPLIED = """
-- ARGV: prefix, then field, offset pairs ('<topic>:<partition>', next offset to apply). Keeps
-- the highest (a replica that lost a partition in a rebalance may still write an older one).
local key = ARGV[1] .. 'applied'
for i = 2, #ARGV, 2 do
  local stored = tonumber(redis.call('HGET', key, ARGV[i]))
  if not stored or stored < tonumber(ARGV[i + 1]) then
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
return 0
"""

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
        """Record ``positions`` (next offsets to apply) in Redis, then commit them to Kafka."""
        if not positions:
            return
        args: list[str | int] = [self._prefix]
        for (topic, partition), offset in positions.items():
            args += [f"{topic}:{partition}", offset]
        self._record(args=args)
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        consumer.commit(offsets=offsets, asynchronous=False)
        self.committed.update(positions)

    def went_back(self, consumer: Consumer) -> str | None:
        """Why Redis holds less than Kafka says was applied (None: it does not)."""
        unknown = [
            tp for tp in consumer.assignment() if (tp.topic, tp.partition) not in self.committed
        ]
        if unknown:
            for tp in consumer.committed(unknown, timeout=10):
                if tp.offset >= 0:
                    self.committed[(tp.topic, tp.partition)] = tp.offset
        if not self.committed:
            return None
        applied = self.redis.hgetall(self.key)
        for (topic, partition), committed in sorted(self.committed.items()):
            stored = applied.get(f"{topic}:{partition}".encode())
            if stored is not None and int(stored) < committed:
                return (
                    f"Redis holds {topic}[{partition}] applied up to offset {int(stored)} but "
                    f"Kafka has it committed up to {committed}: Redis came back older (a "
                    "restored snapshot, a failover to a lagging replica)"
                )
        return None

    def forget(self) -> None:
        """A new consumer (another assignment): read the committed offsets again."""
        self.committed.clear()
