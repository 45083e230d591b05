"""`twin config show` and Settings.public_dict() never print a configured secret (issue 15, item 2).

Distinctive secrets go in through the environment, the way an operator sets them: passwords, API
keys, the JWT secret, S3 keys, the key ring, and credentials embedded in URLs (user:password@ and
query parameters). The command's whole output, and every value of public_dict(), is then searched
for each of them, raw and URL-encoded.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# A password with the characters that break naive masking (":" "/" "@" "#" "?").
PG_PASSWORD = "pg:Zq9/pass@word#1?"
KEY_A = base64.b64encode(b"K" * 16 + b"zq9-ring-key-AAA").decode()
KEY_OS = base64.b64encode(b"O" * 16 + b"zq9-objstore-key").decode()
SECRETS = {
    "POSTGRES_PASSWORD": PG_PASSWORD,
    "OPENAI_API_KEY": "sk-openai-Zq9secretvalue",
    "AUTH_JWT_SECRET": "jwt-hs256-Zq9secretvalue",
    "OBJECT_STORE_S3_ACCESS_KEY": "AKIAZQ9ACCESSKEYID",
    "OBJECT_STORE_S3_SECRET_KEY": "s3-secret-Zq9secretvalue",
    "OBJECT_STORE_ENCRYPTION_KEY": KEY_OS,
    "DATA_ENCRYPTION_KEYS": json.dumps({"k1": KEY_A}),
}
# Credentials inside URL-valued settings (there is no Redis password setting: REDIS_URL carries none).
URL_SECRETS = {
    "url-userinfo-Zq9secret": "OPENAI_BASE_URL",
    "url-query-Zq9secret": "OPENAI_BASE_URL",
    "minio-Zq9secret": "OBJECT_STORE_S3_ENDPOINT",
}
ENV = {
    **SECRETS,
    "DATA_ENCRYPTION_ACTIVE_KEY": "k1",
    "POSTGRES_HOST": "db-zq9.internal",
    "POSTGRES_DB": "twin_zq9",
    "POSTGRES_SSLMODE": "verify-full",
    "OPENAI_BASE_URL": "https://llm-user:url-userinfo-Zq9secret@llm.example/v1?api-key=url-query-Zq9secret&x=1",
    "OBJECT_STORE_S3_ENDPOINT": "http://minio:minio-Zq9secret@127.0.0.1:9000",
}
NEEDLES = [*SECRETS.values(), KEY_A, KEY_OS, *URL_SECRETS, quote(PG_PASSWORD, safe=""), "Zq9/pass"]


def _leaks(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


@pytest.fixture
def secret_env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "4000")  # one line per setting: nothing hides by wrapping
    return Settings()


def test_public_dict_masks_every_secret_and_every_credential_in_urls(secret_env):
    shown = secret_env.public_dict()
    assert secret_env.POSTGRES_PASSWORD.get_secret_value() == PG_PASSWORD, "the environment reached the settings"
    assert _leaks(json.dumps(shown, default=str)) == []
    for name in SECRETS:
        assert shown[name] == "***", name
    # What is not secret stays readable, so the output is still useful.
    assert shown["POSTGRES_DSN"].startswith("postgresql://twin:***@db-zq9.internal:5433/twin_zq9?sslmode=verify-full")
    assert shown["OPENAI_BASE_URL"] == "https://llm-user:***@llm.example/v1?api-key=***&x=1"
    assert shown["OBJECT_STORE_S3_ENDPOINT"] == "http://minio:***@127.0.0.1:9000"
    assert shown["DATA_ENCRYPTION_ACTIVE_KEY"] == "k1" and shown["POSTGRES_USER"] == "twin"
    assert _leaks(repr(secret_env)) == [], "repr(settings) (logs, tracebacks) shows no secret either"


def test_config_show_prints_no_secret(secret_env, monkeypatch):
    from rich.console import Console

    from infra import cli

    monkeypatch.setattr(cli, "settings", secret_env)
    # Wide enough that no row wraps, whatever terminal (or none) the suite runs under.
    monkeypatch.setattr(cli, "console", Console(width=4000))
    result = CliRunner().invoke(cli.app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "postgresql://twin:***@db-zq9.internal:5433/twin_zq9" in result.output, "the DSN row is printed whole"
    assert _leaks(result.output) == []


def test_twin_config_show_in_a_process_configured_by_the_environment():
    env = {**os.environ, **ENV, "COLUMNS": "4000", "TWIN_ENV_FILE": str(ROOT / "var" / "no-such.env")}
    proc = subprocess.run([sys.executable, "-c", "from infra.cli import app; app()", "config", "show"],  # noqa: S603
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "postgresql://twin:***@db-zq9.internal:5433/twin_zq9" in proc.stdout
    assert _leaks(proc.stdout + proc.stderr) == []
