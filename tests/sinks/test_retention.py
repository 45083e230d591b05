"""Retention and erasure (sinks/retention.py) on the real stores: PostgreSQL, Weaviate, a local
encrypted object store and Redis, each isolated by name (tenants, Redis key prefix, collections).

Two tenants get old (400 days) and fresh data in every store; one keeps everything 30 days, the
other forever. A dry run counts and changes nothing; the real run removes exactly what it counted,
only the expired data, only of the right tenant, and audits each deletion.
"""

import os
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from infra.settings import Settings
from schemas.models import SessionEvent, TelemetryRedacted, TurnEvent
from sinks import retention
from sinks.object_store import EnvelopeCipher, LocalObjectStore
from sinks.postgres import PostgresSink
from sinks.redis import session_key
from sinks.weaviate import PERSONA_MEMORY, TURN_CHUNKS, VectorObject, WeaviateSink

OLD = timedelta(days=400)
PARTS = ("seen", "turns", "counters", "features")


@pytest.fixture
def rcfg(unique_name) -> Settings:
    """Settings whose Redis keys and Weaviate collections are this test's own."""
    return Settings(REDIS_KEY_PREFIX=f"rt-{unique_name}:", WEAVIATE_COLLECTION_PREFIX=f"Rt{unique_name}",
                    RETENTION_ERASURE_RECHECK_DAYS=2)


@pytest.fixture
async def stores(rcfg, postgres_dsn, redis_url, weaviate_client, tmp_path):
    objects = LocalObjectStore(tmp_path / "objects", EnvelopeCipher(os.urandom(32)))
    sinks = {spec.name: WeaviateSink(weaviate_client, spec, prefix=rcfg.WEAVIATE_COLLECTION_PREFIX)
             for spec in (TURN_CHUNKS, PERSONA_MEMORY)}
    for sink in sinks.values():
        sink.ensure_collection()
    async with retention.Stores.open(rcfg, objects=objects) as s:
        s.sinks = sinks
        yield s
    for sink in sinks.values():
        sink.drop()
    keys = [k async for k in _scan(s, f"{rcfg.REDIS_KEY_PREFIX}*")]
    if keys:
        from infra.clients import redis_client

        client = redis_client(rcfg)
        await client.delete(*keys)
        await client.aclose()


async def _scan(stores, pattern):
    from infra.clients import redis_client

    client = redis_client(stores.cfg)
    try:
        async for k in client.scan_iter(match=pattern, count=1000):
            yield k
    finally:
        await client.aclose()


def _vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).normal(size=384)
    return list(v / np.linalg.norm(v))


