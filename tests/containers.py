"""TWIN_TEST_INFRA=containers: the test services from testcontainers instead of infra/up.

Used only where a Docker engine runs (this project's own machines have none and use the local
processes). Each container's mapped address is exported as the same environment variables the
settings read, before anything builds a Settings object; Ryuk removes the containers at exit.
"""

from __future__ import annotations

__all__ = ["start_containers"]

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # Kafka 3.9 (KRaft), the broker line the project pins
POSTGRES_IMAGE = "postgres:15"
REDIS_IMAGE = "redis:7"
WEAVIATE_IMAGE = "cr.weaviate.io/semitechnologies/weaviate:1.35.2"


def start_containers() -> dict[str, str]:
    """Start Kafka, PostgreSQL, Redis and Weaviate; return the settings environment pointing at them."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    kafka = KafkaContainer(KAFKA_IMAGE).with_kraft().start()
    postgres = PostgresContainer(POSTGRES_IMAGE, username="twin", password="twin", dbname="twin").start()
    redis = RedisContainer(REDIS_IMAGE).start()
    weaviate = (DockerContainer(WEAVIATE_IMAGE)
                .with_env("AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED", "true")
                .with_env("DEFAULT_VECTORIZER_MODULE", "none")
                .with_env("CLUSTER_HOSTNAME", "node1")
                .with_env("PERSISTENCE_DATA_PATH", "/var/lib/weaviate")
                .with_exposed_ports(8080, 50051)
                .start())
    wait_for_logs(weaviate, "Serving weaviate", timeout=120)
    kafka_host, kafka_port = kafka.get_bootstrap_server().rsplit(":", 1)
    return {
        "KAFKA_HOST": kafka_host, "KAFKA_PORT": kafka_port,
        "POSTGRES_HOST": postgres.get_container_host_ip(), "POSTGRES_PORT": str(postgres.get_exposed_port(5432)),
        "REDIS_HOST": redis.get_container_host_ip(), "REDIS_PORT": str(redis.get_exposed_port(6379)),
        "WEAVIATE_HOST": weaviate.get_container_host_ip(),
        "WEAVIATE_HTTP_PORT": str(weaviate.get_exposed_port(8080)),
        "WEAVIATE_GRPC_PORT": str(weaviate.get_exposed_port(50051)),
    }
