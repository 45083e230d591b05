"""One namespace per test run on the shared local stack.

A test run must neither see nor take the work of anything else using the same services: a running
demo (`twin demo` leaves a gateway and a worker running), a developer's worker, or a second test
run. Every store therefore gets names of this run's own, derived from one run id, and exported in
``os.environ`` (tests/conftest.py does it before anything builds a Settings object) so the worker
and gateway subprocesses the tests start inherit them:

==========================  ===============================  ==================================================
store                       setting                          value
==========================  ===============================  ==================================================
Kafka topics                ``TOPIC_PREFIX``                 ``test-<id>.`` (and with it the consumer groups: the
                                                             Faust app id is the prefix + the agent set); topics
                                                             deleted at the end
PostgreSQL                  ``POSTGRES_DB``                  ``twin_test_<id>``: created with the migrations when
                                                             a test first needs PostgreSQL, dropped at the end
Redis                       ``REDIS_KEY_PREFIX``             ``twintest-<id>:``: keys deleted at the end
Weaviate                    ``WEAVIATE_COLLECTION_PREFIX``   ``TestRun<id>_``: collections deleted at the end
==========================  ===============================  ==================================================

Background jobs (the canary controller, the retention sweep) read their work from PostgreSQL, Redis
and Weaviate under these names, so a foreign worker never decides or deletes anything of this run,
and this run's workers touch nothing of anyone else's.

The id is 8 hex digits of the start time (seconds) and 6 random ones, so what a crashed run left
behind can be told apart by age: each run removes other runs' leftovers older than a day
(``STALE_AFTER_S``). ``TWIN_TEST_KEEP_NAMESPACE=1`` keeps this run's data for a post-mortem.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from infra.settings import Settings

__all__ = ["RunNamespace", "STALE_AFTER_S", "create_database", "drop_database", "drop_stale_databases",
           "delete_redis_keys", "delete_stale_redis_keys", "delete_weaviate_collections",
           "delete_stale_weaviate_collections", "delete_topics", "delete_stale_topics", "keep_namespace"]

STALE_AFTER_S = 86_400.0  # another run's leftovers older than this are removed
_ID = r"[0-9a-f]{14}"
TOPIC_RE = re.compile(rf"^test-({_ID})\.")
DB_RE = re.compile(rf"^twin_test_({_ID})$")
REDIS_RE = re.compile(rf"^twintest-({_ID}):")
WEAVIATE_RE = re.compile(rf"^TestRun({_ID})_", re.IGNORECASE)


@dataclass(frozen=True)
class RunNamespace:
    """The names of one test run in every store."""

    run_id: str

    @classmethod
    def new(cls) -> "RunNamespace":
        return cls(f"{int(time.time()):08x}{secrets.token_hex(3)}")

    @property
    def started_at(self) -> float:
        return float(int(self.run_id[:8], 16))

    @property
    def topic_prefix(self) -> str:
        return f"test-{self.run_id}."

    @property
    def postgres_db(self) -> str:
        return f"twin_test_{self.run_id}"

    @property
    def redis_key_prefix(self) -> str:
        return f"twintest-{self.run_id}:"

    @property
    def weaviate_prefix(self) -> str:
        return f"TestRun{self.run_id}_"

    def environ(self) -> dict[str, str]:
        """The settings environment of this namespace."""
        return {"TWIN_TEST_RUN": self.run_id, "TOPIC_PREFIX": self.topic_prefix, "POSTGRES_DB": self.postgres_db,
                "REDIS_KEY_PREFIX": self.redis_key_prefix, "WEAVIATE_COLLECTION_PREFIX": self.weaviate_prefix}


def keep_namespace() -> bool:
    """TWIN_TEST_KEEP_NAMESPACE=1: leave this run's database, keys and collections for a post-mortem."""
    return os.environ.get("TWIN_TEST_KEEP_NAMESPACE", "") not in ("", "0")


def _stale(run_id: str, own: str, now: float | None = None) -> bool:
    if run_id == own:
        return False
    return (now or time.time()) - int(run_id[:8], 16) > STALE_AFTER_S


# --------------------------------------------------------------------------- PostgreSQL
class NamespaceError(RuntimeError):
    """The run's namespace could not be set up (a one-line reason naming the fix)."""


