"""Retention agent: a timer that applies every tenant's retention policy to every store.

Every ``RETENTION_SWEEP_INTERVAL_S`` it runs ``sinks.retention.run`` for all tenants, the very
function behind ``twin retention run``: expired recordings, telemetry, vectors and eval data go,
leftovers of recently erased sessions too, and each deletion is written to the audit log. Run it
alone with::

    twin worker --agents retention_sweep

Several workers running it take turns: a PostgreSQL advisory lock lets one sweep at a time, and a
sweep that finds another finished less than half an interval ago does nothing.
"""

from __future__ import annotations

import asyncio
import logging

from infra.settings import settings
from processors.engine.app import app, enabled

__all__ = ["AGENT", "sweep", "sweep_retention"]

log = logging.getLogger(__name__)
AGENT = "retention_sweep"
_objects = None


async def sweep():
    """One retention run over every tenant with the worker's store clients; returns the report."""
    global _objects
    from processors.engine import resources
    from sinks import retention
    from sinks.object_store import object_store_from_settings

    if _objects is None:
        _objects = await asyncio.to_thread(object_store_from_settings, settings)
    chunks = await resources.turn_chunks()
    stores = retention.Stores(settings, (await resources.postgres()).pool, chunks.client, await resources.redis(),
                              _objects)
    report = await retention.run(stores, actor=AGENT, exclusive=True,
                                 min_interval_s=settings.RETENTION_SWEEP_INTERVAL_S / 2)
    if report.skipped:
        log.info("retention sweep skipped: %s", report.skipped)
    else:
        log.info("retention sweep %s: %d tenant(s), %d deleted, %d error(s)", report.run_id, report.tenants,
                 report.total(), len(report.errors))
        for error in report.errors:
            log.warning("retention sweep: %s", error)
    return report


if enabled(AGENT):

    @app.timer(interval=settings.RETENTION_SWEEP_INTERVAL_S)
    async def sweep_retention() -> None:
        """Delete what each tenant's retention policy says has expired, in every store."""
        try:
            await sweep()
        except Exception:  # noqa: BLE001 - a failed sweep must not stop the worker; the next one retries
            log.exception("retention sweep failed")
else:  # pragma: no cover - this worker runs other agents
    sweep_retention = None
