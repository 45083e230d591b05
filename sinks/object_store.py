"""Object storage for screen recordings: a local filesystem store (default) and S3.

Uploads are streamed: a writer takes chunks as they arrive and never holds the whole object in
memory (the local store encrypts and appends each chunk to a temporary file; S3 buffers at most
one multipart part). Nothing is visible under the final key until ``commit()``; ``abort()``
removes every trace, so a rejected or failed upload leaves nothing half-stored.

Encryption at rest:

- local store: envelope encryption. Each object gets a fresh 256-bit data key (AES-256-GCM over
  segments of 64 KiB, each authenticated on its own, the object key as associated data: format
  ``TWENC3``, see :class:`EnvelopeCipher`); the data key is wrapped by the active key of the
  key ring (``infra.crypto``: ``DATA_ENCRYPTION_KEYS``/``DATA_ENCRYPTION_ACTIVE_KEY``, with
  ``OBJECT_STORE_ENCRYPTION_KEY`` as key id ``object-store``) and stored, with that key's id, in the
  object's header. ``rewrap()`` moves an object to the active key (``twin crypto rotate``).
- S3: server-side encryption requested on every write (``OBJECT_STORE_S3_SSE``: ``AES256`` or
  ``aws:kms``) and as the bucket default; ``OBJECT_STORE_S3_ENVELOPE`` adds the same envelope
  encryption client-side, for servers that only record the SSE header.

Usage::

    store = object_store_from_settings(settings)
    writer = await store.begin("acme/sess-1/rec.mp4", "video/mp4")
    async for chunk in chunks:
        await writer.write(chunk)
    stored = await writer.commit()          # or: await writer.abort()
    data = await store.read(stored.key)     # decrypted
    async for chunk in store.stream(stored.key):   # decrypted, authenticated chunk by chunk
        ...
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import logging
import os
import secrets
import shutil
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from infra.crypto import LEGACY_OBJECT_STORE_KEY_ID, CryptoError, KeyRing, key_ring
from sinks.base import SinkError

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = [
    "EnvelopeCipher",
    "LocalObjectStore",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectWriter",
    "S3ObjectStore",
    "StoredObject",
    "object_store_ring",
    "object_store_from_settings",
]

_MAGIC_V1 = b"TWENC1"  # before the key ring: no key id, the data key was wrapped by OBJECT_STORE_ENCRYPTION_KEY
_HEADER_V1 = struct.Struct(">6sH12s12s")  # magic, wrapped-key length, key nonce, data nonce; then the wrapped key
_MAGIC_V2 = b"TWENC2"  # one AES-GCM tag over the whole object, checked only at its end
_HEADER_V2 = struct.Struct(">6sBH12s12s")  # magic, key-id length, wrapped-key length, key nonce, data nonce;
#                                            then the key id and the wrapped key
_MAGIC = b"TWENC3"  # chunked: every segment authenticated on its own (STREAM), see EnvelopeCipher
_HEADER = struct.Struct(">6sBH12sI7s")  # magic, key-id length, wrapped-key length, key nonce, segment size,
#                                         nonce prefix; then the key id and the wrapped key
_TAG_BYTES = 16
_NONCE_PREFIX = 7
SEGMENT_BYTES = 64 * 1024  # plaintext bytes per authenticated segment of new objects
_MIN_SEGMENT, _MAX_SEGMENT = 1024, 8 * 1024**2  # what a reader accepts from a header (bounds its memory)
_MAX_SEGMENTS = 2**32 - 1  # the segment counter is 32 bits
_SPOOL_BYTES = 8 * 1024**2  # old-format objects are verified first; their ciphertext spills to disk past this
_READ_CHUNK = 1024 * 1024
_HEAD_BYTES = 1024  # enough for any header (key ids are at most 64 bytes)


class ObjectStoreError(SinkError):
    """The object store refused a write or read, or is misconfigured (the message says which setting)."""


@dataclass(frozen=True)
class StoredObject:
    """A committed object: where it is, how big (plaintext bytes), its SHA-256 and how it is encrypted."""

    key: str
    url: str
    size: int
    sha256: str
    content_type: str
    encryption: str


# --------------------------------------------------------------------------- envelope encryption


def _wrap_aad(version: int, aad: bytes) -> bytes:
    """Associated data of the data key's wrap: the object key, and (from version 3) the format, so a
    chunked object's data key cannot be relabelled as an old single-tag object's."""
    return (b"dek:" if version < 3 else b"dek:TWENC3:") + aad


def _stream_aad(segment: int, prefix: bytes, aad: bytes) -> bytes:
    """Associated data of every segment: the format, the segment size, the nonce prefix, the object key."""
    return _MAGIC + struct.pack(">I", segment) + prefix + aad


def _segment_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    """prefix (7 bytes) | segment counter (4 bytes, big-endian) | 1 for the final segment else 0."""
    if index > _MAX_SEGMENTS:
        raise ObjectStoreError("object too large for its segment size (2^32 segments)")
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class _StreamEncryptor:
    """Chunked AES-256-GCM with a fresh data key (format ``TWENC3``); see :class:`EnvelopeCipher`.

    ``update`` returns whole encrypted segments (possibly none), ``finalize`` the final one: a
    segment is only sealed once it is known whether more plaintext follows it.
    """

    def __init__(self, ring: KeyRing, aad: bytes, segment: int = SEGMENT_BYTES):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not _MIN_SEGMENT <= segment <= _MAX_SEGMENT:
            raise ObjectStoreError(f"segment size must be {_MIN_SEGMENT}..{_MAX_SEGMENT} bytes")
        dek = secrets.token_bytes(32)
        self._prefix = secrets.token_bytes(_NONCE_PREFIX)
        self._segment = segment
        self._aead = AESGCM(dek)
        self._aad = _stream_aad(segment, self._prefix, aad)
        self._buf = bytearray()
        self._index = 0
        self._done = False
        self.header = _pack_header(ring, dek, segment, self._prefix, aad)

    def _seal(self, plaintext: bytes, last: bool) -> bytes:
        nonce = _segment_nonce(self._prefix, self._index, last)
        self._index += 1
        return self._aead.encrypt(nonce, plaintext, self._aad)

    def update(self, chunk: bytes) -> bytes:
        if self._done:
            raise ObjectStoreError("encryptor already finalized")
        self._buf += chunk
        out = []
        seg = self._segment
        taken = 0
        while len(self._buf) - taken > seg:  # strictly more: this segment is not the last
            out.append(self._seal(bytes(self._buf[taken:taken + seg]), last=False))
            taken += seg
        del self._buf[:taken]
        return b"".join(out)

    def finalize(self) -> bytes:
        """The final segment (0 to segment-size plaintext bytes, flagged as the last)."""
        if self._done:
            raise ObjectStoreError("encryptor already finalized")
        self._done = True
        last, self._buf = bytes(self._buf), bytearray()
        return self._seal(last, last=True)


def _pack_header(ring: KeyRing, dek: bytes, segment: int, prefix: bytes, aad: bytes) -> bytes:
    kid, key_nonce, wrapped = ring.wrap(dek, _wrap_aad(3, aad))
    return _HEADER.pack(_MAGIC, len(kid), len(wrapped), key_nonce, segment, prefix) + kid.encode() + wrapped


def _pack_header_v2(ring: KeyRing, dek: bytes, data_nonce: bytes, aad: bytes) -> bytes:
    kid, key_nonce, wrapped = ring.wrap(dek, _wrap_aad(2, aad))
    return _HEADER_V2.pack(_MAGIC_V2, len(kid), len(wrapped), key_nonce, data_nonce) + kid.encode() + wrapped


@dataclass(frozen=True)
class _Header:
    version: int  # 1, 2: one GCM tag over the whole object; 3: authenticated segments
    kid: str | None  # None: a version-1 header (no key id)
    key_nonce: bytes
    wrapped: bytes
    size: int  # bytes of the header, wrapped key included
    data_nonce: bytes = b""  # versions 1 and 2
    segment: int = 0  # version 3: plaintext bytes per segment
    prefix: bytes = b""  # version 3: nonce prefix


def _read_header(it, buf: bytes = b"") -> tuple[_Header, bytes]:
    """Parse the header from the front of a chunk iterator; returns it and the bytes read past it."""
    def need(n: int, what: str) -> None:
        nonlocal buf
        while len(buf) < n:
            try:
                buf += next(it)
            except StopIteration:
                raise ObjectStoreError(f"encrypted object is truncated (no {what})") from None

    need(6, "header")
    extra: dict = {}
    if buf[:6] == _MAGIC_V1:
        need(_HEADER_V1.size, "header")
        _, wrapped_len, key_nonce, data_nonce = _HEADER_V1.unpack_from(buf)
        version, kid, fixed, kid_len = 1, None, _HEADER_V1.size, 0
        extra["data_nonce"] = data_nonce
    elif buf[:6] in (_MAGIC_V2, _MAGIC):
        version = 2 if buf[:6] == _MAGIC_V2 else 3
        fmt = _HEADER_V2 if version == 2 else _HEADER
        need(fmt.size, "header")
        if version == 2:
            _, kid_len, wrapped_len, key_nonce, data_nonce = fmt.unpack_from(buf)
            extra["data_nonce"] = data_nonce
        else:
            _, kid_len, wrapped_len, key_nonce, segment, prefix = fmt.unpack_from(buf)
            if not _MIN_SEGMENT <= segment <= _MAX_SEGMENT:
                raise ObjectStoreError("encrypted object has a corrupt header (segment size)")
            extra.update(segment=segment, prefix=prefix)
        fixed = fmt.size
        need(fixed + kid_len, "key id")
        kid = buf[fixed:fixed + kid_len].decode("ascii", "replace")
    else:
        raise ObjectStoreError("not an envelope-encrypted object")
    size = fixed + kid_len + wrapped_len
    need(size, "data key")
    return _Header(version, kid, key_nonce, buf[fixed + kid_len:size], size, **extra), buf[size:]


class EnvelopeCipher:
    """Envelope encryption of streams: per-object data keys wrapped by the key ring's active key.

    Layout of an object written now (format ``TWENC3``, a chunked "STREAM" construction as in Tink's
    streaming AEAD)::

        header   "TWENC3" | key-id length (1) | wrapped-key length (2) | key nonce (12)
                 | segment size S (4) | nonce prefix P (7) | key id | wrapped data key
        segments C_0 | C_1 | ... | C_n      C_i = AES-256-GCM(data key, N_i, plaintext_i, A)
                 N_i = P | i (4 bytes, big-endian) | 1 if i == n else 0
                 A   = "TWENC3" | S (4) | P | object key

    Every segment but the last holds exactly S plaintext bytes (S + 16 stored); the last holds 0..S
    (an empty object is one empty final segment). A reader releases a segment's plaintext only after
    its tag verifies, so a tampered object yields nothing of the bad segment; the counter in the nonce
    rejects reordered, duplicated or dropped segments, the final flag a truncated object (cut at a
    segment boundary, the new last segment was sealed as not-final), the fresh data key per object
    and the object key in ``A`` segments moved between objects or an object moved to another key.
    The data key is wrapped by the ring's active key with ``"dek:TWENC3:" | object key`` (and the key
    id) as associated data; the other header fields are bound through ``N_i`` and ``A``.

    Older formats still decrypt: ``TWENC2`` (key id, one GCM tag over the whole object) and
    ``TWENC1`` (before the ring: every key is tried, ``object-store`` first). Their tag is only at the
    end, so their ciphertext is verified in full before the first plaintext byte is released (spooled
    to a temporary file past 8 MiB: ciphertext only, never plaintext). :meth:`rewrap_header` moves
    an object of any format to the active key without touching its ciphertext (``twin crypto rotate``).

    :param ring: an :class:`infra.crypto.KeyRing`, or one 32-byte key-encryption key.
    :param segment_bytes: plaintext bytes per segment of new objects.
    """

    name = "envelope:aes-256-gcm"

    def __init__(self, ring: KeyRing | bytes, segment_bytes: int = SEGMENT_BYTES):
        if isinstance(ring, (bytes, bytearray)):
            if len(ring) != 32:
                raise ObjectStoreError("the object store encryption key must be 32 bytes (base64 of 32 random bytes)")
            ring = KeyRing({LEGACY_OBJECT_STORE_KEY_ID: bytes(ring)}, LEGACY_OBJECT_STORE_KEY_ID)
        if not _MIN_SEGMENT <= segment_bytes <= _MAX_SEGMENT:
            raise ObjectStoreError(f"segment size must be {_MIN_SEGMENT}..{_MAX_SEGMENT} bytes")
        self.ring = ring
        self.segment_bytes = segment_bytes

    def encryptor(self, aad: bytes) -> _StreamEncryptor:
        """A new stream encryptor; write ``.header``, then ``update()`` per chunk, then ``finalize()``."""
        return _StreamEncryptor(self.ring, aad, self.segment_bytes)

    def overhead(self, size: int = 0) -> int:
        """Bytes an encrypted object of ``size`` plaintext bytes has beyond its plaintext."""
        segments = max(1, -(-size // self.segment_bytes))
        return _HEADER.size + len(self.ring.active) + 32 + 16 + segments * _TAG_BYTES

    def _unwrap(self, header: _Header, aad: bytes) -> tuple[str, bytes]:
        wrap_aad = _wrap_aad(header.version, aad)
        try:
            if header.kid is None:
                return self.ring.unwrap_unlabelled(header.key_nonce, header.wrapped, wrap_aad)
            return header.kid, self.ring.unwrap(header.kid, header.key_nonce, header.wrapped, wrap_aad)
        except CryptoError as exc:
            raise ObjectStoreError(f"the data key does not unwrap: wrong key-encryption key or object key ({exc})") \
                from None

    def key_id(self, head: bytes, aad: bytes) -> str:
        """The id of the key that wraps an object's data key, from the object's first bytes (a
        version-1 header is unwrapped to find out)."""
        header, _ = _read_header(iter([head]))
        return header.kid if header.kid is not None else self._unwrap(header, aad)[0]

    def format_version(self, head: bytes) -> int:
        """1, 2 (one tag at the end of the object) or 3 (authenticated segments), from its first bytes."""
        return _read_header(iter([head]))[0].version

    def rewrap_header(self, head: bytes, aad: bytes) -> tuple[bytes, int, str] | None:
        """For an object's first bytes (at least its header): ``(new header, old header size, old key id)``
        with the data key wrapped by the active key, or None when it already is. The rest of the
        object (ciphertext and tags) stays as it is after the new header."""
        header, _ = _read_header(iter([head]))
        kid, dek = self._unwrap(header, aad)
        if header.kid == self.ring.active:
            return None
        if header.version == 3:
            return _pack_header(self.ring, dek, header.segment, header.prefix, aad), header.size, kid
        return _pack_header_v2(self.ring, dek, header.data_nonce, aad), header.size, kid

    def decrypt(self, data: bytes, aad: bytes) -> bytes:
        """Decrypt a whole object (raises ObjectStoreError when tampered with)."""
        return b"".join(self.decrypt_chunks(iter([data]), len(data), aad))

    def decrypt_chunks(self, chunks, total: int | None, aad: bytes):
        """Decrypt an object read as ``chunks`` (an iterable of bytes) of ``total`` bytes.

        Yields plaintext that has been authenticated, and only that: a ``TWENC3`` object segment by
        segment (memory: one segment plus one read chunk), an older one after its whole ciphertext
        verified. Tampering, truncation, reordering or trailing bytes raise ObjectStoreError before any
        plaintext of the bad part is yielded; a stream that ends without raising is the whole object.
        ``total`` (the stored size) is required for the older formats only.
        """
        it = iter(chunks)
        header, pending = _read_header(it)
        _, dek = self._unwrap(header, aad)
        if header.version == 3:
            yield from self._open_segments(header, dek, pending, it, aad)
        else:
            if total is None:
                raise ObjectStoreError("reading an old-format (single tag) object needs its stored size")
            yield from self._open_single_tag(header, dek, pending, it, total, aad)

    @staticmethod
    def _open_segments(header: _Header, dek: bytes, pending: bytes, it, aad: bytes):
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        aead = AESGCM(dek)
        stream_aad = _stream_aad(header.segment, header.prefix, aad)
        sealed = header.segment + _TAG_BYTES
        buf, pos, index, exhausted = bytes(pending), 0, 0, False

        def open_segment(ciphertext: bytes, last: bool) -> bytes:
            try:
                return aead.decrypt(_segment_nonce(header.prefix, index, last), ciphertext, stream_aad)
            except InvalidTag:
                what = "the final segment (truncated, or tampered)" if last else f"segment {index}"
                raise ObjectStoreError(f"encrypted object failed authentication at {what}: tampered, truncated, "
                                       "reordered or corrupt") from None

        while True:
            # A segment is the last one when nothing follows it: keep reading until more than one
            # sealed segment is buffered, or the object ends.
            while not exhausted and len(buf) - pos <= sealed:
                try:
                    block = next(it)
                except StopIteration:
                    exhausted = True
                    break
                if block:
                    buf = buf[pos:] + bytes(block)
                    pos = 0
            if len(buf) - pos > sealed:
                plaintext = open_segment(buf[pos:pos + sealed], last=False)
                pos += sealed
                index += 1
                yield plaintext
                continue
            rest = buf[pos:]
            if len(rest) < _TAG_BYTES:
                raise ObjectStoreError("encrypted object is truncated (no final segment)")
            plaintext = open_segment(rest, last=True)
            if plaintext:
                yield plaintext
            return

    @staticmethod
    def _open_single_tag(header: _Header, dek: bytes, pending: bytes, it, total: int, aad: bytes):
        """Formats 1 and 2: verify the one tag over the whole ciphertext first (spooling it), then
        decrypt the verified copy."""
        import tempfile

        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        def decryptor():
            dec = Cipher(algorithms.AES(dek), modes.GCM(header.data_nonce)).decryptor()
            dec.authenticate_additional_data(aad)
            return dec

        body_left = total - header.size - _TAG_BYTES
        if body_left < 0:
            raise ObjectStoreError("encrypted object is truncated (no tag)")
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            check = decryptor()
            tail = b""
            while True:
                take = pending[:body_left]
                tail += pending[len(take):]
                body_left -= len(take)
                if take:
                    check.update(take)  # the plaintext is dropped: nothing is released before the tag
                    spool.write(take)
                try:
                    pending = next(it)
                except StopIteration:
                    break
            if body_left or len(tail) != _TAG_BYTES:
                raise ObjectStoreError("encrypted object is truncated or has trailing bytes")
            try:
                check.finalize_with_tag(tail)
            except InvalidTag:
                raise ObjectStoreError("encrypted object failed authentication (tampered or corrupt)") from None
            spool.seek(0)
            dec = decryptor()
            while block := spool.read(_READ_CHUNK):
                yield dec.update(block)
            try:
                dec.finalize_with_tag(tail)
            except InvalidTag:  # pragma: no cover - the spool changed under us
                raise ObjectStoreError("encrypted object failed authentication (tampered or corrupt)") from None


def object_store_ring(cfg: "Settings") -> KeyRing:
    """The settings' key ring (:func:`infra.crypto.key_ring`); ObjectStoreError when misconfigured."""
    try:
        return key_ring(cfg)
    except CryptoError as exc:
        raise ObjectStoreError(str(exc)) from exc


