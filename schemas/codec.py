"""Avro encoding of every Kafka message: schema loading, wire format, versions, compatibility.

Parse, encode and decode only: no Kafka, no network. The schemas are read from
``schemas/avro`` (the package data) the first time they are needed.

Wire format (5-byte header, then schemaless Avro)::

    0x01 | schema id (2 bytes, big-endian) | schema version (2 bytes, big-endian) | Avro body

The id names the record (``SCHEMA_IDS``), the version names the released schema that wrote
the body (``schemas/avro/released/<snake>.v<N>.avsc``). Decoding reads with that writer
schema and resolves into the current schema, so messages written by older releases stay
readable. The current ``.avsc`` must equal its latest released copy; loading fails otherwise,
because the version on the wire would then no longer identify the bytes.

Changing a schema::

    1. edit schemas/avro/<snake>.avsc (add fields with defaults; never rename or retype)
    2. python -m schemas.release <RecordName>     # checks compatibility, writes v<N+1>
    3. bump SCHEMA_VERSIONS[<RecordName>] below
    4. deploy consumers before producers: a reader needs the released file of every
       version it may receive.

Usage::

    from schemas import codec
    data = codec.encode("TwinRequest", request.to_avro())
    name, record = codec.decode(data, reader_name="TwinRequest")
    model = codec.decode_model(data)
"""

from __future__ import annotations

import copy
import io
import json
import re
import struct
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastavro import parse_schema, schemaless_reader, schemaless_writer

if TYPE_CHECKING:
    from schemas.models import AvroModel

__all__ = [
    "AVRO_DIR",
    "RELEASED_DIR",
    "HEADER",
    "MAGIC",
    "NAMESPACE",
    "SCHEMA_IDS",
    "SCHEMA_VERSIONS",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "SchemaError",
    "SchemaRegistry",
    "check_compatible",
    "coverage_samples",
    "current_schemas",
    "decode",
    "decode_model",
    "default_registry",
    "encode",
    "encode_model",
    "peek_header",
    "record_names",
    "schema_json",
    "snake_case",
]

AVRO_DIR = Path(__file__).resolve().parent / "avro"
RELEASED_DIR = AVRO_DIR / "released"
NAMESPACE = "io.interviewertwin"
MAGIC = 0x01
HEADER = struct.Struct(">BHH")  # magic, schema id, schema version

# Stable wire ids: never reuse or renumber one, only append.
SCHEMA_IDS: dict[str, int] = {
    "TelemetryRaw": 1,
    "TelemetryRedacted": 2,
    "SessionEvent": 3,
    "TwinRequest": 4,
    "TwinDraft": 5,
    "TwinReply": 6,
    "SafetyVerdict": 7,
    "StyleFeatures": 8,
    "CodeActivityFeatures": 9,
    "EvalSample": 10,
    "TrainingJob": 11,
    "TrainingJobStatus": 12,
    "AuditRecord": 13,
    "DeadLetter": 14,
}

# The version new messages are written with; released/<snake>.v1..vN.avsc must all exist.
SCHEMA_VERSIONS: dict[str, int] = {name: 1 for name in SCHEMA_IDS} | {
    "TwinDraft": 2,  # + profileVersion (canary, issue 8)
    "TwinReply": 2,  # + profileVersion, candidateTurn (canary, issue 8)
}

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "enum", "fixed", "error"})

M = TypeVar("M", bound="AvroModel")


class CodecError(Exception):
    """Base class of every error raised by this module."""


class SchemaError(CodecError):
    """A schema file is missing, invalid or unreleased, or a record name is unknown."""


class EncodeError(SchemaError):
    """A record does not match its schema and cannot be encoded."""


class DecodeError(CodecError):
    """Bytes are not a message of this wire format, or do not match the schema they claim."""


