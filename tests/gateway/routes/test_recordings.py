"""POST /api/interviews/session/screen-recording: streamed MP4 uploads into encrypted object storage."""

import hashlib
import os
import struct
import tracemalloc
import uuid

import pytest
from tests.credentials import auth_headers

BASE = "/api/interviews/session"
URL = f"{BASE}/screen-recording"
BOUNDARY = "----twin-test-boundary"


def mp4_bytes(size: int, seed: int = 0) -> bytes:
    """An ISO-BMFF file: an ftyp box, then one mdat box of pseudo-random payload."""
    ftyp = struct.pack(">I4s4sI8s", 24, b"ftyp", b"isom", 512, b"isomiso2")
    payload = hashlib.shake_256(str(seed).encode()).digest(max(0, size - len(ftyp) - 8))
    return ftyp + struct.pack(">I4s", 8 + len(payload), b"mdat") + payload


def multipart(file_chunks, session_id: str | None = None, filename: str = "rec.mp4", field_after: bool = False,
              content_type: str = "video/mp4"):
    """A streamed multipart body: (optional) interviewSessionId field, then the file part."""
    def field():
        return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"interviewSessionId\"\r\n\r\n"
                f"{session_id}\r\n").encode()

    async def body():
        if session_id and not field_after:
            yield field()
        yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
               f"Content-Type: {content_type}\r\n\r\n").encode()
        for chunk in file_chunks:
            yield chunk
        yield b"\r\n"
        if session_id and field_after:
            yield field()
        yield f"--{BOUNDARY}--\r\n".encode()

    return body()


HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def chunked(data: bytes, size: int = 65536):
    return [data[i:i + size] for i in range(0, len(data), size)]


async def _session(client, tenant: str, consent: bool = True) -> str:
    sid = f"{tenant}-{uuid.uuid4().hex[:6]}"
    resp = await client.post(BASE, json={"sessionId": sid, "interviewerId": "dana", "consentRecording": consent},
                             headers=auth_headers(tenant))
    assert resp.status_code == 201, resp.text
    return sid


async def test_upload_streams_into_encrypted_local_store_and_url_goes_on_the_session(api_factory, tmp_path, tenant,
                                                                                     pg):
    async with api_factory(OBJECT_STORE_URL=(tmp_path / "objects").as_uri()) as client:
        sid = await _session(client, tenant)
        data = mp4_bytes(3 * 1024 * 1024 + 17)
        resp = await client.post(URL, content=multipart(chunked(data), sid), headers={**HEADERS, **auth_headers(tenant)})
        assert resp.status_code == 201, resp.text
        rec = resp.json()
        assert rec["sizeBytes"] == len(data) and rec["sha256"] == hashlib.sha256(data).hexdigest()
        assert rec["url"].startswith("file://") and rec["encryption"] == "envelope:aes-256-gcm"
        store = client.app.state.object_store
        key = f"{tenant}/{sid}/{rec['recordingId']}.mp4"
        assert await store.read(key) == data
        on_disk = (tmp_path / "objects" / key).read_bytes()
        assert b"ftyp" not in on_disk and data[1000:1032] not in on_disk, "stored encrypted"
        row = pg.execute("SELECT session_id, size_bytes, sha256, url FROM recordings WHERE recording_id=%s",
                         (rec["recordingId"],)).fetchone()
        assert row == (sid, len(data), rec["sha256"], rec["url"])
        patched = await client.patch(f"{BASE}/{sid}", json={"videoUrl": rec["url"]}, headers=auth_headers(tenant))
        assert patched.status_code == 200 and patched.json()["videoUrl"] == rec["url"]
        # The session id may also come as a query parameter.
        resp = await client.post(f"{URL}?interviewSessionId={sid}", content=multipart(chunked(data[:100_000])),
                                 headers={**HEADERS, **auth_headers(tenant)})
        assert resp.status_code == 201, resp.text


