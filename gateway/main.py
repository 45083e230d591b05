"""The gateway: validate, authorise, publish to Kafka, answer.

Run it::

    twin gateway                       # or: uvicorn gateway.main:app --port 8000

It imports no ML libraries: generation, embeddings and redaction run in the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway.auth import AuditMiddleware, KeyCache, drain_audit
from gateway.deps import InterviewerDirectory
from gateway.errors import install_error_handlers
from gateway.metrics import MetricsMiddleware
from gateway.publisher import Publisher
from gateway.replies import ReplyRouter
from gateway.revocations import RevocationListener
from gateway.routes import health, twin
from gateway.routes import training
from gateway.routes import recordings, sessions, telemetry
from gateway.routes import evals
from gateway.routes import admin
from gateway.routes import config as config_routes
from gateway.routes import canary
from gateway.routes import retention as retention_routes
from infra.clients import pg_pool
from infra.crypto import key_ring
from infra.settings import Settings, settings
from infra.tracing import setup_tracing


def create_app(cfg: Settings = settings) -> FastAPI:
    """Build the FastAPI app for the given settings (tests build their own)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        setup_tracing("twin-gateway", cfg)
        key_ring(cfg)  # a missing or malformed encryption key (infra/crypto.py) stops the start, not a request
        app.state.settings = cfg
        app.state.publisher = Publisher(cfg)
        app.state.replies = ReplyRouter(cfg)
        app.state.pool = pg_pool(cfg)
        app.state.directory = InterviewerDirectory(app.state.pool)
        app.state.key_cache = KeyCache(cfg.AUTH_CACHE_TTL_S)
        app.state.revocations = RevocationListener(cfg, app.state.key_cache)
        app.state.audit_pending = set()
        # Neither Kafka nor PostgreSQL being down may stop the gateway from starting: it answers
        # 503 until they are back.
        await app.state.publisher.start()
        await app.state.replies.start()
        with contextlib.suppress(Exception):
            await app.state.pool.open(wait=False)
        # Revoked keys are forgotten at once (Redis pub/sub); without Redis the gateway still starts.
        await app.state.revocations.start()
        try:
            yield
        finally:
            await app.state.revocations.stop()
            await drain_audit(app)
            await app.state.replies.stop()
            await app.state.publisher.stop()
            await app.state.pool.close()

    app = FastAPI(
        title="Interviewer Twin",
        version="0.1.0",
        description="Answers like one specific human interviewer. Errors share one JSON shape: "
                    "`{\"error\": {\"code\", \"message\", \"details\"}}`.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(MetricsMiddleware)  # added last: outermost, so it times the others too
    app.include_router(health.router)
    app.include_router(twin.router)
    app.include_router(training.router)
    app.include_router(sessions.router)
    app.include_router(telemetry.router)
    app.include_router(recordings.router)
    app.include_router(evals.router)
    app.include_router(admin.router)
    app.include_router(config_routes.router)
    app.include_router(canary.router)
    app.include_router(retention_routes.router)
    return app


app = create_app()

__all__ = ["app", "create_app", "asyncio"]
