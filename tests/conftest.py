"""Real-service fixtures shared by the whole suite.

The services come from `infra/up` (or, where a Docker engine runs and TWIN_TEST_INFRA=containers,
from testcontainers). A service that does not answer fails the test that needs it, loudly, naming
the setting and `infra/up`: nothing here skips. Isolation is by name: unique topics, groups, Redis
key prefixes and Weaviate collections per test, on shared services.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

# One topic prefix per test session, exported so that worker and gateway subprocesses inherit it.
os.environ.setdefault("TOPIC_PREFIX", f"test-{uuid.uuid4().hex[:8]}.")

from infra.clients import ServiceUnavailable, check_services  # noqa: E402
from infra.settings import Settings  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPORA = REPO_ROOT.parent / "shared" / "corpora"


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
def corpora() -> Path:
    """The shared transcript corpora (read-only; never copied into the repo)."""
    if not (CORPORA / "FORMAT.md").exists():
        pytest.fail(f"shared corpora not found at {CORPORA}", pytrace=False)
    return CORPORA


@pytest.fixture(scope="session")
def kafka_bootstrap(cfg: Settings) -> str:
    _require("kafka")
    return cfg.KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def catalogue_topics(cfg: Settings, kafka_bootstrap: str) -> list[str]:
    """Every catalogue topic, created under this session's TOPIC_PREFIX."""
    from infra.kafka_admin import create_topics
    from schemas.topics import TOPICS

    create_topics(cfg)
    return [cfg.topic(t.name) for t in TOPICS]


@pytest.fixture(scope="session")
def postgres_dsn(cfg: Settings) -> str:
    _require("postgres")
    from infra.db import upgrade

    upgrade(cfg)
    return cfg.POSTGRES_DSN


@pytest.fixture(scope="session")
def redis_url(cfg: Settings) -> str:
    _require("redis")
    return cfg.REDIS_URL


@pytest.fixture(scope="session")
def weaviate_client(cfg: Settings):
    _require("weaviate")
    from infra.clients import weaviate_client as make

    client = make(cfg)
    yield client
    client.close()


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
