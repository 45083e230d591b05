"""Batched, at-least-once processing for agents that write to stores or do batched work.

``run_batched`` takes up to ``size`` messages (or what arrived ``within`` seconds), decodes them
(an undecodable one is dead-lettered), hands the decoded records to the job's ``handle`` coroutine
and acknowledges the messages only after ``handle`` returned, so offsets are committed for work
that is done (a crash re-delivers the batch; the stores are idempotent).

When ``handle`` fails:

- transiently (a store or the broker unreachable: :func:`is_transient`), the same batch is retried
  with backoff until it succeeds: the partition waits, nothing is skipped;
- otherwise the batch is retried record by record, and each record that still fails is copied to
  the dead-letter topic with the error: one poison record never stops the stream or the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from processors.engine.deadletter import decode_or_deadletter, send_dead_letter
from processors.engine.metrics import handling

__all__ = ["is_transient", "run_batched"]

log = logging.getLogger(__name__)
M = TypeVar("M")
_MAX_BACKOFF_S = 10.0


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying as they are (a service down), False for bad data."""
    retriable = getattr(exc, "retriable", None)
    if retriable is not None:
        return bool(retriable)
    if isinstance(exc, (OSError, ConnectionError, asyncio.TimeoutError)):
        return True
    try:
        import psycopg

        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
    except ImportError:  # pragma: no cover
        pass
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        from sinks.redis import RedisSinkError

        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, RedisSinkError)):
            return True
    except ImportError:  # pragma: no cover
        pass
    try:
        from aiokafka.errors import KafkaError

        if isinstance(exc, KafkaError):
            return True
    except ImportError:  # pragma: no cover
        pass
    try:
        from weaviate.exceptions import (
            WeaviateClosedClientError,
            WeaviateConnectionError,
            WeaviateGRPCUnavailableError,
            WeaviateRetryError,
            WeaviateStartUpError,
            WeaviateTimeoutError,
        )

        if isinstance(exc, (WeaviateConnectionError, WeaviateTimeoutError, WeaviateStartUpError,
                            WeaviateGRPCUnavailableError, WeaviateRetryError, WeaviateClosedClientError)):
            return True
    except ImportError:  # pragma: no cover
        pass
    return False


async def _until_done(handle: Callable[[list[M]], Awaitable[object]], records: list[M], agent: str) -> Exception | None:
    """Run handle(records), retrying transient failures; the non-transient exception, else None."""
    delay = 0.2
    while True:
        try:
            await handle(records)
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc):
                return exc
            log.warning("%s: %s: %s; retrying %d record(s) in %.1fs", agent, type(exc).__name__, exc, len(records),
                        delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)


async def process(items: Sequence[tuple[object, M]], handle: Callable[[list[M]], Awaitable[object]], agent: str) -> int:
    """Handle ``(event, record)`` pairs as one batch, isolating poison records; returns how many
    were dead-lettered."""
    if not items:
        return 0
    error = await _until_done(handle, [m for _, m in items], agent)
    if error is None:
        return 0
    log.warning("%s: batch of %d failed (%s: %s); retrying one by one", agent, len(items), type(error).__name__, error)
    dead = 0
    for event, record in items:
        single = await _until_done(handle, [record], agent)
        if single is not None:
            await send_dead_letter(event, f"{type(single).__name__}: {single}", agent)
            dead += 1
    return dead


async def run_batched(stream, *, agent: str, model: type[M], handle: Callable[[list[M]], Awaitable[object]],
                      size: int, within: float) -> None:
    """The body of a batching agent: take, decode, handle, then acknowledge (see module docstring).

    :param stream: the agent's stream (a catalogue topic of raw bytes).
    :param agent: the agent's name, recorded on dead letters.
    :param model: the record class the topic carries.
    :param handle: coroutine doing the job for a list of records; must be idempotent.
    """
    async for events in stream.noack_take(size, within=within):
        items = []
        for event in events:
            record = await decode_or_deadletter(event, model, agent)
            if record is not None:
                items.append((event, record))
        if items:
            with handling(agent, len(items)) as unit:
                unit.fail(await process(items, handle, agent))  # the dead-lettered ones failed
        for event in events:
            await stream.ack(event)
