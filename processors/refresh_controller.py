"""Refresh controller: every ``REFRESH_INTERVAL_S``, advance each open refresh and start the due ones
(``processors/twin/refresh.py``: the rules, the rows, the audit records), and, in a thread of its own,
score each refreshed version and the one it may replace with the honest evaluation. Out: the refresh's training
job on ``training.jobs`` (the trainer agent runs it); the canary it starts afterwards is decided by the
canary controller. Several workers may run it: a partial unique index keeps one open refresh per
interviewer. Run it with::

    twin worker --agents refresh_controller      # or any worker running all agents
    twin refresh run INTERVIEWER                 # one refresh now, by hand
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from infra.settings import settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.metrics import run_periodic

__all__ = ["AGENT", "compare_refreshed_versions", "compare_round", "control_refreshes", "refresh_round"]

log = logging.getLogger(__name__)
AGENT = "refresh_controller"
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refresh-controller")
# Comparisons embed and answer many turns: their own thread, so they never delay a refresh round.
_compare_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refresh-compare")
_configs = None
_engine = None


def refresh_round() -> list[dict]:
    """The plain job: one round of :func:`processors.twin.refresh.tick`; returns the training jobs to publish."""
    global _configs
    from infra.db import connect
    from processors.twin.canary import Thresholds
    from processors.twin.config import ConfigStore
    from processors.twin.refresh import tick

    if _configs is None:
        _configs = ConfigStore(settings.POSTGRES_DSN)
    return tick(lambda: connect(settings), _configs, Thresholds.from_settings(settings))


def compare_round() -> list[dict]:
    """Score each refreshed version and its baseline with the honest evaluation (once per refresh)."""
    global _engine
    from infra.db import connect
    from processors.twin.refresh import compare_run, pending_comparisons

    with connect(settings) as conn:
        pending = pending_comparisons(conn)
    if pending and _engine is None:
        from processors.twin.engine import TwinEngine

        _engine = TwinEngine.from_settings(settings)  # the respond path's engine, kept for the worker's life
    out = []
    for run in pending:
        out.append(compare_run(lambda: connect(settings), settings, run, _engine))
        log.warning("refresh %s: versions compared (%s)", run.run_id, out[-1]["outcome"])
    return out


def _not_queued(job_id: str) -> None:
    """Say so in the job's row; the next round then ends its refresh as failed (and may start another)."""
    from infra.db import connect
    from processors.twin.jobs import NOT_QUEUED_SQL

    with connect(settings) as conn:
        conn.execute(NOT_QUEUED_SQL, ("Kafka did not acknowledge the job", job_id))


if enabled(AGENT):
    from schemas import topics as catalogue
    from schemas.models import TrainingJob

    @app.timer(interval=settings.REFRESH_INTERVAL_S)
    async def control_refreshes() -> None:
        """Start due refreshes (their training jobs go to training.jobs) and move open ones on."""
        for job in await run_periodic(AGENT, _executor, refresh_round, "refresh round") or []:
            try:
                await topics.publish(catalogue.TRAINING_JOBS, TrainingJob(**job))
            except Exception:  # noqa: BLE001 - not on Kafka: no trainer will ever run it
                log.exception("refresh job %s not queued", job["jobId"])
                await asyncio.get_running_loop().run_in_executor(_executor, _not_queued, job["jobId"])
                continue
            log.warning("refresh of %s/%s: training job %s queued", job["tenant"], job["interviewerId"], job["jobId"])

    @app.timer(interval=settings.REFRESH_INTERVAL_S)
    async def compare_refreshed_versions() -> None:
        """Score each refreshed version and the one it may replace offline, once per refresh."""
        await run_periodic(AGENT, _compare_executor, compare_round, "refresh comparison round")
else:  # pragma: no cover - this worker runs other agents
    control_refreshes = compare_refreshed_versions = None
