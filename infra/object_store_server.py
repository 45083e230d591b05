"""A local S3-compatible server for development and tests: moto's HTTP server (Apache-2.0, PyPI).

moto speaks the S3 REST API over real HTTP (multipart uploads, bucket default encryption, the
``x-amz-server-side-encryption`` header), which is what ``sinks.object_store.S3ObjectStore`` is
tested against. It keeps objects in memory, so it is a test double for a real bucket, not a
durable store: point ``OBJECT_STORE_URL=s3://...`` at real S3 (or another S3-compatible
service) in production. It records SSE but does not encrypt what it holds; set
``OBJECT_STORE_S3_ENVELOPE=true`` to encrypt client-side as well.

Functions for ``infra/stack.py`` (same conventions as the other services: idempotent start, pid
file under ``var/run``, log under ``var/log``)::

    start_object_store_server(cfg, echo)   # returns the endpoint URL
    stop_object_store_server(cfg, echo)    # True when something was stopped
    object_store_server_status(cfg)        # {"endpoint": ..., "up": bool}

and ``OBJECT_STORE_S3_ENDPOINT=http://127.0.0.1:9010`` (``OBJECT_STORE_SERVER_HOST/PORT``) for the
gateway. Run by hand: ``python -m infra.object_store_server up|down|status``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess  # nosec B404  # runs moto's S3 server module with our interpreter, no shell
import sys
import time
from pathlib import Path
from typing import Callable

from infra.settings import Settings

__all__ = [
    "ObjectStoreServerError",
    "endpoint",
    "object_store_server_status",
    "start_object_store_server",
    "stop_object_store_server",
]

_NAME = "object-store"


class ObjectStoreServerError(RuntimeError):
    """The S3 server could not start; the message names the fix."""


def endpoint(cfg: Settings) -> str:
    """``http://host:port`` of the local S3 server."""
    return f"http://{cfg.OBJECT_STORE_SERVER_HOST}:{cfg.OBJECT_STORE_SERVER_PORT}"


def _paths(cfg: Settings) -> tuple[Path, Path]:
    run, log = cfg.TWIN_VAR_DIR / "run", cfg.TWIN_VAR_DIR / "log"
    run.mkdir(parents=True, exist_ok=True)
    log.mkdir(parents=True, exist_ok=True)
    return run / f"{_NAME}-{cfg.OBJECT_STORE_SERVER_PORT}.pid", log / f"{_NAME}-{cfg.OBJECT_STORE_SERVER_PORT}.log"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _answers(cfg: Settings) -> bool:
    import httpx

    try:
        # ListBuckets: any S3 answer (200, or 403 from a server that wants credentials) means up.
        return httpx.get(endpoint(cfg) + "/", timeout=1).status_code in (200, 403)
    except httpx.HTTPError:
        return False


def start_object_store_server(cfg: Settings, echo: Callable[[str], None] = print, timeout: float = 30.0) -> str:
    """Start moto's S3 server on OBJECT_STORE_SERVER_HOST:PORT unless ours already runs there."""
    pidfile, log = _paths(cfg)
    host, port = cfg.OBJECT_STORE_SERVER_HOST, cfg.OBJECT_STORE_SERVER_PORT
    if _pid(pidfile) and _answers(cfg):
        echo(f"object-store: already running (pid {_pid(pidfile)}) on {endpoint(cfg)}")
        return endpoint(cfg)
    if _port_open(host, port):
        raise ObjectStoreServerError(
            f"port {port} (object-store) is in use by another process; stop it or set OBJECT_STORE_SERVER_PORT")
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise ObjectStoreServerError("moto's server is not installed: pip install 'moto[server]'") from exc
    echo(f"object-store: starting moto S3 server on {endpoint(cfg)}")
    with open(log, "ab") as fh:
        proc = subprocess.Popen(  # nosec B603  # our interpreter, fixed module, argv list, no shell
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            # Credentials are not checked by moto; region only matters for bucket locations.
            env={**os.environ, "AWS_DEFAULT_REGION": cfg.OBJECT_STORE_S3_REGION},
        )
    pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while not _answers(cfg):
        if proc.poll() is not None:
            pidfile.unlink(missing_ok=True)
            raise ObjectStoreServerError(f"object-store exited during start-up; see {log}")
        if time.monotonic() > deadline:
            stop_object_store_server(cfg, echo=lambda _: None)
            raise ObjectStoreServerError(f"object-store did not answer within {timeout:.0f}s; see {log}")
        time.sleep(0.2)
    return endpoint(cfg)


def stop_object_store_server(cfg: Settings, echo: Callable[[str], None] = print, timeout: float = 10.0) -> bool:
    """Stop the server this module started (by its pid file); False when none was running."""
    pidfile, _ = _paths(cfg)
    pid = _pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid(pidfile):
        try:
            # Reap it when it is our child (tests); otherwise the loop just waits for it to exit.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if _pid(pidfile):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    echo("object-store: stopped")
    return True


def object_store_server_status(cfg: Settings) -> dict[str, object]:
    """Where the server listens and whether it answers."""
    return {"endpoint": endpoint(cfg), "up": _answers(cfg)}


def main(argv: list[str] | None = None) -> int:
    from infra.settings import settings

    args = argv if argv is not None else sys.argv[1:]
    action = args[0] if args else "up"
    try:
        if action == "up":
            start_object_store_server(settings)
        elif action == "down":
            stop_object_store_server(settings)
        elif action == "status":
            print(object_store_server_status(settings))
        else:
            print(f"unknown action {action!r}: use up, down or status", file=sys.stderr)
            return 2
    except ObjectStoreServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
