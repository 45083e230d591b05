"""Audit agent: ``audit.records`` → PostgreSQL ``audit_log`` (append-only, idempotent by audit id).

Every producer of audit records (the gateway's dropped-field records, the safety filter's
interventions, ...) goes through this one writer.
"""

from __future__ import annotations

from infra.settings import settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.batching import run_batched
from schemas.models import AuditRecord

__all__ = ["store_audit", "store_audit_records"]

AGENT = "audit_storage"


async def store_audit_records(records: list[AuditRecord], sink=None) -> int:
    """Append audit records; returns how many were new."""
    from processors.engine.resources import postgres

    return await (sink or await postgres()).write_audit(records)


if enabled(AGENT):

    @app.agent(topics.AUDIT_RECORDS)
    async def store_audit(stream):
        """Write every audit record to the audit_log table."""
        await run_batched(stream, agent=AGENT, model=AuditRecord, handle=store_audit_records,
                          size=settings.SINK_BATCH_MESSAGES, within=settings.SINK_BATCH_WITHIN_S)
else:  # pragma: no cover - this worker runs other agents
    store_audit = None
