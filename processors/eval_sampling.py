"""Eval sampler agent: ``twin.replies`` → ``eval.samples`` + the ``eval_samples`` table.

A deterministic share of live twin replies (``EVAL_SAMPLE_RATE``, per tenant ``EVAL_SAMPLE_RATES``)
is kept for evaluation: whether a reply is sampled depends only on its correlation id, so a
replay samples exactly the same replies. The row is keyed by the correlation id (``INSERT ... ON
CONFLICT DO NOTHING``) and published once; ``published_at`` records that, so a replay after a
crash re-sends only what was not yet acknowledged. The context is the session's recent turns from
the ``turns`` table (written by the telemetry storage agent), when there are any. The row's texts
(reply, history, candidate turn) are stored encrypted (``infra.crypto.EVAL_*``). Run it with::

    twin worker --agents eval_sampling
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from infra.crypto import EVAL_CONTEXT, EVAL_TWIN_TEXT, TURNS_TEXT
from infra.settings import Settings, settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.deadletter import decode_or_deadletter
from processors.engine.metrics import handling
from schemas import topics as catalogue
from schemas.models import EvalSample, TwinReply

__all__ = ["build_sample", "is_sampled", "recent_turns", "sample_evals", "sample_id_for", "sample_rate", "sample_reply"]

log = logging.getLogger(__name__)
AGENT = "eval_sampling"
CONTEXT_TURNS = 8
stats = {"seen": 0, "sampled": 0, "published": 0}


def sample_rate(tenant: str, cfg: Settings = settings) -> float:
    """The tenant's sampling rate (its override, else the default), clipped to [0, 1]."""
    rate = cfg.EVAL_SAMPLE_RATES.get(tenant, cfg.EVAL_SAMPLE_RATE)
    return min(1.0, max(0.0, float(rate)))


def is_sampled(correlation_id: str, rate: float) -> bool:
    """Whether a reply is sampled: a hash of its correlation id below ``rate`` (stable across replays)."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    h = int.from_bytes(hashlib.blake2b(correlation_id.encode(), digest_size=8).digest(), "big")
    return h / 2**64 < rate


def sample_id_for(tenant: str, correlation_id: str) -> str:
    """The sample's id: one per (tenant, correlation id), so writing it twice stores it once."""
    return "live-" + hashlib.sha1(f"{tenant}/{correlation_id}".encode(), usedforsecurity=False).hexdigest()[:28]


def build_sample(reply: TwinReply, history: list[dict[str, str]] | None = None) -> EvalSample:
    """The eval sample of one reply: the twin's text, what it did, and the context we know."""
    move = reply.functionCalls[0].name if reply.functionCalls else None
    context: dict[str, Any] = {
        "history": history or [],
        "move": move,
        "generator": reply.generator,
        "model": reply.model,
        "latencyMs": reply.latencyMs,
        "safety": {"passed": reply.safety.passed, "action": reply.safety.action,
                   "flags": [f.model_dump() for f in reply.safety.flags]},
        "traceId": reply.traces.traceId,
        # Which version answered (a canary compares them) and what it answered (online scores).
        "profileVersion": reply.profileVersion,
        "candidateTurn": reply.candidateTurn,
    }
    return EvalSample(sampleId=sample_id_for(reply.tenant, reply.correlationId), tenant=reply.tenant,
                      interviewerId=reply.interviewerId, sessionId=reply.sessionId,
                      correlationId=reply.correlationId, context=context, twinText=reply.text)


async def recent_turns(conn, tenant: str, session_id: str, limit: int = CONTEXT_TURNS) -> list[dict[str, str]]:
    """The session's last ``limit`` stored turns, oldest first (empty when telemetry has none)."""
    cur = await conn.execute("SELECT role, text, event_id FROM turns WHERE tenant=%s AND session_id=%s"
                             " ORDER BY ts DESC LIMIT %s", (tenant, session_id, limit))
    rows = await cur.fetchall()
    return [{"role": r, "text": TURNS_TEXT.open(t, tenant, (session_id, eid))} for r, t, eid in reversed(rows)]


Publish = Callable[[EvalSample], Awaitable[Any]]


async def sample_reply(reply: TwinReply, pool, publish: Publish, cfg: Settings = settings) -> EvalSample | None:
    """The plain job: decide, store once, publish until acknowledged. Returns the sample or None."""
    stats["seen"] += 1
    if not is_sampled(reply.correlationId, sample_rate(reply.tenant, cfg)):
        return None
    async with pool.connection() as conn:
        from sinks.postgres import erased_sessions

        if await erased_sessions(conn, {(reply.tenant, reply.sessionId)}):
            return None  # the session was erased (sinks/retention.py): its late replies are not kept
        history = await recent_turns(conn, reply.tenant, reply.sessionId)
        sample = build_sample(reply, history)
        await conn.execute(
            "INSERT INTO eval_samples (sample_id, tenant, interviewer_id, session_id, correlation_id, context,"
            " twin_text, real_text, scores, source, profile_version)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, NULL, 'live', %s)"
            " ON CONFLICT (sample_id) DO NOTHING",
            (sample.sampleId, sample.tenant, sample.interviewerId, sample.sessionId, sample.correlationId,
             json.dumps(EVAL_CONTEXT.seal(sample.context, sample.tenant, (sample.sampleId,))),
             EVAL_TWIN_TEXT.seal(sample.twinText, sample.tenant, (sample.sampleId,)), reply.profileVersion))
        cur = await conn.execute("SELECT published_at FROM eval_samples WHERE sample_id=%s", (sample.sampleId,))
        row = await cur.fetchone()
        await conn.commit()
    stats["sampled"] += 1
    if row is not None and row[0] is not None:
        return sample  # a replay: stored and published before
    await publish(sample)
    async with pool.connection() as conn:
        await conn.execute("UPDATE eval_samples SET published_at = now() WHERE sample_id=%s", (sample.sampleId,))
        await conn.commit()
    stats["published"] += 1
    return sample


_pool = None


async def _get_pool():
    global _pool
    if _pool is None:
        from infra.clients import pg_pool

        _pool = pg_pool(settings, min_size=1, max_size=2)
        await _pool.open(wait=True, timeout=30)
    return _pool


async def _publish(sample: EvalSample) -> None:
    fut = await topics.publish(catalogue.EVAL_SAMPLES, sample)
    await fut  # wait for the broker's ack before marking it published


if enabled(AGENT):

    @app.agent(topics.TWIN_REPLIES)
    async def sample_evals(stream):
        """Copy a share of live twin replies into the eval topic and table."""
        async for event in stream.events():
            reply = await decode_or_deadletter(event, TwinReply, AGENT)
            if reply is None:
                continue
            with handling(AGENT):
                await sample_reply(reply, await _get_pool(), _publish)
else:  # pragma: no cover - this worker runs other agents
    sample_evals = None
