"""Training jobs as rows: claim, heartbeat, train, finish; and recovery of jobs a dead worker left.

:class:`JobRunner` is the plain job behind the trainer agent (``processors/training_jobs.py``) and
``twin train``. :meth:`JobRunner.run` claims the job row (``queued`` → ``running``), writes a
heartbeat every ``TRAINING_HEARTBEAT_S`` from a side thread, loads the dataset and the stored
split, calls ``train_interviewer`` (progress goes to the row and to the ``publish`` callback),
optionally starts the OpenAI fine-tune, and ends the row ``succeeded`` (with the version) or
``failed`` (with why).

A job is never left ``running`` by a dead worker. Its heartbeat stops, and
:meth:`JobRunner.recover_stale` (run when a worker starts and then periodically, by any worker of
the same deployment, i.e. ``TOPIC_PREFIX``) finds rows whose heartbeat is older than both
``TRAINING_STALE_AFTER_S`` and three heartbeat intervals of the worker that ran them, and:

* removes the half-written version (Weaviate objects, inactive profile row, artefact folder); a
  version that was already activated means the job had in fact finished: it is marked succeeded;
* **resumes** the job, i.e. sets it back to ``queued`` and returns it to be published again
  (training is idempotent: it starts over from the stored split), while it has had fewer than
  ``TRAINING_MAX_ATTEMPTS`` starts;
* otherwise **fails** it, saying that the worker died; the previous version keeps serving.

Redelivered messages are harmless: a row that is finished, or running with a fresh heartbeat, is
not claimed again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import psycopg

from infra.settings import Settings, settings
from schemas.models import TrainingJob, TrainingJobStatus

__all__ = ["JobRunner", "NOT_QUEUED_SQL"]

log = logging.getLogger(__name__)

# A running job is abandoned when its heartbeat is older than this sweeper's staleness setting and
# than three heartbeat intervals of the worker that runs it (which may be configured differently).
_STALE = ("coalesce(heartbeat_at, updated_at) < now() - make_interval(secs => greatest(%s::float8,"
          " 3 * coalesce(heartbeat_every_s, 0)))")


# A job Kafka did not take: no worker will ever run it, so its row says so (the gateway, `twin train`
# and the refresh controller; parameters: the reason, the job id).
NOT_QUEUED_SQL = ("UPDATE training_jobs SET status='failed', finished_at=now(), updated_at=now(),"
                  " message='not queued: ' || %s WHERE job_id=%s")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Heartbeat(threading.Thread):
    """Touches ``heartbeat_at`` of one running job every ``interval`` seconds until stopped."""

    def __init__(self, dsn: str, job_id: str, worker: str, interval: float):
        super().__init__(name=f"heartbeat-{job_id[:8]}", daemon=True)
        self.dsn, self.job_id, self.worker, self.interval = dsn, job_id, worker, interval
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self._halt.wait(self.interval):
                    conn.execute("UPDATE training_jobs SET heartbeat_at=now() WHERE job_id=%s AND worker=%s"
                                 " AND status='running'", (self.job_id, self.worker))
        except psycopg.Error as exc:  # the job notices a dead database on its own
            log.warning("heartbeat of %s stopped: %s", self.job_id, exc)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


@dataclass
class _Claim:
    attempt: int
    stale_version: int | None


class JobRunner:
    """Runs training jobs in this process.

    :param cfg: settings (DSN, heartbeat and staleness, artefact folder, OpenAI).
    :param memory: a ``PersonaMemory``; built from settings on first use (loads MiniLM) when None.
    :param publish: called with every ``TrainingJobStatus`` (the agent sends it to ``training.status``).
    :param openai_client: a ready ``openai.OpenAI`` client for fine-tunes (tests pass a fake one).
    """

    def __init__(self, cfg: Settings = settings, *, memory=None, profiles=None,
                 publish: Callable[[TrainingJobStatus], None] | None = None, worker_id: str | None = None,
                 artefact_root: Path | None = None, openai_client=None):
        self.cfg = cfg
        self.dsn = cfg.POSTGRES_DSN
        self._memory = memory
        self._profiles = profiles
        self.publish = publish or (lambda status: None)
        # The id starts with the deployment namespace (TOPIC_PREFIX): a sweeper only recovers jobs of
        # workers of its own deployment (and of its own test run, which share one database).
        self.worker_id = worker_id or f"{cfg.TOPIC_PREFIX}{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.artefact_root = artefact_root or cfg.TWIN_VAR_DIR / "models"
        self.openai_client = openai_client
        self._opened: list[Any] = []  # clients this runner opened itself (closed by close())

    # -- shared resources ---------------------------------------------------------------------
    @property
    def memory(self):
        if self._memory is None:
            from infra.clients import weaviate_client
            from processors.twin.embeddings import get_embedder
            from processors.twin.memory import PersonaMemory

            client = weaviate_client(self.cfg)
            self._opened.append(client)
            self._memory = PersonaMemory.connect(client, get_embedder(), prefix=self.cfg.WEAVIATE_COLLECTION_PREFIX)
        return self._memory

    @property
    def profiles(self):
        if self._profiles is None:
            from processors.twin.profiles import ProfileStore

            self._profiles = ProfileStore(self.dsn, ttl_s=0)
            self._opened.append(self._profiles)
        return self._profiles

    def close(self) -> None:
        """Close the Weaviate client and PostgreSQL connections this runner opened (not those it was given)."""
        while self._opened:
            self._opened.pop().close()

    def warm_up(self) -> None:
        """Connect Weaviate and load the embedding model, so the first job does not pay for it."""
        self.memory.embedder.embed(["warm up"])

    # -- rows ---------------------------------------------------------------------------------
    def _status(self, row: dict[str, Any]) -> TrainingJobStatus:
        return TrainingJobStatus(jobId=row["job_id"], tenant=row["tenant"], interviewerId=row["interviewer_id"],
                                 status=row["status"], progress=min(1.0, max(0.0, float(row["progress"] or 0))),
                                 message=row["message"], version=row["version"] if row["status"] == "succeeded" else None,
                                 ts=_now())

    def _row(self, conn: psycopg.Connection, job_id: str) -> dict[str, Any] | None:
        cur = conn.execute("SELECT job_id, tenant, interviewer_id, dataset_ref, options, status, progress, message,"
                           " version, attempts, worker FROM training_jobs WHERE job_id=%s", (job_id,))
        row = cur.fetchone()
        return dict(zip([d.name for d in cur.description], row)) if row else None

    def _update(self, conn: psycopg.Connection, job_id: str, publish: bool = True, **fields: Any) -> None:
        # Column names are this method's keyword arguments (always literal in the calls); values are parameters.
        sets = "".join(f"{k}=%({k})s, " for k in fields)
        params = {k: (json.dumps(v) if k == "result" and v is not None else v) for k, v in fields.items()}
        sql = f"UPDATE training_jobs SET {sets}updated_at=now() WHERE job_id=%(job_id)s"  # nosec B608  # kwarg names
        conn.execute(sql, {**params, "job_id": job_id})
        if publish:
            row = self._row(conn, job_id)
            if row:
                self._emit(self._status(row))

    def _emit(self, status: TrainingJobStatus) -> None:
        try:
            self.publish(status)
        except Exception as exc:  # noqa: BLE001 - the row is the source of truth; the topic is a feed
            log.warning("could not publish status of %s: %s", status.jobId, exc)

    def _claim(self, conn: psycopg.Connection, job: TrainingJob) -> _Claim | None:
        """Move the job to ``running`` for this worker, or None when it is not ours to run."""
        with conn.transaction():
            conn.execute(
                "INSERT INTO training_jobs (job_id, tenant, interviewer_id, dataset_ref, options, status, created_at)"
                " VALUES (%s, %s, %s, %s, %s, 'queued', %s) ON CONFLICT (job_id) DO NOTHING",
                (job.jobId, job.tenant, job.interviewerId, job.datasetRef, json.dumps(job.options), job.requestedAt))
            row = conn.execute(
                f"SELECT tenant, status, attempts, version, {_STALE} FROM training_jobs"  # nosec B608  # a constant
                " WHERE job_id=%s FOR UPDATE",
                (self.cfg.TRAINING_STALE_AFTER_S, job.jobId)).fetchone()
            tenant, status, attempts, version, stale = row
            if tenant != job.tenant:
                log.warning("job %s: message tenant %s does not own the job; ignored", job.jobId, job.tenant)
                return None
            if status in ("succeeded", "failed") or (status == "running" and not stale):
                log.info("job %s is %s; nothing to do", job.jobId, status)
                return None
            if attempts >= self.cfg.TRAINING_MAX_ATTEMPTS:
                conn.execute("UPDATE training_jobs SET status='failed', finished_at=now(), updated_at=now(),"
                             " message=%s WHERE job_id=%s",
                             (f"gave up after {attempts} attempts", job.jobId))
                return _Claim(-1, version)
            conn.execute(
                "UPDATE training_jobs SET status='running', worker=%s, attempts=attempts+1, heartbeat_at=now(),"
                " heartbeat_every_s=%s, started_at=now(), finished_at=NULL, progress=0, version=NULL, message=%s,"
                " updated_at=now() WHERE job_id=%s",
                (self.worker_id, self.cfg.TRAINING_HEARTBEAT_S,
                 f"started (attempt {attempts + 1} of {self.cfg.TRAINING_MAX_ATTEMPTS})", job.jobId))
            return _Claim(attempts + 1, version)

    def _discard_version(self, tenant: str, interviewer_id: str, version: int | None) -> bool:
        """Remove a half-written version; True when ``version`` is in fact active (the job had finished)."""
        if not version:
            return False
        active = self.profiles.load(tenant, interviewer_id)
        if active is not None and active.version == version:
            return True
        from processors.twin.training import artefact_dir

        self.memory.delete_version(tenant, interviewer_id, version)
        self.profiles.discard(tenant, interviewer_id, version)
        shutil.rmtree(artefact_dir(self.artefact_root, tenant, interviewer_id, version), ignore_errors=True)
        return False

    # -- the job ------------------------------------------------------------------------------
    def run(self, job: TrainingJob) -> TrainingJobStatus | None:
        """Run one job to its end (succeeded/failed); None when the job is not this worker's to run."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            claim = self._claim(conn, job)
            if claim is None:
                return None
            if claim.attempt < 0:  # too many attempts: failed by _claim
                self._discard_version(job.tenant, job.interviewerId, claim.stale_version)
                row = self._row(conn, job.jobId)
                status = self._status(row)
                self._emit(status)
                return status
            if claim.stale_version and self._discard_version(job.tenant, job.interviewerId, claim.stale_version):
                self._update(conn, job.jobId, status="succeeded", progress=1.0, version=claim.stale_version,
                             finished_at=_now(), message=f"v{claim.stale_version} was already active")
                return self._status(self._row(conn, job.jobId))
            self._update(conn, job.jobId)  # publish "running"
            beat = _Heartbeat(self.dsn, job.jobId, self.worker_id, self.cfg.TRAINING_HEARTBEAT_S)
            beat.start()
            try:
                result, message = self._train(conn, job)
                self._update(conn, job.jobId, status="succeeded", progress=1.0, version=result.version,
                             finished_at=_now(), message=message, result=result.summary())
            except Exception as exc:  # noqa: BLE001 - every failure ends the job with its reason
                from processors.twin.datasets import DatasetError
                from processors.twin.training import TrainingError

                known = isinstance(exc, (TrainingError, DatasetError))
                message = str(exc) if known else f"{type(exc).__name__}: {exc}"
                if not known:
                    log.exception("job %s failed", job.jobId)
                self._update(conn, job.jobId, status="failed", finished_at=_now(), message=message[:2000])
            finally:
                beat.stop()
            return self._status(self._row(conn, job.jobId))

    def _train(self, conn: psycopg.Connection, job: TrainingJob):
        from processors.twin import datasets as ds
        from processors.twin.finetune import FineTuneError, start_openai_fine_tune
        from processors.twin.memory import PersonaDoc
        from processors.twin.options import TrainingOptions
        from processors.twin.training import TrainingError, train_interviewer

        options = TrainingOptions.model_validate(job.options)
        ref = job.datasetRef
        if ds.is_live(ref) and ref == ds.live_ref(job.tenant):
            self._update(conn, job.jobId, message="collecting live sessions")
            ds.sync_live_sessions(conn, job.tenant)
        if not ds.dataset_exists(conn, job.tenant, ref):
            raise ds.DatasetError(f"dataset {ref!r} does not exist")
        ds.require_training_consent(conn, job.tenant, ref, job.interviewerId)  # ConsentMissing fails the job
        sessions = ds.load_sessions(conn, job.tenant, ref, job.interviewerId)
        if not sessions:
            raise TrainingError(f"no sessions of interviewer {job.interviewerId!r} in dataset {ref!r}")
        split, reused = ds.ensure_split(conn, job.tenant, job.interviewerId, ref, sessions, val=options.val,
                                        test=options.test, resplit=options.resplit)
        others = ds.load_sessions(conn, job.tenant, ref, exclude_interviewer=job.interviewerId, limit=400)
        last = {"t": 0.0, "stage": ""}

        def progress(stage: str, fraction: float) -> None:
            now = time.monotonic()
            if stage == last["stage"] and now - last["t"] < 1.0 and fraction < 1.0:
                return  # at most one row update per second within a stage
            last.update(t=now, stage=stage)
            self._update(conn, job.jobId, progress=round(min(0.99, fraction), 4), message=stage)

        def on_version(version: int) -> None:
            self._update(conn, job.jobId, publish=False, version=version)

        result = train_interviewer(
            job.tenant, job.interviewerId, sessions, self.profiles, self.memory, split=split,
            docs=[PersonaDoc(d.kind, d.key, d.text) for d in options.docs], config=options.config,
            progress=progress, activate=options.activate, artefact_root=self.artefact_root, others=others,
            classifier=options.classifier, seed=options.seed, base_model=options.baseModel, on_version=on_version,
            provenance={"datasetRef": ref, "jobId": job.jobId, "splitReused": reused})
        message = f"v{result.version} trained" + (" and active" if result.activated else " (not activated)")
        ft = result.artefacts.get("fineTune") or {}
        if options.fineTune:
            try:
                record = start_openai_fine_tune(ft, self.cfg, suffix=job.interviewerId, base_model=options.baseModel,
                                                client=self.openai_client)
                self.profiles.update_artefacts(job.tenant, job.interviewerId, result.version,
                                               {"fineTune": {**ft, "openai": record}})
                result.artefacts["fineTune"] = {**ft, "openai": record}
                message += f"; fine-tune {record['jobId']} started"
            except FineTuneError as exc:
                self.profiles.update_artefacts(job.tenant, job.interviewerId, result.version,
                                               {"fineTune": {**ft, "openai": {"error": str(exc)}}})
                message += f"; fine-tune not started: {exc}"
        return result, message

    # -- recovery -----------------------------------------------------------------------------
    def recover_stale(self) -> list[TrainingJob]:
        """Resume or fail jobs whose worker stopped heart-beating; returns the jobs to publish again."""
        stale: list[tuple[TrainingJob, int, int | None, str | None, datetime | None]] = []
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT job_id, tenant, interviewer_id, dataset_ref, options, attempts, version, worker,"
                    f" heartbeat_at FROM training_jobs WHERE status='running' AND {_STALE}"  # nosec B608  # a constant
                    " AND starts_with(coalesce(worker, ''), %s) FOR UPDATE SKIP LOCKED",
                    (self.cfg.TRAINING_STALE_AFTER_S, self.cfg.TOPIC_PREFIX)).fetchall()
                for job_id, tenant, iid, ref, options, attempts, version, worker, beat in rows:
                    # Take the row first (worker = us, fresh heartbeat) so no other sweeper touches it.
                    conn.execute("UPDATE training_jobs SET worker=%s, heartbeat_at=now() WHERE job_id=%s",
                                 (self.worker_id, job_id))
                    job = TrainingJob(jobId=job_id, tenant=tenant, interviewerId=iid, datasetRef=ref,
                                      options=options or {}, requestedAt=_now())
                    stale.append((job, attempts, version, worker, beat))
            out = []
            for job, attempts, version, worker, beat in stale:
                try:
                    finished = self._discard_version(job.tenant, job.interviewerId, version)
                except Exception as exc:  # noqa: BLE001 - a store is down: try again on the next sweep
                    log.warning("cannot clean up job %s yet: %s", job.jobId, exc)
                    conn.execute("UPDATE training_jobs SET heartbeat_at=%s WHERE job_id=%s", (beat, job.jobId))
                    continue
                died = f"worker {worker} stopped heart-beating at {beat:%Y-%m-%d %H:%M:%S}Z" if beat else "worker died"
                if finished:
                    self._update(conn, job.jobId, status="succeeded", progress=1.0, finished_at=_now(),
                                 message=f"v{version} was activated before the {died}")
                elif attempts < self.cfg.TRAINING_MAX_ATTEMPTS:
                    self._update(conn, job.jobId, status="queued", progress=0, worker=None, version=None,
                                 message=f"resumed: {died}; attempt {attempts + 1} of "
                                         f"{self.cfg.TRAINING_MAX_ATTEMPTS} queued")
                    out.append(job)
                else:
                    self._update(conn, job.jobId, status="failed", finished_at=_now(), version=None,
                                 message=f"failed: {died} during attempt {attempts} of "
                                         f"{self.cfg.TRAINING_MAX_ATTEMPTS}; the previous version keeps serving")
            return out

    # -- fine-tunes ---------------------------------------------------------------------------
    def poll_fine_tunes(self) -> int:
        """Check pending OpenAI fine-tunes; record ``config.fineTunedModel`` when one succeeded."""
        from processors.twin.finetune import poll_openai_fine_tune

        if self.openai_client is None and not self.cfg.OPENAI_API_KEY.get_secret_value():
            return 0
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT tenant, interviewer_id, version, artefacts->'fineTune' FROM interviewer_profiles"
                " WHERE artefacts->'fineTune'->'openai'->>'status' IN"
                " ('validating_files', 'queued', 'running')").fetchall()
        done = 0
        for tenant, iid, version, ft in rows:
            try:
                record = poll_openai_fine_tune(ft["openai"], self.cfg, client=self.openai_client)
            except Exception as exc:  # noqa: BLE001 - try again on the next poll
                log.warning("fine-tune poll of %s/%s v%s failed: %s", tenant, iid, version, exc)
                continue
            if record["status"] == ft["openai"].get("status"):
                continue
            config = {"fineTunedModel": record["fineTunedModel"]} if record["status"] == "succeeded" else None
            self.profiles.update_artefacts(tenant, iid, version, {"fineTune": {**ft, "openai": record}}, config)
            done += 1
        return done
