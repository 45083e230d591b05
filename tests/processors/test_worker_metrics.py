"""Worker metrics plumbing (processors/engine/metrics.py): handle accounting, and lag from the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from processors.engine.metrics import fetch_lag, handling


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _counts(agent: str) -> tuple[float, float, float]:
    return (_value("twin_agent_processed_total", agent=agent), _value("twin_agent_failed_total", agent=agent),
            _value("twin_agent_handle_duration_seconds_count", agent=agent))


def test_handling_counts_processed_failed_and_times_each_unit():
    agent = f"probe-{uuid.uuid4().hex[:6]}"
    with handling(agent):
        pass
    with handling(agent, records=5) as unit:
        unit.fail(2)  # two of the batch were dead-lettered
    with pytest.raises(ValueError), handling(agent, records=3):
        raise ValueError("poison")
    assert _counts(agent) == (1 + 3, 2 + 3, 3)


async def test_a_cancelled_unit_counts_nothing():
    agent = f"probe-{uuid.uuid4().hex[:6]}"

    async def work():
        with handling(agent):
            await asyncio.sleep(10)

    task = asyncio.create_task(work())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _counts(agent) == (0, 0, 0)


async def test_lag_is_end_offset_minus_the_groups_committed_offset(cfg, unique_topic):
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import OffsetAndMetadata

    from infra.clients import kafka_consumer, kafka_producer

    producer = kafka_producer(cfg)
    await producer.start()
    try:
        for partition, count in ((0, 5), (1, 3), (2, 2)):
            for i in range(count):
                await producer.send_and_wait(unique_topic, f"m{i}".encode(), partition=partition)
    finally:
        await producer.stop()
    tps = [TopicPartition(unique_topic, p) for p in range(3)]
    group = f"probe-group-{uuid.uuid4().hex[:8]}"
    committer = kafka_consumer(cfg, group_id=group)
    await committer.start()
    try:
        committer.assign(tps)
        # Partition 0 half done, partition 1 all done, partition 2 never committed.
        await committer.commit({tps[0]: OffsetAndMetadata(2, ""), tps[1]: OffsetAndMetadata(3, "")})
    finally:
        await committer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.KAFKA_BOOTSTRAP)
    consumer = kafka_consumer(cfg, group_id=None, isolation_level="read_uncommitted")
    await admin.start()
    await consumer.start()
    try:
        lag = await fetch_lag(admin, consumer, group, tps)
    finally:
        await consumer.stop()
        await admin.close()
    assert lag == {tps[0]: 3, tps[1]: 0, tps[2]: 2}