async def test_upload_is_never_held_whole_in_memory(api_factory, tmp_path, tenant):
    size = 48 * 1024 * 1024
    chunk = mp4_bytes(65536)

    def chunks():
        yield chunk
        for i in range(size // 65536 - 1):
            yield chunk[:4] + i.to_bytes(8, "big") + chunk[12:]

    async with api_factory(OBJECT_STORE_URL=(tmp_path / "objects").as_uri()) as client:
        sid = await _session(client, tenant)
        headers = {**HEADERS, **auth_headers(tenant)}
        tracemalloc.start()
        try:
            resp = await client.post(URL, content=multipart(chunks(), sid), headers=headers)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert resp.status_code == 201, resp.text
        assert resp.json()["sizeBytes"] == size
        # Everything else the process allocates meanwhile counts too (other tests' background tasks in a
        # full run): the bound is a third of the upload, far below holding it whole.
        assert peak < size // 3, f"peak Python memory {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB upload"


async def test_s3_upload_uses_multipart_and_server_side_encryption(api_factory, s3_server, s3_settings, tenant):
    bucket = f"rec-{uuid.uuid4().hex[:8]}"
    async with api_factory(**s3_settings(s3_server, bucket)) as client:
        sid = await _session(client, tenant)
        data = mp4_bytes(11 * 1024 * 1024)  # two parts of 8 MiB max
        resp = await client.post(URL, content=multipart(chunked(data), sid), headers={**HEADERS, **auth_headers(tenant)})
        assert resp.status_code == 201, resp.text
        rec = resp.json()
        assert rec["url"] == f"s3://{bucket}/{tenant}/{sid}/{rec['recordingId']}.mp4"
        assert rec["encryption"] == "sse:AES256"
        store = client.app.state.object_store
        key = f"{tenant}/{sid}/{rec['recordingId']}.mp4"
        head = store.head(key)
        assert head["ServerSideEncryption"] == "AES256" and head["ContentLength"] == len(data)
        assert await store.read(key) == data
        encryption = store.client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert store.pending_uploads() == 0


async def test_s3_with_envelope_encryption_stores_only_ciphertext(api_factory, s3_server, s3_settings, tenant):
    bucket = f"rec-{uuid.uuid4().hex[:8]}"
    async with api_factory(**s3_settings(s3_server, bucket, OBJECT_STORE_S3_ENVELOPE=True)) as client:
        sid = await _session(client, tenant)
        data = mp4_bytes(200_000)
        resp = await client.post(URL, content=multipart(chunked(data), sid), headers={**HEADERS, **auth_headers(tenant)})
        assert resp.status_code == 201, resp.text
        store = client.app.state.object_store
        key = f"{tenant}/{sid}/{resp.json()['recordingId']}.mp4"
        raw = store.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert b"ftyp" not in raw and len(raw) > len(data)
        assert await store.read(key) == data


async def _nothing_stored(client, tenant, pg):
    store = client.app.state.object_store
    assert await store.keys(tenant) == []
    assert pg.execute("SELECT count(*) FROM recordings WHERE tenant=%s", (tenant,)).fetchone()[0] == 0
    if hasattr(store, "pending_uploads"):
        assert store.pending_uploads() == 0
    else:
        assert not [p for p in store.root.rglob("*") if p.is_file() and tenant in str(p)], "no temporary files left"


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_refusals_store_nothing(api_factory, s3_server, s3_settings, tmp_path, tenant, pg, backend):
    overrides = ({"OBJECT_STORE_URL": (tmp_path / "objects").as_uri()} if backend == "local"
                 else s3_settings(s3_server, f"rec-{uuid.uuid4().hex[:8]}"))
    async with api_factory(RECORDING_MAX_BYTES=6 * 1024 * 1024, OBJECT_STORE_S3_PART_BYTES=5 * 1024 * 1024,
                           **overrides) as client:
        headers = {**HEADERS, **auth_headers(tenant)}
        sid = await _session(client, tenant)

        not_mp4 = await client.post(URL, content=multipart(chunked(b"\x89PNG\r\n\x1a\n" + os.urandom(200_000)), sid),
                                    headers=headers)
        assert not_mp4.status_code == 415 and not_mp4.json()["error"]["code"] == "not_mp4"
        # An MP4 declared as video/mp4 is checked by content, not by its label.
        fake = await client.post(URL, content=multipart([b"hello, I am a video"], sid), headers=headers)
        assert fake.status_code == 415

        # Too large, streamed without Content-Length: refused once the limit is passed mid-stream
        # (after a first 5 MiB part already reached S3 and must be aborted).
        too_big = await client.post(URL, content=multipart(chunked(mp4_bytes(7 * 1024 * 1024)), sid), headers=headers)
        assert too_big.status_code == 413
        assert too_big.json()["error"] == {"code": "recording_too_large",
                                           "message": f"The recording exceeds {6 * 1024 * 1024} bytes.",
                                           "details": [{"rule": "max_recording_bytes", "limit": 6 * 1024 * 1024}]}

        no_consent = await _session(client, tenant, consent=False)
        forbidden = await client.post(URL, content=multipart(chunked(mp4_bytes(100_000)), no_consent), headers=headers)
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "consent_required"
        unknown = await client.post(URL, content=multipart(chunked(mp4_bytes(100_000)), f"{tenant}-nope"),
                                    headers=headers)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_session"
        late_id = await client.post(URL, content=multipart(chunked(mp4_bytes(100_000)), sid, field_after=True),
                                    headers=headers)
        assert late_id.status_code == 422 and late_id.json()["error"]["code"] == "missing_session_id"
        no_file = await client.post(URL, files={"interviewSessionId": (None, sid)}, headers=auth_headers(tenant))
        assert no_file.status_code == 422 and no_file.json()["error"]["code"] == "missing_file"
        json_body = await client.post(URL, json={"interviewSessionId": sid}, headers=auth_headers(tenant))
        assert json_body.status_code == 415 and json_body.json()["error"]["code"] == "unsupported_media_type"
        async def cut_off():
            async for part in multipart(chunked(mp4_bytes(300_000)), sid):
                if part.startswith(f"--{BOUNDARY}--".encode()):
                    return
                yield part

        truncated = await client.post(URL, content=cut_off(), headers=headers)
        assert truncated.status_code == 400 and truncated.json()["error"]["code"] == "malformed_multipart"
        await _nothing_stored(client, tenant, pg)