async def seed_session(stores, pg, tenant: str, sid: str, when: datetime, interviewer: str = "dana") -> None:
    """One session with data in every store, all dated ``when`` (our clock)."""
    key = f"{tenant}/{sid}/rec.mp4"
    writer = await stores.objects.begin(key, "video/mp4")
    await writer.write(b"\x00\x00\x00\x18ftypisom" + os.urandom(64))
    stored = await writer.commit()
    pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, candidate_ref, consent_recording,"
               " video_url, created_at, updated_at) VALUES (%s, %s, %s, 'cand-1', true, %s, %s, %s)",
               (sid, tenant, interviewer, stored.url, when, when))
    pg.execute("INSERT INTO recordings (recording_id, tenant, session_id, url, object_key, content_type, size_bytes,"
               " sha256, encryption, created_at) VALUES (%s, %s, %s, %s, %s, 'video/mp4', %s, %s, %s, %s)",
               (f"rec-{sid}", tenant, sid, stored.url, key, stored.size, stored.sha256, stored.encryption, when))
    pg.execute("INSERT INTO telemetry_sessions (session_id, tenant, created_at) VALUES (%s, %s, %s)",
               (sid, tenant, when))
    for i in range(3):
        pg.execute("INSERT INTO telemetry_events (tenant, session_id, event_id, type, ts, payload, received_at)"
                   " VALUES (%s, %s, %s, 'turn', %s, '{}', %s)", (tenant, sid, f"e{i}", when, when))
        pg.execute("INSERT INTO turns (tenant, session_id, event_id, role, text, ts) VALUES (%s, %s, %s, 'interviewer',"
                   " %s, %s)", (tenant, sid, f"e{i}", f"question {i}", when))
    for i in range(2):
        pg.execute("INSERT INTO eval_samples (sample_id, tenant, interviewer_id, session_id, correlation_id, context,"
                   " twin_text, created_at) VALUES (%s, %s, %s, %s, %s, '{}', 'twin line', %s)",
                   (f"{sid}-smp{i}", tenant, interviewer, sid, f"{sid}-c{i}", when))
    pg.execute("INSERT INTO eval_ratings (rating_id, tenant, interviewer_id, rater, kind, session_id, sample_ids,"
               " real_option, created_at) VALUES (%s, %s, %s, 'r1', 'turn', %s, %s, 'A', %s)",
               (f"{sid}-rating", tenant, interviewer, sid, [f"{sid}-smp0"], when))
    pg.execute("INSERT INTO eval_runs (run_id, tenant, interviewer_id, scores, created_at)"
               " VALUES (%s, %s, %s, '{}', %s) ON CONFLICT DO NOTHING", (f"{sid}-run", tenant, interviewer, when))
    stores.sinks["TurnChunk"].upsert(tenant, [VectorObject(
        f"{tenant}/{sid}/e{i}/0", {"interviewerId": interviewer, "sessionId": sid, "eventId": f"e{i}",
                                   "role": "interviewer", "ts": when.isoformat(), "text": f"question {i}", "seq": 0},
        _vec(i)) for i in range(3)])
    for part in PARTS:
        await stores.redis.set(session_key(stores.cfg.REDIS_KEY_PREFIX, tenant, sid, part), "x")


def seed_profiles(stores, pg, tenant: str, interviewer: str = "dana") -> None:
    """Version 1 (superseded, old) and version 2 (active), each with persona memory."""
    for version, active in ((1, False), (2, True)):
        pg.execute("INSERT INTO interviewer_profiles (tenant, interviewer_id, version, style_profile, policy_stats,"
                   " active, created_at) VALUES (%s, %s, %s, '{}', '{}', %s, now() - interval '400 days')",
                   (tenant, interviewer, version, active))
        stores.sinks["PersonaMemory"].upsert(tenant, [VectorObject(
            f"{tenant}/{interviewer}/v{version}/{k}",
            {"interviewerId": interviewer, "kind": "exemplar", "key": f"k{k}", "sessionId": f"imported-{k}",
             "reply": "Why?", "version": version},
            _vec(10 + k)) for k in range(2)])


async def snapshot(stores, pg, tenant: str, sids) -> dict:
    """How much of each session is in each store, and the tenant's persona memory per version."""
    from weaviate.classes.query import Filter

    out = {}
    for sid in sids:
        row = {t: pg.execute(f"SELECT count(*) FROM {t} WHERE tenant=%s AND session_id=%s", (tenant, sid)).fetchone()[0]
               for t in ("telemetry_events", "turns", "telemetry_sessions", "recordings", "eval_samples",
                         "eval_ratings", "sessions")}
        row["eval_runs"] = pg.execute("SELECT count(*) FROM eval_runs WHERE run_id=%s", (f"{sid}-run",)).fetchone()[0]
        row["objects"] = len(await stores.objects.keys(f"{tenant}/{sid}"))
        row["TurnChunk"] = stores.sinks["TurnChunk"].count(tenant, where={"sessionId": sid})
        row["redis"] = sum([await stores.redis.exists(session_key(stores.cfg.REDIS_KEY_PREFIX, tenant, sid, p))
                            for p in PARTS])
        out[sid] = row
    memory = stores.weaviate.collections.use(stores.sinks["PersonaMemory"].name)
    if not memory.tenants.exists(tenant):
        return out
    coll = memory.with_tenant(tenant)
    for v in (1, 2):
        out[f"memory v{v}"] = coll.aggregate.over_all(filters=Filter.by_property("version").equal(v),
                                                      total_count=True).total_count
    return out


