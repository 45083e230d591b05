"""Matching twin replies on the reply topic to the HTTP requests waiting for them.

Each gateway instance reads *every* partition of ``twin.replies`` (no consumer group: every instance
must see every reply, and only the one holding the waiting request completes it). A reply whose
correlation id nobody waits for — its request timed out, or it belongs to another instance — is
dropped and counted; it can never complete the wrong request because ids are random UUIDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from infra.metrics import GATEWAY_REPLIES
from infra.settings import Settings
from schemas.codec import DecodeError, decode_model
from schemas.models import TwinReply
from schemas.topics import TWIN_REPLIES

__all__ = ["ReplyRouter"]

log = logging.getLogger(__name__)


class ReplyRouter:
    """Owns the reply consumer and the table of waiting requests."""

    def __init__(self, cfg: Settings):
        self.cfg = cfg
        self.topic = cfg.topic(TWIN_REPLIES.name)
        self._waiting: dict[str, asyncio.Future[TwinReply]] = {}
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self.late_replies = 0  # replies that arrived after their request gave up (or for another instance)
        self.delivered = 0

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reply-router")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def expect(self, correlation_id: str) -> asyncio.Future[TwinReply]:
        """Register a request before publishing it, so a fast reply cannot be missed."""
        fut: asyncio.Future[TwinReply] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = fut
        return fut

    def forget(self, correlation_id: str) -> None:
        self._waiting.pop(correlation_id, None)

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def _run(self) -> None:
        from infra.clients import kafka_consumer

        while True:  # reconnect forever: the broker may be down when the gateway starts
            # The broker's default long poll (500 ms) answers as soon as a reply lands, so it costs no
            # latency; a 10 ms poll cost ~2.6% of a core per idle gateway, and broker CPU with it.
            consumer = kafka_consumer(self.cfg, group_id=None, auto_offset_reset="latest",
                                      isolation_level="read_uncommitted")
            try:
                await consumer.start()
                partitions = consumer.partitions_for_topic(self.topic)
                if not partitions:
                    await consumer._client.force_metadata_update()  # topic may just have been created
                    partitions = consumer.partitions_for_topic(self.topic) or set()
                if not partitions:
                    raise KafkaError(f"reply topic {self.topic} does not exist (run `twin topics create`)")
                tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
                consumer.assign(tps)
                await consumer.seek_to_end(*tps)
                for tp in tps:  # resolve the end offsets now, so "ready" means no reply can be skipped
                    await consumer.position(tp)
                self._ready.set()
                async for msg in consumer:
                    self._deliver(msg.value)
            except asyncio.CancelledError:
                await consumer.stop()
                raise
            except (KafkaError, OSError) as exc:
                self._ready.clear()
                log.warning("reply consumer: %s; reconnecting", exc)
                await consumer.stop()
                await asyncio.sleep(1.0)

    def _deliver(self, value: bytes) -> None:
        try:
            reply = decode_model(value, TwinReply)
        except DecodeError as exc:
            log.error("undecodable reply dropped: %s", exc)
            return
        fut = self._waiting.pop(reply.correlationId, None)
        if fut is None or fut.done():
            self.late_replies += 1
            GATEWAY_REPLIES.labels("late").inc()
            return
        self.delivered += 1
        GATEWAY_REPLIES.labels("delivered").inc()
        fut.set_result(reply)


def now_ms() -> int:
    return int(time.time() * 1000)
