"""`twin retention show/set/run` through typer's CliRunner, on the real stores."""

from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from infra import cli
from infra.settings import settings


@pytest.fixture
def wide(monkeypatch, tmp_path, postgres_dsn, redis_url, weaviate_client):
    monkeypatch.setattr(cli.console, "width", 200)
    monkeypatch.setattr(settings, "OBJECT_STORE_URL", (tmp_path / "objects").as_uri())


def twin(*args: str):
    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


def test_set_show_and_run_with_dry_run(wide, pg, tenant):
    old = datetime.now(timezone.utc) - timedelta(days=10)
    pg.execute("INSERT INTO telemetry_sessions (session_id, tenant, created_at) VALUES (%s, %s, %s)",
               (f"{tenant}-s", tenant, old))
    for i in range(3):
        pg.execute("INSERT INTO telemetry_events (tenant, session_id, event_id, type, ts, payload, received_at)"
                   " VALUES (%s, %s, %s, 'run', %s, '{}', %s)", (tenant, f"{tenant}-s", f"e{i}", old, old))

    shown = twin("retention", "set", "telemetry", "7", "--tenant", tenant)
    assert shown.exit_code == 0, shown.output
    assert "telemetry" in shown.output and "tenant" in shown.output
    assert twin("retention", "set", "audit", "7", "--tenant", tenant).exit_code == 1
    assert twin("retention", "set", "eval", "soon", "--tenant", tenant).exit_code == 1

    dry = twin("retention", "run", "--tenant", tenant, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.output and "telemetry_events" in dry.output
    row = next(line for line in dry.output.splitlines() if "telemetry_events" in line)
    assert row.split("│")[-2].strip() == "3"
    assert pg.execute("SELECT count(*) FROM telemetry_events WHERE tenant=%s", (tenant,)).fetchone()[0] == 3

    done = twin("retention", "run", "--tenant", tenant)
    assert done.exit_code == 0, done.output
    assert "deleted" in done.output
    assert pg.execute("SELECT count(*) FROM telemetry_events WHERE tenant=%s", (tenant,)).fetchone()[0] == 0
    actor = pg.execute("SELECT actor FROM audit_log WHERE tenant=%s AND action='retention.purge'",
                       (tenant,)).fetchone()[0]
    assert actor.startswith("cli:")

    reset = twin("retention", "set", "telemetry", "default", "--tenant", tenant)
    assert reset.exit_code == 0
    assert pg.execute("SELECT count(*) FROM tenant_retention WHERE tenant=%s", (tenant,)).fetchone()[0] == 0