def _left(counts: dict) -> dict:
    """What is left of an erased session (eval runs belong to the interviewer, not the session)."""
    return {k: v for k, v in counts.items() if v and k != "eval_runs"}


def _audits(pg, tenant: str, action: str) -> list[tuple]:
    return pg.execute("SELECT actor, resource_type, resource_id, outcome, detail FROM audit_log WHERE tenant=%s"
                      " AND action=%s ORDER BY resource_id", (tenant, action)).fetchall()


async def test_run_deletes_only_expired_data_of_the_right_tenant_and_audits_it(stores, pg, unique_name):
    now = datetime.now(timezone.utc)
    brief, keeper = f"t-{unique_name}-a", f"t-{unique_name}-b"
    for tenant in (brief, keeper):
        await seed_session(stores, pg, tenant, f"{tenant}-old", now - OLD)
        await seed_session(stores, pg, tenant, f"{tenant}-new", now)
        seed_profiles(stores, pg, tenant)
    await retention.set_policy(stores.pool, stores.cfg, brief, dict.fromkeys(retention.KINDS, 30), "pytest")
    await retention.set_policy(stores.pool, stores.cfg, keeper, dict.fromkeys(retention.KINDS, 0), "pytest")
    sids = {t: [f"{t}-old", f"{t}-new"] for t in (brief, keeper)}
    before = {t: await snapshot(stores, pg, t, sids[t]) for t in (brief, keeper)}
    full = {"telemetry_events": 3, "turns": 3, "telemetry_sessions": 1, "recordings": 1, "eval_samples": 2,
            "eval_ratings": 1, "sessions": 1, "eval_runs": 1, "objects": 1, "TurnChunk": 3, "redis": 4}
    assert all(before[t][sid] == full for t in sids for sid in sids[t])

    # ---- dry run: counts, changes nothing (no audit records either)
    plan = await retention.run(stores, tenant=brief, dry_run=True, actor="pytest")
    assert plan.errors == []
    expected = {
        ("recordings", "objects", "recordings"): 1, ("recordings", "postgres", "recordings"): 1,
        ("eval", "postgres", "eval_ratings"): 1, ("eval", "postgres", "eval_samples"): 2,
        ("eval", "postgres", "eval_runs"): 1,
        ("vectors", "weaviate", "TurnChunk"): 3, ("vectors", "weaviate", "PersonaMemory"): 2,
        ("telemetry", "redis", "session keys"): 4, ("telemetry", "postgres", "turns"): 3,
        ("telemetry", "postgres", "telemetry_events"): 3, ("telemetry", "postgres", "telemetry_sessions"): 1,
    }
    assert {k[1:]: v for k, v in plan.counts(brief).items()} == expected
    assert plan.by_store() == {brief: {"objects": 1, "postgres": 12, "weaviate": 5, "redis": 4}}
    assert {t: await snapshot(stores, pg, t, sids[t]) for t in sids} == before
    assert _audits(pg, brief, "retention.purge") == []

    # ---- the real run removes exactly that, of the old session and the superseded version only
    report = await retention.run(stores, tenant=brief, actor="pytest")
    assert report.errors == [] and report.skipped is None
    assert report.counts(brief) == plan.counts(brief)
    after = await snapshot(stores, pg, brief, sids[brief])
    assert after[f"{brief}-new"] == full, "fresh data stays"
    assert after[f"{brief}-old"] == {**dict.fromkeys(full, 0), "sessions": 1}, "sessions themselves are not aged"
    assert (after["memory v1"], after["memory v2"]) == (0, 2), "only the superseded version's memory goes"
    assert pg.execute("SELECT video_url FROM sessions WHERE session_id=%s", (f"{brief}-old",)).fetchone() == (None,)
    assert pg.execute("SELECT video_url FROM sessions WHERE session_id=%s", (f"{brief}-new",)).fetchone()[0]

    # ---- one audit record per kind and store, saying what and how many
    audits = _audits(pg, brief, "retention.purge")
    assert [(a[0], a[1], a[2], a[3]) for a in audits] == [
        ("pytest", "retention", r, "deleted") for r in ("eval/postgres", "recordings/objects", "recordings/postgres",
                                                         "telemetry/postgres", "telemetry/redis", "vectors/weaviate")]
    details = {a[2]: a[4] for a in audits}
    assert details["telemetry/postgres"]["counts"] == {"turns": 3, "telemetry_events": 3, "telemetry_sessions": 1}
    assert details["vectors/weaviate"]["counts"] == {"TurnChunk": 3, "PersonaMemory": 2}
    assert details["recordings/objects"] == {**details["recordings/objects"], "store": "objects", "total": 1,
                                             "days": 30, "runId": report.run_id}
    assert pg.execute("SELECT actor, counts FROM retention_runs WHERE run_id=%s", (report.run_id,)).fetchone() == (
        "pytest", {"eval/postgres": 4, "recordings/objects": 1, "recordings/postgres": 1, "telemetry/postgres": 7,
                   "telemetry/redis": 4, "vectors/weaviate": 5})

    # ---- the tenant that keeps everything forever loses nothing; a second run finds nothing
    kept = await retention.run(stores, tenant=keeper, actor="pytest")
    assert kept.total() == 0 and kept.errors == []
    assert await snapshot(stores, pg, keeper, sids[keeper]) == before[keeper]
    assert _audits(pg, keeper, "retention.purge") == []
    again = await retention.run(stores, tenant=brief, actor="pytest")
    assert again.total() == 0 and again.errors == []


