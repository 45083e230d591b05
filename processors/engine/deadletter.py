"""Poison messages go to the dead-letter topic with the reason; processing continues.

Agents read catalogue topics as raw bytes and decode with :func:`decode_or_deadletter`, so an
undecodable or invalid record is copied (key, value, source topic/partition/offset, error, agent)
to ``deadletter`` instead of crashing the worker or being skipped silently.

Consumption is at least once: a rebalance before the offset commit delivers the same message to
the agent again. Each agent therefore marks the source position it dead-lettered in Redis (after the
broker acknowledged the dead letter) and skips a position already marked, so an operator sees one
dead letter per agent and message. With Redis unreachable the letter is sent unmarked: a duplicate
is better than a lost failure.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import TypeVar

from redis.exceptions import RedisError

from infra.metrics import AGENT_DEAD_LETTERED, AGENT_FAILED
from schemas.codec import DecodeError, decode_model
from schemas.models import DeadLetter

__all__ = ["decode_or_deadletter", "send_dead_letter"]

log = logging.getLogger(__name__)
M = TypeVar("M")
_SCOPE = "deadletter"  # in place of a tenant in the seen-marks: an undecodable message has none


async def send_dead_letter(event, error: str, agent: str) -> None:
    """Copy the event's message to the dead-letter topic with the reason, once per agent and position."""
    from processors.engine.resources import seen
    from processors.engine.topics import publish
    from schemas.topics import DEADLETTER

    msg = event.message
    value = msg.value if isinstance(msg.value, bytes) else bytes(str(msg.value), "utf-8")
    # The value's digest too: a topic deleted and created again reuses offsets for other messages.
    digest = hashlib.blake2b(value, digest_size=8).hexdigest()
    position = (_SCOPE, f"{msg.topic}:{msg.partition}:{msg.offset}:{digest}")
    try:
        marks = await seen(agent)
        if await marks.seen([position]):
            log.info("%s: %s[%s]@%s was dead-lettered before (a redelivery); not sent again", agent, msg.topic,
                     msg.partition, msg.offset)
            return
    except RedisError as exc:
        marks = None
        log.warning("%s: cannot check earlier dead letters (%s); sending anyway", agent, exc)
    record = DeadLetter(sourceTopic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key, value=value,
                        error=error[:2000], agent=agent, ts=datetime.now(timezone.utc))
    await (await publish(DEADLETTER, record))  # the broker's ack before the mark
    if marks is not None:
        try:
            async with marks.client.pipeline(transaction=False) as pipe:
                marks.mark(pipe, [position])
                await pipe.execute()
        except RedisError as exc:
            log.warning("%s: dead letter sent but not marked (%s): a redelivery would send it again", agent, exc)
    AGENT_DEAD_LETTERED.labels(agent).inc()
    log.warning("%s: dead-lettered %s[%s]@%s: %s", agent, msg.topic, msg.partition, msg.offset, error[:200])


async def decode_or_deadletter(event, expected: type[M], agent: str) -> M | None:
    """The decoded model, or None after dead-lettering a message that is not a valid ``expected``."""
    try:
        return decode_model(event.value, expected)
    except DecodeError as exc:
        AGENT_FAILED.labels(agent).inc()
        await send_dead_letter(event, f"DecodeError: {exc}", agent)
        return None
