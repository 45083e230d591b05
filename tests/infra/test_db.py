import psycopg
import pytest

from infra.db import MigrationError, migrations, upgrade


def test_migrations_are_applied_once(cfg, postgres_dsn):
    assert upgrade(cfg) == [], "a second upgrade applies nothing"
    with psycopg.connect(postgres_dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in migrations()]


def test_telemetry_events_are_append_only(postgres_dsn, unique_name):
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(
            "INSERT INTO telemetry_events (tenant, session_id, event_id, type, ts, payload)"
            " VALUES ('acme', %s, 'e1', 'run', now(), '{}')", (unique_name,))
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("UPDATE telemetry_events SET type='turn' WHERE session_id=%s", (unique_name,))
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM telemetry_events WHERE session_id=%s", (unique_name,))
        conn.rollback()
        # Only the retention job (which sets twin.retention) may delete.
        with conn.transaction():
            conn.execute("SET LOCAL twin.retention = 'on'")
            deleted = conn.execute("DELETE FROM telemetry_events WHERE session_id=%s", (unique_name,)).rowcount
        assert deleted == 1


def test_edited_migration_is_refused(cfg, postgres_dsn, tmp_path):
    for mig in migrations():
        (tmp_path / f"{mig.version:04d}_{mig.name}.sql").write_text(mig.sql + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        upgrade(cfg, tmp_path)
