"""Real-service fixtures shared by the whole suite.

The services come from `infra/up` (or, where a Docker engine runs and TWIN_TEST_INFRA=containers,
from testcontainers). A service that does not answer fails the test that needs it, loudly, naming
the setting and `infra/up`: nothing here skips. Isolation is by name, on shared services: the run has
a namespace of its own (tests/namespace.py: topic prefix, consumer groups, PostgreSQL database, Redis
key prefix, Weaviate collection prefix) that a demo, a developer's worker or another test run never
sees, and within it tests use unique tenants, topics, groups, key prefixes and collections.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

# One namespace per test session (topics and consumer groups, PostgreSQL database, Redis keys, Weaviate
# collections), exported before any Settings is built so that worker and gateway subprocesses inherit it.
from tests.namespace import RunNamespace  # noqa: E402

NAMESPACE = RunNamespace.new()
os.environ.update(NAMESPACE.environ())

# Where a Docker engine runs, TWIN_TEST_INFRA=containers uses testcontainers instead of infra/up.
_INFRA = os.environ.get("TWIN_TEST_INFRA", "local")
if _INFRA == "containers":
    from tests.containers import start_containers

    os.environ.update(start_containers())
elif _INFRA != "local":
    raise RuntimeError(f"TWIN_TEST_INFRA must be local or containers, not {_INFRA!r}")

from infra.clients import ServiceUnavailable, check_services  # noqa: E402
from infra.settings import Settings  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
# The transcripts the tests read: in the repository, never beside it (infra/samples/README.md).
SCOTUS_SLICE = REPO_ROOT / "infra" / "samples" / "scotus_oyez_slice.jsonl"


def _require(*names: str) -> None:
    cfg = Settings()
    try:
        asyncio.run(check_services(cfg, names, timeout=20))
    except ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def cfg() -> Settings:
    """The settings every fixture and subprocess in this session uses."""
    return Settings()


@pytest.fixture(scope="session")
def scotus_slice() -> Path:
    """The in-repo SCOTUS fixture: 54 oral-argument sessions of elena_kagan (24), antonin_scalia (14) and
    ruth_bader_ginsburg (16), in the format of ``processors.twin.corpus.read_transcripts``."""
    if not SCOTUS_SLICE.is_file():
        pytest.fail(f"test fixture missing: {SCOTUS_SLICE}", pytrace=False)
    return SCOTUS_SLICE


@pytest.fixture(scope="session")
def kafka_bootstrap(cfg: Settings) -> str:
    """The broker; this run's topics (TOPIC_PREFIX=test-<id>.) are deleted at the end, and those of runs
    that crashed more than a day ago at the start."""
    _require("kafka")
    from tests.namespace import delete_stale_topics, delete_topics, keep_namespace

    asyncio.run(delete_stale_topics(cfg, NAMESPACE.run_id))
    yield cfg.KAFKA_BOOTSTRAP
    if not keep_namespace():
        asyncio.run(delete_topics(cfg))


@pytest.fixture(scope="session")
def catalogue_topics(cfg: Settings, kafka_bootstrap: str) -> list[str]:
    """Every catalogue topic, created under this session's TOPIC_PREFIX."""
    from infra.kafka_admin import create_topics
    from schemas.topics import TOPICS

    create_topics(cfg)
    return [cfg.topic(t.name) for t in TOPICS]


@pytest.fixture(scope="session")
def postgres_dsn(cfg: Settings) -> str:
    """This run's own database (POSTGRES_DB=twin_test_<id>), created with the migrations applied and
    dropped at the end; databases of runs that crashed more than a day ago are dropped first."""
    _require("postgres")
    from infra.db import upgrade
    from tests.namespace import NamespaceError, create_database, drop_database, drop_stale_databases, keep_namespace

    try:
        drop_stale_databases(cfg, NAMESPACE.run_id)
        create_database(cfg)
    except NamespaceError as exc:
        pytest.fail(str(exc), pytrace=False)
    upgrade(cfg)
    yield cfg.POSTGRES_DSN
    if not keep_namespace():
        drop_database(cfg)


