"""Training jobs: POST /api/digital-twin/train queues one on Kafka; GET .../train/{jobId} reports it.

The job row is written to PostgreSQL (``queued``) before the request goes to ``training.jobs``; the
trainer agent (processors/training_jobs.py) moves it through ``running`` to ``succeeded``/``failed``.
Another tenant's datasets, interviewers and jobs answer 404, exactly as ones that do not exist.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import TrainAuth
from gateway.deps import PublisherDep
from gateway.errors import ApiError, error_responses
from infra.tracing import inject, tracer
from processors.twin.options import TrainingOptions
from schemas.models import TrainingJob, TrainingJobStatus
from schemas.topics import TRAINING_JOBS, TRAINING_STATUS

router = APIRouter(prefix="/api/digital-twin", tags=["training"], responses=error_responses(401, 403))

LIVE_PREFIX = "live:"


class TrainingJobCreate(BaseModel):
    """Spec §8: train one interviewer's twin from a dataset (``ds_<name>`` from `twin import`, or ``live:<tenant>``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"interviewerId": "elena_kagan", "datasetRef": "ds_scotus", "options": {"fineTune": False}}]})
    interviewerId: Annotated[str, Field(min_length=1, max_length=128)]
    datasetRef: Annotated[str, Field(min_length=1, max_length=200)]
    options: TrainingOptions = Field(default_factory=TrainingOptions)


class TrainingJobAccepted(BaseModel):
    """Spec §8 response."""

    jobId: str
    status: Literal["queued", "running", "succeeded", "failed"]


class TrainingJobPublic(BaseModel):
    """A job's state and progress; ``version`` is the profile version it produced."""

    jobId: str
    interviewerId: str
    datasetRef: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float
    message: str | None = None
    version: int | None = None
    attempts: int
    options: dict[str, Any]
    result: dict[str, Any] | None = None
    createdAt: datetime
    updatedAt: datetime
    startedAt: datetime | None = None
    finishedAt: datetime | None = None


def _pool(request: Request):
    return request.app.state.pool


def _db_down(exc: Exception) -> ApiError:
    return ApiError(503, "database_unavailable", f"PostgreSQL is unreachable ({type(exc).__name__}); retry later.",
                    headers={"Retry-After": "5"})


async def _check_dataset(conn, tenant: str, body: TrainingJobCreate) -> None:
    """404 for a dataset or interviewer the tenant does not have; 403 ``consent_required`` when the
    data has no recorded consent to training (live sessions without consentTraining, an imported
    dataset nobody attested; see processors/twin/datasets.py)."""
    ref, iid = body.datasetRef, body.interviewerId
    consent_missing = None
    if ref.startswith(LIVE_PREFIX):
        if ref != f"{LIVE_PREFIX}{tenant}":
            raise ApiError(404, "unknown_dataset", f"No dataset {ref!r}.")
        sessions, consented = await (await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE consent_training AND status <> 'erased') FROM sessions"
            " WHERE tenant=%s AND interviewer_id=%s", (tenant, iid))).fetchone()
        row = (1,) if sessions else None
        if sessions and not consented:
            consent_missing = (f"None of the {sessions} live session(s) of interviewer {iid!r} has consent to training "
                               "(consentTraining); they are never used for training.",
                               [{"sessions": sessions, "consentTraining": 0}])
    else:
        found = await (await conn.execute("SELECT consent_attested_by FROM datasets WHERE tenant=%s AND dataset_ref=%s",
                                          (tenant, ref))).fetchone()
        if found is None:
            raise ApiError(404, "unknown_dataset", f"No dataset {ref!r}.")
        row = await (await conn.execute(
            "SELECT 1 FROM dataset_sessions WHERE tenant=%s AND dataset_ref=%s AND interviewer_id=%s LIMIT 1",
            (tenant, ref, iid))).fetchone()
        if not found[0]:
            consent_missing = (f"Dataset {ref!r} has no consent attestation; re-import it with "
                               "`twin import FILE --consent-attested` once every session may be used for training.",
                               [{"datasetRef": ref, "consentAttested": False}])
    if row is None:
        raise ApiError(404, "unknown_interviewer", f"No sessions of interviewer {iid!r} in dataset {ref!r}.")
    if consent_missing is not None:
        raise ApiError(403, "consent_required", *consent_missing)