def snake_case(record_name: str) -> str:
    """File stem of a record: ``TelemetryRaw`` -> ``telemetry_raw``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", record_name).lower()


# --------------------------------------------------------------------------- schema loading


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _split(fullname: str) -> tuple[str, str | None]:
    namespace, _, short = fullname.rpartition(".")
    return short, namespace or None


def _collect_definitions(
    schema: Any, namespace: str | None, source: str, into: dict[str, tuple[dict, str]]
) -> None:
    """Index every named type defined in ``schema`` by full name (with the file it came from)."""
    if isinstance(schema, list):
        for branch in schema:
            _collect_definitions(branch, namespace, source, into)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in _NAMED:
        fullname = _fullname(schema["name"], schema.get("namespace", namespace))
        if fullname in into:
            raise SchemaError(f"{fullname} is defined in both {into[fullname][1]} and {source}")
        into[fullname] = (schema, source)
        inner_ns = _split(fullname)[1]
        for field in schema.get("fields", ()):
            _collect_definitions(field["type"], inner_ns, source, into)
    elif kind == "array":
        _collect_definitions(schema["items"], namespace, source, into)
    elif kind == "map":
        _collect_definitions(schema["values"], namespace, source, into)
    elif isinstance(kind, (dict, list)):
        _collect_definitions(kind, namespace, source, into)


def _standalone(
    schema: Any,
    namespace: str | None,
    definitions: Mapping[str, tuple[dict, str]],
    emitted: set[str],
) -> Any:
    """Copy ``schema`` with every named type inlined at its first use and referenced by full
    name afterwards, so the result parses on its own (no other files needed).

    Released copies are stored in this form: a frozen writer schema must not change when
    another file that it borrowed a type from changes.
    """
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema
        fullname = schema if schema in definitions else _fullname(schema, namespace)
        if fullname not in definitions:
            raise SchemaError(f"unknown Avro type {schema!r} (namespace {namespace})")
        if fullname in emitted:
            return fullname
        definition, _ = definitions[fullname]
        return _standalone(definition, _split(fullname)[1], definitions, emitted)
    if isinstance(schema, list):
        return [_standalone(branch, namespace, definitions, emitted) for branch in schema]
    if not isinstance(schema, dict):
        raise SchemaError(f"not an Avro schema: {schema!r}")
    kind = schema.get("type")
    out = dict(schema)
    if kind in _NAMED:
        fullname = _fullname(schema["name"], schema.get("namespace", namespace))
        if fullname in emitted:
            return fullname
        emitted.add(fullname)
        short, ns = _split(fullname)
        out["name"], out["namespace"] = short, ns
        if "fields" in schema:
            out["fields"] = [
                {**field, "type": _standalone(field["type"], ns, definitions, emitted)}
                for field in schema["fields"]
            ]
        return out
    if kind == "array":
        out["items"] = _standalone(schema["items"], namespace, definitions, emitted)
    elif kind == "map":
        out["values"] = _standalone(schema["values"], namespace, definitions, emitted)
    elif isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in _PRIMITIVES):
        out["type"] = _standalone(kind, namespace, definitions, emitted)
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"missing schema file {path}") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path} is not valid JSON: {exc}") from exc


def _parse(schema: Any, what: str) -> dict:
    try:
        # A fresh named_schemas per schema: each standalone schema carries its own types.
        return parse_schema(copy.deepcopy(schema), named_schemas={})
    except Exception as exc:  # fastavro raises several types (SchemaParseException, ValueError...)
        raise SchemaError(f"{what} is not a valid Avro schema: {exc}") from exc


def _normalised(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def current_schemas(avro_dir: Path = AVRO_DIR, ids: Mapping[str, int] = SCHEMA_IDS) -> dict[str, dict]:
    """Standalone JSON of every ``<snake>.avsc`` in ``avro_dir``, keyed by record name.

    Named types may be defined in one file and used in another (TelemetryRedacted uses the
    event records of telemetry_raw.avsc); they are resolved against an index of all files.
    Unlike :class:`SchemaRegistry` this does not compare with the released copies, so the
    release tool can use it on an edited schema.

    :raises SchemaError: a file is missing, unlisted in ``ids``, invalid, or redefines a type.
    """
    avro_dir = Path(avro_dir)
    files = sorted(avro_dir.glob("*.avsc"))
    by_stem = {snake_case(name): name for name in ids}
    unknown = [f.name for f in files if f.stem not in by_stem]
    if unknown:
        raise SchemaError(f"schema files without a SCHEMA_IDS entry: {unknown}")
    raw: dict[str, dict] = {}
    definitions: dict[str, tuple[dict, str]] = {}
    for path in files:
        schema = _read_json(path)
        name = by_stem[path.stem]
        if not isinstance(schema, dict) or schema.get("type") != "record" or schema.get("name") != name:
            raise SchemaError(f"{path.name} must define the record {name}")
        raw[name] = schema
        _collect_definitions(schema, None, path.name, definitions)
    missing = sorted(set(ids) - set(raw))
    if missing:
        raise SchemaError(f"no schema file for {missing} in {avro_dir}")
    return {name: _standalone(raw[name], None, definitions, set()) for name in ids}


class SchemaRegistry:
    """The schemas of one directory: current schemas, released writer schemas, wire format.

    Most code uses the module functions, which share :func:`default_registry`; tests build
    their own registry over a temporary directory to exercise a schema change.

    :param avro_dir: folder with ``<snake>.avsc`` files and a ``released/`` subfolder.
    :param ids: record name -> wire id.
    :param versions: record name -> version written by :meth:`encode`.
    """

    def __init__(
        self,
        avro_dir: Path = AVRO_DIR,
        ids: Mapping[str, int] = SCHEMA_IDS,
        versions: Mapping[str, int] = SCHEMA_VERSIONS,
    ) -> None:
        self.avro_dir = Path(avro_dir)
        self.ids = dict(ids)
        self.versions = dict(versions)
        if len(set(self.ids.values())) != len(self.ids):
            raise SchemaError("SCHEMA_IDS has duplicate ids")
        if set(self.versions) != set(self.ids):
            raise SchemaError(
                f"SCHEMA_VERSIONS and SCHEMA_IDS name different records: "
                f"{sorted(set(self.versions) ^ set(self.ids))}"
            )
        self._names_by_id = {i: name for name, i in self.ids.items()}
        self._current_json = current_schemas(self.avro_dir, self.ids)
        self._current = {n: _parse(s, f"{snake_case(n)}.avsc") for n, s in self._current_json.items()}
        self._released_json: dict[tuple[str, int], dict] = {}
        self._released: dict[tuple[str, int], dict] = {}
        for name, latest in self.versions.items():
            for version in range(1, latest + 1):
                path = self.avro_dir / "released" / f"{snake_case(name)}.v{version}.avsc"
                schema = _read_json(path)
                self._released_json[(name, version)] = schema
                self._released[(name, version)] = _parse(schema, path.name)
            if _normalised(self._released_json[(name, latest)]) != _normalised(self._current_json[name]):
                raise SchemaError(
                    f"schemas/avro/{snake_case(name)}.avsc differs from its released "
                    f"v{latest}: release it (python -m schemas.release {name}) and bump "
                    f"SCHEMA_VERSIONS, or revert the edit"
                )

    # ------------------------------------------------------------------ lookups

    def record_names(self) -> tuple[str, ...]:
        """Every record name, in wire-id order."""
        return tuple(sorted(self.ids, key=self.ids.__getitem__))

    def schema_json(self, record_name: str, version: int | None = None) -> dict:
        """Standalone JSON schema of a record: current (``version=None``) or a released one."""
        self._check_name(record_name)
        if version is None:
            return copy.deepcopy(self._current_json[record_name])
        try:
            return copy.deepcopy(self._released_json[(record_name, version)])
        except KeyError:
            raise SchemaError(f"{record_name} has no released v{version}") from None

    def parsed_schema(self, record_name: str, version: int | None = None) -> dict:
        """fastavro-parsed schema (current or released version); do not mutate it."""
        self._check_name(record_name)
        if version is None:
            return self._current[record_name]
        try:
            return self._released[(record_name, version)]
        except KeyError:
            raise SchemaError(f"{record_name} has no released v{version}") from None

    def _check_name(self, record_name: str) -> None:
        if record_name not in self.ids:
            raise SchemaError(f"unknown record {record_name!r}; known: {', '.join(self.record_names())}")

    # ------------------------------------------------------------------ wire format

    def encode(self, record_name: str, record: Mapping[str, Any]) -> bytes:
        """Encode ``record`` (Avro-shaped dict) with the current schema and a version header.

        :raises SchemaError: unknown record name.
        :raises EncodeError: the record does not match the schema (the message says where).
        """
        self._check_name(record_name)
        out = io.BytesIO()
        out.write(HEADER.pack(MAGIC, self.ids[record_name], self.versions[record_name]))
        try:
            # strict: an unknown or misspelt key is an error, not silently dropped data.
            schemaless_writer(out, self._current[record_name], record, strict_allow_default=True)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"cannot encode {record_name}: {exc}") from exc
        return out.getvalue()

    def peek_header(self, data: bytes) -> tuple[str, int]:
        """Record name and schema version of an encoded message, without decoding the body.

        :raises DecodeError: not this wire format, or an id/version this build does not know.
        """
        if len(data) < HEADER.size:
            raise DecodeError(f"message of {len(data)} bytes is shorter than the {HEADER.size}-byte header")
        magic, schema_id, version = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(f"bad magic byte 0x{magic:02x} (expected 0x{MAGIC:02x}): not an encoded message")
        try:
            name = self._names_by_id[schema_id]
        except KeyError:
            raise DecodeError(f"unknown schema id {schema_id}") from None
        if not 1 <= version <= self.versions[name]:
            raise DecodeError(
                f"{name} v{version} is not known to this build (it knows v1..v{self.versions[name]}); "
                "deploy the newer schemas package to consumers before producers"
            )
        return name, version

    def decode(self, data: bytes, reader_name: str | None = None) -> tuple[str, dict[str, Any]]:
        """Decode a message into ``(record_name, record)`` shaped like the current schema.

        :param reader_name: the record the caller expects; a message of another record is a
            DecodeError rather than a surprise further down.
        :raises DecodeError: bad header, unexpected record, or a body that does not match.
        """
        name, version = self.peek_header(data)
        if reader_name is not None and reader_name != name:
            raise DecodeError(f"expected a {reader_name} message, got {name}")
        writer = self._released[(name, version)]
        # Same version: skip resolution; it is the common case and fastavro's fast path.
        reader = None if version == self.versions[name] else self._current[name]
        body = io.BytesIO(data)
        body.seek(HEADER.size)
        try:
            record = schemaless_reader(body, writer, reader)
        except Exception as exc:  # garbage can fail in many ways: EOF, index, unicode, resolution
            raise DecodeError(f"{name} v{version} body does not decode: {type(exc).__name__}: {exc}") from exc
        if body.tell() != len(data):
            raise DecodeError(f"{name} v{version}: {len(data) - body.tell()} trailing bytes after the record")
        return name, record


@cache
def default_registry() -> SchemaRegistry:
    """The registry over the package's own schemas, loaded (and checked) on first use."""
    return SchemaRegistry()