@pytest.fixture(scope="session")
def redis_url(cfg: Settings) -> str:
    """Redis; this run's keys are under REDIS_KEY_PREFIX (twintest-<id>:), deleted at the end."""
    _require("redis")
    from tests.namespace import delete_stale_redis_keys

    delete_stale_redis_keys(cfg, NAMESPACE.run_id)
    return cfg.REDIS_URL


@pytest.fixture(scope="session")
def weaviate_client(cfg: Settings):
    """A Weaviate client; this run's collections (WEAVIATE_COLLECTION_PREFIX=TestRun<id>_) are deleted
    at the end, and those of runs that crashed more than a day ago at the start."""
    _require("weaviate")
    from infra.clients import weaviate_client as make
    from tests.namespace import delete_stale_weaviate_collections, delete_weaviate_collections, keep_namespace

    client = make(cfg)
    try:
        delete_stale_weaviate_collections(client, NAMESPACE.run_id)
        yield client
        if not keep_namespace():
            delete_weaviate_collections(client, cfg.WEAVIATE_COLLECTION_PREFIX)
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def _run_namespace_cleanup():
    """Last of all (an autouse session fixture is finalised after every other): delete this run's Redis
    keys, wherever they were written (in-process gateways too). Quiet when Redis is not running."""
    yield
    from tests.namespace import delete_redis_keys, keep_namespace

    if keep_namespace():
        return
    import redis

    try:
        delete_redis_keys(Settings())
    except (redis.ConnectionError, redis.TimeoutError):
        pass


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix for topics, groups, key prefixes and collections."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def unique_topic(cfg: Settings, kafka_bootstrap: str, unique_name: str):
    """A fresh 3-partition topic, deleted afterwards."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    name = f"{cfg.TOPIC_PREFIX}probe-{unique_name}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name, 3, 1)])
    yield name
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


# --------------------------------------------------------------------------- processes
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


_HANDED_OUT: set[int] = set()


def _free_port() -> int:
    """A port free now and not handed out before in this run: the OS can give the same ephemeral port to
    two binds in a row, and a private broker once got it for both its listener and its controller."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


# Processes started while a test module runs; the module's end stops them (see _stop_module_processes).
_MODULE_PROCESSES: list["ManagedProcess"] = []


class ManagedProcess:
    """A worker or gateway subprocess with its log file; restartable (fault tests kill it).

    ``session_lived`` ones (a session fixture's) run until the session ends; the others stop with
    the test module that started them: an idle gateway's reply consumer and an idle worker's
    consumers still cost CPU, and two dozen of them slow every later test on 2 cores.
    """

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path, ready: callable, timeout: float,
                 session_lived: bool = False):
        self.name, self.cmd, self.env, self.ready, self.timeout = name, cmd, env, ready, timeout
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.session_lived = session_lived

    def start(self) -> "ManagedProcess":
        if not self.session_lived and self not in _MODULE_PROCESSES:
            _MODULE_PROCESSES.append(self)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + self.timeout
        while not self.ready(self):
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}", pytrace=False)
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{self.name} not ready after {self.timeout}s:\n{self.log_tail()}", pytrace=False)
            time.sleep(0.3)
        return self

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        stop_all([self])


def stop_all(processes: list[ManagedProcess]) -> None:
    """SIGTERM every running one first, then wait for each (SIGKILL after 30 s): a Faust worker takes
    seconds to leave its consumer group, and at session end there are a dozen of them."""
    running = [mp.proc for mp in processes if mp.proc and mp.proc.poll() is None]
    for proc in running:
        proc.terminate()
    deadline = time.monotonic() + 30
    for proc in running:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module", autouse=True)
def _stop_module_processes():
    """At the end of each test module, stop the workers and gateways it started (autouse, so it is
    finalised after the module's own fixtures that used them)."""
    yield
    stop_all(_MODULE_PROCESSES)
    _MODULE_PROCESSES.clear()


def _worker_ready(mp: ManagedProcess) -> bool:
    # Faust logs "[^Worker]: Ready" once partitions are assigned and tables recovered; a worker
    # running the twin agent is ready when its engine has loaded ("twin engine ready").
    log = mp.log_tail(400_000)
    agents = mp.env.get("TWIN_AGENTS", "")
    needs_engine = not agents or "response_generation" in agents.split(",")
    return "Worker]: Ready" in log and (not needs_engine or "twin engine ready" in log)


