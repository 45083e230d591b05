"""Encryption at rest: a key ring of key-encryption keys, and field-level envelope encryption.

Every sealed value gets its own random 256-bit data key (AES-256-GCM); the data key is wrapped by
the ring's *active* key-encryption key (KEK). A sealed value is one string::

    twenc1:<key id>:<base64url(key nonce | wrapped data key | data nonce | ciphertext+tag)>

``twenc1`` is the format version, ``<key id>`` names the KEK that wrapped the data key. The
associated data binds the tenant, the field (``table.column``) and the row's key, so a value copied
into another row, column or tenant does not decrypt; the key id is bound into the wrap. Rotation
(:func:`rewrap`) unwraps the data key with the old KEK and wraps it with the active one: the
ciphertext itself is not touched, so it is cheap and needs no plaintext.

The ring comes from settings (:func:`key_ring`): ``DATA_ENCRYPTION_KEYS`` (JSON ``{key id: base64 of
32 bytes}``) and ``DATA_ENCRYPTION_ACTIVE_KEY``; ``OBJECT_STORE_ENCRYPTION_KEY`` joins it as key id
``object-store`` (the recordings' key before the ring existed). In development an empty ring is a key
generated once under ``TWIN_KEYS_DIR/dev.key`` (``var/keys``). The object store (sinks/object_store.py) wraps each
recording's data key with the same ring; ``twin crypto status|rotate`` (infra/cli_crypto.py) report
and rewrap everything stored.

Usage::

    from infra import crypto
    stored = crypto.seal_text("Why a queue?", "acme", "turns.text", "sess-1", "e7")
    crypto.open_text(stored, "acme", "turns.text", "sess-1", "e7")    # 'Why a queue?'
    crypto.rewrap(stored, "acme", "turns.text", "sess-1", "e7")       # wrapped by the active key now
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = [
    "DEV_KEY_ID",
    "LEGACY_OBJECT_STORE_KEY_ID",
    "PREFIX",
    "SEALED_COLUMNS",
    "CryptoError",
    "KeyConfigError",
    "KeyRing",
    "SealedColumn",
    "generate_key",
    "is_sealed",
    "key_id_of",
    "key_ring",
    "load_key_file",
    "open_fields",
    "open_json",
    "open_text",
    "rewrap",
    "ring_from_settings",
    "seal",
    "seal_fields",
    "seal_json",
    "seal_text",
    "unseal",
]

PREFIX = "twenc1"
LEGACY_OBJECT_STORE_KEY_ID = "object-store"
DEV_KEY_ID = "dev"
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NONCE = 12
_WRAPPED = 32 + 16  # data key + GCM tag
_MIN_BLOB = _NONCE + _WRAPPED + _NONCE + 16


class CryptoError(ValueError):
    """A value does not decrypt (tampered with, moved to another row or tenant, its key is not in the
    ring) or the key ring is misconfigured (:class:`KeyConfigError`)."""


class KeyConfigError(CryptoError):
    """The key ring's settings are missing or malformed (the message names the setting)."""

    # Agents retry a failure with ``retriable`` set (processors/engine/batching.py): a worker started
    # with a bad key stores nothing, and dead-letters nothing, until its settings are fixed.
    retriable = True