# --------------------------------------------------------------------------- the interface


class ObjectWriter(abc.ABC):
    """One upload in progress. ``write`` chunks, then exactly one of ``commit`` or ``abort``."""

    def __init__(self, key: str, content_type: str):
        self.key = key
        self.content_type = content_type
        self.size = 0
        self._sha = hashlib.sha256()

    async def write(self, chunk: bytes) -> None:
        """Append plaintext bytes."""
        if chunk:
            self.size += len(chunk)
            self._sha.update(chunk)
            await self._write(chunk)

    @abc.abstractmethod
    async def _write(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    async def commit(self) -> StoredObject:
        """Make the object visible under its key; returns what was stored."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard everything written so far (safe to call twice, or after a failed commit)."""

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


class ObjectStore(abc.ABC):
    """Where recordings go. Keys are ``/``-separated paths without leading slash."""

    encryption: str = "none"

    @abc.abstractmethod
    async def begin(self, key: str, content_type: str) -> ObjectWriter:
        """Start a streamed upload to ``key``."""

    @abc.abstractmethod
    async def read(self, key: str) -> bytes:
        """The whole object's plaintext (for tests and small objects)."""

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """The object's plaintext, chunk by chunk with bounded memory; every chunk has been
        authenticated before it is yielded, and a tampered or truncated object raises
        ObjectStoreError instead of ending (what was yielded before it is authentic)."""
        yield await self.read(key)

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether a committed object exists under ``key``."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove an object (erasure, retention); missing objects are fine."""

    @abc.abstractmethod
    def url(self, key: str) -> str:
        """The durable URL stored on the session (``file://...`` or ``s3://bucket/key``)."""

    @abc.abstractmethod
    async def keys(self, prefix: str = "") -> list[str]:
        """Committed keys under a prefix (tests check that failed uploads left nothing)."""

    async def key_id(self, key: str) -> str | None:
        """The id of the key-encryption key that wraps an object's data key (None: this store does not
        envelope-encrypt)."""
        return None

    async def rewrap(self, key: str) -> str | None:
        """Key rotation: rewrite the object's header so that the active key wraps its data key (the
        ciphertext is copied unchanged). Returns the previous key id, or None when nothing changed."""
        return None


async def _in_thread(make_chunks) -> AsyncIterator[bytes]:
    """An async iterator over a blocking one (built by ``make_chunks()`` in a worker thread)."""
    chunks = await asyncio.to_thread(make_chunks)
    done = object()
    try:
        while (chunk := await asyncio.to_thread(next, chunks, done)) is not done:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ObjectStoreError(f"invalid object key {key!r}")
    return key


# --------------------------------------------------------------------------- local filesystem


class _LocalWriter(ObjectWriter):
    def __init__(self, store: "LocalObjectStore", key: str, content_type: str):
        super().__init__(key, content_type)
        self.store = store
        self.final = store.path(key)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name is not a key shape `keys()` lists: a crash leaves an ignorable file.
        self.tmp = self.final.parent / f".{self.final.name}.{uuid.uuid4().hex}.part"
        self._fh = open(self.tmp, "xb")
        self._enc = store.cipher.encryptor(key.encode()) if store.cipher else None
        if self._enc:
            self._fh.write(self._enc.header)
        self._done = False

    async def _write(self, chunk: bytes) -> None:
        data = self._enc.update(chunk) if self._enc else chunk
        await asyncio.to_thread(self._fh.write, data)

    def _finish(self) -> None:
        if self._enc:
            self._fh.write(self._enc.finalize())
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.final)

    async def commit(self) -> StoredObject:
        if self._done:
            raise ObjectStoreError("writer already finished")
        if self.size == 0:
            await self.abort()
            raise ObjectStoreError("refusing to store an empty object")
        try:
            await asyncio.to_thread(self._finish)
        except OSError as exc:
            await self.abort()
            raise ObjectStoreError(f"cannot store {self.key}: {exc}") from exc
        self._done = True
        return StoredObject(self.key, self.store.url(self.key), self.size, self.sha256, self.content_type,
                            self.store.encryption)

    async def abort(self) -> None:
        self._done = True
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``, envelope-encrypted when a cipher is given.

    :param root: directory holding the objects (created when missing).
    :param cipher: an :class:`EnvelopeCipher`; None stores plaintext (tests of the plumbing only).
    """

    def __init__(self, root: Path, cipher: EnvelopeCipher | None):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.cipher = cipher
        self.encryption = cipher.name if cipher else "none"

    def path(self, key: str) -> Path:
        return self.root / _check_key(key)

    async def begin(self, key: str, content_type: str) -> ObjectWriter:
        return _LocalWriter(self, _check_key(key), content_type)

    def _chunks(self, key: str):
        path = self.path(key)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            raise ObjectStoreError(f"no object {key!r}") from None

        def blocks():
            with fh:
                while block := fh.read(_READ_CHUNK):
                    yield block

        if not self.cipher:
            return blocks()
        return self.cipher.decrypt_chunks(blocks(), os.fstat(fh.fileno()).st_size, key.encode())

    def _read(self, key: str) -> bytes:
        return b"".join(self._chunks(key))

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        async for chunk in _in_thread(lambda: self._chunks(key)):
            yield chunk

    def _head(self, key: str) -> bytes:
        with open(self.path(key), "rb") as fh:
            return fh.read(_HEAD_BYTES)

    async def key_id(self, key: str) -> str | None:
        if not self.cipher:
            return None
        return self.cipher.key_id(await asyncio.to_thread(self._head, key), key.encode())

    def _rewrap(self, key: str) -> str | None:
        path = self.path(key)
        with open(path, "rb") as src:
            result = self.cipher.rewrap_header(src.read(_HEAD_BYTES), key.encode())
            if result is None:
                return None
            header, old_size, old_kid = result
            tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.part"
            try:
                with open(tmp, "xb") as out:
                    out.write(header)
                    src.seek(old_size)
                    shutil.copyfileobj(src, out, _READ_CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                if not path.exists():  # deleted meanwhile (erasure, retention): do not bring it back
                    return None
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return old_kid

    async def rewrap(self, key: str) -> str | None:
        if not self.cipher:
            return None
        return await asyncio.to_thread(self._rewrap, key)

    async def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        return self.path(key).as_uri()

    async def keys(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        out = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                out.append(path.relative_to(self.root).as_posix())
        return sorted(out)


# --------------------------------------------------------------------------- S3


class _S3Writer(ObjectWriter):
    def __init__(self, store: "S3ObjectStore", key: str, content_type: str, raw: bool = False):
        super().__init__(key, content_type)
        self.store = store
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        # raw: the bytes written are already what is stored (rotation copies a ciphertext as is).
        self._enc = store.cipher.encryptor(key.encode()) if store.cipher and not raw else None
        if self._enc:
            self._buf += self._enc.header
        self._done = False

    async def _write(self, chunk: bytes) -> None:
        self._buf += self._enc.update(chunk) if self._enc else chunk
        # At most one part (plus one network chunk) in memory.
        while len(self._buf) >= self.store.part_bytes:
            part = bytes(self._buf[: self.store.part_bytes])
            del self._buf[: self.store.part_bytes]
            await self._upload_part(part)

    async def _upload_part(self, body: bytes) -> None:
        s3 = self.store.client
        try:
            if self._upload_id is None:
                created = await asyncio.to_thread(
                    s3.create_multipart_upload, Bucket=self.store.bucket, Key=self.store.full_key(self.key),
                    ContentType=self.content_type, **self.store.sse_args())
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            resp = await asyncio.to_thread(
                s3.upload_part, Bucket=self.store.bucket, Key=self.store.full_key(self.key), UploadId=self._upload_id,
                PartNumber=number, Body=body)
            self._parts.append({"ETag": resp["ETag"], "PartNumber": number})
        except Exception as exc:  # botocore raises many types; all mean "not stored"
            await self.abort()
            raise ObjectStoreError(f"S3 upload of {self.key} failed: {exc}") from exc

    async def commit(self) -> StoredObject:
        if self._done:
            raise ObjectStoreError("writer already finished")
        if self.size == 0:
            await self.abort()
            raise ObjectStoreError("refusing to store an empty object")
        if self._enc:
            self._buf += self._enc.finalize()
        s3, full = self.store.client, self.store.full_key(self.key)
        try:
            if self._upload_id is None:  # small object: one request
                await asyncio.to_thread(s3.put_object, Bucket=self.store.bucket, Key=full, Body=bytes(self._buf),
                                        ContentType=self.content_type, **self.store.sse_args())
            else:
                if self._buf:
                    await self._upload_part(bytes(self._buf))
                await asyncio.to_thread(s3.complete_multipart_upload, Bucket=self.store.bucket, Key=full,
                                        UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
        except ObjectStoreError:
            raise
        except Exception as exc:
            await self.abort()
            raise ObjectStoreError(f"S3 upload of {self.key} failed: {exc}") from exc
        finally:
            self._buf = bytearray()
        self._done = True
        return StoredObject(self.key, self.store.url(self.key), self.size, self.sha256, self.content_type,
                            self.store.encryption)

    async def abort(self) -> None:
        self._done = True
        self._buf = bytearray()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                await asyncio.to_thread(self.store.client.abort_multipart_upload, Bucket=self.store.bucket,
                                        Key=self.store.full_key(self.key), UploadId=upload_id)
            except Exception:  # noqa: BLE001 - best effort; S3 lifecycle rules expire leftovers too
                logging.getLogger(__name__).warning("S3 multipart upload %s of %s not aborted", upload_id, self.key,
                                                    exc_info=True)


class S3ObjectStore(ObjectStore):
    """Objects in an S3 bucket (AWS or any S3-compatible server), with server-side encryption.

    :param client: a boto3 S3 client (see :func:`object_store_from_settings`).
    :param bucket: bucket name; :meth:`ensure_bucket` creates it with default encryption.
    :param prefix: key prefix inside the bucket (``s3://bucket/prefix``).
    :param sse: ``AES256`` or ``aws:kms`` (the ``x-amz-server-side-encryption`` header).
    :param kms_key_id: KMS key for ``aws:kms``.
    :param part_bytes: multipart part size; S3 requires at least 5 MiB for all parts but the last.
    :param cipher: optional client-side :class:`EnvelopeCipher` on top of SSE.
    """

    def __init__(self, client, bucket: str, prefix: str = "", sse: str = "AES256", kms_key_id: str = "",
                 part_bytes: int = 8 * 1024**2, cipher: EnvelopeCipher | None = None):
        if sse not in ("AES256", "aws:kms"):
            raise ObjectStoreError(f"OBJECT_STORE_S3_SSE must be AES256 or aws:kms, not {sse!r}")
        if part_bytes < 5 * 1024**2:
            raise ObjectStoreError("OBJECT_STORE_S3_PART_BYTES must be at least 5 MiB (the S3 minimum part size)")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.part_bytes = part_bytes
        self.cipher = cipher
        self.encryption = f"sse:{sse}" + (f"+{cipher.name}" if cipher else "")

    def full_key(self, key: str) -> str:
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def sse_args(self) -> dict[str, str]:
        args = {"ServerSideEncryption": self.sse}
        if self.sse == "aws:kms" and self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    def ensure_bucket(self) -> None:
        """Create the bucket when missing and make SSE its default encryption."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise ObjectStoreError(f"cannot create bucket {self.bucket}: {exc}") from exc
        rule: dict = {"SSEAlgorithm": self.sse}
        if self.sse == "aws:kms" and self.kms_key_id:
            rule["KMSMasterKeyID"] = self.kms_key_id
        self.client.put_bucket_encryption(
            Bucket=self.bucket,
            ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]},
        )

    async def begin(self, key: str, content_type: str) -> ObjectWriter:
        return _S3Writer(self, _check_key(key), content_type)

    def _chunks(self, key: str):
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as exc:
            raise ObjectStoreError(f"no object {key!r}: {exc}") from exc
        blocks = obj["Body"].iter_chunks(_READ_CHUNK)
        if not self.cipher:
            return blocks
        return self.cipher.decrypt_chunks(blocks, obj["ContentLength"], key.encode())

    def _read(self, key: str) -> bytes:
        return b"".join(self._chunks(key))

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        async for chunk in _in_thread(lambda: self._chunks(key)):
            yield chunk

    def _head(self, key: str) -> bytes:
        obj = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key), Range=f"bytes=0-{_HEAD_BYTES - 1}")
        return obj["Body"].read()

    async def key_id(self, key: str) -> str | None:
        if not self.cipher:
            return None
        return self.cipher.key_id(await asyncio.to_thread(self._head, key), key.encode())

    async def rewrap(self, key: str) -> str | None:
        if not self.cipher:
            return None
        result = self.cipher.rewrap_header(await asyncio.to_thread(self._head, key), key.encode())
        if result is None:
            return None
        header, old_size, old_kid = result
        obj = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self.full_key(key),
                                      Range=f"bytes={old_size}-")
        # A streamed re-upload of header + unchanged ciphertext; the old version stays readable until
        # the new one is complete (at most one part in memory).
        writer = _S3Writer(self, key, obj.get("ContentType") or "application/octet-stream", raw=True)
        try:
            await writer.write(header)
            chunks = obj["Body"].iter_chunks(_READ_CHUNK)
            while chunk := await asyncio.to_thread(next, chunks, b""):
                await writer.write(chunk)
        except BaseException:
            await writer.abort()
            raise
        if not await self.exists(key):  # deleted meanwhile (erasure, retention): do not bring it back
            await writer.abort()
            return None
        await writer.commit()
        return old_kid

    def head(self, key: str) -> dict:
        """The object's metadata as S3 reports it (``ServerSideEncryption``, ``ContentLength``...)."""
        return self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))

    async def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self.head, key)
            return True
        except ClientError:
            return False

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self.full_key(key))

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    def _keys(self, prefix: str) -> list[str]:
        full = self.full_key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            for item in page.get("Contents", []):
                key = item["Key"]
                out.append(key[len(self.prefix) + 1:] if self.prefix else key)
        return sorted(out)

    async def keys(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._keys, prefix)

    def pending_uploads(self) -> int:
        """Multipart uploads started and neither completed nor aborted (0 after a clean abort)."""
        return len(self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []))


