"""Poison messages go to the dead-letter topic with the reason; processing continues.

Agents read catalogue topics as raw bytes and decode with :func:`decode_or_deadletter`, so an
undecodable or invalid record is copied (key, value, source topic/partition/offset, error, agent)
to ``deadletter`` instead of crashing the worker or being skipped silently.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TypeVar

from infra.metrics import AGENT_DEAD_LETTERED, AGENT_FAILED
from schemas.codec import DecodeError, decode_model
from schemas.models import DeadLetter

__all__ = ["decode_or_deadletter", "send_dead_letter"]

log = logging.getLogger(__name__)
M = TypeVar("M")


async def send_dead_letter(event, error: str, agent: str) -> None:
    """Copy the event's message to the dead-letter topic with the reason."""
    from processors.engine.topics import publish
    from schemas.topics import DEADLETTER

    msg = event.message
    record = DeadLetter(sourceTopic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
                        value=msg.value if isinstance(msg.value, bytes) else bytes(str(msg.value), "utf-8"),
                        error=error[:2000], agent=agent, ts=datetime.now(timezone.utc))
    await publish(DEADLETTER, record)
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
