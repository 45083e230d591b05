"""Versioned interviewer profiles in PostgreSQL (``interviewer_profiles``).

A training run writes version N+1 with ``active = false``, indexes its memory, and only then flips
``active`` in one transaction; the partial unique index guarantees one active version. A failed
run leaves version N serving.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from infra.db import ThreadConnections

from processors.twin.policy import PolicyStats
from processors.twin.style import StyleProfile

__all__ = ["InterviewerProfile", "ProfileStore"]


@dataclass
class InterviewerProfile:
    """What the respond path needs about one interviewer, at one version."""

    tenant: str
    interviewer_id: str
    version: int
    style: StyleProfile
    policy: PolicyStats
    artefacts: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        """Per-interviewer configuration (controls, prohibited topics, fine-tuned model id)."""
        return self.artefacts.get("config", {})


class ProfileStore:
    """Read and write profiles; reads of the active version are cached for ``ttl_s`` seconds."""

    def __init__(self, dsn: str, ttl_s: float = 5.0):
        self.dsn = dsn
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, str], tuple[float, InterviewerProfile | None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadConnections(dsn)

    def _conn(self) -> psycopg.Connection:
        return self._pool.get()

    def close(self) -> None:
        """Close the connections this store opened (every thread's); the next call opens a new one."""
        self._pool.close()

    def next_version(self, tenant: str, interviewer_id: str) -> int:
        row = self._conn().execute(
            "SELECT coalesce(max(version), 0) + 1 FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s",
            (tenant, interviewer_id)).fetchone()
        return int(row[0])

    def save(self, profile: InterviewerProfile) -> None:
        """Insert a (not yet active) version."""
        conn = self._conn()
        with conn.transaction():
            conn.execute("INSERT INTO tenants (tenant, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (profile.tenant, profile.tenant))
            conn.execute("INSERT INTO interviewers (tenant, interviewer_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (profile.tenant, profile.interviewer_id))
            conn.execute(
                "INSERT INTO interviewer_profiles (tenant, interviewer_id, version, style_profile, policy_stats,"
                " artefacts, active) VALUES (%s, %s, %s, %s, %s, %s, false)",
                (profile.tenant, profile.interviewer_id, profile.version, json.dumps(profile.style.to_dict()),
                 json.dumps(profile.policy.to_dict()), json.dumps(profile.artefacts)))

    def activate(self, tenant: str, interviewer_id: str, version: int) -> None:
        """Make ``version`` the one the respond path uses (atomically)."""
        conn = self._conn()
        with conn.transaction():
            conn.execute("UPDATE interviewer_profiles SET active=false WHERE tenant=%s AND interviewer_id=%s AND active",
                         (tenant, interviewer_id))
            n = conn.execute("UPDATE interviewer_profiles SET active=true WHERE tenant=%s AND interviewer_id=%s"
                             " AND version=%s", (tenant, interviewer_id, version)).rowcount
            if n != 1:
                raise LookupError(f"no profile version {version} for {tenant}/{interviewer_id}")
        with self._lock:
            self._cache.pop((tenant, interviewer_id), None)

    def load(self, tenant: str, interviewer_id: str, version: int | None = None) -> InterviewerProfile | None:
        """The active version (default) or a given one; None when there is none."""
        cond = "version=%s" if version is not None else "active"
        params: tuple = (tenant, interviewer_id) + ((version,) if version is not None else ())
        row = self._conn().execute(
            f"SELECT version, style_profile, policy_stats, artefacts FROM interviewer_profiles"
            f" WHERE tenant=%s AND interviewer_id=%s AND {cond}",  # nosec B608  # cond: one of two constants
            params).fetchone()
        if row is None:
            return None
        return InterviewerProfile(tenant, interviewer_id, int(row[0]), StyleProfile.from_dict(row[1]),
                                  PolicyStats.from_dict(row[2]), row[3] or {})

    def active(self, tenant: str, interviewer_id: str) -> InterviewerProfile | None:
        """The active profile, cached briefly (the respond hot path)."""
        key = (tenant, interviewer_id)
        with self._lock:
            hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        prof = self.load(tenant, interviewer_id)
        with self._lock:
            self._cache[key] = (time.monotonic(), prof)
        return prof

    def update_artefacts(self, tenant: str, interviewer_id: str, version: int, patch: dict[str, Any],
                         config_patch: dict[str, Any] | None = None) -> None:
        """Merge ``patch`` into a version's artefacts (top-level keys) and ``config_patch`` into its config.

        Used after training, when a provider finishes a fine-tune and the model id becomes known.
        """
        conn = self._conn()
        n = conn.execute(
            "UPDATE interviewer_profiles SET artefacts = jsonb_set(artefacts || %s::jsonb, '{config}',"
            " coalesce(artefacts->'config', '{}'::jsonb) || %s::jsonb)"
            " WHERE tenant=%s AND interviewer_id=%s AND version=%s",
            (json.dumps(patch), json.dumps(config_patch or {}), tenant, interviewer_id, version)).rowcount
        if n != 1:
            raise LookupError(f"no profile version {version} for {tenant}/{interviewer_id}")
        with self._lock:
            self._cache.pop((tenant, interviewer_id), None)

    def discard(self, tenant: str, interviewer_id: str, version: int) -> bool:
        """Delete a version that never became active (a failed or abandoned training run).

        The active version is never deleted; returns whether a row was removed.
        """
        n = self._conn().execute(
            "DELETE FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s AND version=%s AND NOT active",
            (tenant, interviewer_id, version)).rowcount
        return n == 1

    def interviewers(self, tenant: str) -> list[tuple[str, int | None, int]]:
        """(interviewer id, active version or None, number of versions) of a tenant."""
        rows = self._conn().execute(
            "SELECT interviewer_id, max(version) FILTER (WHERE active), count(*) FROM interviewer_profiles"
            " WHERE tenant=%s GROUP BY interviewer_id ORDER BY interviewer_id", (tenant,)).fetchall()
        return [(r[0], r[1], int(r[2])) for r in rows]

    def versions(self, tenant: str, interviewer_id: str) -> list[tuple[int, bool, str]]:
        rows = self._conn().execute(
            "SELECT version, active, created_at::text FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s"
            " ORDER BY version", (tenant, interviewer_id)).fetchall()
        return [(int(v), bool(a), c) for v, a, c in rows]
