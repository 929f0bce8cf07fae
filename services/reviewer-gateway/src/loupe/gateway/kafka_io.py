"""Kafka adapters: an asyncio-friendly producer whose sends resolve on broker acknowledgement."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from loupe.runtime.kafka import producer_config

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge a record (or not in time)."""


class AsyncProducer:
    """An idempotent producer; ``send`` returns a future resolved by the delivery report.

    A background thread polls the producer, so many concurrent requests share each broker
    round trip (linger batching) instead of flushing one by one.
    """

    def __init__(self, bootstrap: str, extra: dict[str, Any] | None = None) -> None:
        self._producer = Producer(
            producer_config(bootstrap, extra={"linger.ms": 2, **(extra or {})})
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="gw-producer", daemon=True)
        self._thread.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def send(self, topic: str, key: str, value: bytes) -> asyncio.Future[None]:
        """Queue one record; the returned future completes when Kafka acknowledged it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, error)

        while True:
            try:
                self._producer.produce(
                    topic, key=key.encode(), value=value, on_delivery=on_delivery
                )
                break
            except BufferError:
                self._producer.poll(0.01)
            except KafkaException as exc:
                future.set_exception(DeliveryError(str(exc)))
                break
        return future

    def send_nowait(self, topic: str, key: str, value: bytes) -> None:
        """Queue a record whose acknowledgement nobody waits for (flushed on close)."""
        try:
            self._producer.produce(topic, key=key.encode(), value=value, on_delivery=_log_failure)
        except (BufferError, KafkaException) as exc:
            log.warning("could not queue record for %s: %s", topic, exc)

    async def send_all(self, records: Sequence[tuple[str, str, bytes]], timeout_s: float) -> None:
        """Send records and wait until every one is acknowledged (``DeliveryError`` if not)."""
        futures = [self.send(topic, key, value) for topic, key, value in records]
        try:
            await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
        except TimeoutError:
            raise DeliveryError(f"Kafka did not acknowledge within {timeout_s:g}s") from None

    def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether the cluster answers a metadata request."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is queued and stop the poll thread."""
        self._stop.set()
        self._thread.join(timeout=5)
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.warning("%d record(s) were not acknowledged at shutdown", remaining)


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(DeliveryError(str(error)))


def _log_failure(error: KafkaError | None, message: Message) -> None:
    if error is not None:
        log.warning("record for %s was not delivered: %s", message.topic(), error)
