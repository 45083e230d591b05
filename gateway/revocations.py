"""Forget a revoked API key at once, in every gateway process (issue 15).

Each gateway caches verified keys for ``AUTH_CACHE_TTL_S`` (gateway/auth.py ``KeyCache``). Revoking
a key (``DELETE /api/admin/keys/{keyId}``, ``twin keys revoke``) commits, then publishes the key id on
the Redis channel ``<REDIS_KEY_PREFIX>apikeys.revoked`` (infra/apikeys.py). Every gateway subscribes
to it in its lifespan with :class:`RevocationListener` and drops the key's cache entries when the
message arrives.

A message published while a gateway is not subscribed (Redis down, connection lost) is lost to it,
so each (re)subscription clears the whole cache: keys are verified against PostgreSQL again. Between
losing the connection and getting it back, the TTL is the bound, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.auth import KeyCache
from infra.apikeys import revocation_channel
from infra.settings import Settings

__all__ = ["RevocationListener"]

log = logging.getLogger(__name__)


class RevocationListener:
    """Subscribes to the revocation channel and invalidates ``cache``; reconnects forever."""

    def __init__(self, cfg: Settings, cache: KeyCache):
        self.cfg = cfg
        self.cache = cache
        self.channel = revocation_channel(cfg)
        self.subscribed = asyncio.Event()
        self.heard = 0  # revocations received (for tests and logs)
        self._task: asyncio.Task | None = None

    async def start(self, wait_s: float = 3.0) -> bool:
        """Start listening; wait up to ``wait_s`` for the subscription (False if Redis is not there yet:
        the gateway starts anyway and keeps trying in the background)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="key-revocations")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), wait_s)
        if not self.subscribed.is_set():
            log.warning("not subscribed to %s yet (Redis unreachable?): revoked keys stop working within "
                        "AUTH_CACHE_TTL_S=%ss until it is", self.channel, self.cfg.AUTH_CACHE_TTL_S)
        return self.subscribed.is_set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        from infra.clients import redis_client

        delay = 0.5
        while True:
            # No read timeout: the loop below polls with its own; health checks find a dead connection.
            client = redis_client(self.cfg, socket_timeout=None, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                # Whatever was announced while we were not listening is lost to us: verify again.
                self.cache.clear()
                self.subscribed.set()
                delay = 0.5
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        key_id = str(message["data"])
                        dropped = self.cache.invalidate(key_id)
                        self.heard += 1
                        log.info("key %s revoked: %d cached entr%s dropped", key_id, dropped,
                                 "y" if dropped == 1 else "ies")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down or the connection lost: retry
                if self.subscribed.is_set():
                    log.warning("lost the revocation channel %s (%s); reconnecting", self.channel,
                                type(exc).__name__)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
