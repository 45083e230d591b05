"""Trainer agent: ``training.jobs`` → a new interviewer version; state in ``training_jobs`` and ``training.status``.

Run it alone with ``TWIN_AGENTS=training_jobs twin worker``. The job itself is
``processors.twin.jobs.JobRunner.run`` (see there for claiming, heartbeats and how a job left
running by a dead worker is resumed or failed); this module only feeds it messages, publishes its
statuses and audit records, and runs the recovery sweep at start and every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable

import psycopg

from infra.settings import settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.deadletter import decode_or_deadletter
from processors.engine.metrics import handling
from processors.twin.jobs import JobRunner
from schemas import topics as catalogue
from schemas.models import AuditRecord, TrainingJob, TrainingJobStatus

__all__ = ["AGENT", "JobRunner", "get_runner", "train_twin"]

log = logging.getLogger(__name__)
AGENT = "training_jobs"
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainer")
_runner: JobRunner | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def get_runner(publish: Callable[[TrainingJobStatus], None] | None = None) -> JobRunner:
    """The worker's runner (one per process)."""
    global _runner
    if _runner is None:
        _runner = JobRunner(settings, publish=publish)
    return _runner


def _audit(job: TrainingJob, status: TrainingJobStatus | None) -> AuditRecord | None:
    if status is None or status.status not in ("succeeded", "failed"):
        return None
    return AuditRecord(auditId=str(uuid.uuid4()), tenant=job.tenant, actor=AGENT, action="train_interviewer",
                       resourceType="interviewer", resourceId=job.interviewerId, outcome=status.status,
                       detail={"jobId": job.jobId, "datasetRef": job.datasetRef, "version": status.version,
                               "message": (status.message or "")[:500]}, ts=_now())


if enabled(AGENT):

    async def _sweep(runner: JobRunner) -> None:
        loop = asyncio.get_running_loop()
        try:
            jobs = await loop.run_in_executor(None, runner.recover_stale)
        except psycopg.Error as exc:
            log.warning("training job sweep failed: %s", exc)
            return
        for job in jobs:
            await topics.publish(catalogue.TRAINING_JOBS, job)
            log.info("re-queued training job %s", job.jobId)

    def _thread_publisher(loop: asyncio.AbstractEventLoop) -> Callable[[TrainingJobStatus], None]:
        def publish(status: TrainingJobStatus) -> None:
            if threading.current_thread() is threading.main_thread():
                asyncio.ensure_future(topics.publish(catalogue.TRAINING_STATUS, status))
                return
            asyncio.run_coroutine_threadsafe(topics.publish(catalogue.TRAINING_STATUS, status), loop).result(10)
        return publish

    @app.agent(topics.TRAINING_JOBS)
    async def train_twin(stream):
        """Run each training job to its end; status and progress go to training.status and PostgreSQL."""
        loop = asyncio.get_running_loop()
        runner = get_runner(_thread_publisher(loop))
        await loop.run_in_executor(_executor, runner.warm_up)
        log.info("trainer ready")
        async for event in stream.events():
            job = await decode_or_deadletter(event, TrainingJob, AGENT)
            if job is None:
                continue
            with handling(AGENT):
                status = await loop.run_in_executor(_executor, runner.run, job)
                record = _audit(job, status)
                if record is not None:
                    await topics.publish(catalogue.AUDIT_RECORDS, record)

    @app.task
    async def recover_training_jobs() -> None:
        """On worker start: resume or fail jobs a dead worker left running."""
        await _sweep(get_runner(_thread_publisher(asyncio.get_running_loop())))

    @app.timer(interval=max(1.0, min(30.0, settings.TRAINING_STALE_AFTER_S / 2)))
    async def sweep_training_jobs() -> None:
        """Periodically, the same recovery (a worker can die while others keep running)."""
        await _sweep(get_runner(_thread_publisher(asyncio.get_running_loop())))

    @app.timer(interval=settings.FINETUNE_POLL_S)
    async def poll_fine_tunes() -> None:
        """Record the model id of OpenAI fine-tunes that finished."""
        runner = get_runner(_thread_publisher(asyncio.get_running_loop()))
        await asyncio.get_running_loop().run_in_executor(None, runner.poll_fine_tunes)
else:  # pragma: no cover - this worker runs other agents
    train_twin = None
