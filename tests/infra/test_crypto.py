"""Encryption at rest (infra/crypto.py): the key ring from settings, sealing, tampering, rewrapping,
and the object store's headers (sinks/object_store.py) old and new."""

import base64
import json
import os
import secrets
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from infra import crypto
from infra.settings import Settings
from sinks.object_store import EnvelopeCipher, LocalObjectStore, ObjectStoreError

PHRASE = "Tell me about the billing rewrite at Acme."


def _ring(**keys: bytes) -> crypto.KeyRing:
    return crypto.KeyRing(keys, next(iter(keys)))


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def a_and_b():
    return os.urandom(32), os.urandom(32)


def test_sealed_values_round_trip_and_carry_version_and_key_id(a_and_b):
    ring = _ring(a=a_and_b[0])
    sealed = crypto.seal(PHRASE, "acme", "turns.text", "s1", "e1", ring=ring)
    assert sealed.startswith("twenc1:a:") and crypto.is_sealed(sealed) and crypto.key_id_of(sealed) == "a"
    assert PHRASE not in sealed and "billing" not in sealed
    assert crypto.unseal(sealed, "acme", "turns.text", "s1", "e1", ring=ring) == PHRASE
    assert crypto.seal(PHRASE, "acme", "turns.text", "s1", "e1", ring=ring) != sealed, "a fresh data key each time"
    # Column shapes: empty and missing values stay as they are; clear values (old rows) pass through.
    assert crypto.seal_text("", "acme", "f", "r", ring=ring) == "" and crypto.seal_text(None, "acme", "f", "r") is None
    assert crypto.open_text("plain old row", "acme", "f", "r", ring=ring) == "plain old row"
    turns = [{"role": "interviewer", "text": PHRASE, "ts": None}]
    stored = crypto.seal_json(turns, "acme", "dataset_sessions.turns", "ds_x", "s1", ring=ring)
    assert list(stored) == ["sealed"] and PHRASE not in json.dumps(stored)
    assert crypto.open_json(stored, "acme", "dataset_sessions.turns", "ds_x", "s1", ring=ring) == turns
    assert crypto.open_json(turns, "acme", "dataset_sessions.turns", "ds_x", "s1", ring=ring) == turns
    ctx = {"history": turns, "candidateTurn": "I used a queue.", "turnIndex": 3, "move": "probe"}
    part = crypto.seal_fields(ctx, ("history", "candidateTurn"), "acme", "eval_samples.context", "x", ring=ring)
    assert part["turnIndex"] == 3 and part["move"] == "probe" and "history" not in part and "queue" not in str(part)
    assert crypto.open_fields(part, "acme", "eval_samples.context", "x", ring=ring) == ctx


@pytest.mark.parametrize("where", [
    ("acme", "turns.text", "s1", "e2"),            # another row of the same table
    ("globex", "turns.text", "s1", "e1"),          # the same row key under another tenant
    ("acme", "eval_samples.twin_text", "s1", "e1"),  # another column
    ("acme", "turns.text", "s1/e1"),               # the row key joined differently
])
def test_a_value_moved_elsewhere_does_not_open(a_and_b, where):
    ring = _ring(a=a_and_b[0])
    sealed = crypto.seal(PHRASE, "acme", "turns.text", "s1", "e1", ring=ring)
    with pytest.raises(crypto.CryptoError):
        crypto.unseal(sealed, *where, ring=ring)


@pytest.mark.parametrize("offset", [0, 20, 70, -1])  # key nonce, wrapped key, data nonce, tag
def test_tampering_is_detected(a_and_b, offset):
    ring = _ring(a=a_and_b[0])
    prefix, kid, blob = crypto.seal(PHRASE, "acme", "turns.text", "s1", "e1", ring=ring).split(":", 2)
    raw = bytearray(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))
    raw[offset] ^= 0x01
    forged = f"{prefix}:{kid}:{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"
    with pytest.raises(crypto.CryptoError):
        crypto.unseal(forged, "acme", "turns.text", "s1", "e1", ring=ring)
    # Relabelling the key id does not help either: the id is bound into the wrap.
    with pytest.raises(crypto.CryptoError):
        crypto.unseal(f"{prefix}:b:{blob}", "acme", "turns.text", "s1", "e1",
                      ring=crypto.KeyRing({"a": a_and_b[0], "b": a_and_b[0]}, "a"))