def _admin_connect(cfg: "Settings"):
    """An autocommit connection to the cluster's maintenance database as a role that may create
    databases: the project's role when it has CREATEDB or is superuser (infra/up grants CREATEDB;
    testcontainers' role is superuser), else the local stack's superuser ``postgres``."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    base = make_conninfo(cfg.POSTGRES_DSN, dbname="postgres", connect_timeout=10)
    conn = psycopg.connect(base, autocommit=True)
    try:
        may = conn.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    except BaseException:
        conn.close()
        raise
    if may:
        return conn
    conn.close()
    try:
        return psycopg.connect(make_conninfo(base, user="postgres"), autocommit=True)
    except psycopg.OperationalError as exc:
        raise NamespaceError(
            f"role {cfg.POSTGRES_USER!r} may not create the test run's database and the superuser is not reachable"
            f" ({exc}); run infra/up (it grants CREATEDB) or ALTER ROLE {cfg.POSTGRES_USER} CREATEDB") from exc


def create_database(cfg: "Settings") -> bool:
    """Create ``cfg.POSTGRES_DB`` (owned by ``POSTGRES_USER``) when missing; True when created now."""
    import psycopg
    from psycopg import sql

    with _admin_connect(cfg) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cfg.POSTGRES_DB,)).fetchone():
            return False
        for attempt in range(5):
            try:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(cfg.POSTGRES_DB), sql.Identifier(cfg.POSTGRES_USER)))
                return True
            except psycopg.errors.DuplicateDatabase:
                return False
            except psycopg.errors.ObjectInUse:  # template1 briefly busy (another run creating its database)
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
    return False


def drop_database(cfg: "Settings", name: str | None = None) -> None:
    """Drop a test run's database, disconnecting whoever is still connected. Refuses any name that is
    not a test run's (``twin_test_<id>``), so a misconfiguration cannot drop real data."""
    from psycopg import sql

    name = name or cfg.POSTGRES_DB
    if not DB_RE.match(name):
        raise ValueError(f"{name!r} is not a test run's database; refusing to drop it")
    with _admin_connect(cfg) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def drop_stale_databases(cfg: "Settings", own_run: str) -> list[str]:
    """Drop the databases of test runs older than a day (crashed or killed runs); returns their run ids."""
    with _admin_connect(cfg) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'twin\\_test\\_%'")]
    stale = [m[1] for m in map(DB_RE.match, names) if m and _stale(m[1], own_run)]
    for run_id in stale:
        drop_database(cfg, f"twin_test_{run_id}")
    return stale


# --------------------------------------------------------------------------- Redis
def _redis(cfg: "Settings"):
    import redis

    return redis.Redis(host=cfg.REDIS_HOST, port=cfg.REDIS_PORT, db=cfg.REDIS_DB, socket_timeout=5,
                       socket_connect_timeout=2)


def _delete_matching(client, pattern: str, keep=lambda key: False) -> int:
    deleted, batch = 0, []
    for key in client.scan_iter(match=pattern, count=1000):
        if keep(key):
            continue
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


def delete_redis_keys(cfg: "Settings") -> int:
    """Delete every key under this run's ``REDIS_KEY_PREFIX``; returns how many went."""
    if not REDIS_RE.match(cfg.REDIS_KEY_PREFIX):
        raise ValueError(f"{cfg.REDIS_KEY_PREFIX!r} is not a test run's key prefix; refusing to delete under it")
    client = _redis(cfg)
    try:
        return _delete_matching(client, _glob_escape(cfg.REDIS_KEY_PREFIX) + "*")
    finally:
        client.close()


def delete_stale_redis_keys(cfg: "Settings", own_run: str) -> int:
    """Delete keys of test runs older than a day (most carry a TTL anyway; counters do not)."""
    now = time.time()

    def keep(key: bytes) -> bool:
        m = REDIS_RE.match(key.decode(errors="replace"))
        return not (m and _stale(m[1], own_run, now))

    client = _redis(cfg)
    try:
        return _delete_matching(client, "twintest-*", keep)
    finally:
        client.close()


# --------------------------------------------------------------------------- Weaviate
def _collections(client) -> Iterable[str]:
    return list(client.collections.list_all(simple=True))


def delete_weaviate_collections(client, prefix: str) -> list[str]:
    """Delete every collection whose name starts with this run's prefix; returns their names."""
    if not WEAVIATE_RE.match(prefix):
        raise ValueError(f"{prefix!r} is not a test run's collection prefix; refusing to delete under it")
    gone = [name for name in _collections(client) if name.lower().startswith(prefix.lower())]
    for name in gone:
        client.collections.delete(name)
    return gone


def delete_stale_weaviate_collections(client, own_run: str) -> list[str]:
    """Delete the collections of test runs older than a day."""
    now = time.time()
    gone = [name for name in _collections(client)
            if (m := WEAVIATE_RE.match(name)) and _stale(m[1].lower(), own_run, now)]
    for name in gone:
        client.collections.delete(name)
    return gone


# --------------------------------------------------------------------------- Kafka
async def _delete_topics(cfg: "Settings", keep) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.KAFKA_BOOTSTRAP, request_timeout_ms=30_000)
    await admin.start()
    try:
        gone = sorted(t for t in await admin.list_topics() if not keep(t))
        for start in range(0, len(gone), 100):
            await admin.delete_topics(gone[start:start + 100], timeout_ms=30_000)
        return gone
    finally:
        await admin.close()


async def delete_topics(cfg: "Settings") -> list[str]:
    """Delete every topic under this run's ``TOPIC_PREFIX`` (sub-prefixes and Faust's own topics too)."""
    if not TOPIC_RE.match(cfg.TOPIC_PREFIX):
        raise ValueError(f"{cfg.TOPIC_PREFIX!r} is not a test run's topic prefix; refusing to delete under it")
    return await _delete_topics(cfg, lambda topic: not topic.startswith(cfg.TOPIC_PREFIX))


async def delete_stale_topics(cfg: "Settings", own_run: str) -> list[str]:
    """Delete the topics of test runs older than a day."""
    now = time.time()
    return await _delete_topics(cfg, lambda t: not ((m := TOPIC_RE.match(t)) and _stale(m[1], own_run, now)))
