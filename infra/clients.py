"""Clients for the outside world, built from one Settings object.

Every process (gateway, agents, CLI, tests) gets its Kafka producer, PostgreSQL pool, Redis and
Weaviate clients here, so timeouts, serialisation and error messages are the same everywhere.
`check_services` is the one readiness probe: it names the setting and `infra/up` when a service
does not answer.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from infra.settings import Settings

if TYPE_CHECKING:  # heavy imports stay lazy: the gateway must start fast
    import ssl

    import redis
    import redis.asyncio as aredis
    import weaviate
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from psycopg_pool import AsyncConnectionPool

__all__ = [
    "ServiceUnavailable",
    "kafka_producer",
    "kafka_consumer",
    "pg_pool",
    "redis_client",
    "redis_sync_client",
    "weaviate_client",
    "check_services",
]


class ServiceUnavailable(RuntimeError):
    """A backing service does not answer; the message says which setting and how to start it."""


def kafka_ssl_context(cfg: Settings) -> "ssl.SSLContext | None":
    """The TLS context for Kafka clients (None with KAFKA_SECURITY_PROTOCOL=PLAINTEXT)."""
    if cfg.KAFKA_SECURITY_PROTOCOL != "SSL":
        return None
    from aiokafka.helpers import create_ssl_context

    return create_ssl_context(cafile=cfg.KAFKA_SSL_CAFILE or None, certfile=cfg.KAFKA_SSL_CERTFILE or None,
                              keyfile=cfg.KAFKA_SSL_KEYFILE or None)


def _kafka_security(cfg: Settings) -> dict:
    context = kafka_ssl_context(cfg)
    return {"security_protocol": "SSL", "ssl_context": context} if context else {}


def kafka_producer(cfg: Settings, **overrides) -> "AIOKafkaProducer":
    """An idempotent producer that waits for the broker's acknowledgement (acks=all)."""
    from aiokafka import AIOKafkaProducer

    options = dict(
        bootstrap_servers=cfg.KAFKA_BOOTSTRAP,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=10_000,
        max_batch_size=1_048_576,
        compression_type=None,
        **_kafka_security(cfg),
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


def kafka_consumer(cfg: Settings, *topics: str, group_id: str | None, **overrides) -> "AIOKafkaConsumer":
    """A consumer with manual commits (at-least-once: commit after the work is durable)."""
    from aiokafka import AIOKafkaConsumer

    options = dict(
        bootstrap_servers=cfg.KAFKA_BOOTSTRAP,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **_kafka_security(cfg),
    )
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def pg_pool(cfg: Settings, min_size: int = 1, max_size: int = 10) -> "AsyncConnectionPool":
    """An async psycopg 3 pool (open it with ``await pool.open()`` or ``async with``)."""
    from psycopg_pool import AsyncConnectionPool

    return AsyncConnectionPool(cfg.POSTGRES_DSN, min_size=min_size, max_size=max_size, open=False,
                               kwargs={"autocommit": False}, name="twin")


def redis_client(cfg: Settings, **overrides) -> "aredis.Redis":
    """An asyncio Redis client with bytes responses decoded to str."""
    import redis.asyncio as aredis

    tls = {"ssl": True, "ssl_ca_certs": cfg.REDIS_TLS_CA or None} if cfg.REDIS_TLS else {}
    options = dict(host=cfg.REDIS_HOST, port=cfg.REDIS_PORT, db=cfg.REDIS_DB, decode_responses=True,
                   socket_timeout=5, socket_connect_timeout=2, health_check_interval=30, **tls)
    options.update(overrides)
    return aredis.Redis(**options)


def redis_sync_client(cfg: Settings, **overrides) -> "redis.Redis":
    """A synchronous Redis client (CLI commands), configured like :func:`redis_client`."""
    import redis

    tls = {"ssl": True, "ssl_ca_certs": cfg.REDIS_TLS_CA or None} if cfg.REDIS_TLS else {}
    options = dict(host=cfg.REDIS_HOST, port=cfg.REDIS_PORT, db=cfg.REDIS_DB, decode_responses=True,
                   socket_timeout=5, socket_connect_timeout=2, **tls)
    options.update(overrides)
    return redis.Redis(**options)


def weaviate_client(cfg: Settings) -> "weaviate.WeaviateClient":
    """A connected synchronous Weaviate v4 client (REST + gRPC); close it when done."""
    import weaviate
    from weaviate.classes.init import AdditionalConfig, Timeout

    return weaviate.connect_to_custom(
        http_host=cfg.WEAVIATE_HOST, http_port=cfg.WEAVIATE_HTTP_PORT, http_secure=cfg.WEAVIATE_SECURE,
        grpc_host=cfg.WEAVIATE_HOST, grpc_port=cfg.WEAVIATE_GRPC_PORT, grpc_secure=cfg.WEAVIATE_SECURE,
        additional_config=AdditionalConfig(timeout=Timeout(init=10, query=30, insert=60)),
        # The init checks include a version look-up on pypi.org: no network at run time. Readiness
        # is check_services' job.
        skip_init_checks=True,
    )


def _tcp(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


_SERVICES = {
    "kafka": ("KAFKA_HOST", "KAFKA_PORT"),
    "postgres": ("POSTGRES_HOST", "POSTGRES_PORT"),
    "redis": ("REDIS_HOST", "REDIS_PORT"),
    "weaviate": ("WEAVIATE_HOST", "WEAVIATE_HTTP_PORT"),
}


async def check_services(cfg: Settings, names: tuple[str, ...] = tuple(_SERVICES), timeout: float = 30.0) -> None:
    """Wait until each named service accepts connections, else raise ServiceUnavailable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for name in names:
        host_key, port_key = _SERVICES[name]
        host, port = getattr(cfg, host_key), getattr(cfg, port_key)
        while not await asyncio.to_thread(_tcp, host, port):
            if loop.time() > deadline:
                raise ServiceUnavailable(
                    f"{name} is not reachable at {host}:{port} ({host_key}/{port_key}); start it with `infra/up`"
                )
            await asyncio.sleep(0.5)
