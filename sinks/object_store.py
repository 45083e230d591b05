"""Object storage for screen recordings: a local filesystem store (default) and S3.

Uploads are streamed: a writer takes chunks as they arrive and never holds the whole object in
memory (the local store encrypts and appends each chunk to a temporary file; S3 buffers at most
one multipart part). Nothing is visible under the final key until ``commit()``; ``abort()``
removes every trace, so a rejected or failed upload leaves nothing half-stored.

Encryption at rest:

- local store: envelope encryption. Each object gets a fresh 256-bit data key (AES-256-GCM over
  the stream, the object key as associated data); the data key is wrapped with the configured
  key-encryption key (``OBJECT_STORE_ENCRYPTION_KEY``) and stored in the object's header.
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
import base64
import hashlib
import os
import secrets
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

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
    "load_encryption_key",
    "object_store_from_settings",
]

_MAGIC = b"TWENC1"
_HEADER = struct.Struct(">6sH12s12s")  # magic, wrapped-key length, key nonce, data nonce
_TAG_BYTES = 16
_READ_CHUNK = 1024 * 1024


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

    def __init__(self, kek: bytes, aad: bytes):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        dek = secrets.token_bytes(32)
        key_nonce, data_nonce = secrets.token_bytes(12), secrets.token_bytes(12)
        wrapped = AESGCM(kek).encrypt(key_nonce, dek, b"dek:" + aad)
        self.header = _HEADER.pack(_MAGIC, len(wrapped), key_nonce, data_nonce) + wrapped
        self._enc = Cipher(algorithms.AES(dek), modes.GCM(data_nonce)).encryptor()
        self._enc.authenticate_additional_data(aad)

    def update(self, chunk: bytes) -> bytes:
        return self._enc.update(chunk)

    def finalize(self) -> bytes:
        """The last ciphertext bytes followed by the 16-byte authentication tag."""
        return self._enc.finalize() + self._enc.tag


class EnvelopeCipher:
    """Envelope encryption of streams: per-object data keys wrapped by one key-encryption key.

    Layout of an encrypted object: ``header | ciphertext | tag``, where the header holds a magic
    string, the wrapped data key and both nonces. The object key is bound in as associated data,
    so a ciphertext copied under another key does not decrypt.

    :param kek: the 32-byte key-encryption key.
    """

    name = "envelope:aes-256-gcm"

    def __init__(self, kek: bytes):
        if len(kek) != 32:
            raise ObjectStoreError("the object store encryption key must be 32 bytes (base64 of 32 random bytes)")
        self._kek = kek

    def encryptor(self, aad: bytes) -> _StreamEncryptor:
        """A new stream encryptor; write ``.header``, then ``update()`` per chunk, then ``finalize()``."""
        return _StreamEncryptor(self._kek, aad)

    def overhead(self) -> int:
        """Bytes an encrypted object has beyond its plaintext."""
        return _HEADER.size + 32 + 16 + _TAG_BYTES

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
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        buf = b""
        it = iter(chunks)
        while len(buf) < _HEADER.size:
            try:
                buf += next(it)
            except StopIteration:
                raise ObjectStoreError("encrypted object is truncated (no header)") from None
        magic, wrapped_len, key_nonce, data_nonce = _HEADER.unpack_from(buf)
        if magic != _MAGIC:
            raise ObjectStoreError("not an envelope-encrypted object")
        while len(buf) < _HEADER.size + wrapped_len:
            try:
                buf += next(it)
            except StopIteration:
                raise ObjectStoreError("encrypted object is truncated (no data key)") from None
        wrapped = buf[_HEADER.size:_HEADER.size + wrapped_len]
        try:
            dek = AESGCM(self._kek).decrypt(key_nonce, wrapped, b"dek:" + aad)
        except InvalidTag:
            raise ObjectStoreError("the data key does not unwrap: wrong key-encryption key or object key") from None
        dec = Cipher(algorithms.AES(dek), modes.GCM(data_nonce)).decryptor()
        dec.authenticate_additional_data(aad)
        body_left = total - _HEADER.size - wrapped_len - _TAG_BYTES
        if body_left < 0:
            raise ObjectStoreError("encrypted object is truncated (no tag)")
        pending = buf[_HEADER.size + wrapped_len:]
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


def load_encryption_key(cfg: "Settings") -> bytes:
    """The key-encryption key from ``OBJECT_STORE_ENCRYPTION_KEY`` (base64 of 32 bytes).

    In development (``TWIN_ENV=development``) an empty setting means a key generated once under
    ``var/keys/object-store.key`` (mode 0600); anywhere else an empty key is an error.
    """
    raw = cfg.OBJECT_STORE_ENCRYPTION_KEY.get_secret_value().strip()
    if raw:
        try:
            key = base64.b64decode(raw, validate=True)
        except ValueError as exc:
            raise ObjectStoreError("OBJECT_STORE_ENCRYPTION_KEY is not valid base64") from exc
        if len(key) != 32:
            raise ObjectStoreError("OBJECT_STORE_ENCRYPTION_KEY must be base64 of exactly 32 bytes")
        return key
    if cfg.TWIN_ENV != "development":
        raise ObjectStoreError(
            "OBJECT_STORE_ENCRYPTION_KEY is empty; set it to base64 of 32 random bytes "
            "(python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())')"
        )
    path = cfg.TWIN_VAR_DIR / "keys" / "object-store.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(32)).decode())
        try:
            os.link(tmp, path)  # atomic create-if-missing: two processes agree on one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return base64.b64decode(path.read_text().strip())


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
    def __init__(self, store: "S3ObjectStore", key: str, content_type: str):
        super().__init__(key, content_type)
        self.store = store
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._enc = store.cipher.encryptor(key.encode()) if store.cipher else None
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
        return LocalObjectStore(cfg.TWIN_VAR_DIR / "objects", EnvelopeCipher(load_encryption_key(cfg)))
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(parsed.path), EnvelopeCipher(load_encryption_key(cfg)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ObjectStoreError(f"OBJECT_STORE_URL {url!r} names no bucket (s3://bucket[/prefix])")
        cipher = EnvelopeCipher(load_encryption_key(cfg)) if cfg.OBJECT_STORE_S3_ENVELOPE else None
        store = S3ObjectStore(s3_client(cfg), parsed.netloc, parsed.path, sse=cfg.OBJECT_STORE_S3_SSE,
                              kms_key_id=cfg.OBJECT_STORE_S3_KMS_KEY_ID, part_bytes=cfg.OBJECT_STORE_S3_PART_BYTES,
                              cipher=cipher)
        store.ensure_bucket()
        return store
    raise ObjectStoreError(f"OBJECT_STORE_URL must be empty, file:///path or s3://bucket, not {url!r}")

