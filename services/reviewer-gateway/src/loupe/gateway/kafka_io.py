"""Kafka adapters: an asyncio-friendly producer whose sends resolve on broker acknowledgement."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import producer_config

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge a record (or not in time)."""


class AsyncProducer:
    """An idempotent producer; ``send`` returns a future resolved by the delivery report.

    Delivery reports are served on the event loop itself: while records are in flight a small
    task polls the producer every ``poll_interval_s``, so concurrent requests share each broker
    round trip (linger batching) and no thread has to hand results back across the GIL.
    Construct it inside the running loop; close it with ``aclose()``.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        extra: dict[str, Any] | None = None,
        poll_interval_s: float = 0.001,
    ) -> None:
        self._producer = Producer(producer_config(kafka, extra=extra))
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._poll_interval_s = poll_interval_s
        self._in_flight = asyncio.Event()
        self._closing = False
        self._pump = self._loop.create_task(self._serve_deliveries(), name="kafka-deliveries")
        self._pump.add_done_callback(self._pump_stopped)

    def _pump_stopped(self, task: asyncio.Task[None]) -> None:
        if self._closing:
            return
        error = None if task.cancelled() else task.exception()
        log.error("Kafka delivery reports are no longer served (health is now failing): %r", error)

    async def _serve_deliveries(self) -> None:
        while not self._closing:
            if len(self._producer) == 0:
                self._in_flight.clear()
                await self._in_flight.wait()
            try:
                self._producer.poll(0)
            except Exception:  # a report must never stop the others from being served
                log.exception("serving Kafka delivery reports failed")
            await asyncio.sleep(self._poll_interval_s)

    def send(self, topic: str, key: str, value: bytes) -> asyncio.Future[None]:
        """Queue one record; the returned future completes when Kafka acknowledged it."""
        future: asyncio.Future[None] = self._loop.create_future()

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if threading.get_ident() == self._loop_thread:
                _settle(future, error)
            else:  # the final flush in aclose() runs on a worker thread
                self._loop.call_soon_threadsafe(_settle, future, error)

        try:
            self._produce(topic, key, value, on_delivery)
        except KafkaException as exc:
            future.set_exception(DeliveryError(str(exc)))
        return future

    def send_nowait(self, topic: str, key: str, value: bytes) -> None:
        """Queue a record whose acknowledgement nobody waits for (flushed on close)."""
        try:
            self._produce(topic, key, value, _log_failure)
        except KafkaException as exc:
            log.warning("could not queue record for %s: %s", topic, exc)

    def _produce(self, topic: str, key: str, value: bytes, on_delivery: Any) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, key=key.encode(), value=value, on_delivery=on_delivery
                )
                break
            except BufferError:  # the local queue is full: serve reports, then retry
                self._producer.poll(0.01)
        self._in_flight.set()

    async def send_all(self, records: Sequence[tuple[str, str, bytes]], timeout_s: float) -> None:
        """Send records and wait until every one is acknowledged (``DeliveryError`` if not)."""
        futures = [self.send(topic, key, value) for topic, key, value in records]
        try:
            async with asyncio.timeout(timeout_s):
                outcomes = await asyncio.gather(*futures, return_exceptions=True)
        except TimeoutError:
            raise DeliveryError(f"Kafka did not acknowledge within {timeout_s:g}s") from None
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether reports are served and the cluster answers (blocking: call it in a thread)."""
        if self._pump.done():
            return False
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Stop serving reports on the loop and flush what is queued."""
        self._closing = True
        self._in_flight.set()
        if not self._pump.done():
            await self._pump
        remaining = await asyncio.to_thread(self._producer.flush, timeout_s)
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
