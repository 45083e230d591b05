import socket

import pytest

from infra.clients import ServiceUnavailable, check_services
from infra.settings import Settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


@pytest.mark.parametrize("service, setting", [("kafka", "KAFKA_PORT"), ("postgres", "POSTGRES_PORT"),
                                              ("redis", "REDIS_PORT"), ("weaviate", "WEAVIATE_HTTP_PORT")])
async def test_a_down_service_fails_loudly_naming_the_setting_and_the_fix(service, setting):
    cfg = Settings(**{setting: _closed_port()})
    with pytest.raises(ServiceUnavailable) as err:
        await check_services(cfg, (service,), timeout=1)
    assert setting in str(err.value) and "infra/up" in str(err.value)


async def test_running_services_pass_the_check(cfg, kafka_bootstrap, postgres_dsn, redis_url, weaviate_client):
    await check_services(cfg, timeout=5)
