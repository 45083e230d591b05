"""Publish catalogue records from the gateway and acknowledge only after the broker did.

A publish either completes with the broker's acknowledgement (acks=all, idempotent producer) or
raises ApiError(503, Retry-After): the HTTP caller is never told "accepted" for data Kafka does not
hold, and the gateway never hangs on a dead broker.

A failed publish discards the producer and reconnects in the background. The idempotent producer
can not be reused after one: batches that expired while the broker was down leave a gap in its
sequence numbers, and after a broker restart every later send would fail with
OutOfOrderSequenceNumber (found by tests/e2e/test_faults.py). While the broker stays down the
next requests get their 503 at once ("not connected") instead of each waiting the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Sequence

from aiokafka.errors import KafkaError

from gateway.errors import ApiError
from infra.settings import Settings
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from infra.tracing import headers_from_context, inject, tracer
from schemas.codec import encode_model
from schemas.topics import TopicSpec, key_for

__all__ = ["Publisher"]


class Publisher:
    """Thin wrapper over an AIOKafkaProducer that knows the catalogue and the deadline."""

    def __init__(self, cfg: Settings, timeout_s: float = 10.0):
        self.cfg = cfg
        self.timeout_s = timeout_s
        self.producer = None
        self._starting: asyncio.Lock = asyncio.Lock()
        self._background: set[asyncio.Task] = set()  # stopping discarded producers, reconnecting

    async def start(self) -> bool:
        """Connect the producer; False (not an exception) while Kafka is unreachable."""
        from infra.clients import kafka_producer

        async with self._starting:
            if self.producer is not None:
                return True
            producer = kafka_producer(self.cfg, request_timeout_ms=int(self.timeout_s * 1000))
            try:
                await asyncio.wait_for(producer.start(), self.timeout_s)
            except (KafkaError, OSError, asyncio.TimeoutError):
                await producer.stop()
                return False
            self.producer = producer
            return True

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    def _discard(self, producer) -> None:
        """Drop a producer after a failed publish; stop it and connect a new one in the background."""
        if self.producer is not producer:
            return  # another request already replaced it
        self.producer = None

        async def stop_old() -> None:
            # stop() flushes what the old producer still buffers: with the broker down that waits
            # for the batches to expire, so never in the request path.
            with contextlib.suppress(Exception):
                await producer.stop()

        async def reconnect() -> None:
            delay = 0.5
            while self.producer is None and not await self.start():
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

        for coro in (stop_old(), reconnect()):
            task = asyncio.get_running_loop().create_task(coro)
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _unavailable(self, why: str) -> ApiError:
        return ApiError(
            503, "broker_unavailable",
            f"Kafka did not acknowledge the write ({why}); retry later with the same ids (a retry is deduplicated).",
            headers={"Retry-After": "5"},
        )

    async def publish(self, spec: TopicSpec, record) -> None:
        """Send one record and wait for its acknowledgement."""
        await self.publish_many(spec, [record])

    async def publish_many(self, spec: TopicSpec, records: Sequence) -> None:
        """Send records (in order per key) and wait until the broker acknowledged all of them."""
        if self.producer is None and not await self.start():
            raise self._unavailable("not connected")
        topic = self.cfg.topic(spec.name)
        span = tracer().start_span(f"kafka.produce {spec.name}", kind=SpanKind.PRODUCER,
                                   attributes={"messaging.system": "kafka", "messaging.destination.name": topic,
                                               "messaging.batch.message_count": len(records)})
        # The consumer's spans become children of this produce span (context in the headers).
        span_ctx = trace.set_span_in_context(span)
        headers = headers_from_context(span_ctx)
        carrier = inject(span_ctx)
        records = [r.model_copy(update={"traceContext": carrier}) if "traceContext" in type(r).model_fields else r
                   for r in records]
        payloads = [(encode_model(r), key_for(spec, r.model_dump())) for r in records]

        producer = self.producer

        async def send_all() -> None:
            futures = [await producer.send(topic, value, key=key, headers=headers) for value, key in payloads]
            await asyncio.gather(*futures)

        try:
            # One deadline over metadata wait, buffering and acknowledgement: never hang.
            await asyncio.wait_for(send_all(), self.timeout_s)
        except (KafkaError, asyncio.TimeoutError) as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            self._discard(producer)
            raise self._unavailable(type(exc).__name__) from exc
        finally:
            span.end()
