"""Streaming decryption of recordings releases only authenticated plaintext (issue 15, item 3).

The object store encrypts in segments (format TWENC3, sinks/object_store.py: AES-256-GCM per
segment, nonce = prefix | counter | final flag, the format, segment size, prefix and object key as
associated data). Each attack below — a flipped byte anywhere (header, any segment, any tag),
truncation at every length, reordered, duplicated, dropped and foreign segments — must raise
ObjectStoreError, and what the reader yielded before it must be exactly the plaintext of the good
segments before the first bad one: no byte of a bad segment, and never a truncated stream that ends
as if complete. Good objects round-trip at the edges (empty, one byte, exact multiples of the
segment size) and a 24 MiB one streams through the store with bounded memory. Objects in the old
formats (TWENC1/TWENC2, one tag at the end) stay readable, and release nothing unless the whole
object verifies.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tracemalloc

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra import crypto
from sinks.object_store import EnvelopeCipher, LocalObjectStore, ObjectStoreError

SEG = 1024  # the smallest segment size, so a few KB make many segments
KEY = "acme/sess-1/rec.mp4"
AAD = KEY.encode()
HEADER_LEN = 32 + len("k1") + 48  # fixed fields, key id, wrapped data key (32 + GCM tag)


def _ring() -> crypto.KeyRing:
    return crypto.KeyRing({"k1": os.urandom(32)}, "k1")


def _plaintext(n: int) -> bytes:
    """Bytes that tell where they came from: segment i is filled with a pattern of i."""
    return b"".join(struct.pack(">I", i // SEG) + os.urandom(4) for i in range(0, n, 8))[:n]


def _seal(cipher: EnvelopeCipher, data: bytes, key: bytes = AAD, pieces: int = 3) -> bytes:
    enc = cipher.encryptor(key)
    out = [enc.header]
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        out.append(enc.update(data[i:i + step]))
    out.append(enc.finalize())
    return b"".join(out)


def _open(cipher: EnvelopeCipher, blob: bytes, key: bytes = AAD, block: int = 777) -> tuple[bytes, Exception | None]:
    """Everything the reader yields for ``blob`` read in ``block``-byte reads, and how it ended."""
    got: list[bytes] = []
    try:
        for chunk in cipher.decrypt_chunks((blob[i:i + block] for i in range(0, len(blob), block)), len(blob), key):
            got.append(chunk)
    except ObjectStoreError as exc:
        return b"".join(got), exc
    return b"".join(got), None


def _segments(blob: bytes) -> tuple[bytes, list[bytes]]:
    body = blob[HEADER_LEN:]
    return blob[:HEADER_LEN], [body[i:i + SEG + 16] for i in range(0, len(body), SEG + 16)]


@pytest.fixture
def cipher():
    return EnvelopeCipher(_ring(), segment_bytes=SEG)


@pytest.fixture
def sealed(cipher):
    data = _plaintext(5 * SEG + 300)  # 6 segments: 5 full, a final one of 300 bytes
    blob = _seal(cipher, data)
    assert blob[:6] == b"TWENC3" and len(blob) == HEADER_LEN + len(data) + 6 * 16
    return data, blob


# --------------------------------------------------------------------------- good objects


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG, 3 * SEG + 7])
@pytest.mark.parametrize("block", [1, 100, SEG + 16, 1 << 20])
def test_round_trip_at_the_edges(cipher, size, block):
    data = os.urandom(size)
    blob = _seal(cipher, data, pieces=5)
    segments = max(1, -(-size // SEG))  # an exact multiple adds no empty segment; empty is one final segment
    assert len(blob) == HEADER_LEN + size + 16 * segments
    assert _open(cipher, blob, block=block) == (data, None)
    assert cipher.decrypt(blob, AAD) == data


def test_the_default_segment_size_round_trips_and_rewrapping_keeps_the_segments():
    a, b = os.urandom(32), os.urandom(32)
    old = EnvelopeCipher(crypto.KeyRing({"a": a}, "a"))
    data = os.urandom(3 * 64 * 1024)  # an exact multiple of 64 KiB
    blob = _seal(old, data)
    both = EnvelopeCipher(crypto.KeyRing({"a": a, "b": b}, "b"))
    header, old_size, old_kid = both.rewrap_header(blob[:1024], AAD)
    moved = header + blob[old_size:]
    assert old_kid == "a" and both.key_id(moved[:1024], AAD) == "b" and moved[len(header):] == blob[old_size:]
    assert EnvelopeCipher(crypto.KeyRing({"b": b}, "b")).decrypt(moved, AAD) == data


# --------------------------------------------------------------------------- attacks


def _expect_prefix_only(data: bytes, got: bytes, err: Exception | None, good_segments: int, what: str) -> None:
    assert err is not None, f"{what}: decryption did not fail"
    assert got == data[:good_segments * SEG], (
        f"{what}: released {len(got)} bytes, expected only the {good_segments} good segment(s) before the bad one")


@pytest.mark.parametrize("xor", [0x01, 0x80])
def test_a_flipped_byte_anywhere_fails_before_its_segment_is_released(cipher, sealed, xor):
    data, blob = sealed
    for pos in range(len(blob)):  # every byte: header fields, key id, wrapped key, every segment and tag
        forged = bytearray(blob)
        forged[pos] ^= xor
        got, err = _open(cipher, bytes(forged))
        bad = 0 if pos < HEADER_LEN else (pos - HEADER_LEN) // (SEG + 16)
        _expect_prefix_only(data, got, err, bad, f"byte {pos} ^ {xor:#x}")


def test_truncation_at_every_length_fails_and_never_looks_complete(cipher, sealed):
    data, blob = sealed
    for cut in range(len(blob)):
        got, err = _open(cipher, blob[:cut])
        assert err is not None, f"cut at {cut} of {len(blob)} read as a complete object"
        whole = max(0, (cut - HEADER_LEN) // (SEG + 16))  # segments fully present
        assert got == data[:len(got)] and len(got) <= whole * SEG and len(got) % SEG == 0, f"cut at {cut}"


def test_dropping_the_final_segment_fails(cipher, sealed):
    data, blob = sealed
    header, segs = _segments(blob)
    got, err = _open(cipher, header + b"".join(segs[:-1]))
    _expect_prefix_only(data, got, err, len(segs) - 2, "final segment dropped")
    assert "final segment" in str(err)
    got, err = _open(cipher, header + b"".join(segs[:-1]) + segs[-1][:-1])  # cut inside the last tag
    _expect_prefix_only(data, got, err, len(segs) - 1, "last tag cut")


@pytest.mark.parametrize("order, first_bad", [
    ([0, 2, 1, 3, 4, 5], 1),     # two segments swapped
    ([1, 0, 2, 3, 4, 5], 0),     # the first two swapped
    ([0, 1, 2, 3, 5, 4], 4),     # the final segment moved before the last full one
    ([0, 1, 1, 2, 3, 4, 5], 2),  # a segment duplicated
    ([0, 1, 2, 3, 4, 5, 5], 5),  # the final segment duplicated
    ([0, 1, 3, 4, 5], 2),        # a middle segment dropped
    ([0, 1, 2, 3, 4], 4),        # the final segment dropped
    ([5], 0),                    # only the final segment
])
def test_reordered_duplicated_or_dropped_segments_fail(cipher, sealed, order, first_bad):
    data, blob = sealed
    header, segs = _segments(blob)
    got, err = _open(cipher, header + b"".join(segs[i] for i in order))
    _expect_prefix_only(data, got, err, first_bad, f"segments {order}")


def test_segments_swapped_between_two_objects_fail(cipher, sealed):
    data, blob = sealed
    other = _seal(cipher, _plaintext(5 * SEG + 300))  # same object key, same ring, another data key
    (header, segs), (other_header, other_segs) = _segments(blob), _segments(other)
    for i in range(len(segs)):
        got, err = _open(cipher, header + b"".join(other_segs[i] if j == i else s for j, s in enumerate(segs)))
        _expect_prefix_only(data, got, err, i, f"segment {i} from another object")
    got, err = _open(cipher, other_header + b"".join(segs))
    _expect_prefix_only(data, got, err, 0, "another object's header")
    # A whole object under another object key: its data key does not unwrap there.
    got, err = _open(cipher, blob, key=b"acme/sess-2/rec.mp4")
    _expect_prefix_only(data, got, err, 0, "object moved to another key")
    assert "does not unwrap" in str(err)


def test_a_downgraded_header_does_not_open(cipher, sealed):
    """The same wrapped data key relabelled as an old single-tag (TWENC2) object."""
    data, blob = sealed
    kid_len, wrapped_len, key_nonce = struct.unpack_from(">BH12s", blob, 6)
    rest = blob[32:]
    segment_0_nonce = blob[25:32] + b"\0" * 5  # the nonce prefix, counter 0, not final
    forged = struct.pack(">6sBH12s12s", b"TWENC2", kid_len, wrapped_len, key_nonce, segment_0_nonce) + rest
    got, err = _open(cipher, forged)
    assert err is not None and got == b""


# --------------------------------------------------------------------------- the store, end to end


async def test_a_tampered_recording_streams_nothing_of_the_bad_segment(tmp_path):
    store = LocalObjectStore(tmp_path, EnvelopeCipher(_ring()))  # default 64 KiB segments
    data = os.urandom(5 * 1024**2 + 123)
    writer = await store.begin(KEY, "video/mp4")
    for i in range(0, len(data), 100_000):
        await writer.write(data[i:i + 100_000])
    await writer.commit()
    path = tmp_path / KEY
    blob = path.read_bytes()
    seg = 64 * 1024 + 16
    bad = 40  # flip one byte of segment 40's tag
    path.write_bytes(blob[:HEADER_LEN + bad * seg + seg - 1] + bytes([blob[HEADER_LEN + bad * seg + seg - 1] ^ 1])
                     + blob[HEADER_LEN + (bad + 1) * seg:])
    got = bytearray()
    with pytest.raises(ObjectStoreError, match="segment 40"):
        async for chunk in store.stream(KEY):
            got += chunk
    assert bytes(got) == data[:bad * 64 * 1024]
    with pytest.raises(ObjectStoreError):
        await store.read(KEY)
    path.write_bytes(blob[:-(len(data) % (64 * 1024) + 16)])  # the final segment dropped
    with pytest.raises(ObjectStoreError, match="final segment"):
        async for _ in store.stream(KEY):
            pass


async def test_a_multi_megabyte_recording_streams_with_bounded_memory(tmp_path):
    store = LocalObjectStore(tmp_path, EnvelopeCipher(_ring()))
    size, block = 24 * 1024**2, 1024**2
    want = hashlib.sha256()
    tracemalloc.start()
    try:
        writer = await store.begin(KEY, "video/mp4")
        for i in range(size // block):
            chunk = os.urandom(block)
            want.update(chunk)
            await writer.write(chunk)
            del chunk
        await writer.commit()
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got, n = hashlib.sha256(), 0
        async for chunk in store.stream(KEY):
            got.update(chunk)
            n += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == size and got.hexdigest() == want.hexdigest()
    assert write_peak < 8 * 1024**2 and read_peak < 8 * 1024**2, (write_peak, read_peak)


# --------------------------------------------------------------------------- old formats


def _v2_object(ring: crypto.KeyRing, key: str, plaintext: bytes) -> bytes:
    """An object as the store wrote it before segments (TWENC2: key id, one tag at the end)."""
    dek, data_nonce = os.urandom(32), os.urandom(12)
    kid, key_nonce, wrapped = ring.wrap(dek, b"dek:" + key.encode())
    return (struct.pack(">6sBH12s12s", b"TWENC2", len(kid), len(wrapped), key_nonce, data_nonce) + kid.encode()
            + wrapped + AESGCM(dek).encrypt(data_nonce, plaintext, key.encode()))


def _v1_object(kek: bytes, key: str, plaintext: bytes) -> bytes:
    dek, key_nonce, data_nonce = os.urandom(32), os.urandom(12), os.urandom(12)
    wrapped = AESGCM(kek).encrypt(key_nonce, dek, b"dek:" + key.encode())
    return (struct.pack(">6sH12s12s", b"TWENC1", len(wrapped), key_nonce, data_nonce) + wrapped
            + AESGCM(dek).encrypt(data_nonce, plaintext, key.encode()))


async def test_old_formats_stay_readable_and_release_nothing_unless_all_of_it_verifies(tmp_path):
    kek = os.urandom(32)
    ring = crypto.KeyRing({"object-store": kek}, "object-store")
    store = LocalObjectStore(tmp_path, EnvelopeCipher(ring))
    data = os.urandom(10 * 1024**2 + 5)  # past the 8 MiB spool: the verified ciphertext goes to disk
    (tmp_path / "acme").mkdir()
    objects = {"acme/v1.mp4": _v1_object(kek, "acme/v1.mp4", data), "acme/v2.mp4": _v2_object(ring, "acme/v2.mp4", data)}
    for key, blob in objects.items():
        (tmp_path / key).write_bytes(blob)
        assert await store.read(key) == data
        assert b"".join([c async for c in store.stream(key)]) == data
        for pos in (len(blob) // 2, len(blob) - 20, len(blob) - 1):  # ciphertext, its last bytes, the tag
            forged = bytearray(blob)
            forged[pos] ^= 1
            (tmp_path / key).write_bytes(bytes(forged))
            got = []
            with pytest.raises(ObjectStoreError, match="failed authentication"):
                async for chunk in store.stream(key):
                    got.append(chunk)
            assert got == [], f"{key}: plaintext released before the tag of byte {pos} failed"
        (tmp_path / key).write_bytes(blob[:-1])
        with pytest.raises(ObjectStoreError):
            async for chunk in store.stream(key):
                pytest.fail("a truncated old object released plaintext")
        (tmp_path / key).write_bytes(blob)
    # Rotation keeps working for them (header only), and they stay readable after it.
    new = LocalObjectStore(tmp_path, EnvelopeCipher(crypto.KeyRing({"object-store": kek, "b": os.urandom(32)}, "b")))
    assert [await new.rewrap(k) for k in objects] == ["object-store", "object-store"]
    assert [await new.read(k) for k in objects] == [data, data]


async def test_s3_envelope_objects_stream_only_authenticated_segments(s3_server, s3_settings):
    import base64
    import json
    import uuid

    from pydantic import SecretStr

    from infra.settings import Settings
    from sinks.object_store import object_store_from_settings

    bucket = f"stream-{uuid.uuid4().hex[:8]}"
    keys = SecretStr(json.dumps({"k1": base64.b64encode(os.urandom(32)).decode()}))
    store = object_store_from_settings(Settings(**s3_settings(
        s3_server, bucket, OBJECT_STORE_S3_ENVELOPE=True, OBJECT_STORE_S3_PART_BYTES=5 * 1024**2,
        DATA_ENCRYPTION_KEYS=keys, DATA_ENCRYPTION_ACTIVE_KEY="k1")))
    data = os.urandom(6 * 1024**2)  # a multipart upload (two parts)
    writer = await store.begin(KEY, "video/mp4")
    await writer.write(data)
    await writer.commit()
    assert b"".join([c async for c in store.stream(KEY)]) == data
    raw = bytearray(store.client.get_object(Bucket=bucket, Key=KEY)["Body"].read())
    assert raw[:6] == b"TWENC3"
    seg = 64 * 1024 + 16
    raw[HEADER_LEN + 70 * seg + 5] ^= 1  # inside segment 70 (of the first 5 MiB part)
    store.client.put_object(Bucket=bucket, Key=KEY, Body=bytes(raw))
    got = bytearray()
    with pytest.raises(ObjectStoreError, match="segment 70"):
        async for chunk in store.stream(KEY):
            got += chunk
    assert bytes(got) == data[:70 * 64 * 1024]
