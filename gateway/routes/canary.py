"""Canary deployments of an interviewer's profile versions (scope ``admin``; processors/twin/canary.py).

Start one against a version trained with ``"activate": false`` (POST /api/digital-twin/train), read
how it is doing, or decide by hand; the canary controller decides on its own once enough live
samples are in. Every change is one transaction with its audit record; the calls run on a
short-lived sync connection in a thread, the code path ``twin canary`` uses too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import AdminAuth
from gateway.deps import sync_transaction
from gateway.errors import ApiError, error_responses
from infra.tracing import current_trace_id
from processors.twin import canary as canaries

router = APIRouter(prefix="/api/digital-twin/canary", tags=["canary"], responses=error_responses(401, 403))

InterviewerId = Annotated[str, Path(min_length=1, max_length=128)]


class CanaryStart(BaseModel):
    """Which version to try on which share of sessions, and when to decide (settings give the defaults)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"candidateVersion": 4, "share": 0.1, "minSamples": 50, "scoreMargin": 0.05}]})
    candidateVersion: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        default=None, description="A non-active version; default the newest version when it is not the active one.")
    share: Annotated[float, Field(gt=0, le=1)] = Field(description="Share of sessions the candidate answers.")
    minSamples: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None, description="Scored live samples per arm before any decision (CANARY_MIN_SAMPLES).")
    scoreMargin: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Roll back when the candidate's mean online score is lower by more than this.")
    safetyMargin: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Roll back when its safety-intervention rate is higher by more than this.")
    safetyAlpha: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        default=None, description="Significance the rise must reach (one-sided two-proportion z-test; "
                                  "CANARY_SAFETY_ALPHA).")
    promoteSamples: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None, description="Samples per arm before an automatic promotion (default minSamples).")
    autoPromote: bool = Field(default=True, description="Promote automatically when the candidate is as good.")


class CanaryDecide(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class Arm(BaseModel):
    version: int
    samples: int
    scored: int
    meanScore: float | None
    interventions: int
    safetyRate: float | None


class CanaryPublic(BaseModel):
    canaryId: str
    interviewerId: str
    candidateVersion: int
    baselineVersion: int
    share: float
    status: Literal["running", "promoted", "rolled_back", "aborted"]
    reason: str | None
    minSamples: int
    thresholds: dict[str, Any]
    result: dict[str, Any] | None = Field(description="The last evaluation: per-arm statistics and the decision.")
    startedBy: str
    decidedBy: str | None
    startedAt: str
    evaluatedAt: str | None
    decidedAt: str | None


class CanaryStatus(BaseModel):
    """The running canary (else the latest), its arms as of now, and the earlier ones."""

    canary: CanaryPublic
    candidate: Arm = Field(description="Live samples of the candidate since the canary started (scored so far).")
    baseline: Arm
    history: list[CanaryPublic]


def _public(c: canaries.Canary) -> CanaryPublic:
    data = c.public()
    data.pop("tenant")
    return CanaryPublic(**data)


async def _run(request: Request, work):
    """``work(conn)`` in one committed transaction (gateway.deps.sync_transaction), canary errors mapped."""

    def guarded(conn):
        try:
            return work(conn)
        except canaries.CanaryError as exc:
            raise ApiError(exc.status, exc.code, str(exc)) from None
        except psycopg.errors.UniqueViolation:  # two starts raced; the other one won
            raise ApiError(409, "canary_running", "Another canary was started for this interviewer.") from None

    return await sync_transaction(request, guarded)


@router.post("/{interviewerId}", status_code=201, response_model=CanaryPublic,
             responses=error_responses(404, 409, 422, 503))
async def start_canary(interviewerId: InterviewerId, body: CanaryStart, principal: AdminAuth,  # noqa: N803
                       request: Request) -> Any:
    """Send ``share`` of the interviewer's sessions to a candidate version, next to the active one."""
    principal.require_interviewer(interviewerId)
    try:
        thresholds = canaries.Thresholds.from_settings(
            request.app.state.settings, min_samples=body.minSamples, score_margin=body.scoreMargin,
            safety_margin=body.safetyMargin, promote_samples=body.promoteSamples, auto_promote=body.autoPromote,
            safety_alpha=body.safetyAlpha)
    except canaries.CanaryError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    started = await _run(request, lambda conn: canaries.start(
        conn, principal.tenant, interviewerId, share=body.share, thresholds=thresholds, actor=principal.actor,
        candidate_version=body.candidateVersion, trace_id=current_trace_id() or None))
    principal.touch("canary", started.canary_id)
    return _public(started)


@router.get("/{interviewerId}", response_model=CanaryStatus, responses=error_responses(404, 503))
async def get_canary(interviewerId: InterviewerId, principal: AdminAuth, request: Request) -> Any:  # noqa: N803
    """The interviewer's running (else latest) canary with its arms' live samples so far."""
    principal.require_interviewer(interviewerId)

    def work(conn):
        latest = canaries.current(conn, principal.tenant, interviewerId)
        if latest is None:
            return None
        cand, base = canaries.arm_stats(conn, latest)
        earlier = [c for c in canaries.history(conn, principal.tenant, interviewerId, limit=20)
                   if c.canary_id != latest.canary_id]
        return latest, cand, base, earlier

    found = await _run(request, work)
    if found is None:
        raise ApiError(404, "no_canary", f"Interviewer {interviewerId!r} never had a canary in this tenant.")
    latest, cand, base, earlier = found
    return CanaryStatus(canary=_public(latest), candidate=Arm(**cand.to_json()), baseline=Arm(**base.to_json()),
                        history=[_public(c) for c in earlier])


@router.post("/{interviewerId}/rollback", response_model=CanaryPublic, responses=error_responses(404, 503))
async def rollback_canary(interviewerId: InterviewerId, principal: AdminAuth, request: Request,  # noqa: N803
                          body: CanaryDecide | None = None) -> Any:
    """Stop the running canary now: every session goes back to the active version."""
    principal.require_interviewer(interviewerId)
    closed = await _run(request, lambda conn: canaries.rollback(
        conn, principal.tenant, interviewerId, actor=principal.actor, reason=body.reason if body else None,
        trace_id=current_trace_id() or None))
    principal.touch("canary", closed.canary_id)
    return _public(closed)


@router.post("/{interviewerId}/promote", response_model=CanaryPublic, responses=error_responses(404, 409, 503))
async def promote_canary(interviewerId: InterviewerId, principal: AdminAuth, request: Request,  # noqa: N803
                         body: CanaryDecide | None = None) -> Any:
    """Make the running canary's candidate the active version now, whatever its samples say so far."""
    principal.require_interviewer(interviewerId)
    closed = await _run(request, lambda conn: canaries.promote(
        conn, principal.tenant, interviewerId, actor=principal.actor, reason=body.reason if body else None,
        trace_id=current_trace_id() or None))
    principal.touch("canary", closed.canary_id)
    return _public(closed)