def test_rewrap_moves_the_data_key_to_the_active_key_and_leaves_the_ciphertext(a_and_b):
    a, b = a_and_b
    old = crypto.seal(PHRASE, "acme", "turns.text", "s1", "e1", ring=_ring(a=a))
    both = crypto.KeyRing({"a": a, "b": b}, "b")
    assert crypto.unseal(old, "acme", "turns.text", "s1", "e1", ring=both) == PHRASE, "old values stay readable"
    new = crypto.rewrap(old, "acme", "turns.text", "s1", "e1", ring=both)
    assert crypto.key_id_of(new) == "b" and crypto.rewrap(new, "acme", "turns.text", "s1", "e1", ring=both) == new
    body = lambda s: base64.urlsafe_b64decode(s.split(":")[2] + "==")[12 + 48:]  # noqa: E731
    assert body(new) == body(old), "data nonce and ciphertext untouched"
    only_b = _ring(b=b)
    assert crypto.unseal(new, "acme", "turns.text", "s1", "e1", ring=only_b) == PHRASE, "key a can go"
    with pytest.raises(crypto.CryptoError, match="'a' is not in the key ring"):
        crypto.unseal(old, "acme", "turns.text", "s1", "e1", ring=only_b)
    with pytest.raises(crypto.CryptoError):
        crypto.rewrap(old, "globex", "turns.text", "s1", "e1", ring=both)


def test_key_ring_from_settings(tmp_path, a_and_b):
    a, b = a_and_b
    keys = SecretStr(json.dumps({"a": _b64(a), "b": _b64(b)}))
    ring = crypto.ring_from_settings(Settings(DATA_ENCRYPTION_KEYS=keys, DATA_ENCRYPTION_ACTIVE_KEY="b",
                                              TWIN_KEYS_DIR=tmp_path / "keys"))
    assert ring.active == "b" and ring.key_ids == ["b", "a"]
    assert not (tmp_path / "keys").exists(), "configured keys: no development key file"
    one = crypto.ring_from_settings(Settings(DATA_ENCRYPTION_KEYS=SecretStr(json.dumps({"a": _b64(a)})),
                                             OBJECT_STORE_ENCRYPTION_KEY=SecretStr(_b64(b)), TWIN_KEYS_DIR=tmp_path / "keys"))
    assert one.active == "a" and one.key_ids == ["a", "object-store"], "the recordings' key stays in the ring"
    legacy = crypto.ring_from_settings(Settings(OBJECT_STORE_ENCRYPTION_KEY=SecretStr(_b64(a)), TWIN_ENV="production"))
    assert legacy.active == "object-store", "an install with only the object store key keeps working"
    dev = crypto.ring_from_settings(Settings(TWIN_KEYS_DIR=tmp_path / "keys"))
    assert dev.active == "dev" and oct((tmp_path / "keys" / "dev.key").stat().st_mode & 0o777) == "0o600"
    again = crypto.ring_from_settings(Settings(TWIN_KEYS_DIR=tmp_path / "keys"))
    sealed = crypto.seal(PHRASE, "t", "f", "r", ring=dev)
    assert crypto.unseal(sealed, "t", "f", "r", ring=again) == PHRASE, "the development key is generated once"
    for bad, message in [
        ({"DATA_ENCRYPTION_KEYS": keys}, "set DATA_ENCRYPTION_ACTIVE_KEY"),
        ({"DATA_ENCRYPTION_KEYS": keys, "DATA_ENCRYPTION_ACTIVE_KEY": "c"}, "not in the key ring"),
        ({"DATA_ENCRYPTION_KEYS": SecretStr('{"a": "c2hvcnQ="}')}, "exactly 32 bytes"),
        ({"DATA_ENCRYPTION_KEYS": SecretStr("a=b")}, "not JSON"),
        ({"DATA_ENCRYPTION_KEYS": SecretStr(json.dumps({"a:1": _b64(a)}))}, "bad key id"),
        ({"TWIN_ENV": "production"}, "no encryption key"),
    ]:
        with pytest.raises(crypto.KeyConfigError, match=message) as info:
            crypto.ring_from_settings(Settings(TWIN_KEYS_DIR=tmp_path / "other", **bad))
        assert info.value.retriable, "agents retry (and store nothing) until the settings are fixed"
    assert "DATA_ENCRYPTION_KEYS" in Settings().public_dict() and \
        Settings(DATA_ENCRYPTION_KEYS=keys).public_dict()["DATA_ENCRYPTION_KEYS"] == "***"


