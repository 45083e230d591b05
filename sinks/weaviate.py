"""Weaviate: persona memory and turn chunks, one Weaviate tenant per project tenant.

Collections are multi-tenant, so a query can only ever see one tenant's objects; inside a tenant the
``interviewerId`` property scopes every search. Objects get deterministic UUIDs (uuid5 of their key),
which makes writes idempotent: re-indexing the same turn overwrites the same object.
Vectors are supplied by us (all-MiniLM-L6-v2, 384 dims); Weaviate runs with no vectorizer module.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from sinks.base import Sink, SinkError

# Objects per write request: a few MB with their vectors and texts, well under gRPC's message limit.
UPSERT_CHUNK = 500

__all__ = [
    "WeaviateSink",
    "WeaviateSinkError",
    "VectorObject",
    "Hit",
    "CollectionSpec",
    "TURN_CHUNKS",
    "PERSONA_MEMORY",
    "weaviate_tenant",
]


class WeaviateSinkError(SinkError):
    """Weaviate refused a write or is unreachable."""


@dataclass(frozen=True)
class CollectionSpec:
    """A collection: its name and properties (vectors are always self-provided).

    ``id_properties`` are matched whole (field tokenization, so ids like "a" are never stopwords);
    ``text_properties`` are free text (word tokenization, for keyword/hybrid search).
    """

    name: str
    id_properties: tuple[str, ...]
    text_properties: tuple[str, ...] = ()
    int_properties: tuple[str, ...] = ()
    number_properties: tuple[str, ...] = ()


# A turn of a live or imported session, indexed for "similar moments" and recent session memory.
TURN_CHUNKS = CollectionSpec(
    "TurnChunk",
    id_properties=("interviewerId", "sessionId", "eventId", "role", "ts"),
    text_properties=("text",),
    int_properties=("seq",),
)
# What training learned about an interviewer: context → reply exemplars, notes, rubrics, preferences.
PERSONA_MEMORY = CollectionSpec(
    "PersonaMemory",
    id_properties=("interviewerId", "kind", "sessionId", "move", "key"),
    text_properties=("context", "candidateTurn", "reply"),
    int_properties=("version", "turnIndex"),
)


@dataclass
class VectorObject:
    """One object to upsert: a stable key (→ uuid5), its properties and its vector."""

    key: str
    properties: dict[str, Any]
    vector: Sequence[float]


@dataclass
class Hit:
    """A search result: properties, cosine distance (0 = identical) and uuid."""

    properties: dict[str, Any]
    distance: float
    uuid: str
    extra: dict[str, Any] = field(default_factory=dict)


_WEAVIATE_TENANT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def weaviate_tenant(tenant: str) -> str:
    """Map a project tenant id onto Weaviate's tenant-name alphabet ([A-Za-z0-9_-], ≤ 64), one to one.

    A name already in that alphabet is used as it is; any other (``acme.eu``, or longer than 64)
    becomes ``h_`` + 62 hex digits of its SHA-256, so ``acme.eu`` and ``acme_eu`` can never share
    a Weaviate tenant (replacing characters would have merged them).
    """
    if not tenant:
        raise ValueError("empty tenant id")
    if _WEAVIATE_TENANT_RE.match(tenant):
        return tenant
    return "h_" + hashlib.sha256(tenant.encode()).hexdigest()[:62]


class WeaviateSink(Sink[VectorObject]):
    """Create collections, upsert vectors and run near-vector searches for one collection.

    :param client: a connected ``weaviate.WeaviateClient`` (see ``infra.clients.weaviate_client``).
    :param spec: the collection to manage.
    :param prefix: prepended to the collection name (tests use it to isolate runs).
    """

    def __init__(self, client, spec: CollectionSpec, prefix: str = ""):
        self.client = client
        self.spec = spec
        self.name = f"{prefix}{spec.name}"
        self._tenants: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------
    async def setup(self) -> None:
        """Create the collection when missing (idempotent)."""
        await asyncio.to_thread(self.ensure_collection)

    def ensure_collection(self) -> None:
        from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances

        if self.client.collections.exists(self.name):
            return
        props = [Property(name=p, data_type=DataType.TEXT, tokenization=Tokenization.FIELD)
                 for p in self.spec.id_properties]
        props += [Property(name=p, data_type=DataType.TEXT) for p in self.spec.text_properties]
        props += [Property(name=p, data_type=DataType.INT) for p in self.spec.int_properties]
        props += [Property(name=p, data_type=DataType.NUMBER) for p in self.spec.number_properties]
        try:
            self.client.collections.create(
                name=self.name,
                properties=props,
                vector_config=Configure.Vectors.self_provided(
                    vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
                ),
                multi_tenancy_config=Configure.multi_tenancy(enabled=True, auto_tenant_creation=True),
            )
        except Exception as exc:  # created concurrently by another worker is fine
            if not self.client.collections.exists(self.name):
                raise WeaviateSinkError(f"cannot create collection {self.name}: {exc}") from exc

    def _collection(self, tenant: str):
        wt = weaviate_tenant(tenant)
        coll = self.client.collections.use(self.name)
        if wt not in self._tenants:
            from weaviate.classes.tenants import Tenant

            existing = coll.tenants.get()
            if wt not in existing:
                coll.tenants.create([Tenant(name=wt)])
            self._tenants.add(wt)
        return coll.with_tenant(wt)

    # -- writes ------------------------------------------------------------------
    async def write(self, batch: Sequence[VectorObject], tenant: str = "default") -> int:  # type: ignore[override]
        """Upsert objects for one tenant; returns the number written."""
        return await asyncio.to_thread(self.upsert, tenant, batch)

    def upsert(self, tenant: str, objects: Sequence[VectorObject]) -> int:
        """Write objects for one tenant, replacing any with the same key (the uuid is derived from it)."""
        from weaviate.classes.data import DataObject
        from weaviate.util import generate_uuid5

        if not objects:
            return 0
        coll = self._collection(tenant)
        # One request per chunk: the client's batcher waits about a second on close for a part-filled
        # batch, which was most of a small write (a training's persona documents: 1.04 s against 0.01 s).
        for start in range(0, len(objects), UPSERT_CHUNK):
            result = coll.data.insert_many([
                DataObject(properties=obj.properties, vector=list(map(float, obj.vector)), uuid=generate_uuid5(obj.key))
                for obj in objects[start:start + UPSERT_CHUNK]])
            if result.errors:
                first = next(iter(result.errors.values()))
                raise WeaviateSinkError(f"{len(result.errors)} objects rejected by {self.name}: {first.message}")
        return len(objects)

    def delete_where(self, tenant: str, prop: str, value: str) -> int:
        """Delete every object of a tenant whose property equals value (erasure, retention)."""
        from weaviate.classes.query import Filter

        if not self.client.collections.exists(self.name):
            return 0
        result = self._collection(tenant).data.delete_many(where=Filter.by_property(prop).equal(value))
        return int(result.successful)

    # -- reads -------------------------------------------------------------------
    def near_vector(self, tenant: str, vector: Sequence[float], limit: int = 8,
                    where: dict[str, Any] | None = None) -> list[Hit]:
        """The ``limit`` nearest objects of a tenant, optionally filtered (``where``: see ``_filter``)."""
        from weaviate.classes.query import MetadataQuery

        res = self._collection(tenant).query.near_vector(
            near_vector=list(map(float, vector)), limit=limit, filters=_filter(where),
            return_metadata=MetadataQuery(distance=True),
        )
        return [Hit(dict(o.properties), float(o.metadata.distance), str(o.uuid)) for o in res.objects]

    def count(self, tenant: str, where: dict[str, Any] | None = None) -> int:
        """How many objects a tenant has (optionally filtered, as ``near_vector``)."""
        res = self._collection(tenant).aggregate.over_all(total_count=True, filters=_filter(where))
        return int(res.total_count or 0)

    def drop(self) -> None:
        """Delete the whole collection (tests and `twin db reset`)."""
        self.client.collections.delete(self.name)


def _filter(where: dict[str, Any] | None):
    """A Weaviate filter from ``{property: value}``: every property must equal its value, or one of its values
    when the value is a (non-empty) list or tuple (None when ``where`` is empty)."""
    from weaviate.classes.query import Filter

    flt = None
    for prop, value in (where or {}).items():
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"where: {prop} must be one of no values, which no object is")
            cond = Filter.any_of([Filter.by_property(prop).equal(v) for v in value])
        else:
            cond = Filter.by_property(prop).equal(value)
        flt = cond if flt is None else flt & cond
    return flt
