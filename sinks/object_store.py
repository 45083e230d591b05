"""Object storage for screen recordings: a local filesystem store (default) and S3.

Uploads are streamed: a writer takes chunks as they arrive and never holds the whole object in
memory (the local store encrypts and appends each chunk to a temporary file; S3 buffers at most
one multipart part). Nothing is visible under the final key until ``commit()``; ``abort()``
removes every trace, so a rejected or failed upload leaves nothing half-stored.

Encryption at rest:

- local store: envelope encryption. Each object gets a fresh 256-bit data key (AES-256-GCM over
  the stream, the object key as associated data); the data key is wrapped by the active key of the
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
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import os
import secrets
import shutil
import struct
import uuid
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
_MAGIC = b"TWENC2"
_HEADER = struct.Struct(">6sBH12s12s")  # magic, key-id length, wrapped-key length, key nonce, data nonce;
#                                          then the key id and the wrapped key
_TAG_BYTES = 16
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


class _StreamEncryptor:
    """AES-256-GCM over a stream with a fresh data key; see :class:`EnvelopeCipher`."""

    def __init__(self, ring: KeyRing, aad: bytes):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        dek = secrets.token_bytes(32)
        data_nonce = secrets.token_bytes(12)
        self.header = _pack_header(ring, dek, data_nonce, aad)
        self._enc = Cipher(algorithms.AES(dek), modes.GCM(data_nonce)).encryptor()
        self._enc.authenticate_additional_data(aad)

    def update(self, chunk: bytes) -> bytes:
        return self._enc.update(chunk)

    def finalize(self) -> bytes:
        """The last ciphertext bytes followed by the 16-byte authentication tag."""
        return self._enc.finalize() + self._enc.tag


def _pack_header(ring: KeyRing, dek: bytes, data_nonce: bytes, aad: bytes) -> bytes:
    kid, key_nonce, wrapped = ring.wrap(dek, b"dek:" + aad)
    return _HEADER.pack(_MAGIC, len(kid), len(wrapped), key_nonce, data_nonce) + kid.encode() + wrapped


@dataclass(frozen=True)
class _Header:
    kid: str | None  # None: a version-1 header (no key id)
    key_nonce: bytes
    data_nonce: bytes
    wrapped: bytes
    size: int  # bytes of the header, wrapped key included


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
    if buf[:6] == _MAGIC_V1:
        need(_HEADER_V1.size, "header")
        _, wrapped_len, key_nonce, data_nonce = _HEADER_V1.unpack_from(buf)
        kid, fixed, kid_len = None, _HEADER_V1.size, 0
    elif buf[:6] == _MAGIC:
        need(_HEADER.size, "header")
        _, kid_len, wrapped_len, key_nonce, data_nonce = _HEADER.unpack_from(buf)
        fixed = _HEADER.size
        need(fixed + kid_len, "key id")
        kid = buf[fixed:fixed + kid_len].decode("ascii", "replace")
    else:
        raise ObjectStoreError("not an envelope-encrypted object")
    size = fixed + kid_len + wrapped_len
    need(size, "data key")
    return _Header(kid, key_nonce, data_nonce, buf[fixed + kid_len:size], size), buf[size:]


class EnvelopeCipher:
    """Envelope encryption of streams: per-object data keys wrapped by the key ring's active key.

    Layout of an encrypted object: ``header | ciphertext | tag``, where the header holds a magic
    string, the id of the key-encryption key, the wrapped data key and both nonces. The object key
    is bound in as associated data, so a ciphertext copied under another key does not decrypt.
    Objects written before the ring (``TWENC1`` headers, no key id) still decrypt: every key of the
    ring is tried, ``object-store`` (OBJECT_STORE_ENCRYPTION_KEY) first. :meth:`rewrap_header`
    moves an object to the active key without touching its ciphertext (``twin crypto rotate``).

    :param ring: an :class:`infra.crypto.KeyRing`, or one 32-byte key-encryption key.
    """

    name = "envelope:aes-256-gcm"

    def __init__(self, ring: KeyRing | bytes):
        if isinstance(ring, (bytes, bytearray)):
            if len(ring) != 32:
                raise ObjectStoreError("the object store encryption key must be 32 bytes (base64 of 32 random bytes)")
            ring = KeyRing({LEGACY_OBJECT_STORE_KEY_ID: bytes(ring)}, LEGACY_OBJECT_STORE_KEY_ID)
        self.ring = ring

    def encryptor(self, aad: bytes) -> _StreamEncryptor:
        """A new stream encryptor; write ``.header``, then ``update()`` per chunk, then ``finalize()``."""
        return _StreamEncryptor(self.ring, aad)

    def overhead(self) -> int:
        """Bytes an encrypted object has beyond its plaintext."""
        return _HEADER.size + len(self.ring.active) + 32 + 16 + _TAG_BYTES

    def _unwrap(self, header: _Header, aad: bytes) -> tuple[str, bytes]:
        try:
            if header.kid is None:
                return self.ring.unwrap_unlabelled(header.key_nonce, header.wrapped, b"dek:" + aad)
            return header.kid, self.ring.unwrap(header.kid, header.key_nonce, header.wrapped, b"dek:" + aad)
        except CryptoError as exc:
            raise ObjectStoreError(f"the data key does not unwrap: wrong key-encryption key or object key ({exc})") \
                from None

    def key_id(self, head: bytes, aad: bytes) -> str:
        """The id of the key that wraps an object's data key, from the object's first bytes (a
        version-1 header is unwrapped to find out)."""
        header, _ = _read_header(iter([head]))
        return header.kid if header.kid is not None else self._unwrap(header, aad)[0]

    def rewrap_header(self, head: bytes, aad: bytes) -> tuple[bytes, int, str] | None:
        """For an object's first bytes (at least its header): ``(new header, old header size, old key id)``
        with the data key wrapped by the active key, or None when it already is. The rest of the
        object (ciphertext and tag) stays as it is after the new header."""
        header, _ = _read_header(iter([head]))
        kid, dek = self._unwrap(header, aad)
        if header.kid == self.ring.active:
            return None
        return _pack_header(self.ring, dek, header.data_nonce, aad), header.size, kid

    def decrypt(self, data: bytes, aad: bytes) -> bytes:
        """Decrypt a whole object (verifies the tag; raises ObjectStoreError when tampered with)."""
        return b"".join(self.decrypt_chunks(iter([data]), len(data), aad))

    def decrypt_chunks(self, chunks, total: int, aad: bytes):
        """Decrypt an object read as ``chunks`` (an iterator of bytes) of ``total`` bytes.

        Plaintext is yielded as it is decrypted; the tag is checked at the end, and a mismatch
        raises ObjectStoreError (callers must discard what they got).
        """
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        it = iter(chunks)
        header, pending = _read_header(it)
        _, dek = self._unwrap(header, aad)
        dec = Cipher(algorithms.AES(dek), modes.GCM(header.data_nonce)).decryptor()
        dec.authenticate_additional_data(aad)
        body_left = total - header.size - _TAG_BYTES
        if body_left < 0:
            raise ObjectStoreError("encrypted object is truncated (no tag)")
        tail = b""
        while True:
            take = pending[:body_left]
            tail += pending[len(take):]
            body_left -= len(take)
            if take:
                yield dec.update(take)
            try:
                pending = next(it)
            except StopIteration:
                break
        if body_left or len(tail) != _TAG_BYTES:
            raise ObjectStoreError("encrypted object is truncated or has trailing bytes")
        try:
            yield dec.finalize_with_tag(tail)
        except InvalidTag:
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

    def _read(self, key: str) -> bytes:
        path = self.path(key)
        if not self.cipher:
            return path.read_bytes()
        size = path.stat().st_size

        def chunks():
            with open(path, "rb") as fh:
                while block := fh.read(_READ_CHUNK):
                    yield block

        return b"".join(self.cipher.decrypt_chunks(chunks(), size, key.encode()))

    async def read(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._read, key)
        except FileNotFoundError:
            raise ObjectStoreError(f"no object {key!r}") from None

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
                pass


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

    def _read(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as exc:
            raise ObjectStoreError(f"no object {key!r}: {exc}") from exc
        body = obj["Body"]
        if not self.cipher:
            return body.read()
        return b"".join(self.cipher.decrypt_chunks(body.iter_chunks(_READ_CHUNK), obj["ContentLength"], key.encode()))

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

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

