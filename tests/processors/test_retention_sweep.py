"""The retention_sweep agent: a Faust timer in a real worker subprocess applies the tenants' policies.

The tenant keeps telemetry and eval data 1 day; it has data from 3 days ago and from now in PostgreSQL
and Redis. A worker running only this agent, with a 2-second interval, removes the old data, keeps the
fresh, and audits what it did as ``retention_sweep``. Every other tenant keeps the default (365 days),
so the sweep of the shared database touches nobody else's fresh test data.
"""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from infra.clients import redis_client


def _seed(pg, tenant: str, sid: str, when: datetime) -> None:
    pg.execute("INSERT INTO telemetry_sessions (session_id, tenant, created_at) VALUES (%s, %s, %s)",
               (sid, tenant, when))
    for i in range(2):
        pg.execute("INSERT INTO telemetry_events (tenant, session_id, event_id, type, ts, payload, received_at)"
                   " VALUES (%s, %s, %s, 'turn', %s, '{}', %s)", (tenant, sid, f"e{i}", when, when))
        pg.execute("INSERT INTO turns (tenant, session_id, event_id, role, text, ts) VALUES (%s, %s, %s,"
                   " 'candidate', 'an answer', %s)", (tenant, sid, f"e{i}", when))
    pg.execute("INSERT INTO eval_samples (sample_id, tenant, interviewer_id, session_id, correlation_id, context,"
               " twin_text, created_at) VALUES (%s, %s, 'dana', %s, %s, '{}', 'line', %s)",
               (f"{sid}-smp", tenant, sid, f"{sid}-c", when))


def _left(pg, sid: str) -> tuple[int, int, int]:
    return tuple(pg.execute(f"SELECT count(*) FROM {t} WHERE session_id=%s", (sid,)).fetchone()[0]
                 for t in ("telemetry_events", "turns", "eval_samples"))


async def test_timer_agent_sweeps_expired_data_on_its_interval(worker_factory, pg, tenant, cfg):
    now = datetime.now(timezone.utc)
    old, fresh = f"{tenant}-old", f"{tenant}-fresh"
    _seed(pg, tenant, old, now - timedelta(days=3))
    _seed(pg, tenant, fresh, now)
    for kind in ("telemetry", "eval"):
        pg.execute("INSERT INTO tenant_retention (tenant, kind, days, updated_by) VALUES (%s, %s, 1, 'pytest')",
                   (tenant, kind))
    redis = redis_client(cfg)
    for sid in (old, fresh):
        await redis.set(f"{cfg.REDIS_KEY_PREFIX}{tenant}:session:{sid}:counters", "x")

    worker = worker_factory("retention-worker", agents="retention_sweep",
                            extra_env={"RETENTION_SWEEP_INTERVAL_S": "2"})
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        # A sweep covers every tenant of the shared database: wait for the end of the first one.
        while _left(pg, old) != (0, 0, 0) or "tenant(s), " not in worker.log_tail(1_000_000):
            if loop.time() > deadline:
                pytest.fail(f"the sweep did not run:\n{worker.log_tail()}")
            await asyncio.sleep(1)
    finally:
        worker.stop()  # an all-tenant sweep must not keep running under other tests
    assert _left(pg, fresh) == (2, 2, 1)
    assert await redis.exists(f"{cfg.REDIS_KEY_PREFIX}{tenant}:session:{old}:counters") == 0
    assert await redis.exists(f"{cfg.REDIS_KEY_PREFIX}{tenant}:session:{fresh}:counters") == 1
    await redis.delete(f"{cfg.REDIS_KEY_PREFIX}{tenant}:session:{fresh}:counters")
    await redis.aclose()
    audits = pg.execute("SELECT actor, resource_id, detail->'counts' FROM audit_log WHERE tenant=%s"
                        " AND action='retention.purge' ORDER BY resource_id", (tenant,)).fetchall()
    assert audits == [("retention_sweep", "eval/postgres", {"eval_samples": 1}),
                      ("retention_sweep", "telemetry/postgres", {"turns": 2, "telemetry_events": 2}),
                      ("retention_sweep", "telemetry/redis", {"session keys": 1})]
    runs = pg.execute("SELECT count(*) FROM retention_runs WHERE actor='retention_sweep' AND tenant IS NULL"
                      " AND finished_at > %s", (now,)).fetchone()[0]
    assert runs >= 1