# --------------------------------------------------------------------------- from settings


def s3_client(cfg: "Settings"):
    """A boto3 S3 client for ``OBJECT_STORE_S3_*`` (path-style addressing for local servers)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - boto3 is a project dependency
        raise ObjectStoreError("S3 object storage needs boto3: pip install boto3") from exc
    return boto3.client(
        "s3",
        endpoint_url=cfg.OBJECT_STORE_S3_ENDPOINT or None,
        region_name=cfg.OBJECT_STORE_S3_REGION,
        aws_access_key_id=cfg.OBJECT_STORE_S3_ACCESS_KEY.get_secret_value() or None,
        aws_secret_access_key=cfg.OBJECT_STORE_S3_SECRET_KEY.get_secret_value() or None,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                      connect_timeout=5, read_timeout=60),
    )


def object_store_from_settings(cfg: "Settings") -> ObjectStore:
    """The store named by ``OBJECT_STORE_URL``: empty or ``file:///dir`` (local), ``s3://bucket[/prefix]``."""
    url = cfg.OBJECT_STORE_URL.strip()
    if not url:
        return LocalObjectStore(cfg.TWIN_VAR_DIR / "objects", EnvelopeCipher(object_store_ring(cfg)))
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(parsed.path), EnvelopeCipher(object_store_ring(cfg)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ObjectStoreError(f"OBJECT_STORE_URL {url!r} names no bucket (s3://bucket[/prefix])")
        cipher = EnvelopeCipher(object_store_ring(cfg)) if cfg.OBJECT_STORE_S3_ENVELOPE else None
        store = S3ObjectStore(s3_client(cfg), parsed.netloc, parsed.path, sse=cfg.OBJECT_STORE_S3_SSE,
                              kms_key_id=cfg.OBJECT_STORE_S3_KMS_KEY_ID, part_bytes=cfg.OBJECT_STORE_S3_PART_BYTES,
                              cipher=cipher)
        store.ensure_bucket()
        return store
    raise ObjectStoreError(f"OBJECT_STORE_URL must be empty, file:///path or s3://bucket, not {url!r}")

