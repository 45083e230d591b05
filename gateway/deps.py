"""Dependencies as Annotated aliases (SettingsDep, PublisherDep, RepliesDep, DirectoryDep; who is calling: gateway/auth.py)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from gateway.errors import ApiError
from gateway.publisher import Publisher
from gateway.replies import ReplyRouter
from infra.settings import Settings

__all__ = ["SettingsDep", "PublisherDep", "RepliesDep", "DirectoryDep", "InterviewerDirectory"]

def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_publisher(request: Request) -> Publisher:
    return request.app.state.publisher


def get_replies(request: Request) -> ReplyRouter:
    return request.app.state.replies


class InterviewerDirectory:
    """Which interviewers have a trained (active) twin, cached for a few seconds per process."""

    def __init__(self, pool, ttl_s: float = 10.0):
        self.pool = pool
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, str], tuple[float, bool]] = {}

    async def exists(self, tenant: str, interviewer_id: str) -> bool:
        key = (tenant, interviewer_id)
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        try:
            async with self.pool.connection() as conn:
                row = await (await conn.execute(
                    "SELECT 1 FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s AND active",
                    key)).fetchone()
        except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable" to the caller
            raise ApiError(503, "database_unavailable", f"PostgreSQL is unreachable ({type(exc).__name__}); retry later.",
                           headers={"Retry-After": "5"}) from exc
        found = row is not None
        self._cache[key] = (time.monotonic(), found)
        return found


def get_directory(request: Request) -> InterviewerDirectory:
    return request.app.state.directory


SettingsDep = Annotated[Settings, Depends(get_settings)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
RepliesDep = Annotated[ReplyRouter, Depends(get_replies)]
DirectoryDep = Annotated[InterviewerDirectory, Depends(get_directory)]


# --------------------------------------------------------------------------- session capture
# Built on first use from what the lifespan already holds (the pool, the settings).
from gateway.session_store import SessionStore  # noqa: E402
from sinks.object_store import ObjectStore, ObjectStoreError  # noqa: E402


def get_session_store(request: Request) -> SessionStore:
    state = request.app.state
    store = getattr(state, "session_store", None)
    if store is None:
        store = state.session_store = SessionStore(state.pool, ttl_s=state.settings.SESSION_CACHE_TTL_S)
    return store


async def get_object_store(request: Request) -> ObjectStore:
    import asyncio

    from sinks.object_store import object_store_from_settings

    state = request.app.state
    store = getattr(state, "object_store", None)
    if store is None:
        try:
            store = await asyncio.to_thread(object_store_from_settings, state.settings)
        except ObjectStoreError as exc:
            raise ApiError(503, "object_store_unavailable", f"Object storage is not usable: {exc}",
                           headers={"Retry-After": "30"}) from exc
        except Exception as exc:  # noqa: BLE001 - an S3 endpoint that does not answer
            raise ApiError(503, "object_store_unavailable",
                           f"Object storage is unreachable ({type(exc).__name__}); retry later.",
                           headers={"Retry-After": "5"}) from exc
        state.object_store = store
    return store


SessionStoreDep = Annotated[SessionStore, Depends(get_session_store)]
ObjectStoreDep = Annotated[ObjectStore, Depends(get_object_store)]
__all__ += ["SessionStoreDep", "ObjectStoreDep"]


async def sync_transaction(request: Request, work):
    """Run ``work(conn)`` on a fresh sync connection in a thread and commit (rare admin writes that
    share their code with the CLI). ApiErrors pass through; bad input PostgreSQL refuses is 422,
    anything else 503."""
    import asyncio

    import psycopg

    from infra.db import connect

    cfg = request.app.state.settings

    def run():
        with connect(cfg) as conn:
            out = work(conn)
            conn.commit()
            return out

    try:
        return await asyncio.to_thread(run)
    except ApiError:
        raise
    except psycopg.DataError as exc:  # e.g. a NUL character in an id
        raise ApiError(422, "invalid_input", f"PostgreSQL refused the input: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the database is the only thing that can fail here
        raise ApiError(503, "database_unavailable", f"PostgreSQL is unreachable ({type(exc).__name__}); retry later.",
                       headers={"Retry-After": "5"}) from exc


__all__ += ["sync_transaction"]
