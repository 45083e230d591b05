"""Kafka administration through aiokafka: readiness and the topic catalogue.

`create_topics` is what `twin topics create` and `infra/up` run; it reads every topic from
`schemas.topics.TOPICS`, so the catalogue stays the one place topics are declared.
"""

from __future__ import annotations

import asyncio
from typing import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from infra.settings import Settings

__all__ = ["acreate_topics", "broker_ready", "create_internal_topic", "create_topics", "topic_configs"]


def topic_configs(spec) -> dict[str, str]:
    """Broker-side config of a catalogue entry (cleanup policy and retention)."""
    configs = {"cleanup.policy": spec.cleanup_policy}
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    elif spec.cleanup_policy == "delete":
        configs["retention.ms"] = "-1"
    return configs


async def _admin(cfg: Settings) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.KAFKA_BOOTSTRAP, request_timeout_ms=5000)
    await admin.start()
    return admin


async def _broker_ready(cfg: Settings) -> bool:
    admin = await _admin(cfg)
    try:
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    finally:
        await admin.close()


def broker_ready(cfg: Settings) -> bool:
    """True when the broker answers a metadata request (not merely an open port)."""
    return asyncio.run(_broker_ready(cfg))


async def _create_missing(cfg: Settings, topics: list[NewTopic]) -> list[str]:
    """Create those of ``topics`` the broker does not have; the names created now."""
    admin = await _admin(cfg)
    try:
        existing = set(await admin.list_topics())
        created: list[str] = []
        for topic in topics:
            if topic.name in existing:
                continue
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: fine
        return created
    finally:
        await admin.close()


async def acreate_topics(cfg: Settings, specs: Iterable | None = None) -> list[str]:
    """Create missing catalogue topics (with TOPIC_PREFIX); return the names created now."""
    from schemas.topics import TOPICS

    return await _create_missing(cfg, [
        NewTopic(name=cfg.topic(s.name), num_partitions=s.partitions, replication_factor=1,
                 topic_configs=topic_configs(s))
        for s in (TOPICS if specs is None else specs)
    ])


def create_topics(cfg: Settings, specs: Iterable | None = None) -> list[str]:
    """Synchronous wrapper of :func:`acreate_topics` for the CLI."""
    return asyncio.run(acreate_topics(cfg, specs))


def create_internal_topic(cfg: Settings, name: str, partitions: int = 1) -> bool:
    """Create a topic that is not in the catalogue (one of Faust's own, named in full) unless it
    exists; True when it was created now."""
    topic = NewTopic(name=name, num_partitions=partitions, replication_factor=1)
    return bool(asyncio.run(_create_missing(cfg, [topic])))