def record_names() -> tuple[str, ...]:
    """Every record name that can travel on Kafka, in wire-id order."""
    return default_registry().record_names()


def schema_json(record_name: str, version: int | None = None) -> dict:
    """Standalone JSON schema of a record; ``version=None`` is the current one."""
    return default_registry().schema_json(record_name, version)


def encode(record_name: str, record: Mapping[str, Any]) -> bytes:
    """Encode an Avro-shaped dict as ``header + body`` with the current schema version."""
    return default_registry().encode(record_name, record)


def decode(data: bytes, reader_name: str | None = None) -> tuple[str, dict[str, Any]]:
    """Decode ``header + body`` into ``(record_name, record)`` in the current schema's shape."""
    return default_registry().decode(data, reader_name)


def peek_header(data: bytes) -> tuple[str, int]:
    """``(record_name, version)`` from a message header; see :meth:`SchemaRegistry.peek_header`."""
    return default_registry().peek_header(data)


def encode_model(model: AvroModel) -> bytes:
    """Encode a pydantic model from :mod:`schemas.models` (its ``__avro_name__`` picks the schema)."""
    return encode(model.__avro_name__, model.to_avro())


def decode_model(data: bytes, expected: type[M] | None = None) -> M:
    """Decode a message into its pydantic model.

    :param expected: the model class the caller expects; other records raise DecodeError.
    :raises DecodeError: also when the decoded record fails model validation.
    """
    from pydantic import ValidationError

    from schemas.models import model_for

    name, record = decode(data, expected.__avro_name__ if expected is not None else None)
    try:
        return model_for(name).from_avro(record)  # type: ignore[return-value]
    except ValidationError as exc:
        raise DecodeError(f"{name} decoded but failed validation: {exc}") from exc


