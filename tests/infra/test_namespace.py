"""The test run's own namespace (tests/namespace.py): nothing running in the default namespace — a
demo's worker and gateway, a developer's worker — nor another test run sees or takes its work.

Every look into the default namespace here only reads: a test must not change a running demo's data.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from infra.settings import Settings
from tests.conftest import NAMESPACE, REPO_ROOT
from tests import namespace as ns

NAMES = ("TOPIC_PREFIX", "POSTGRES_DB", "REDIS_KEY_PREFIX", "WEAVIATE_COLLECTION_PREFIX")


def _default(name: str):
    return Settings.model_fields[name].default


@pytest.fixture(scope="module")
def default_cfg(cfg) -> Settings:
    """The settings a demo started from this clone uses: same services, default namespace."""
    return cfg.model_copy(update={name: _default(name) for name in NAMES})


def test_every_namespace_differs_from_the_default_in_this_process_and_its_subprocesses(cfg, process_env):
    for name in NAMES:
        ours, default = getattr(cfg, name), _default(name)
        assert ours == NAMESPACE.environ()[name] == process_env[name], name
        assert ours != default and NAMESPACE.run_id in ours, name
        # A prefix must not extend the default one either: the demo's retention sweep scans `twin:*`.
        assert not (name.endswith("PREFIX") and default and ours.startswith(default)), name
    # A subprocess (a worker, as worker_factory starts it) builds the same settings, and its Faust app
    # id — its Kafka consumer group — carries the run's prefix: it never joins a demo worker's group.
    code = ("import json; from infra.settings import settings as s; from processors.engine.app import app; "
            f"print(json.dumps({{n: getattr(s, n) for n in {NAMES!r}}} | {{'group': app.conf.id}}))")
    out = subprocess.run([sys.executable, "-c", code], env={**process_env, "TWIN_AGENTS": ""}, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert {n: seen[n] for n in NAMES} == {n: getattr(cfg, n) for n in NAMES}
    assert seen["group"] == f"{cfg.TOPIC_PREFIX}interviewer-twin" != "interviewer-twin"


def _default_db_sees(default_cfg: Settings, query: str, params: tuple):
    """Run a read-only query in the default database; None when it (or the table) does not exist."""
    try:
        with psycopg.connect(default_cfg.POSTGRES_DSN, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidCatalogName):
        return None


def _no_scoring(*args, **kwargs):  # pragma: no cover - no samples, nothing to score
    raise AssertionError("nothing should be scored here")


def test_a_canary_of_the_run_is_invisible_to_a_default_canary_controller(cfg, default_cfg, postgres_dsn, tenant):
    """The reported failure: a demo's canary controller decided the tests' canaries. It runs
    ``evaluate_running`` against its own database; here as a dry run, restricted to our tenant."""
    from infra.db import connect
    from processors.twin import canary as canaries
    from processors.twin.policy import PolicyStats
    from processors.twin.profiles import InterviewerProfile, ProfileStore
    from processors.twin.style import StyleProfile

    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == NAMESPACE.postgres_db
    store = ProfileStore(postgres_dsn)
    try:
        for v in (1, 2):
            store.save(InterviewerProfile(tenant, "dana", v, StyleProfile(), PolicyStats(), {"config": {}}))
        store.activate(tenant, "dana", 1)
    finally:
        store.close()
    with connect(cfg) as conn:
        canary = canaries.start(conn, tenant, "dana", share=0.5, thresholds=canaries.Thresholds(), actor="pytest")
        conn.commit()

    ours = canaries.evaluate_running(lambda: connect(cfg), _no_scoring, apply=False, tenant=tenant)
    assert [e.canary.canary_id for e in ours] == [canary.canary_id]
    rows = _default_db_sees(default_cfg, "SELECT canary_id FROM canary_deployments WHERE tenant=%s", (tenant,))
    assert not rows
    if rows is not None:  # the default database exists: what its controller would evaluate
        assert canaries.evaluate_running(lambda: connect(default_cfg), _no_scoring, apply=False, tenant=tenant) == []


async def test_redis_keys_of_the_run_are_outside_the_default_prefix(cfg, default_cfg, redis_url, tenant):
    from infra.clients import redis_client
    from sinks import retention
    from sinks.redis import RedisSink

    client = redis_client(cfg)
    try:
        key = f"{cfg.REDIS_KEY_PREFIX}{tenant}:session:s1:counters"
        await client.hset(key, "turns", 1)
        assert await RedisSink(client, prefix=cfg.REDIS_KEY_PREFIX).counters(tenant, "s1") == {"turns": 1}
        assert await RedisSink(client, prefix=default_cfg.REDIS_KEY_PREFIX).counters(tenant, "s1") == {}
        # What a default retention sweep scans (read-only): none of the run's sessions.
        seen = await retention._redis_sessions(retention.Stores(default_cfg, None, None, client, None), None)
        assert not any(tenant in t for t in seen)
    finally:
        await client.aclose()


def test_weaviate_collections_of_the_run_are_not_the_default_ones(cfg, weaviate_client, tenant):
    from sinks.weaviate import TURN_CHUNKS, VectorObject, WeaviateSink, weaviate_tenant

    ours = WeaviateSink(weaviate_client, TURN_CHUNKS, prefix=cfg.WEAVIATE_COLLECTION_PREFIX)
    default = WeaviateSink(weaviate_client, TURN_CHUNKS)
    assert ours.name == f"{NAMESPACE.weaviate_prefix}{TURN_CHUNKS.name}" != default.name
    ours.ensure_collection()
    ours.upsert(tenant, [VectorObject("k1", {"interviewerId": "dana", "text": "hello", "seq": 1}, [1.0] * 384)])
    assert ours.count(tenant) == 1
    if weaviate_client.collections.exists(default.name):  # read-only look at the default collection
        assert weaviate_tenant(tenant) not in weaviate_client.collections.use(default.name).tenants.get()


# --------------------------------------------------------------------------- leftovers of crashed runs
def _run_id(age_s: float) -> str:
    return f"{int(time.time() - age_s):08x}{uuid.uuid4().hex[:6]}"


def test_leftovers_of_runs_older_than_a_day_are_removed_and_live_runs_kept(cfg, kafka_bootstrap, postgres_dsn,
                                                                           redis_url, weaviate_client):
    import redis

    from infra.kafka_admin import create_topics
    from schemas.topics import TWIN_REQUESTS
    from sinks.weaviate import TURN_CHUNKS, WeaviateSink

    old, live = _run_id(2 * ns.STALE_AFTER_S), _run_id(60)
    runs = {run: ns.RunNamespace(run) for run in (old, live)}
    r = redis.Redis(host=cfg.REDIS_HOST, port=cfg.REDIS_PORT, db=cfg.REDIS_DB)
    try:
        for run, space in runs.items():
            ns.create_database(cfg.model_copy(update={"POSTGRES_DB": space.postgres_db}))
            r.set(f"{space.redis_key_prefix}t:config-version", 1)
            WeaviateSink(weaviate_client, TURN_CHUNKS, prefix=space.weaviate_prefix).ensure_collection()
            create_topics(cfg.model_copy(update={"TOPIC_PREFIX": space.topic_prefix}), [TWIN_REQUESTS])

        assert old in ns.drop_stale_databases(cfg, NAMESPACE.run_id)
        assert ns.delete_stale_redis_keys(cfg, NAMESPACE.run_id) >= 1
        assert f"{runs[old].weaviate_prefix}{TURN_CHUNKS.name}" in ns.delete_stale_weaviate_collections(
            weaviate_client, NAMESPACE.run_id)
        gone = asyncio.run(ns.delete_stale_topics(cfg, NAMESPACE.run_id))
        assert f"{runs[old].topic_prefix}{TWIN_REQUESTS.name}" in gone
        assert not any(t.startswith((runs[live].topic_prefix, cfg.TOPIC_PREFIX)) for t in gone)

        with psycopg.connect(postgres_dsn) as conn:
            dbs = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        assert runs[old].postgres_db not in dbs and runs[live].postgres_db in dbs and NAMESPACE.postgres_db in dbs
        assert not r.exists(f"{runs[old].redis_key_prefix}t:config-version")
        assert r.exists(f"{runs[live].redis_key_prefix}t:config-version")
        assert not weaviate_client.collections.exists(f"{runs[old].weaviate_prefix}{TURN_CHUNKS.name}")
        assert weaviate_client.collections.exists(f"{runs[live].weaviate_prefix}{TURN_CHUNKS.name}")
    finally:  # the "live" run is ours to clean up too
        live_cfg = cfg.model_copy(update={"POSTGRES_DB": runs[live].postgres_db,
                                          "REDIS_KEY_PREFIX": runs[live].redis_key_prefix})
        ns.drop_database(live_cfg)
        ns.delete_redis_keys(live_cfg)
        ns.delete_weaviate_collections(weaviate_client, runs[live].weaviate_prefix)
        live_cfg = live_cfg.model_copy(update={"TOPIC_PREFIX": runs[live].topic_prefix})
        assert asyncio.run(ns.delete_topics(live_cfg)) == [f"{runs[live].topic_prefix}{TWIN_REQUESTS.name}"]
        r.close()


def test_cleanup_refuses_names_outside_a_test_namespace(cfg, weaviate_client):
    with pytest.raises(ValueError):
        ns.drop_database(cfg, "twin")
    with pytest.raises(ValueError):
        ns.delete_redis_keys(cfg.model_copy(update={"REDIS_KEY_PREFIX": "twin:"}))
    with pytest.raises(ValueError):
        ns.delete_weaviate_collections(weaviate_client, "")
    with pytest.raises(ValueError):
        asyncio.run(ns.delete_topics(cfg.model_copy(update={"TOPIC_PREFIX": ""})))
