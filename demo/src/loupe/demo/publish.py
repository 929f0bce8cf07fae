"""What the demo writes to Kafka itself: the project's policy and the model's predictions."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from confluent_kafka import Producer

from loupe.demo.model_serving import DemoStream, to_prediction
from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import producer_config
from loupe.schemas import Actor, PolicyUpdate, ProjectPolicy, utcnow


class PublishError(RuntimeError):
    """Kafka did not acknowledge what the demo published."""


def _flush(producer: Producer, what: str, timeout_s: float = 60.0) -> None:
    remaining = producer.flush(timeout_s)
    if remaining:
        raise PublishError(f"{remaining} {what} record(s) were not acknowledged by Kafka")


def publish_policy(kafka: KafkaConnection, topic: str, policy: ProjectPolicy, version: int) -> None:
    """Publish the project's policy as a ``PolicyUpdate`` on ``control.policy`` (keyed by project).

    The router loads the same document from its policy file; the gateway, resolver and metrics
    learn the project's policy from this record.
    """
    update = PolicyUpdate(
        project=policy.project,
        version=version,
        policy=policy,
        changed_by=Actor(id="service:demo", role="admin"),
        reason="loupe demo: initial policy of the digits project",
        at=utcnow(),
    )
    producer = Producer(producer_config(kafka))
    producer.produce(topic, key=policy.project.encode(), value=update.to_json_bytes())
    _flush(producer, "policy")


class PredictionStreamer:
    """Model serving: publishes the stream's predictions at a steady rate on a thread.

    The deliberately malformed records are spread evenly through the stream.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        topic: str,
        stream: DemoStream,
        *,
        project: str,
        rate: float,
        malformed: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._producer = Producer(producer_config(kafka))
        self._topic = topic
        self._stream = stream
        self._project = project
        self._rate = rate
        self._malformed = list(malformed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-serving", daemon=True)
        self.sent = 0
        self.malformed_sent = 0
        self.error: BaseException | None = None

    def start(self) -> PredictionStreamer:
        """Start streaming in the background."""
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        """Whether everything was published (or streaming failed or was stopped)."""
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop streaming (what was sent stays sent) and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=70)

    def _run(self) -> None:
        try:
            self._stream_all()
            _flush(self._producer, "prediction")
        except BaseException as exc:  # reported by the caller; the thread must not die silently
            self.error = exc

    def _send(self, key: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self._topic, key=key.encode(), value=value)
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _stream_all(self) -> None:
        items = self._stream.items
        every = max(1, len(items) // (len(self._malformed) + 1))
        pending_bad = list(self._malformed)
        started = time.monotonic()
        for index, item in enumerate(items):
            if self._stop.is_set():
                return
            delay = started + index / self._rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            self._send(
                item.item_id, to_prediction(item, self._stream.model, self._project).to_json_bytes()
            )
            self.sent += 1
            if pending_bad and (index + 1) % every == 0:
                key, raw = pending_bad.pop(0)
                self._send(key, raw)
                self.malformed_sent += 1
        for key, raw in pending_bad:
            self._send(key, raw)
            self.malformed_sent += 1