# --------------------------------------------------------------------------- compatibility


def coverage_samples(schema: Mapping[str, Any] | list | str, count: int | None = None) -> list[Any]:
    """Generate Avro data for ``schema`` in which every enum symbol and every union branch,
    at every place in the schema, appears at least once (arrays and maps hold two items).

    Each choice point (a union or enum at a given path) cycles through its options
    independently each time it is visited, and samples are generated until all visited
    points have used all their options. Nested points are only visited when their parent
    picks them, so a simple ``sample i -> option i mod n`` would miss combinations.

    :param count: generate exactly this many samples instead of stopping at full coverage.
    Values are synthetic; use :mod:`schemas.samples` for realistic ones.
    """
    named: dict[str, dict] = {}
    parsed = parse_schema(copy.deepcopy(schema), named_schemas=named)
    generator = _CoverageGenerator(named)
    samples: list[Any] = []
    limit = count if count is not None else _MAX_SAMPLES
    while len(samples) < limit:
        samples.append(generator.generate(parsed, (), depth=0))
        if count is None and len(samples) >= 2 and generator.covered():
            break
    return samples


_MAX_DEPTH = 8  # only recursive schemas get this deep; there we stop at null/empty
_MAX_SAMPLES = 1000


class _CoverageGenerator:
    """Synthetic data with a round-robin cursor per choice point (see coverage_samples)."""

    def __init__(self, named: Mapping[str, dict]) -> None:
        self.named = named
        self.visits: dict[tuple[str, ...], int] = {}
        self.options: dict[tuple[str, ...], int] = {}
        self.serial = 0  # varies primitive values between items

    def covered(self) -> bool:
        return all(self.visits[p] >= n for p, n in self.options.items())

    def _choose(self, path: tuple[str, ...], options: int) -> int:
        visit = self.visits.get(path, 0)
        self.visits[path] = visit + 1
        self.options[path] = options
        return visit % options

    def generate(self, schema: Any, path: tuple[str, ...], depth: int) -> Any:
        if isinstance(schema, str):
            if schema in self.named:
                return self.generate(self.named[schema], path, depth)
            self.serial += 1
            i = self.serial
            return {
                "null": None,
                "boolean": i % 2 == 0,
                "int": i,
                "long": 1_700_000_000_000 + i,
                "float": i + 0.5,
                "double": i + 0.25,
                "bytes": f"b{i}".encode(),
                "string": f"s{i}",
            }[schema]
        if isinstance(schema, list):
            if depth > _MAX_DEPTH and "null" in schema:
                return None
            branch = schema[self._choose(path + ("|",), len(schema))]
            branch_schema = self.named.get(branch, branch) if isinstance(branch, str) else branch
            branch_name = branch_schema.get("name", branch_schema["type"]) if isinstance(branch_schema, dict) else branch
            value = self.generate(branch_schema, path + (str(branch_name),), depth + 1)
            if isinstance(branch_schema, dict) and branch_schema.get("type") in _NAMED:
                # Tuple notation makes fastavro write exactly this branch instead of guessing.
                return (branch_schema["name"], value)
            return value
        kind = schema["type"]
        if kind in ("record", "error"):
            return {f["name"]: self.generate(f["type"], path + (f["name"],), depth + 1) for f in schema["fields"]}
        if kind == "enum":
            return schema["symbols"][self._choose(path, len(schema["symbols"]))]
        if kind == "fixed":
            return bytes(schema["size"])
        if kind == "array":
            if depth > _MAX_DEPTH:
                return []
            return [self.generate(schema["items"], path + ("[]",), depth + 1) for _ in range(2)]
        if kind == "map":
            if depth > _MAX_DEPTH:
                return {}
            return {f"k{k}": self.generate(schema["values"], path + ("{}",), depth + 1) for k in range(2)}
        return self.generate(kind, path, depth)  # {"type": "long", "logicalType": ...}