def generate_key() -> str:
    """A new key-encryption key: base64 of 32 random bytes (for ``DATA_ENCRYPTION_KEYS``)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _decode_key(value: str, setting: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (ValueError, TypeError) as exc:
        raise KeyConfigError(f"{setting} is not valid base64") from exc
    if len(key) != 32:
        raise KeyConfigError(f"{setting} must be base64 of exactly 32 bytes (`twin crypto generate-key`)")
    return key


class KeyRing:
    """Key-encryption keys by id; the active one wraps new data keys, every one unwraps.

    :param keys: key id -> 32-byte key. Ids are 1-64 characters of ``A-Za-z0-9_.-``.
    :param active: the id of the key that wraps new data keys.
    """

    def __init__(self, keys: Mapping[str, bytes], active: str):
        for kid, key in keys.items():
            if not _KEY_ID_RE.match(kid):
                raise KeyConfigError(f"bad key id {kid!r}: use 1-64 characters of A-Z a-z 0-9 _ . -")
            if len(key) != 32:
                raise KeyConfigError(f"key {kid!r} must be 32 bytes")
        if active not in keys:
            raise KeyConfigError(f"the active key {active!r} (DATA_ENCRYPTION_ACTIVE_KEY) is not in the key ring "
                              f"({', '.join(keys) or 'empty'})")
        self.active = active
        self._keys = dict(keys)
        self._aead = {kid: AESGCM(key) for kid, key in self._keys.items()}

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __repr__(self) -> str:  # never the key bytes
        return f"KeyRing(active={self.active!r}, keys={list(self._keys)!r})"

    @property
    def key_ids(self) -> list[str]:
        """Every key id, the active one first."""
        return [self.active, *(k for k in self._keys if k != self.active)]

    def _kek(self, kid: str) -> AESGCM:
        try:
            return self._aead[kid]
        except KeyError:
            raise CryptoError(f"key {kid!r} is not in the key ring ({', '.join(self._keys)}): add it to "
                              "DATA_ENCRYPTION_KEYS to read data it wrapped") from None

    def wrap(self, dek: bytes, aad: bytes) -> tuple[str, bytes, bytes]:
        """Wrap a data key with the active key: ``(key id, nonce, wrapped)``; the key id is bound in."""
        nonce = secrets.token_bytes(_NONCE)
        return self.active, nonce, self._aead[self.active].encrypt(nonce, dek, _wrap_aad(self.active, aad))

    def unwrap(self, kid: str, nonce: bytes, wrapped: bytes, aad: bytes) -> bytes:
        """The data key that ``wrap`` wrapped under ``kid`` (CryptoError when it does not authenticate)."""
        try:
            return self._kek(kid).decrypt(nonce, wrapped, _wrap_aad(kid, aad))
        except InvalidTag:
            raise CryptoError("the data key does not unwrap: the value was tampered with, or belongs to another "
                              "row, field or tenant") from None

    def unwrap_unlabelled(self, nonce: bytes, wrapped: bytes, aad: bytes) -> tuple[str, bytes]:
        """A data key wrapped without a key id (recordings stored before the ring): try every key,
        ``object-store`` first; returns ``(key id, data key)``."""
        order = sorted(self._keys, key=lambda k: (k != LEGACY_OBJECT_STORE_KEY_ID, k != self.active))
        for kid in order:
            try:
                return kid, self._aead[kid].decrypt(nonce, wrapped, aad)
            except InvalidTag:
                continue
        raise CryptoError("no key in the ring unwraps this data key (wrong keys, or the object was moved or "
                          "tampered with)")


def _wrap_aad(kid: str, aad: bytes) -> bytes:
    return kid.encode() + b"\x00" + aad


# --------------------------------------------------------------------------- the ring from settings


def load_key_file(path: Path, create: bool = True) -> bytes:
    """A key kept in a file (base64 of 32 bytes), generated once (mode 0600) when missing.

    Creation is atomic (write a temporary file, hard-link it into place), so processes starting at
    the same time agree on one key. For development only: production keys come from settings.
    """
    path = Path(path)
    if not path.exists():
        if not create:
            raise KeyConfigError(f"no key file {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_key())
        try:
            os.link(tmp, path)  # atomic create-if-missing
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return _decode_key(path.read_text(), str(path))


def ring_from_settings(cfg: "Settings") -> KeyRing:
    """Build the ring from ``DATA_ENCRYPTION_KEYS``, ``DATA_ENCRYPTION_ACTIVE_KEY`` and
    ``OBJECT_STORE_ENCRYPTION_KEY`` (key id ``object-store``).

    The active key defaults to the only key of ``DATA_ENCRYPTION_KEYS``, else ``object-store``. With
    no key at all, development (``TWIN_ENV=development``) uses ``TWIN_KEYS_DIR/dev.key`` (``var/keys``) (generated once;
    ``var/keys/object-store.key``, the recordings' earlier development key, is kept readable), and
    anywhere else it is an error.
    """
    keys: dict[str, bytes] = {}
    raw = cfg.DATA_ENCRYPTION_KEYS.get_secret_value().strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise KeyConfigError('DATA_ENCRYPTION_KEYS is not JSON: expected {"<key id>": "<base64 of 32 bytes>"}') \
                from exc
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise KeyConfigError('DATA_ENCRYPTION_KEYS must be a JSON object {"<key id>": "<base64 of 32 bytes>"}')
        keys = {kid: _decode_key(value, f"DATA_ENCRYPTION_KEYS[{kid!r}]") for kid, value in parsed.items()}
    configured = list(keys)
    legacy = cfg.OBJECT_STORE_ENCRYPTION_KEY.get_secret_value().strip()
    if legacy:
        key = _decode_key(legacy, "OBJECT_STORE_ENCRYPTION_KEY")
        if keys.get(LEGACY_OBJECT_STORE_KEY_ID, key) != key:
            raise KeyConfigError(f"DATA_ENCRYPTION_KEYS[{LEGACY_OBJECT_STORE_KEY_ID!r}] differs from "
                              "OBJECT_STORE_ENCRYPTION_KEY; they name the same key")
        if key not in keys.values():
            keys[LEGACY_OBJECT_STORE_KEY_ID] = key
    active = cfg.DATA_ENCRYPTION_ACTIVE_KEY.strip()
    if not keys:
        if cfg.TWIN_ENV != "development":
            raise KeyConfigError("no encryption key: set DATA_ENCRYPTION_KEYS to {\"<key id>\": \"<base64 of 32 random "
                              "bytes>\"} (`twin crypto generate-key`) and DATA_ENCRYPTION_ACTIVE_KEY")
        folder = cfg.TWIN_KEYS_DIR
        keys[DEV_KEY_ID] = load_key_file(folder / "dev.key")
        if (folder / "object-store.key").exists():
            keys[LEGACY_OBJECT_STORE_KEY_ID] = load_key_file(folder / "object-store.key", create=False)
        active = active or DEV_KEY_ID
    if not active:
        if len(configured) > 1:
            raise KeyConfigError(f"DATA_ENCRYPTION_KEYS holds {len(configured)} keys: set DATA_ENCRYPTION_ACTIVE_KEY "
                              "to the id of the one that encrypts new data")
        active = configured[0] if configured else LEGACY_OBJECT_STORE_KEY_ID
    return KeyRing(keys, active)


_rings: dict[tuple, KeyRing] = {}


def key_ring(cfg: "Settings | None" = None) -> KeyRing:
    """The ring of ``cfg`` (default: the process settings), built once per distinct configuration."""
    if cfg is None:
        from infra.settings import settings as cfg  # noqa: PLC0415 - importing settings reads the env
    ident = (cfg.DATA_ENCRYPTION_KEYS.get_secret_value(), cfg.DATA_ENCRYPTION_ACTIVE_KEY,
             cfg.OBJECT_STORE_ENCRYPTION_KEY.get_secret_value(), cfg.TWIN_ENV, str(cfg.TWIN_KEYS_DIR))
    ring = _rings.get(ident)
    if ring is None:
        ring = _rings[ident] = ring_from_settings(cfg)
    return ring


# --------------------------------------------------------------------------- sealing one value


def _aad(tenant: str, field: str, row: Iterable[Any]) -> bytes:
    return json.dumps([PREFIX, tenant, field, *(str(r) for r in row)], separators=(",", ":"),
                      ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class _Parts:
    kid: str
    key_nonce: bytes
    wrapped: bytes
    body: bytes  # data nonce | ciphertext+tag


def _parse(sealed: str) -> _Parts:
    try:
        prefix, kid, blob = sealed.split(":", 2)
        data = _unb64(blob)
    except (ValueError, AttributeError) as exc:
        raise CryptoError("not a sealed value (twenc1:<key id>:<data>)") from exc
    if prefix != PREFIX or not _KEY_ID_RE.match(kid) or len(data) < _MIN_BLOB:
        raise CryptoError("not a sealed value (twenc1:<key id>:<data>), or truncated")
    return _Parts(kid, data[:_NONCE], data[_NONCE:_NONCE + _WRAPPED], data[_NONCE + _WRAPPED:])


def is_sealed(value: Any) -> bool:
    """True for a string in the sealed format (anything else is stored in clear)."""
    return isinstance(value, str) and value.startswith(PREFIX + ":")


def key_id_of(sealed: str) -> str:
    """The id of the key that wrapped a sealed value's data key."""
    return _parse(sealed).kid


def seal(plaintext: str, tenant: str, field: str, *row: Any, ring: KeyRing | None = None) -> str:
    """Encrypt ``plaintext`` for one field of one row.

    :param tenant: the row's tenant.
    :param field: ``table.column`` (``turns.text``).
    :param row: the row's key, in a fixed order (``session_id, event_id``); with tenant and field it
        is the associated data, so the value decrypts only in this place.
    :param ring: the key ring (default: :func:`key_ring` of the process settings).
    """
    ring = ring or key_ring()
    aad = _aad(tenant, field, row)
    dek, nonce = secrets.token_bytes(32), secrets.token_bytes(_NONCE)
    body = nonce + AESGCM(dek).encrypt(nonce, plaintext.encode(), aad)
    kid, key_nonce, wrapped = ring.wrap(dek, aad)
    return f"{PREFIX}:{kid}:{_b64(key_nonce + wrapped + body)}"


def unseal(sealed: str, tenant: str, field: str, *row: Any, ring: KeyRing | None = None) -> str:
    """The plaintext of a :func:`seal` result; CryptoError when it was tampered with, sealed for
    another tenant, field or row, or its key is not in the ring."""
    ring = ring or key_ring()
    parts = _parse(sealed)
    aad = _aad(tenant, field, row)
    dek = ring.unwrap(parts.kid, parts.key_nonce, parts.wrapped, aad)
    try:
        return AESGCM(dek).decrypt(parts.body[:_NONCE], parts.body[_NONCE:], aad).decode()
    except InvalidTag:
        raise CryptoError(f"{field} of {tenant}/{'/'.join(map(str, row))} failed authentication (tampered)") from None


def rewrap(sealed: str, tenant: str, field: str, *row: Any, ring: KeyRing | None = None) -> str:
    """The same sealed value with its data key wrapped by the active key (unchanged when it already is).

    The ciphertext is not decrypted or changed; only the wrapped data key and the key id are.
    """
    ring = ring or key_ring()
    parts = _parse(sealed)
    if parts.kid == ring.active:
        return sealed
    aad = _aad(tenant, field, row)
    dek = ring.unwrap(parts.kid, parts.key_nonce, parts.wrapped, aad)
    kid, key_nonce, wrapped = ring.wrap(dek, aad)
    return f"{PREFIX}:{kid}:{_b64(key_nonce + wrapped + parts.body)}"


# --------------------------------------------------------------------------- column shapes
# Readers accept rows stored before encryption (clear values pass through unchanged).


def seal_text(value: str | None, tenant: str, field: str, *row: Any, ring: KeyRing | None = None) -> str | None:
    """A text column's stored value: sealed, except None and "" (they say nothing, and SQL filters such
    as ``twin_text <> ''`` keep working)."""
    return seal(value, tenant, field, *row, ring=ring) if value else value


def open_text(value: str | None, tenant: str, field: str, *row: Any, ring: KeyRing | None = None) -> str | None:
    """The plaintext of a text column (sealed or, for rows stored before encryption, clear)."""
    return unseal(value, tenant, field, *row, ring=ring) if is_sealed(value) else value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def seal_json(value: Any, tenant: str, field: str, *row: Any, ring: KeyRing | None = None) -> dict[str, str]:
    """A jsonb column's stored value: ``{"sealed": "twenc1:..."}`` holding ``value`` as JSON."""
    return {"sealed": seal(_dumps(value), tenant, field, *row, ring=ring)}


def _sealed_json(stored: Any) -> str | None:
    if isinstance(stored, dict) and is_sealed(stored.get("sealed")):
        return stored["sealed"]
    return None


def open_json(stored: Any, tenant: str, field: str, *row: Any, ring: KeyRing | None = None) -> Any:
    """The value of a jsonb column written by :func:`seal_json` (a clear value passes through)."""
    sealed = _sealed_json(stored)
    if sealed is not None and len(stored) == 1:
        return json.loads(unseal(sealed, tenant, field, *row, ring=ring))
    return stored


def seal_fields(obj: Mapping[str, Any], names: Iterable[str], tenant: str, field: str, *row: Any,
                ring: KeyRing | None = None) -> dict[str, Any]:
    """A JSON object with some members sealed: those in ``names`` move into ``"sealed"``, the rest
    stay in clear (so SQL can still read them)."""
    names = [n for n in names if n in obj]
    out = {k: v for k, v in obj.items() if k not in names}
    if names:
        out["sealed"] = seal(_dumps({n: obj[n] for n in names}), tenant, field, *row, ring=ring)
    return out


def open_fields(obj: Mapping[str, Any], tenant: str, field: str, *row: Any,
                ring: KeyRing | None = None) -> dict[str, Any]:
    """The whole object again from :func:`seal_fields` (an object without ``"sealed"`` passes through)."""
    if not isinstance(obj, Mapping) or not is_sealed(obj.get("sealed")):
        return obj
    out = {k: v for k, v in obj.items() if k != "sealed"}
    out.update(json.loads(unseal(obj["sealed"], tenant, field, *row, ring=ring)))
    return out


# --------------------------------------------------------------------------- what is sealed where


@dataclass(frozen=True)
class SealedColumn:
    """A PostgreSQL column holding sealed values, for rotation, status and encrypting old rows.

    :param table: the table; ``tenant`` is its tenant column.
    :param column: the column.
    :param key: the row's key columns, in the order they are bound into the associated data.
    :param shape: ``text`` (:func:`seal_text`), ``json`` (:func:`seal_json`) or ``fields``
        (:func:`seal_fields` of ``names``).
    :param names: for ``fields``, the members that are sealed.
    :param page: the primary key columns, to walk the table in batches (default: ``key``).
    """

    table: str
    column: str
    key: tuple[str, ...]
    shape: str
    names: tuple[str, ...] = ()
    page: tuple[str, ...] = ()

    @property
    def field(self) -> str:
        return f"{self.table}.{self.column}"

    @property
    def sealed_sql(self) -> str:
        """SQL for the sealed string of a row (NULL when the row has none)."""
        return self.column if self.shape == "text" else f"({self.column}->>'sealed')"

    def seal(self, value: Any, tenant: str, row: tuple, ring: KeyRing | None = None) -> Any:
        """The stored form of a clear value."""
        if self.shape == "text":
            return seal_text(value, tenant, self.field, *row, ring=ring)
        if self.shape == "json":
            return seal_json(value, tenant, self.field, *row, ring=ring)
        return seal_fields(value, self.names, tenant, self.field, *row, ring=ring)

    def open(self, stored: Any, tenant: str, row: tuple, ring: KeyRing | None = None) -> Any:
        """The clear value of a stored one."""
        if self.shape == "text":
            return open_text(stored, tenant, self.field, *row, ring=ring)
        if self.shape == "json":
            return open_json(stored, tenant, self.field, *row, ring=ring)
        return open_fields(stored, tenant, self.field, *row, ring=ring)


TURNS_TEXT = SealedColumn("turns", "text", ("session_id", "event_id"), "text")
DATASET_TURNS = SealedColumn("dataset_sessions", "turns", ("dataset_ref", "session_id"), "json",
                             page=("tenant", "dataset_ref", "session_id"))
EVAL_TWIN_TEXT = SealedColumn("eval_samples", "twin_text", ("sample_id",), "text")
EVAL_REAL_TEXT = SealedColumn("eval_samples", "real_text", ("sample_id",), "text")
EVAL_CONTEXT = SealedColumn("eval_samples", "context", ("sample_id",), "fields", ("history", "candidateTurn"))
SEALED_COLUMNS = (TURNS_TEXT, DATASET_TURNS, EVAL_TWIN_TEXT, EVAL_REAL_TEXT, EVAL_CONTEXT)
"""Every column with transcript text: live turns, imported/live training transcripts, eval samples."""
