"""Hot session state agent: ``telemetry.redacted`` → Redis (last N turns and counters per session).

The respond path reads ``RedisSink.recent_turns`` / ``counters`` instead of PostgreSQL. Each
event is applied at most once (``RedisSink`` keeps the event ids it has seen), so replays do
not inflate counters; events of erased sessions (sinks/retention.py) are dropped.
"""

from __future__ import annotations

from infra.settings import settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.batching import run_batched
from schemas.models import TelemetryRedacted
from sinks.redis import SessionUpdate

__all__ = ["apply_session_state", "session_updates", "track_session_state"]

AGENT = "session_state"


def session_updates(batch: TelemetryRedacted) -> list[SessionUpdate]:
    """One update per event: the turn to remember (turns only) and the counters it bumps."""
    out = []
    for event in batch.events:
        counters = {"events": 1, event.type: 1}
        turn = None
        if event.type == "turn":
            turn = {"eventId": event.eventId, "role": event.role, "text": event.text, "ts": event.ts}
        elif event.type == "run":
            counters[f"run_{event.status}"] = 1
        elif event.type == "control":
            counters[f"control_{event.action}"] = 1
        out.append(SessionUpdate(batch.tenant, batch.interviewSessionId, event.eventId or event.to_avro()["eventId"],
                                 turn=turn, counters=counters))
    return out


async def apply_session_state(batches: list[TelemetryRedacted], sink=None) -> int:
    """Apply the batches' events to Redis; returns how many events were new."""
    from processors.engine.resources import postgres, redis_sink

    pairs = {(b.tenant, b.interviewSessionId) for b in batches}
    erased = await (await postgres()).erased(pairs)
    updates = [u for b in batches if (b.tenant, b.interviewSessionId) not in erased for u in session_updates(b)]
    sink = sink or await redis_sink()
    written = await sink.write(updates)
    # An erasure committed meanwhile may have deleted the keys before our write: take them back.
    for tenant, session_id in await (await postgres()).erased(pairs - erased):
        await sink.erase(tenant, session_id)
    return written


if enabled(AGENT):

    @app.agent(topics.TELEMETRY_REDACTED)
    async def track_session_state(stream):
        """Keep each session's recent turns and counters in Redis for the respond path."""
        await run_batched(stream, agent=AGENT, model=TelemetryRedacted, handle=apply_session_state,
                          size=settings.SINK_BATCH_MESSAGES, within=settings.SINK_BATCH_WITHIN_S)
else:  # pragma: no cover - this worker runs other agents
    track_session_state = None
