"""Request bodies read with limits, and rejected bodies drained.

A handler that rejects a body it has not fully read (too large, wrong type) should drain what is
left before answering: a client still sending would otherwise see a reset connection instead of
the error.
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from starlette.requests import ClientDisconnect

from gateway.errors import ApiError

__all__ = ["drain", "read_limited"]


async def drain(request: Request, limit: int = 16 * 1024**2, timeout_s: float = 10.0) -> None:
    """Read and discard what is left of a rejected body (up to ``limit``), so the client, still
    sending, gets to read the error instead of a reset connection."""

    async def _read() -> None:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                return

    try:
        await asyncio.wait_for(_read(), timeout_s)
    except (ClientDisconnect, RuntimeError, asyncio.TimeoutError):  # stream consumed or client gone
        pass


async def read_limited(request: Request, limit: int, rule: str = "max_payload_bytes") -> bytes:
    """The whole body, or ApiError(413, ``payload_too_large``) as soon as it exceeds ``limit`` bytes."""
    too_large = ApiError(413, "payload_too_large", f"The body exceeds {limit} bytes.",
                         details=[{"rule": rule, "limit": limit}])
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        await drain(request, limit=4 * limit)
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            await drain(request, limit=4 * limit)
            raise too_large
    return bytes(body)
