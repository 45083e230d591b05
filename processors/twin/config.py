"""Per-tenant and per-interviewer configuration: style controls, prohibited topics, company
guidelines and feature flags (spec §14), validated, versioned, cached, and read live by the workers.

Layers, lowest first; each stored layer is one row of ``twin_config`` (migration 0008) holding only
what it sets (absent = inherit)::

    defaults  <-  the active version's trained config  <-  tenant  <-  interviewer

* Scalars (every control and flag): the nearest layer that sets one wins.
* Lists that make the twin safer add up instead: ``prohibitedTopics`` is the union of all layers,
  ``companyGuidelines`` are the tenant's then the interviewer's, ``controls.locked`` the union.
  An interviewer layer can tighten a tenant's rules, never loosen them.
* A respond request's own ``controls`` win over the configured ones, except for the controls named
  in ``controls.locked``: there the configuration wins (an admin pins e.g. ``verbosity``).

Writes (admin API ``/api/admin/config``, ``twin config set``) bump the layer's ``version``, append
to ``twin_config_history`` and then increment the tenant's configuration generation in Redis.
Reads on the respond path (:meth:`ConfigStore.effective`) go through Redis: the resolved config is
cached under ``twin:{tenant}:config:{interviewer}`` together with the generation it was read at
(``twin:{tenant}:config-version``) and the profile version. An entry whose generation is not the
current one is a miss, so a committed change is live on the very next request of every worker,
without a restart. Entries also expire after ``CONFIG_CACHE_TTL_S``; Redis being down costs a
PostgreSQL read, not a failed request.

No ML imports: the gateway validates with these models.

    store = ConfigStore.from_settings(settings)
    store.write("acme", "dana", TwinConfig.model_validate({"flags": {"tools": False}}), actor="cli:me")
    store.effective("acme", "dana").flags.tools   # False, in every worker, from the next request on
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, field_validator
from pydantic.alias_generators import to_camel

from infra.db import ThreadConnections

__all__ = [
    "CONTROL_NAMES", "TOOL_NAMES", "ControlsLayer", "FlagsLayer", "RefreshLayer", "TwinConfig", "EffectiveControls",
    "EffectiveFlags", "EffectiveRefresh",
    "EffectiveConfig", "StoredLayer", "ConfigConflict", "ConfigStore", "merge_patch", "layer_from_profile", "resolve",
    "cache_key", "generation_key", "load_layers_async", "write_layer_async", "bump_generation_async", "topic_pattern",
]

log = logging.getLogger(__name__)

CONTROL_NAMES = ("challengeLevel", "coachingRatio", "verbosity", "tone")
TOOL_NAMES = ("run_code", "fact_lookup", "rubric_check")
TENANT_LAYER = ""  # twin_config.interviewer_id of the tenant layer

Verbosity = Literal["terse", "normal", "verbose"]
ControlName = Literal["challengeLevel", "coachingRatio", "verbosity", "tone"]
ToolName = Literal["run_code", "fact_lookup", "rubric_check"]
Generator = Literal["auto", "llm", "offline"]
TOPIC_MAX_CHARS = 100
MAX_TOPICS = 200  # prohibited topics in one layer
Topic = Annotated[str, Field(min_length=1, max_length=TOPIC_MAX_CHARS)]
Guideline = Annotated[str, Field(min_length=1, max_length=1000)]


def clean_list(values: list[str] | None) -> list[str] | None:
    """Whitespace collapsed, empty items and case-insensitive repeats dropped (the first spelling kept)."""
    if values is None:
        return None
    out: list[str] = []
    seen: set[str] = set()
    for v in values:
        v = " ".join(v.split())
        if v and v.lower() not in seen:
            seen.add(v.lower())
            out.append(v)
    return out


# --------------------------------------------------------------------------- one stored layer
class ControlsLayer(BaseModel):
    """Style controls of one layer; None = inherit."""

    model_config = ConfigDict(extra="forbid")
    challengeLevel: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="0..1, 0.5 = as learned: how hard the twin pushes.")
    coachingRatio: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="0..1: coaching (hints, encouragement) vs screening.")
    verbosity: Verbosity | None = None
    tone: Annotated[str, Field(min_length=1, max_length=80)] | None = Field(
        default=None, description="Free text; warm/supportive/encouraging and firm/tough/strict/neutral are acted on.")
    locked: list[ControlName] | None = Field(
        default=None, description="Controls a respond request may not override (the configured value wins).")


class FlagsLayer(BaseModel):
    """Feature flags of one layer; None = inherit."""

    model_config = ConfigDict(extra="forbid")
    tools: bool | None = Field(default=None, description="Rubric check, fact lookup and code runner.")
    disabledTools: list[ToolName] | None = Field(default=None, description="Tools switched off one by one.")
    guardrails: bool | None = Field(
        default=None, description="The heuristic guardrails (bias, elicitation/jailbreak). The floor - prohibited "
                                  "questions, toxicity, PII leakage, prohibited topics - always runs.")
    generator: Generator | None = Field(
        default=None, description="auto: the LLM when one is configured; llm: the same (the offline twin answers "
                                  "when none is); offline: always the offline twin.")
    adapters: bool | None = Field(
        default=None, description="Use the version's fine-tuned model / adapter when it has one (else the base model).")


class RefreshLayer(BaseModel):
    """Periodic refresh of one layer (processors/twin/refresh.py); None = inherit."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = Field(
        default=None, description="Retrain on its own when due (default off): new consented live sessions train a "
                                  "new version, which goes to a canary, never straight to live.")
    minNewSessions: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None, description="Due when this many consented live sessions ended since the newest version.")
    maxDays: Annotated[float, Field(gt=0, le=3650)] | None = Field(
        default=None, description="... or when the newest version is this many days old (and any session is new).")
    canaryShare: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None, description="Share of sessions the refreshed version's canary serves.")
    paused: bool | None = Field(default=None, description="Held by an operator (`twin refresh pause`).")


