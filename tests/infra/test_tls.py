"""TLS options: the gateway serves HTTPS (and mutual TLS) from its settings; clients build TLS configs."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.clients import kafka_ssl_context, redis_client
from infra.settings import REPO_ROOT, Settings
from tests.conftest import _free_port


def _cert(directory: Path, name: str, issuer: tuple | None = None, ca: bool = False) -> tuple[Path, Path, tuple]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = (issuer[0], issuer[1]) if issuer else (subject, key)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, (subject, key)


@pytest.fixture
def pki(tmp_path):
    ca_cert, _, ca = _cert(tmp_path, "ca", ca=True)
    server_cert, server_key, _ = _cert(tmp_path, "server", issuer=ca)
    client_cert, client_key, _ = _cert(tmp_path, "client", issuer=ca)
    return {"ca": ca_cert, "server": (server_cert, server_key), "client": (client_cert, client_key)}


def _start_gateway(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "infra.cli", "gateway", "--port", str(port)],
                            env={**os.environ, **env}, cwd=REPO_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait_https(url: str, proc: subprocess.Popen, log: Path, **kwargs) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(url, timeout=2, **kwargs)
        except httpx.ConnectError:
            time.sleep(0.3)
    raise AssertionError(f"gateway did not come up: {log.read_text()}")


@pytest.mark.usefixtures("postgres_dsn", "kafka_bootstrap")
def test_gateway_serves_https_and_requires_client_certificates_with_a_client_ca(pki, tmp_path):
    port = _free_port()
    cert, key = pki["server"]
    log = tmp_path / "gateway.log"
    proc = _start_gateway({"GATEWAY_TLS_CERT": str(cert), "GATEWAY_TLS_KEY": str(key),
                           "GATEWAY_TLS_CLIENT_CA": str(pki["ca"])}, port, log)
    try:
        url = f"https://127.0.0.1:{port}/healthz"
        trusting = ssl.create_default_context(cafile=str(pki["ca"]))
        trusting.load_cert_chain(*map(str, pki["client"]))
        ok = _wait_https(url, proc, log, verify=trusting)
        assert ok.status_code == 200 and ok.json() == {"status": "ok"}
        with pytest.raises(httpx.HTTPError):  # no client certificate: the handshake is refused
            httpx.get(url, timeout=5, verify=ssl.create_default_context(cafile=str(pki["ca"])))
        untrusting = ssl.create_default_context()  # system CAs only: our server's CA is not among them
        untrusting.load_cert_chain(*map(str, pki["client"]))
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, timeout=5, verify=untrusting)
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_client_tls_settings(pki):
    plain = Settings()
    assert kafka_ssl_context(plain) is None and "sslmode" not in plain.POSTGRES_DSN
    assert plain.REDIS_URL.startswith("redis://") and plain.WEAVIATE_URL.startswith("http://")
    cfg = Settings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki["ca"]),
                   KAFKA_SSL_CERTFILE=str(pki["client"][0]), KAFKA_SSL_KEYFILE=str(pki["client"][1]),
                   POSTGRES_SSLMODE="verify-full", POSTGRES_SSLROOTCERT=str(pki["ca"]), REDIS_TLS=True,
                   REDIS_TLS_CA=str(pki["ca"]), WEAVIATE_SECURE=True)
    context = kafka_ssl_context(cfg)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert cfg.POSTGRES_DSN.endswith(f"?sslmode=verify-full&sslrootcert={pki['ca']}")
    import psycopg.conninfo

    assert psycopg.conninfo.conninfo_to_dict(cfg.POSTGRES_DSN)["sslmode"] == "verify-full"
    assert cfg.REDIS_URL.startswith("rediss://") and cfg.WEAVIATE_URL.startswith("https://")
    conn_kwargs = redis_client(cfg).connection_pool.connection_kwargs
    assert conn_kwargs["ssl_ca_certs"] == str(pki["ca"])
