"""Refresh controller: every ``REFRESH_INTERVAL_S``, advance each open refresh and start the due ones
(``processors/twin/refresh.py``: the rules, the rows, the audit records). Out: the refresh's training
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
from processors.engine.metrics import handling

__all__ = ["AGENT", "control_refreshes", "refresh_round"]

log = logging.getLogger(__name__)
AGENT = "refresh_controller"
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refresh-controller")
_configs = None
_engine = None


def refresh_round() -> list[dict]:
    """The plain job: one round of :func:`processors.twin.refresh.tick`, then the offline comparison of
    each refreshed version whose canary started; returns the training jobs to publish."""
    global _configs
    from infra.db import connect
    from processors.twin.canary import Thresholds
    from processors.twin.config import ConfigStore
    from processors.twin.refresh import tick

    if _configs is None:
        _configs = ConfigStore(settings.POSTGRES_DSN)
    jobs = tick(lambda: connect(settings), _configs, Thresholds.from_settings(settings))
    compare_round()
    return jobs


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

    with connect(settings) as conn:
        conn.execute("UPDATE training_jobs SET status='failed', finished_at=now(), updated_at=now(),"
                     " message='not queued: Kafka did not acknowledge the job' WHERE job_id=%s", (job_id,))


if enabled(AGENT):
    from schemas import topics as catalogue
    from schemas.models import TrainingJob

    @app.timer(interval=settings.REFRESH_INTERVAL_S)
    async def control_refreshes() -> None:
        """Start due refreshes (their training jobs go to training.jobs) and move open ones on."""
        with handling(AGENT) as unit:
            try:
                jobs = await asyncio.get_running_loop().run_in_executor(_executor, refresh_round)
            except Exception:  # noqa: BLE001 - the database may be down; the next tick retries
                unit.fail()
                log.exception("refresh round failed")
                return
            for job in jobs:
                try:
                    await topics.publish(catalogue.TRAINING_JOBS, TrainingJob(**job))
                except Exception:  # noqa: BLE001 - not on Kafka: no trainer will ever run it
                    log.exception("refresh job %s not queued", job["jobId"])
                    await asyncio.get_running_loop().run_in_executor(_executor, _not_queued, job["jobId"])
                    continue
                log.warning("refresh of %s/%s: training job %s queued", job["tenant"], job["interviewerId"],
                            job["jobId"])
else:  # pragma: no cover - this worker runs other agents
    control_refreshes = None
