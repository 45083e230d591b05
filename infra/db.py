"""Versioned SQL migrations for PostgreSQL.

Files in `infra/migrations/NNNN_name.sql` are applied in order, each in its own transaction, under an
advisory lock so two processes running `twin db upgrade` at once do not race. An applied file whose
content changed is an error: write a new migration instead.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import psycopg

from infra.settings import Settings

__all__ = ["Migration", "MigrationError", "ThreadConnections", "migrations", "upgrade", "applied_versions", "connect"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = 0x7417_7717  # arbitrary constant for pg_advisory_lock


class MigrationError(RuntimeError):
    """A migration file is malformed or was edited after being applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migration files, sorted by version."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", path.name)
        if not match:
            raise MigrationError(f"bad migration file name {path.name!r}: expected NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migrations share a version number")
    return found


def connect(cfg: Settings, **kwargs) -> psycopg.Connection:
    """A plain connection to the project's database."""
    return psycopg.connect(cfg.POSTGRES_DSN, **kwargs)


class ThreadConnections:
    """One autocommit connection per thread (psycopg connections are not shared across threads), all
    closed by ``close()`` from any thread; a closed one is reopened on the next ``get()``."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[psycopg.Connection] = []

    def get(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.dsn, autocommit=True)
            self._local.conn = conn
            with self._lock:
                self._conns = [c for c in self._conns if not c.closed] + [conn]
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


def applied_versions(conn: psycopg.Connection) -> dict[int, str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    return {v: c for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")}


def upgrade(cfg: Settings, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations; return those applied now (empty when up to date)."""
    todo = migrations(directory)
    applied_now: list[Migration] = []
    with connect(cfg, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            done = applied_versions(conn)
            for mig in todo:
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise MigrationError(
                            f"migration {mig.version:04d}_{mig.name} changed after it was applied; add a new migration"
                        )
                    continue
                with conn.transaction():
                    conn.execute(mig.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (mig.version, mig.name, mig.checksum),
                    )
                applied_now.append(mig)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now