def _v1_object(kek: bytes, key: str, plaintext: bytes) -> bytes:
    """An object as the store wrote it before the key ring (TWENC1: no key id in the header)."""
    dek, key_nonce, data_nonce = os.urandom(32), os.urandom(12), os.urandom(12)
    wrapped = AESGCM(kek).encrypt(key_nonce, dek, b"dek:" + key.encode())
    return (struct.pack(">6sH12s12s", b"TWENC1", len(wrapped), key_nonce, data_nonce) + wrapped
            + AESGCM(dek).encrypt(data_nonce, plaintext, key.encode()))


async def test_object_store_reads_old_headers_and_rewraps_to_the_active_key(tmp_path, a_and_b):
    a, b = a_and_b
    data = b"ftyp" + secrets.token_bytes(300_000)
    old_store = LocalObjectStore(tmp_path, EnvelopeCipher(a))  # the object store's key alone, as before the ring
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "v1.mp4").write_bytes(_v1_object(a, "acme/v1.mp4", data))
    writer = await old_store.begin("acme/v2.mp4", "video/mp4")
    await writer.write(data)
    await writer.commit()
    # (written now: the chunked TWENC3 format; TWENC2 objects: tests/sinks/test_object_store_stream.py)
    assert (tmp_path / "acme" / "v2.mp4").read_bytes()[:6] == b"TWENC3"
    assert await old_store.read("acme/v1.mp4") == data and await old_store.read("acme/v2.mp4") == data

    store = LocalObjectStore(tmp_path, EnvelopeCipher(crypto.KeyRing({"object-store": a, "b": b}, "b")))
    assert [await store.key_id(k) for k in ("acme/v1.mp4", "acme/v2.mp4")] == ["object-store", "object-store"]
    assert await store.read("acme/v1.mp4") == data
    before = (tmp_path / "acme" / "v2.mp4").read_bytes()
    assert [await store.rewrap(k) for k in ("acme/v1.mp4", "acme/v2.mp4")] == ["object-store", "object-store"]
    assert await store.rewrap("acme/v2.mp4") is None, "already under the active key"
    after = (tmp_path / "acme" / "v2.mp4").read_bytes()
    assert after[-1000:] == before[-1000:] and len(after) == len(before) - len("object-store") + len("b")
    only_b = LocalObjectStore(tmp_path, EnvelopeCipher(crypto.KeyRing({"b": b}, "b")))
    assert await only_b.read("acme/v1.mp4") == data and await only_b.read("acme/v2.mp4") == data
    assert await store.keys() == ["acme/v1.mp4", "acme/v2.mp4"], "no temporary files left behind"
    with pytest.raises(ObjectStoreError, match="does not unwrap"):
        await LocalObjectStore(tmp_path, EnvelopeCipher(a)).read("acme/v1.mp4")
    (tmp_path / "acme" / "v2.mp4").rename(tmp_path / "acme" / "moved.mp4")
    with pytest.raises(ObjectStoreError):
        await only_b.read("acme/moved.mp4")


async def test_s3_envelope_objects_rewrap_to_the_active_key(s3_server, s3_settings, a_and_b):
    import uuid

    from sinks.object_store import object_store_from_settings

    a, b = (_b64(k) for k in a_and_b)
    bucket = f"rot-{uuid.uuid4().hex[:8]}"

    def store(active: str, **keys: str):
        return object_store_from_settings(Settings(**s3_settings(
            s3_server, bucket, OBJECT_STORE_S3_ENVELOPE=True, OBJECT_STORE_S3_PART_BYTES=5 * 1024**2,
            DATA_ENCRYPTION_KEYS=SecretStr(json.dumps(keys)), DATA_ENCRYPTION_ACTIVE_KEY=active)))

    data = b"ftyp" + secrets.token_bytes(6 * 1024**2)  # a multipart re-upload (two parts)
    old = store("a", a=a)
    writer = await old.begin("acme/s1/rec.mp4", "video/mp4")
    await writer.write(data)
    await writer.commit()
    both = store("b", a=a, b=b)
    assert await both.key_id("acme/s1/rec.mp4") == "a"
    assert await both.rewrap("acme/s1/rec.mp4") == "a" and await both.rewrap("acme/s1/rec.mp4") is None
    only_b = store("b", b=b)
    assert await only_b.key_id("acme/s1/rec.mp4") == "b" and await only_b.read("acme/s1/rec.mp4") == data
    assert only_b.head("acme/s1/rec.mp4")["ServerSideEncryption"] == "AES256", "still server-side encrypted too"
    assert only_b.pending_uploads() == 0
