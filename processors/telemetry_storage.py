"""Storage agent: ``telemetry.redacted`` → PostgreSQL ``telemetry_events``, ``turns``, ``telemetry_sessions``.

Batches of up to ``SINK_BATCH_MESSAGES`` messages are written in one transaction by
``sinks.postgres.PostgresSink`` (``ON CONFLICT DO NOTHING`` on ``(session_id, event_id)``), and
the offsets are committed only after the commit, so a crash or a replay stores nothing twice.
"""

from __future__ import annotations

from infra.settings import settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.batching import run_batched
from schemas.models import TelemetryRedacted

__all__ = ["store_telemetry", "store_telemetry_batches"]

AGENT = "telemetry_storage"


async def store_telemetry_batches(batches: list[TelemetryRedacted], sink=None) -> int:
    """Write redacted batches to PostgreSQL; returns how many events were new."""
    from processors.engine.resources import postgres

    return await (sink or await postgres()).write(batches)


if enabled(AGENT):

    @app.agent(topics.TELEMETRY_REDACTED)
    async def store_telemetry(stream):
        """Append redacted telemetry events and turns to PostgreSQL."""
        await run_batched(stream, agent=AGENT, model=TelemetryRedacted, handle=store_telemetry_batches,
                          size=settings.SINK_BATCH_MESSAGES, within=settings.SINK_BATCH_WITHIN_S)
else:  # pragma: no cover - this worker runs other agents
    store_telemetry = None