class TwinConfig(BaseModel):
    """One configuration layer (tenant or interviewer), as stored and as PUT by the admin API."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "controls": {"challengeLevel": 0.7, "verbosity": "terse", "tone": "warm", "locked": ["verbosity"]},
        "prohibitedTopics": ["salary expectations", "visa status"],
        "companyGuidelines": ["Never promise an offer or a next round."],
        "flags": {"tools": True, "disabledTools": ["run_code"], "generator": "auto"}}]})
    controls: ControlsLayer = Field(default_factory=ControlsLayer)
    prohibitedTopics: Annotated[list[Topic], Field(max_length=MAX_TOPICS)] | None = Field(
        default=None, description="Words or phrases the twin must never raise (added to every other layer's).")
    companyGuidelines: Annotated[list[Guideline], Field(max_length=50)] | None = Field(
        default=None, description="Instructions given to the LLM generator (tenant's first, then the interviewer's).")
    flags: FlagsLayer = Field(default_factory=FlagsLayer)
    refresh: RefreshLayer = Field(default_factory=RefreshLayer)

    @field_validator("prohibitedTopics", "companyGuidelines")
    @classmethod
    def _clean(cls, values: list[str] | None) -> list[str] | None:
        return clean_list(values)

    def stored(self) -> dict[str, Any]:
        """What goes into ``twin_config.config``: only what this layer sets."""
        out = self.model_dump(exclude_none=True)
        return {k: v for k, v in out.items() if v != {}}


# --------------------------------------------------------------------------- the resolved config
class EffectiveControls(BaseModel):
    challengeLevel: float | None = None
    coachingRatio: float | None = None
    verbosity: Verbosity = "normal"
    tone: str | None = None
    locked: list[ControlName] = Field(default_factory=list)


class EffectiveFlags(BaseModel):
    tools: bool = True
    disabledTools: list[ToolName] = Field(default_factory=list)
    guardrails: bool = True
    generator: Generator = "auto"
    adapters: bool = True


class EffectiveRefresh(BaseModel):
    enabled: bool = False
    minNewSessions: int = 20
    maxDays: float = 30.0
    canaryShare: float = 0.1
    paused: bool = False


class EffectiveConfig(BaseModel):
    """What applies to one interviewer (or, without one, to the tenant) right now."""

    tenant: str
    interviewerId: str | None = None
    controls: EffectiveControls = Field(default_factory=EffectiveControls)
    prohibitedTopics: list[str] = Field(default_factory=list)
    companyGuidelines: list[str] = Field(default_factory=list)
    flags: EffectiveFlags = Field(default_factory=EffectiveFlags)
    refresh: EffectiveRefresh = Field(default_factory=EffectiveRefresh)
    versions: dict[str, int] = Field(default_factory=dict, description="Version of each layer (0: not set).")
    updatedAt: datetime | None = None
    sources: dict[str, str] = Field(default_factory=dict, description="Which layer set each value.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def version(self) -> str:
        """One string that changes whenever any layer does: ``t<tenant>.i<interviewer>.p<profile>``."""
        v = self.versions
        return f"t{v.get('tenant', 0)}.i{v.get('interviewer', 0)}.p{v.get('profile', 0)}"

    def tool_allowed(self, name: str) -> bool:
        return self.flags.tools and name not in self.flags.disabledTools


@dataclass
class StoredLayer:
    """A layer as stored: version 0 means nothing is stored (everything inherited)."""

    tenant: str
    interviewer_id: str | None
    config: TwinConfig
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str | None = None


class ConfigConflict(RuntimeError):
    """The layer changed since the version the writer read (If-Match / --if-version)."""

    def __init__(self, current: int, expected: int):
        super().__init__(f"the configuration is at version {current}, not {expected}")
        self.current, self.expected = current, expected


# --------------------------------------------------------------------------- pure functions
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def layer_from_profile(profile_config: dict[str, Any] | None) -> TwinConfig:
    """The configuration a version was trained with (``TrainingOptions.config``), leniently: a part
    that does not validate (an older or free-form config) is ignored, never fatal on the hot path."""
    raw = profile_config or {}
    parts: dict[str, Any] = {}
    controls = raw.get("controls")
    if isinstance(controls, dict):
        parts["controls"] = {to_camel(k): v for k, v in controls.items() if v is not None}
    for key in ("prohibitedTopics", "companyGuidelines", "flags"):
        if raw.get(key) is not None:
            parts[key] = raw[key]
    out: dict[str, Any] = {}
    for key, value in parts.items():
        try:
            TwinConfig.model_validate({key: value})
            out[key] = value
        except ValidationError:
            log.warning("ignoring an invalid %r in a trained profile config", key)
    return TwinConfig.model_validate(out)


def resolve(tenant: str, interviewer_id: str | None, layers: list[tuple[str, TwinConfig]],
            versions: dict[str, int] | None = None, updated_at: datetime | None = None) -> EffectiveConfig:
    """Merge ``layers`` (lowest first, named e.g. profile/tenant/interviewer) over the defaults."""
    controls = EffectiveControls().model_dump()
    flags = EffectiveFlags().model_dump()
    refresh = EffectiveRefresh().model_dump()
    sources = {f"controls.{k}": "default" for k in controls if k != "locked"}
    sources.update({f"flags.{k}": "default" for k in flags})
    sources.update({f"refresh.{k}": "default" for k in refresh})
    topics: list[str] = []
    guidelines: list[str] = []
    locked: list[str] = []
    for name, layer in layers:
        for key, value in layer.controls.model_dump(exclude_none=True).items():
            if key == "locked":
                locked += [c for c in value if c not in locked]
            else:
                controls[key] = value
                sources[f"controls.{key}"] = name
        for key, value in layer.flags.model_dump(exclude_none=True).items():
            flags[key] = value
            sources[f"flags.{key}"] = name
        for key, value in layer.refresh.model_dump(exclude_none=True).items():
            refresh[key] = value
            sources[f"refresh.{key}"] = name
        topics += layer.prohibitedTopics or []
        guidelines += layer.companyGuidelines or []
    controls["locked"] = locked
    return EffectiveConfig(tenant=tenant, interviewerId=interviewer_id, controls=EffectiveControls(**controls),
                           prohibitedTopics=clean_list(topics) or [], companyGuidelines=clean_list(guidelines) or [],
                           flags=EffectiveFlags(**flags), refresh=EffectiveRefresh(**refresh),
                           versions=versions or {}, updatedAt=updated_at,
                           sources=sources)


def cache_key(prefix: str, tenant: str, interviewer_id: str | None) -> str:
    """Redis key of a resolved config: ``twin:{tenant}:config:{interviewer}`` (``*`` = the tenant's own)."""
    return f"{prefix}{tenant}:config:{interviewer_id or '*'}"


def generation_key(prefix: str, tenant: str) -> str:
    """Redis counter bumped by every write to any of the tenant's layers."""
    return f"{prefix}{tenant}:config-version"


# --------------------------------------------------------------------------- SQL (sync and async share it)
_SELECT_LAYERS = ("SELECT interviewer_id, config, version, updated_at, updated_by FROM twin_config"
                  " WHERE tenant=%s AND interviewer_id = ANY(%s)")
_SELECT_PROFILE = ("SELECT version, artefacts->'config' FROM interviewer_profiles"
                   " WHERE tenant=%s AND interviewer_id=%s AND active")
_LOCK_LAYER = ("SELECT config, version FROM twin_config WHERE tenant=%s AND interviewer_id=%s FOR UPDATE")
_UPSERT = ("INSERT INTO twin_config (tenant, interviewer_id, config, version, updated_by, updated_at)"
           " VALUES (%s, %s, %s::jsonb, %s, %s, now())"
           " ON CONFLICT (tenant, interviewer_id) DO UPDATE SET config=EXCLUDED.config, version=EXCLUDED.version,"
           " updated_by=EXCLUDED.updated_by, updated_at=EXCLUDED.updated_at RETURNING updated_at")
_DELETE = "DELETE FROM twin_config WHERE tenant=%s AND interviewer_id=%s"
_LAST_VERSION = "SELECT coalesce(max(version), 0) FROM twin_config_history WHERE tenant=%s AND interviewer_id=%s"
_HISTORY = ("INSERT INTO twin_config_history (tenant, interviewer_id, version, config, previous, changed_by)"
            " VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s)")
# Serialises writers of one tenant (a row lock cannot serialise the first insert of a layer).
_ADVISORY = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


def _layer_row(tenant: str, row) -> StoredLayer:
    iid, config, version, updated_at, updated_by = row
    return StoredLayer(tenant, iid or None, TwinConfig.model_validate(config or {}), int(version), updated_at,
                       updated_by)


def _assemble(tenant: str, interviewer_id: str | None, rows, profile_row) -> EffectiveConfig:
    by_id = {r[0]: _layer_row(tenant, r) for r in rows}
    layers: list[tuple[str, TwinConfig]] = []
    versions = {"tenant": 0, "interviewer": 0, "profile": 0}
    stamps = []
    if profile_row is not None:
        versions["profile"] = int(profile_row[0])
        layers.append(("profile", layer_from_profile(profile_row[1] if isinstance(profile_row[1], dict) else None)))
    for name, key in (("tenant", TENANT_LAYER), ("interviewer", interviewer_id)):
        layer = by_id.get(key) if key is not None else None
        if layer is not None:
            layers.append((name, layer.config))
            versions[name] = layer.version
            stamps.append(layer.updated_at)
    return resolve(tenant, interviewer_id, layers, versions, max(stamps) if stamps else None)


def _write_plan(config: TwinConfig | None, current, last_version: int) -> tuple:
    """(version, stored json or None, previous json or None) of a write over the locked ``current`` row.

    ``last_version``: the highest version the layer ever had (history), so a layer re-created after
    a removal does not reuse a version number (If-Match and cached configs must tell them apart)."""
    previous = current[0] if current else None
    version = max(int(current[1]) if current else 0, last_version) + 1
    return version, (config.stored() if config is not None else None), previous


# --------------------------------------------------------------------------- sync store (workers, CLI)
class ConfigStore:
    """Reads (cached in Redis) and writes configuration layers; thread-safe, one connection per thread.

    :param dsn: PostgreSQL.
    :param redis: a synchronous ``redis.Redis`` (``decode_responses=True``) or None for no cache.
    :param key_prefix: ``REDIS_KEY_PREFIX``.
    :param ttl_s: how long a cached resolved config may be served at most.
    """

    REDIS_RETRY_S = 5.0  # after a Redis error, skip the cache this long (a dead Redis must not add latency)

    def __init__(self, dsn: str, redis=None, key_prefix: str = "twin:", ttl_s: float = 60.0):
        self.dsn, self.redis, self.key_prefix, self.ttl_s = dsn, redis, key_prefix, ttl_s
        self._pool = ThreadConnections(dsn)
        self._redis_down_until = 0.0
        self.stats = {"hits": 0, "misses": 0, "redis_errors": 0}

    @classmethod
    def from_settings(cls, cfg) -> "ConfigStore":
        import redis

        client = redis.Redis(host=cfg.REDIS_HOST, port=cfg.REDIS_PORT, db=cfg.REDIS_DB, decode_responses=True,
                             socket_timeout=0.5, socket_connect_timeout=0.5)
        return cls(cfg.POSTGRES_DSN, client, key_prefix=cfg.REDIS_KEY_PREFIX, ttl_s=cfg.CONFIG_CACHE_TTL_S)

    def _conn(self):
        return self._pool.get()

    # -- reading ------------------------------------------------------------------------------
    def layer(self, tenant: str, interviewer_id: str | None = None) -> StoredLayer:
        """The stored layer (version 0 and an empty config when nothing is stored)."""
        rows = self._conn().execute(_SELECT_LAYERS, (tenant, [interviewer_id or TENANT_LAYER])).fetchall()
        return _layer_row(tenant, rows[0]) if rows else StoredLayer(tenant, interviewer_id, TwinConfig())

    def load(self, tenant: str, interviewer_id: str | None = None, profile_version: int | None = None,
             profile_config: dict[str, Any] | None = None) -> EffectiveConfig:
        """Resolve from PostgreSQL (no cache); the profile layer is the active version's unless given."""
        conn = self._conn()
        keys = [TENANT_LAYER] + ([interviewer_id] if interviewer_id else [])
        rows = conn.execute(_SELECT_LAYERS, (tenant, keys)).fetchall()
        if profile_version is not None:
            profile = (profile_version, profile_config)
        else:
            profile = conn.execute(_SELECT_PROFILE, (tenant, interviewer_id)).fetchone() if interviewer_id else None
        return _assemble(tenant, interviewer_id, rows, profile)

    def effective(self, tenant: str, interviewer_id: str | None = None, profile_version: int | None = None,
                  profile_config: dict[str, Any] | None = None) -> EffectiveConfig:
        """The resolved config through the Redis cache (the respond path calls this per request).

        ``profile_version`` / ``profile_config``: the version the caller answers with and its trained
        config (else the active version's is read); a cached entry of another version is a miss.
        """
        key = cache_key(self.key_prefix, tenant, interviewer_id)
        gen = None
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                gen, cached = self.redis.mget(generation_key(self.key_prefix, tenant), key)
                gen = gen or "0"
                if cached:
                    entry = json.loads(cached)
                    if entry.get("gen") == gen and (profile_version is None or
                                                    entry["config"]["versions"].get("profile") == profile_version):
                        self.stats["hits"] += 1
                        return EffectiveConfig.model_validate(entry["config"])
            except Exception as exc:  # noqa: BLE001 - any Redis trouble: read through to PostgreSQL
                self._redis_failed(exc)
                gen = None
        self.stats["misses"] += 1
        # The generation was read before the rows: a write committed meanwhile bumps it past ours,
        # so the entry stored below is a miss for the next reader (never a stale hit).
        config = self.load(tenant, interviewer_id, profile_version, profile_config)
        if gen is not None:
            try:
                self.redis.set(key, json.dumps({"gen": gen, "config": config.model_dump(mode="json")}),
                               ex=max(1, int(self.ttl_s)))
            except Exception as exc:  # noqa: BLE001
                self._redis_failed(exc)
        return config

    def _redis_failed(self, exc: Exception) -> None:
        self.stats["redis_errors"] += 1
        self._redis_down_until = time.monotonic() + self.REDIS_RETRY_S
        log.warning("config cache unavailable (%s: %s); reading PostgreSQL for %.0f s", type(exc).__name__, exc,
                    self.REDIS_RETRY_S)

    # -- writing ------------------------------------------------------------------------------
    def write(self, tenant: str, interviewer_id: str | None, config: TwinConfig | None, actor: str,
              expected_version: int | None = None, audit: dict[str, Any] | None = None) -> StoredLayer:
        """Replace (``config``) or remove (None) a layer; bumps its version, appends history and,
        with ``audit`` ({action, detail}), an audit record in the same transaction; then invalidates."""
        from infra.audit import record

        conn = self._conn()
        iid = interviewer_id or TENANT_LAYER
        with conn.transaction():
            conn.execute(_ADVISORY, (f"config/{tenant}",))
            current = conn.execute(_LOCK_LAYER, (tenant, iid)).fetchone()
            if expected_version is not None and (int(current[1]) if current else 0) != expected_version:
                raise ConfigConflict(int(current[1]) if current else 0, expected_version)
            last = 0 if current else conn.execute(_LAST_VERSION, (tenant, iid)).fetchone()[0]
            version, stored, previous = _write_plan(config, current, int(last))
            updated_at = None
            if stored is None:
                conn.execute(_DELETE, (tenant, iid))
                version = 0
            else:
                updated_at = conn.execute(_UPSERT, (tenant, iid, json.dumps(stored), version, actor)).fetchone()[0]
            if stored is not None or current is not None:
                conn.execute(_HISTORY, (tenant, iid, version, json.dumps(stored) if stored is not None else None,
                                        json.dumps(previous) if previous is not None else None, actor))
            if audit is not None:
                record(conn, tenant, actor, audit["action"], "twin_config", interviewer_id or "tenant",
                       detail={"version": version, "config": stored, "previous": previous, **audit.get("detail", {})})
        self.invalidate(tenant)
        return StoredLayer(tenant, interviewer_id, config or TwinConfig(), version, updated_at, actor)

    def invalidate(self, tenant: str) -> None:
        """Make every cached config of the tenant a miss (called after each committed write)."""
        if self.redis is None:
            return
        try:
            self.redis.incr(generation_key(self.key_prefix, tenant))
        except Exception as exc:  # noqa: BLE001 - entries then expire within the TTL
            self._redis_failed(exc)

    def close(self) -> None:
        """Close every thread's connection (an evaluation answers from several) and the Redis client."""
        self._pool.close()
        if self.redis is not None:
            self.redis.close()


# --------------------------------------------------------------------------- async (the gateway)
async def load_layers_async(conn, tenant: str, interviewer_id: str | None) -> tuple[StoredLayer, EffectiveConfig]:
    """The stored layer itself and the resolved config, on an async psycopg connection."""
    keys = [TENANT_LAYER] + ([interviewer_id] if interviewer_id else [])
    rows = await (await conn.execute(_SELECT_LAYERS, (tenant, keys))).fetchall()
    profile = None
    if interviewer_id:
        profile = await (await conn.execute(_SELECT_PROFILE, (tenant, interviewer_id))).fetchone()
    own = next((r for r in rows if r[0] == (interviewer_id or TENANT_LAYER)), None)
    layer = _layer_row(tenant, own) if own else StoredLayer(tenant, interviewer_id, TwinConfig())
    if layer.interviewer_id is None and interviewer_id:
        layer.interviewer_id = interviewer_id
    return layer, _assemble(tenant, interviewer_id, rows, profile)


async def write_layer_async(conn, tenant: str, interviewer_id: str | None, config: TwinConfig | None, actor: str,
                            expected_version: int | None = None,
                            patch: dict[str, Any] | None = None) -> StoredLayer:
    """:meth:`ConfigStore.write` on an async connection (the caller bumps the generation after commit).

    With ``patch`` (a merge patch), ``config`` is ignored and the patch is applied to the stored
    layer under the lock; an invalid result raises ``pydantic.ValidationError``.
    """
    iid = interviewer_id or TENANT_LAYER
    async with conn.transaction():
        await conn.execute(_ADVISORY, (f"config/{tenant}",))
        current = await (await conn.execute(_LOCK_LAYER, (tenant, iid))).fetchone()
        if expected_version is not None and (int(current[1]) if current else 0) != expected_version:
            raise ConfigConflict(int(current[1]) if current else 0, expected_version)
        if patch is not None:
            config = TwinConfig.model_validate(merge_patch(current[0] if current else {}, patch))
        last = 0 if current else (await (await conn.execute(_LAST_VERSION, (tenant, iid))).fetchone())[0]
        version, stored, previous = _write_plan(config, current, int(last))
        updated_at = None
        if stored is None:
            await conn.execute(_DELETE, (tenant, iid))
            version = 0
        else:
            cur = await conn.execute(_UPSERT, (tenant, iid, json.dumps(stored), version, actor))
            updated_at = (await cur.fetchone())[0]
        if stored is not None or current is not None:
            await conn.execute(_HISTORY, (tenant, iid, version, json.dumps(stored) if stored is not None else None,
                                          json.dumps(previous) if previous is not None else None, actor))
    return StoredLayer(tenant, interviewer_id, config or TwinConfig(), version, updated_at, actor)


async def bump_generation_async(cfg, tenant: str) -> bool:
    """Increment the tenant's configuration generation (after a committed write); False when Redis
    did not answer (cached entries then expire within ``CONFIG_CACHE_TTL_S``)."""
    from infra.clients import redis_client

    client = redis_client(cfg)
    try:
        await client.incr(generation_key(cfg.REDIS_KEY_PREFIX, tenant))
        return True
    except Exception as exc:  # noqa: BLE001
        log.warning("config generation of %s not bumped (%s: %s)", tenant, type(exc).__name__, exc)
        return False
    finally:
        await client.aclose()


def topic_pattern(topics: list[str]) -> re.Pattern | None:
    """One case-insensitive whole-word pattern for a list of prohibited topics (None when empty)."""
    if not topics:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(t) for t in topics) + r")\b", re.IGNORECASE)