@pytest.fixture(scope="session")
def process_env(cfg) -> dict[str, str]:
    """Environment for subprocesses: this session's topic prefix and settings."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TOPIC_PREFIX": cfg.TOPIC_PREFIX, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def worker_factory(process_env, tmp_path_factory, catalogue_topics, postgres_dsn, redis_url, weaviate_client):
    """Start Faust workers (all agents, or those named) as real subprocesses; each stops at the end of
    the test module that started it, a ``session_lived`` one at the end of the session."""
    started: list[ManagedProcess] = []
    log_dir = tmp_path_factory.mktemp("workers")

    def start(name: str = "worker", agents: str = "", extra_env: dict[str, str] | None = None,
              session_lived: bool = False) -> ManagedProcess:
        # The canary and refresh controllers act on every running canary and refresh in the database;
        # tests that start and evaluate them by hand must not race a background one, so they run only
        # where asked for.
        env = {**process_env, "TWIN_AGENTS": agents, "CANARY_EVAL_INTERVAL_S": "86400", "REFRESH_INTERVAL_S": "86400",
               **(extra_env or {})}
        mp = ManagedProcess(name, [sys.executable, "-m", "processors.engine.app", "worker", "-l", "info",
                                   "--without-web"], env, log_dir, _worker_ready, timeout=120,
                            session_lived=session_lived)
        started.append(mp)
        return mp.start()

    yield start
    stop_all(started)


@pytest.fixture(scope="session")
def gateway_factory(process_env, tmp_path_factory, catalogue_topics, postgres_dsn):
    """Start uvicorn gateways as real subprocesses; returns (process, base_url). Each stops at the end of
    the test module that started it, a ``session_lived`` one at the end of the session."""
    import httpx

    started: list[ManagedProcess] = []
    log_dir = tmp_path_factory.mktemp("gateways")

    def start(name: str = "gateway", extra_env: dict[str, str] | None = None, session_lived: bool = False):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"

        def ready(_: ManagedProcess) -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        env = {**process_env, **(extra_env or {})}
        mp = ManagedProcess(name, [sys.executable, "-m", "uvicorn", "gateway.main:app", "--host", "127.0.0.1",
                                   "--port", str(port), "--log-level", "warning"], env, log_dir, ready, timeout=60,
                            session_lived=session_lived)
        started.append(mp)
        return mp.start(), url

    yield start
    stop_all(started)


# --------------------------------------------------------------------------- twin apps
SAMPLE_CORPUS = REPO_ROOT / "infra" / "samples" / "sample_interviews.jsonl"


def train_sample(cfg, tenant: str, interviewer_id: str = "dana", transcripts=None, **options):
    """Train an interviewer (the shipped synthetic sample by default) in a tenant; returns the result.

    ``options`` go to ``train_interviewer`` (persona docs, no learned models, ...)."""
    from processors.twin.corpus import read_transcripts
    from processors.twin.embeddings import get_embedder
    from processors.twin.memory import PersonaMemory
    from processors.twin.profiles import ProfileStore
    from processors.twin.training import train_interviewer
    from infra.clients import weaviate_client

    if transcripts is None:
        transcripts = [p.transcript for p in read_transcripts(SAMPLE_CORPUS) if p.ok]
    client = weaviate_client(cfg)
    try:
        memory = PersonaMemory.connect(client, get_embedder(), prefix=cfg.WEAVIATE_COLLECTION_PREFIX)
        profiles = ProfileStore(cfg.POSTGRES_DSN)
        try:
            return train_interviewer(tenant, interviewer_id, transcripts, profiles, memory, **options)
        finally:
            profiles.close()
    finally:
        client.close()


@pytest.fixture(scope="session")
def sample_tenant(cfg, postgres_dsn, weaviate_client) -> str:
    """A fresh tenant in which the sample interviewer 'dana' is trained (once per session)."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    train_sample(cfg, tenant)
    return tenant


