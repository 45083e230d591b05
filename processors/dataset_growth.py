"""Dataset growth agent: ``sessions.lifecycle`` → the tenant's live dataset (``live:<tenant>`` in
``dataset_sessions``). A session that ends with consent to training is copied in (its turns were
redacted by the telemetry pipeline before they were stored); one erased, or whose consent was
withdrawn, is removed. Both through ``datasets.sync_live_sessions`` for the batch's sessions, which makes each
copy equal to its session's current state, so replays and reordering change nothing. The refresh controller
(processors/refresh_controller.py) counts these sessions; its training job syncs once more.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from infra.settings import settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.batching import run_batched
from schemas.models import SessionEvent

__all__ = ["AGENT", "grow_datasets", "sessions_to_sync", "sync_sessions"]

log = logging.getLogger(__name__)
AGENT = "dataset_growth"
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-growth")


def sessions_to_sync(events: list[SessionEvent]) -> dict[str, list[str]]:
    """Per tenant, the sessions whose copy in the live dataset an event batch may change: one that
    ended, was erased, or changed (consent given or withdrawn) — not one merely created."""
    out: dict[str, set[str]] = {}
    for e in events:
        if e.kind in ("ended", "erased", "updated"):
            out.setdefault(e.tenant, set()).add(e.sessionId)
    return {tenant: sorted(ids) for tenant, ids in sorted(out.items())}


def _sync(sessions: dict[str, list[str]]) -> int:
    from infra.db import connect
    from processors.twin.datasets import sync_live_sessions

    changed = 0
    for tenant, ids in sessions.items():
        with connect(settings) as conn:
            report = sync_live_sessions(conn, tenant, session_ids=ids)
            changed += report.imported + report.updated + report.removed
    return changed


async def sync_sessions(events: list[SessionEvent]) -> int:
    """Bring the live-dataset copies of the sessions in ``events`` up to date; returns sessions added,
    changed or removed."""
    sessions = sessions_to_sync(events)
    if not sessions:
        return 0
    return await asyncio.get_running_loop().run_in_executor(_executor, _sync, sessions)


if enabled(AGENT):

    @app.agent(topics.SESSIONS_LIFECYCLE)
    async def grow_datasets(stream):
        """Keep each tenant's live dataset equal to its consented, not erased sessions."""
        await run_batched(stream, agent=AGENT, model=SessionEvent, handle=sync_sessions,
                          size=settings.SINK_BATCH_MESSAGES, within=settings.SINK_BATCH_WITHIN_S)
else:  # pragma: no cover - this worker runs other agents
    grow_datasets = None
