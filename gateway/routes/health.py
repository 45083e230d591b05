"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, response: Response) -> dict[str, object]:
    """Kafka producer and reply consumer are connected."""
    state = request.app.state
    checks = {"kafka_producer": state.publisher.producer is not None, "reply_consumer": state.replies.ready}
    if not all(checks.values()):
        response.status_code = 503
    return {"ready": all(checks.values()), "checks": checks, "lateReplies": state.replies.late_replies}


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus exposition."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