async def test_policy_defaults_overrides_and_audit(stores, pg, tenant):
    policy = await retention.get_policy(stores.pool, stores.cfg, tenant)
    assert policy.days == retention.default_days(stores.cfg) and set(policy.source.values()) == {"default"}
    changed = await retention.set_policy(stores.pool, stores.cfg, tenant, {"telemetry": 7, "eval": 0}, "pytest")
    assert changed.days["telemetry"] == 7 and changed.source["telemetry"] == "tenant"
    assert changed.cutoff("eval", datetime.now(timezone.utc)) is None, "0 keeps forever"
    reset = await retention.set_policy(stores.pool, stores.cfg, tenant, {"telemetry": None}, "pytest")
    assert reset.days["telemetry"] == stores.cfg.RETENTION_TELEMETRY_DAYS and reset.source["telemetry"] == "default"
    assert reset.days["eval"] == 0
    audits = _audits(pg, tenant, "retention.policy_set")
    assert len(audits) == 2 and audits[0][4]["after"]["telemetry"] in (7, stores.cfg.RETENTION_TELEMETRY_DAYS)
    with pytest.raises(ValueError):
        await retention.set_policy(stores.pool, stores.cfg, tenant, {"audit": 1}, "pytest")


async def test_erasure_removes_a_session_everywhere_and_sinks_drop_its_late_data(stores, pg, tenant, postgres_dsn):
    now = datetime.now(timezone.utc)
    sid, other = f"{tenant}-gone", f"{tenant}-kept"
    await seed_session(stores, pg, tenant, sid, now)
    await seed_session(stores, pg, tenant, other, now)
    stores.sinks["PersonaMemory"].upsert(tenant, [VectorObject(
        f"{tenant}/dana/v1/x", {"interviewerId": "dana", "kind": "exemplar", "key": "x", "sessionId": sid,
                                "reply": "Why?", "version": 1}, _vec(3))])
    published = []

    async def publish(event):
        published.append(event)

    assert await retention.erase_session(stores, tenant, "no-such-session", "pytest", publish) is None
    assert await retention.erase_session(stores, f"{tenant}-x", sid, "pytest", publish) is None, "another tenant's"
    erasure = await retention.erase_session(stores, tenant, sid, "pytest", publish)
    assert not erasure.already_erased
    assert erasure.counts["postgres"]["telemetry_events"] == 3 and erasure.counts["postgres"]["sessions"] == 1
    assert erasure.totals() == {"postgres": 12, "objects": 1, "weaviate": 4, "redis": 4}
    assert erasure.counts["weaviate"] == {"TurnChunk": 3, "PersonaMemory": 1}
    snap = await snapshot(stores, pg, tenant, [sid, other])
    assert _left(snap[sid]) == {}, "eval runs are per interviewer, not session data"
    assert snap[other]["telemetry_events"] == 3 and snap[other]["redis"] == 4, "another session is untouched"
    [event] = published
    assert (event.kind, event.sessionId, event.candidateRef, event.videoUrl) == ("erased", sid, None, None)
    audits = _audits(pg, tenant, "session.erase")
    assert sorted(a[4]["store"] for a in audits) == ["objects", "postgres", "redis", "weaviate"]
    assert all(a[1:4] == ("session", sid, "erased") for a in audits)
    assert pg.execute("SELECT erased_by FROM erased_sessions WHERE tenant=%s AND session_id=%s",
                      (tenant, sid)).fetchone() == ("pytest",)

    # Late data of the erased session (in flight in Kafka, or replayed) is dropped by the sinks.
    from infra.clients import pg_pool

    sink = PostgresSink(pg_pool(stores.cfg, max_size=2))
    await sink.setup()
    try:
        late = TelemetryRedacted(eventId="late", tenant=tenant, interviewSessionId=sid, events=[TurnEvent(
            eventId="e9", ts=now.isoformat(), sessionId=sid, role="candidate", text="late")])
        assert await sink.write([late]) == 0
        assert await sink.write_sessions([SessionEvent(eventId="x", kind="updated", tenant=tenant, sessionId=sid,
                                                       interviewerId="dana", consentRecording=True,
                                                       consentTraining=True, ts=now + timedelta(seconds=5))]) == 0
        assert await sink.erased({(tenant, sid), (tenant, other)}) == {(tenant, sid)}
    finally:
        await sink.close()
    assert _left((await snapshot(stores, pg, tenant, [sid]))[sid]) == {}

    # Erasing again: 200-style result with zeros; the lifecycle event is not sent twice.
    again = await retention.erase_session(stores, tenant, sid, "pytest", publish)
    assert again.already_erased and set(again.totals().values()) == {0} and len(published) == 1


async def test_run_re_erases_leftovers_of_recently_erased_sessions(stores, pg, tenant):
    """A write that raced the erasure (checked the tombstone just before it was committed) is gone
    after the next run, which audits it."""
    now = datetime.now(timezone.utc)
    sid = f"{tenant}-raced"
    await seed_session(stores, pg, tenant, sid, now)
    await retention.erase_session(stores, tenant, sid, "pytest")
    await seed_session(stores, pg, tenant, sid, now)  # the racing writes, everywhere at once
    plan = await retention.run(stores, tenant=tenant, dry_run=True, actor="pytest")
    assert plan.total(kind="erasure") == 20 and plan.by_store()[tenant] == {
        "postgres": 12, "objects": 1, "weaviate": 3, "redis": 4}
    report = await retention.run(stores, tenant=tenant, actor="pytest")
    assert report.counts(tenant) == plan.counts(tenant)
    assert _left((await snapshot(stores, pg, tenant, [sid]))[sid]) == {}
    rechecks = [a for a in _audits(pg, tenant, "session.erase") if a[4].get("recheck")]
    assert sorted(a[4]["store"] for a in rechecks) == ["objects", "postgres", "redis", "weaviate"]