@router.post("/train", status_code=202, response_model=TrainingJobAccepted,
             responses=error_responses(400, 401, 403, 404, 409, 422, 503))
async def create_training_job(body: TrainingJobCreate, principal: TrainAuth, publisher: PublisherDep, request: Request,
                              response: Response) -> Any:
    """Queue a training job for one interviewer; poll GET /train/{jobId} for its progress."""
    tenant = principal.tenant
    principal.require_interviewer(body.interviewerId)
    job_id = str(uuid.uuid4())
    options = body.options.model_dump(mode="json")
    try:
        async with _pool(request).connection() as conn:
            async with conn.transaction():
                # One job at a time per interviewer: two requests racing here are serialised.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                   (f"train/{tenant}/{body.interviewerId}",))
                await _check_dataset(conn, tenant, body)
                busy = await (await conn.execute(
                    "SELECT job_id, status FROM training_jobs WHERE tenant=%s AND interviewer_id=%s"
                    " AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1",
                    (tenant, body.interviewerId))).fetchone()
                if busy is not None:
                    raise ApiError(409, "training_in_progress",
                                   f"Interviewer {body.interviewerId!r} already has a {busy[1]} training job.",
                                   details=[{"jobId": busy[0], "status": busy[1]}])
                await conn.execute(
                    "INSERT INTO training_jobs (job_id, tenant, interviewer_id, dataset_ref, options, status, message)"
                    " VALUES (%s, %s, %s, %s, %s, 'queued', 'queued')",
                    (job_id, tenant, body.interviewerId, body.datasetRef, json.dumps(options)))
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - the pool is closed or PostgreSQL is down
        raise _db_down(exc) from exc
    with tracer().start_as_current_span("gateway.train", attributes={"twin.job_id": job_id, "twin.tenant": tenant}):
        job = TrainingJob(jobId=job_id, tenant=tenant, interviewerId=body.interviewerId, datasetRef=body.datasetRef,
                          options=options, traceContext=inject())
        try:
            await publisher.publish(TRAINING_JOBS, job)
        except ApiError:
            # Not on Kafka means no worker will ever run it: say so in the row, then answer 503.
            async with _pool(request).connection() as conn:
                await conn.execute("UPDATE training_jobs SET status='failed', finished_at=now(), updated_at=now(),"
                                   " message='not queued: Kafka did not acknowledge the job' WHERE job_id=%s",
                                   (job_id,))
            raise
        await publisher.publish(TRAINING_STATUS, TrainingJobStatus(
            jobId=job_id, tenant=tenant, interviewerId=body.interviewerId, status="queued", message="queued"))
    response.headers["Location"] = f"/api/digital-twin/train/{job_id}"
    return TrainingJobAccepted(jobId=job_id, status="queued")


@router.get("/train/{jobId}", response_model=TrainingJobPublic, responses=error_responses(401, 403, 404, 503))
async def get_training_job(jobId: str, principal: TrainAuth, request: Request) -> Any:  # noqa: N803 - path name in spec
    """The job's status, progress, message and (when it succeeded) the version it produced."""
    tenant = principal.tenant
    principal.touch("training_job", jobId)
    try:
        async with _pool(request).connection() as conn:
            cur = await conn.execute(
                "SELECT job_id, interviewer_id, dataset_ref, status, progress, message, version, attempts, options,"
                " result, created_at, updated_at, started_at, finished_at FROM training_jobs"
                " WHERE job_id=%s AND tenant=%s", (jobId, tenant))
            row = await cur.fetchone()
    except Exception as exc:  # noqa: BLE001
        raise _db_down(exc) from exc
    if row is None:
        raise ApiError(404, "unknown_job", f"No training job {jobId!r}.")
    (job_id, iid, ref, status, progress, message, version, attempts, options, result, created, updated, started,
     finished) = row
    return TrainingJobPublic(jobId=job_id, interviewerId=iid, datasetRef=ref, status=status, progress=progress,
                             message=message, version=version if status == "succeeded" else None,
                             attempts=attempts, options=options or {}, result=result, createdAt=created,
                             updatedAt=updated, startedAt=started, finishedAt=finished)