def _resolution_problems(writer: Any, reader: Any, direction: str) -> list[str]:
    try:
        writer_parsed = parse_schema(copy.deepcopy(writer), named_schemas={})
        reader_parsed = parse_schema(copy.deepcopy(reader), named_schemas={})
    except Exception as exc:
        return [f"{direction}: schema does not parse: {exc}"]
    problems: list[str] = []
    for sample in coverage_samples(writer):
        out = io.BytesIO()
        schemaless_writer(out, writer_parsed, sample)
        out.seek(0)
        try:
            schemaless_reader(out, writer_parsed, reader_parsed)
        except Exception as exc:
            problem = f"{direction}: {type(exc).__name__}: {exc}"
            if problem not in problems:
                problems.append(problem)
    return problems


def check_compatible(old_schema: Mapping[str, Any], new_schema: Mapping[str, Any]) -> list[str]:
    """Problems that stop old and new schema from reading each other's data (FULL compatibility).

    Both directions are tried with fastavro's own schema resolution on generated data that
    covers every enum symbol and union branch of the writer:

    - ``backward``: data written with ``old_schema`` read with ``new_schema`` (consumers
      upgraded first, old messages still in the topic);
    - ``forward``: data written with ``new_schema`` read with ``old_schema`` (consumers not
      yet upgraded, or replaying into an older build).

    Both schemas must be standalone JSON (see :meth:`SchemaRegistry.schema_json`).
    An empty list means compatible.
    """
    return _resolution_problems(old_schema, new_schema, "backward (old data, new reader)") + _resolution_problems(
        new_schema, old_schema, "forward (new data, old reader)"
    )