@pytest.fixture(scope="session")
def twin_app_factory(cfg, worker_factory, gateway_factory, kafka_bootstrap):
    """Start an isolated worker + gateway pair on their own topic prefix (so they can be killed or
    pointed at an LLM without touching other tests). Returns a TwinApp with .url, .worker, .gateway."""
    from infra.kafka_admin import create_topics
    from infra.settings import Settings

    class TwinApp:
        def __init__(self, name: str, extra_env: dict[str, str] | None = None, session_lived: bool = False):
            self.prefix = f"{cfg.TOPIC_PREFIX}{name}."
            self.env = {"TOPIC_PREFIX": self.prefix, **(extra_env or {})}
            create_topics(Settings(TOPIC_PREFIX=self.prefix))
            self.worker = worker_factory(f"{name}-worker", extra_env=self.env, session_lived=session_lived)
            self.gateway, self.url = gateway_factory(f"{name}-gateway", extra_env=self.env, session_lived=session_lived)

    return TwinApp


@pytest.fixture(scope="session")
def plain_twin_app(twin_app_factory, tmp_path_factory):
    """One twin app for the modules that only send it requests (they never change its environment; the
    respond fault test kills its worker and starts it again): a twin app takes ~15 s to start, mostly
    the worker's imports. Its settings are the
    defaults but for two outputs: it writes its spans to ``trace_file`` and serves the worker's metrics on
    ``worker_url`` (the tracing and metrics tests read only their own trace and counter deltas there)."""
    trace_file = tmp_path_factory.mktemp("traces") / "spans.jsonl"
    port = _free_port()
    app = twin_app_factory("plain", session_lived=True, extra_env={
        "TWIN_TRACE_FILE": str(trace_file), "WORKER_METRICS_PORT": str(port), "WORKER_LAG_INTERVAL_S": "1"})
    app.trace_file, app.worker_url = trace_file, f"http://127.0.0.1:{port}"
    return app


# --------------------------------------------------------------------------- session capture and telemetry
# Fixtures for the capture endpoints (gateway/routes/sessions.py, telemetry.py, recordings.py), the
# telemetry agents (processors/pii_redaction.py ...) and the object store.
TELEMETRY_AGENTS = ("pii_redaction", "feature_extraction", "vector_indexing", "telemetry_storage", "session_storage",
                    "audit_storage", "session_state")


@pytest.fixture(scope="session")
def auth_headers(postgres_dsn):
    """``auth_headers(tenant, scopes=None, interviewers=None) -> dict``: headers with a real API key."""
    from tests.credentials import auth_headers as make

    return make


@pytest.fixture
def tenant(unique_name: str) -> str:
    """A tenant of its own per test: rows, keys and Weaviate objects never collide across tests."""
    return f"t-{unique_name}"


@pytest.fixture(scope="session")
def s3_server(cfg: Settings, tmp_path_factory) -> str:
    """A real S3-compatible HTTP server (moto) on a free port, started through
    infra/object_store_server.py and stopped at the end; returns its endpoint URL."""
    from infra.object_store_server import ObjectStoreServerError, start_object_store_server, stop_object_store_server

    server_cfg = Settings(OBJECT_STORE_SERVER_PORT=_free_port(), TWIN_VAR_DIR=tmp_path_factory.mktemp("s3server"))
    try:
        url = start_object_store_server(server_cfg, echo=lambda _: None)
    except ObjectStoreServerError as exc:
        pytest.fail(f"S3 test server did not start: {exc}", pytrace=False)
    yield url
    stop_object_store_server(server_cfg, echo=lambda _: None)


@pytest.fixture(scope="session")
def s3_settings():
    """``s3_settings(endpoint, bucket, **more)``: Settings overrides pointing the object store at S3."""

    def make(endpoint: str, bucket: str, **overrides) -> dict:
        return {"OBJECT_STORE_URL": f"s3://{bucket}", "OBJECT_STORE_S3_ENDPOINT": endpoint,
                "OBJECT_STORE_S3_ACCESS_KEY": "test", "OBJECT_STORE_S3_SECRET_KEY": "test", **overrides}

    return make


