"""The Faust runtime the agents share: the app, topics, batching, dead letters and worker resources."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["consumer_group"]


def consumer_group(topic_prefix: str, agents: Iterable[str]) -> str:
    """The Faust app id, which is the Kafka consumer group, of a worker running ``agents`` (all when empty).

    Workers running different agent sets must not share one, or they would split the partitions of a
    topic both read (each set would see only part of it); workers with the same set do share one,
    which is how a job scales out.
    """
    enabled = sorted(set(agents))
    return f"{topic_prefix}interviewer-twin" + (f"-{'-'.join(enabled)}" if enabled else "")
