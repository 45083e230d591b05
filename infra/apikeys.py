"""Per-tenant API keys: create, verify, list, revoke.

A token reads ``twk_<key id>.<secret>``. The key id is public (it names the key in lists and audit
records); only ``sha256(secret)`` is stored, so a database dump holds no usable credential. Secrets
are 256 random bits, which is why a plain (fast) hash is enough: there is nothing to brute-force.

The gateway verifies tokens (gateway/auth.py); the CLI (`twin keys`) and the admin API create and
revoke them; tests and benchmarks call :func:`create_api_key`.

Gateways cache a verified key for ``AUTH_CACHE_TTL_S``. A revocation, once committed, is announced on
the Redis channel ``<REDIS_KEY_PREFIX>apikeys.revoked`` (:func:`announce_revocation`): every gateway
listens there (gateway/revocations.py) and forgets the key at once. Only when Redis is unreachable
does the TTL bound how long a revoked key keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

from infra.settings import Settings

__all__ = ["SCOPES", "ApiKey", "Credential", "create_api_key", "issue_key", "parse_token", "hash_secret",
           "list_keys", "revoke_key", "bearer_headers", "verify_row", "normalise_scopes", "InvalidScope",
           "revocation_channel", "announce_revocation"]

# capture: sessions, telemetry, recordings · respond: twin replies · train: training jobs ·
# eval: evaluation results · rater: the blinded rating page · admin: keys, config, audit, retention, erasure.
SCOPES = ("capture", "respond", "train", "eval", "rater", "admin")
TOKEN_PREFIX = "twk_"  # nosec B105  # the public marker of our tokens, not a password


class InvalidScope(ValueError):
    pass


@dataclass(frozen=True)
class ApiKey:
    """A stored key as lists show it (never the secret)."""

    key_id: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    interviewers: tuple[str, ...] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def public(self) -> dict:
        return {"keyId": self.key_id, "tenant": self.tenant, "name": self.name, "scopes": list(self.scopes),
                "interviewers": list(self.interviewers) if self.interviewers is not None else None,
                "createdAt": self.created_at.isoformat(), "expiresAt": _iso(self.expires_at),
                "revokedAt": _iso(self.revoked_at)}


@dataclass(frozen=True)
class Credential:
    """A freshly created key: the only moment the token exists in clear."""

    key: ApiKey
    token: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX) or "." not in token:
        return None
    key_id, _, secret = token[len(TOKEN_PREFIX):].partition(".")
    if not (8 <= len(key_id) <= 32 and key_id.isalnum() and 16 <= len(secret) <= 128):
        return None
    return key_id, secret


def normalise_scopes(scopes: Iterable[str] | None) -> tuple[str, ...]:
    """Validated, de-duplicated scopes in catalogue order; None means all of them."""
    if scopes is None:
        return SCOPES
    wanted = {s.strip().lower() for s in scopes if s and s.strip()}
    unknown = wanted - set(SCOPES)
    if unknown:
        raise InvalidScope(f"unknown scope(s) {sorted(unknown)}; known: {', '.join(SCOPES)}")
    if not wanted:
        raise InvalidScope("at least one scope is required")
    return tuple(s for s in SCOPES if s in wanted)


def verify_row(secret: str, secret_sha256: str, expires_at: datetime | None, revoked_at: datetime | None,
               now: datetime | None = None) -> bool:
    """Constant-time secret check plus the key's validity window."""
    now = now or datetime.now(timezone.utc)
    if revoked_at is not None or (expires_at is not None and expires_at <= now):
        return False
    return hmac.compare_digest(hash_secret(secret), secret_sha256)


_COLUMNS = "key_id, tenant, name, scopes, interviewers, created_at, expires_at, revoked_at"


def _key(row: Sequence) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], tuple(row[3]), tuple(row[4]) if row[4] is not None else None,
                  row[5], row[6], row[7])


TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def issue_key(conn, tenant: str, name: str, scopes: Iterable[str] | None = None,
              interviewers: Iterable[str] | None = None, expires_in: timedelta | None = None) -> Credential:
    """Insert a new key on an open (sync) psycopg connection; the caller commits."""
    if not TENANT_RE.match(tenant):
        raise ValueError(f"tenant id {tenant!r} must be 1-64 of [A-Za-z0-9_.-], starting with a letter or digit")
    scopes_t = normalise_scopes(scopes)
    interviewers_l = sorted(set(interviewers)) if interviewers is not None else None
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    expires_at = datetime.now(timezone.utc) + expires_in if expires_in else None
    conn.execute("INSERT INTO tenants (tenant, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (tenant, tenant))
    row = conn.execute(
        f"INSERT INTO api_keys (key_id, tenant, name, secret_sha256, scopes, interviewers, expires_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",  # nosec B608  # constant column list
        (key_id, tenant, name, hash_secret(secret), list(scopes_t), interviewers_l, expires_at)).fetchone()
    return Credential(_key(row), f"{TOKEN_PREFIX}{key_id}.{secret}")


def list_keys(conn, tenant: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM api_keys WHERE (%(t)s::text IS NULL OR tenant = %(t)s)"  # nosec B608  # constants
        " AND (%(all)s OR revoked_at IS NULL) ORDER BY tenant, created_at",
        {"t": tenant, "all": include_revoked}).fetchall()
    return [_key(r) for r in rows]


def revoke_key(conn, key_id: str, tenant: str | None = None) -> ApiKey | None:
    """Revoke a key (of ``tenant`` when given); None when there is no such live key."""
    row = conn.execute(
        f"UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND (%s::text IS NULL OR tenant = %s)"
        f" AND revoked_at IS NULL RETURNING {_COLUMNS}",  # nosec B608  # constant column list
        (key_id, tenant, tenant)).fetchone()
    return _key(row) if row else None


def revocation_channel(cfg: Settings) -> str:
    """The Redis pub/sub channel revoked key ids are announced on (per REDIS_KEY_PREFIX)."""
    return f"{cfg.REDIS_KEY_PREFIX}apikeys.revoked"


def announce_revocation(cfg: Settings, key_id: str) -> bool:
    """Tell every gateway to forget ``key_id`` now; call it after the revocation is committed.

    False when Redis could not be reached: gateways then stop accepting the key within
    ``AUTH_CACHE_TTL_S`` (and at once when their subscription comes back, which clears their cache).
    """
    import redis

    from infra.clients import redis_sync_client

    client = redis_sync_client(cfg)
    try:
        client.publish(revocation_channel(cfg), key_id)
        return True
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def create_api_key(cfg: Settings, tenant: str, scopes: Iterable[str] | None = None, name: str = "key",
                   interviewers: Iterable[str] | None = None, expires_in: timedelta | None = None) -> str:
    """Create a key in its own transaction and return the token (for tests, benchmarks, the demo)."""
    from infra.db import connect

    with connect(cfg) as conn:
        cred = issue_key(conn, tenant, name, scopes, interviewers, expires_in)
        conn.commit()
    return cred.token


def bearer_headers(cfg: Settings, tenant: str, scopes: Iterable[str] | None = None, name: str = "key",
                   expires_in: timedelta | None = timedelta(hours=12)) -> dict[str, str]:
    """``Authorization`` headers with a new short-lived key (benchmarks, the demo)."""
    return {"Authorization": f"Bearer {create_api_key(cfg, tenant, scopes, name, expires_in=expires_in)}"}
