"""Session agent: ``sessions.lifecycle`` → PostgreSQL ``sessions``.

The gateway writes a session row itself (the consent check needs it at once) and publishes the
same state here; this agent makes the table rebuildable from the compacted topic. The upsert
keeps the newest state (by event ``ts``), so replays and reordering change nothing.
"""

from __future__ import annotations

from infra.settings import settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.batching import run_batched
from schemas.models import SessionEvent

__all__ = ["store_session_events", "store_sessions"]

AGENT = "session_storage"


async def store_session_events(events: list[SessionEvent], sink=None) -> int:
    """Apply lifecycle events to the sessions table; returns rows inserted or changed."""
    from processors.engine.resources import postgres

    return await (sink or await postgres()).write_sessions(events)


if enabled(AGENT):

    @app.agent(topics.SESSIONS_LIFECYCLE)
    async def store_sessions(stream):
        """Keep the sessions table equal to the latest lifecycle event of each session."""
        await run_batched(stream, agent=AGENT, model=SessionEvent, handle=store_session_events,
                          size=settings.SINK_BATCH_MESSAGES, within=settings.SINK_BATCH_WITHIN_S)
else:  # pragma: no cover - this worker runs other agents
    store_sessions = None
