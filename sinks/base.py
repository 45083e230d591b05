"""The small lifecycle every sink shares.

A sink is driven by one agent (or the replay CLI):

1. ``setup()`` once before the first batch: open connections, create tables/collections if missing.
2. ``write(batch)`` for each batch the agent collected. It must be idempotent: the same records
   written twice (a replay, or a redelivery after a crash before the offset commit) leave the store
   as if written once. Raise ``<Store>SinkError`` to make the agent retry or dead-letter the batch;
   never swallow a failure, or the offset would be committed for data that is not stored.
3. ``close()`` once at shutdown.
"""

from __future__ import annotations

import abc
from typing import Any, Generic, Sequence, TypeVar

__all__ = ["Sink", "SinkError"]

T = TypeVar("T")


class SinkError(RuntimeError):
    """A batch could not be written; nothing from it may be considered stored."""


class Sink(abc.ABC, Generic[T]):
    """Base class: see the module docstring for when each method runs."""

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Open connections and create what is missing. Called once before the first write."""

    @abc.abstractmethod
    async def write(self, batch: Sequence[T]) -> Any:
        """Persist a batch idempotently; raise a SinkError subclass when it could not be stored."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once at shutdown."""

    async def __aenter__(self):
        await self.setup()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()
