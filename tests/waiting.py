"""Polling for conditions the real services reach asynchronously."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import pytest


async def eventually(check: Callable[[], Awaitable[object] | object], timeout: float, what: str,
                     every: float = 0.5):
    """Call ``check`` (sync or async) every ``every`` seconds until it returns something truthy, and
    return that; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)
        await asyncio.sleep(every)