@pytest.fixture(scope="session")
def api_factory(cfg: Settings, catalogue_topics, postgres_dsn):
    """``async with api_factory(**settings_overrides) as client``: the gateway app in-process (its
    lifespan run: real Kafka producer, real PostgreSQL pool) behind an httpx client."""
    import contextlib

    import httpx

    from gateway.main import create_app

    @contextlib.asynccontextmanager
    async def make(**overrides):
        app = create_app(Settings(**overrides))
        async with app.router.lifespan_context(app):
            await app.state.pool.wait(timeout=30)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30) as client:
                client.app = app  # tests reach app.state (object store, settings)
                yield client

    return make


@pytest.fixture(scope="session")
async def api(api_factory, tmp_path_factory):
    """The in-process gateway with default limits and a local object store under tmp."""
    root = tmp_path_factory.mktemp("objects")
    async with api_factory(OBJECT_STORE_URL=root.as_uri()) as client:
        yield client


@pytest.fixture
def pg(postgres_dsn):
    """A synchronous autocommit PostgreSQL connection for assertions."""
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def read_topic(cfg: Settings, catalogue_topics):
    """``await read_topic(spec, where, count=None, timeout=30, settle=0, on=None)``: decoded records
    of a catalogue topic, from offset 0, that match ``where`` (``on``: Settings of another prefix);
    messages that do not decode are skipped.

    Without ``count`` it reads up to the end offsets as they are now (whatever an acknowledged
    producer wrote is there: no waiting). With ``count`` it waits until that many match (or the
    timeout), then keeps reading ``settle`` more seconds so duplicates would show.
    """
    from aiokafka import TopicPartition

    from infra.clients import kafka_consumer
    from schemas.codec import DecodeError, decode_model

    async def read(spec, where=lambda m: True, count: int | None = None, timeout: float = 30.0, settle: float = 0.0,
                   on: Settings | None = None):
        topic = (on or cfg).topic(spec.name)
        consumer = kafka_consumer(cfg, group_id=None, isolation_level="read_uncommitted")
        await consumer.start()
        found = []
        try:
            cluster = await consumer._client.fetch_all_metadata()
            tps = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or [])]
            assert tps, f"topic {topic} has no partitions (was it created?)"
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            settle_until = None
            while loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    for msg in messages:
                        try:
                            model = decode_model(msg.value)
                        except DecodeError:  # poison messages that tests send on purpose
                            continue
                        if where(model):
                            found.append(model)
                if count is None:
                    positions = [await consumer.position(tp) for tp in tps]
                    if all(pos >= end[tp] for pos, tp in zip(positions, tps)):
                        break
                elif len(found) >= count:
                    settle_until = settle_until or loop.time() + settle
                    if loop.time() >= settle_until:
                        break
        finally:
            await consumer.stop()
        return found

    return read


@pytest.fixture(scope="session")
def telemetry_pipeline(cfg: Settings, worker_factory, kafka_bootstrap):
    """One worker running the telemetry agents for the whole session (a real subprocess), on its
    own topic prefix: workers of other tests that run other agents join the session's consumer
    group and would take partitions of the topics these agents read (telemetry.redacted is also
    read by eval_sampling). Returns ``.cfg`` (Settings with the prefix), ``.env`` and ``.worker``."""
    from types import SimpleNamespace

    from infra.kafka_admin import create_topics

    prefix = f"{cfg.TOPIC_PREFIX}telemetry."
    pipeline_cfg = Settings(TOPIC_PREFIX=prefix)
    create_topics(pipeline_cfg)
    env = {"TOPIC_PREFIX": prefix}
    worker = worker_factory("telemetry-worker", agents=",".join(TELEMETRY_AGENTS), extra_env=env, session_lived=True)
    return SimpleNamespace(cfg=pipeline_cfg, env=env, worker=worker)


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory):
    """A real OpenAI-compatible server: llama.cpp with SmolLM2-135M-Instruct (from PyPI)."""
    from infra.llm_server import LlamaServer

    try:
        server = LlamaServer(_free_port(), log_path=tmp_path_factory.mktemp("llm") / "llama.log").start()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.fail(f"the local LLM server could not start: {exc} (run infra/bootstrap)", pytrace=False)
    yield server
    server.stop()
