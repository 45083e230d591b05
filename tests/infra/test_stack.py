"""The local stack: idempotent start, one-line errors that name the fix."""

import socket
import subprocess
import sys
import time

import pytest

from infra.settings import REPO_ROOT, Settings
from infra.stack import Stack, StackError


def test_second_up_is_a_fast_no_op(cfg, catalogue_topics, postgres_dsn, redis_url, weaviate_client):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "infra.stack", "up"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    for name in ("kafka", "postgres", "redis", "weaviate"):
        assert f"{name}: already running" in proc.stdout, proc.stdout
    assert "0 applied now" in proc.stdout and "0 created now" in proc.stdout
    assert elapsed < 30, f"a second up took {elapsed:.1f}s"


def test_port_in_use_names_the_setting(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        stack = Stack(Settings(REDIS_PORT=port, TWIN_VAR_DIR=tmp_path), echo=lambda _: None)
        with pytest.raises(StackError) as err:
            stack.start_redis()
    message = str(err.value)
    assert f"port {port}" in message and "REDIS_PORT" in message and "\n" not in message


def test_missing_java_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no java, no mvn
    stack = Stack(Settings(TWIN_VAR_DIR=tmp_path / "var", TWIN_CACHE_DIR=tmp_path / "cache", KAFKA_PORT=1,
                           KAFKA_CONTROLLER_PORT=2), echo=lambda _: None)
    with pytest.raises(StackError, match=r"`java` is not installed: install a JDK"):
        stack.install_kafka()


def test_missing_go_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    stack = Stack(Settings(TWIN_VAR_DIR=tmp_path / "var", TWIN_CACHE_DIR=tmp_path / "cache"), echo=lambda _: None)
    with pytest.raises(StackError, match=r"`go` is not installed: install Go"):
        stack.install_weaviate()


def test_status_reports_every_service(cfg, kafka_bootstrap, postgres_dsn, redis_url, weaviate_client):
    status = Stack(cfg, echo=lambda _: None).status()
    assert set(status) == {"kafka", "postgres", "redis", "weaviate"}
    assert all(info["up"] for info in status.values()), status
