"""Replay a topic from offset 0 into a job's plain function (the sinks' idempotence, in practice).

Reads every partition from the beginning up to the end offsets as they were when the replay
started (so it terminates while producers keep writing), decodes each message with the topic's
record class and calls ``handle`` on batches of records: the same functions the agents call, e.g.
``processors.telemetry_storage.store_telemetry_batches``. No consumer group is joined and no
offsets are committed, so running agents are not disturbed.

Usage (what ``twin replay`` can call)::

    from processors.replay import replay_topic
    from processors.telemetry_storage import store_telemetry_batches
    from schemas.topics import TELEMETRY_REDACTED
    stats = await replay_topic(settings, TELEMETRY_REDACTED, store_telemetry_batches)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import TopicPartition

from infra.settings import Settings
from schemas.codec import DecodeError, decode_model
from schemas.models import model_for
from schemas.topics import TopicSpec

__all__ = ["ReplayStats", "replay_topic"]


@dataclass
class ReplayStats:
    """What a replay read: decoded records handed to the job, and messages that did not decode."""

    records: int = 0
    undecodable: int = 0
    batches: int = 0


async def replay_topic(cfg: Settings, spec: TopicSpec, handle: Callable[[list], Awaitable[object]],
                       batch_size: int = 500, timeout_ms: int = 1000) -> ReplayStats:
    """Feed every record of ``spec``'s topic, from offset 0, to ``handle`` in batches."""
    from infra.clients import kafka_consumer

    model = model_for(spec.record)
    topic = cfg.topic(spec.name)
    consumer = kafka_consumer(cfg, group_id=None, max_poll_records=batch_size)
    await consumer.start()
    stats = ReplayStats()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=timeout_ms, max_records=batch_size)
            records = []
            for tp, messages in fetched.items():
                for msg in messages:
                    if msg.offset >= end[tp]:
                        continue
                    try:
                        records.append(decode_model(msg.value, model))
                    except DecodeError:
                        stats.undecodable += 1
            if records:
                await handle(records)
                stats.records += len(records)
                stats.batches += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return stats
