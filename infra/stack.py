"""The local stack without Docker: Kafka (KRaft), PostgreSQL, Redis and Weaviate as plain processes.

Run it as ``infra/up`` / ``infra/down`` (or ``twin up`` / ``twin down``). Everything it installs goes to
``TWIN_CACHE_DIR`` (shared by every clone on the machine); logs, data and pid files go under
``TWIN_VAR_DIR`` (the repo's ignored ``var/``). Each step is idempotent: a service that already answers
is left alone, so a second ``up`` returns in seconds.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess  # nosec B404  # starts the local stack's own programs, argument lists only, no shell
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from infra.settings import REPO_ROOT, Settings

__all__ = ["StackError", "Stack"]


def gateway_tls_options(cfg: Settings) -> dict[str, Any]:
    """uvicorn's TLS arguments from GATEWAY_TLS_* (empty: plain HTTP). A client CA turns on
    mutual TLS: callers must present a certificate it signed."""
    if not cfg.GATEWAY_TLS_CERT:
        return {}
    if not cfg.GATEWAY_TLS_KEY:
        raise StackError("GATEWAY_TLS_CERT is set but GATEWAY_TLS_KEY is not")
    out: dict[str, Any] = {"ssl_certfile": cfg.GATEWAY_TLS_CERT, "ssl_keyfile": cfg.GATEWAY_TLS_KEY}
    if cfg.GATEWAY_TLS_CLIENT_CA:
        import ssl

        out.update(ssl_ca_certs=cfg.GATEWAY_TLS_CLIENT_CA, ssl_cert_reqs=int(ssl.CERT_REQUIRED))
    return out


class StackError(RuntimeError):
    """A one-line, user-facing problem with the local stack, naming the fix."""


# Runs `argv[1:]` in a new session with stdout and stderr on the launcher's stderr (the service log),
# prints its pid and exits: the service is re-parented, never a child of the CLI or test process.
_LAUNCH = "import os, sys; print(os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ, setsid=True," \
          " file_actions=[(os.POSIX_SPAWN_DUP2, 2, 1)]))"


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists" for kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _wait(what: str, check: Callable[[], bool], timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    hint = f"; see {log}" if log else ""
    raise StackError(f"{what} did not become healthy within {timeout:.0f}s{hint}")


def _run(cmd: list[str], what: str, fix: str, **kwargs) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # nosec B603  # our argv, no shell
    except FileNotFoundError as exc:
        raise StackError(f"{what}: {exc.filename} not found; {fix}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise StackError(f"{what} failed ({proc.returncode}): {' | '.join(tail)}")
    return proc


def _require(binary: str, fix: str) -> str:
    path = shutil.which(binary)
    if not path:
        raise StackError(f"`{binary}` is not installed: {fix}")
    return path


@dataclass
class Service:
    """One managed process: how to tell it is up, and where its pid and log live."""

    name: str
    host: str
    port: int
    var: Path

    @property
    def pidfile(self) -> Path:
        return self.var / "run" / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.var / "log" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def ensure_port_free(self, setting: str) -> None:
        """Fail with the setting to change when something that is not ours holds the port."""
        if _port_open(self.host, self.port):
            raise StackError(
                f"port {self.port} ({self.name}) is in use by another process; "
                f"stop it or set {setting}=<free port>"
            )


class Stack:
    """Install, start, check and stop the four services, driven by one Settings object."""

    def __init__(self, cfg: Settings, echo: Callable[[str], None] = print):
        self.cfg = cfg
        self.echo = echo
        self.var = cfg.TWIN_VAR_DIR
        self.cache = cfg.TWIN_CACHE_DIR
        for sub in ("run", "log"):
            (self.var / sub).mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.kafka = Service("kafka", cfg.KAFKA_HOST, cfg.KAFKA_PORT, self.var)
        self.postgres = Service("postgres", cfg.POSTGRES_HOST, cfg.POSTGRES_PORT, self.var)
        self.redis = Service("redis", cfg.REDIS_HOST, cfg.REDIS_PORT, self.var)
        self.weaviate = Service("weaviate", cfg.WEAVIATE_HOST, cfg.WEAVIATE_HTTP_PORT, self.var)

    # ------------------------------------------------------------------ helpers
    def _spawn(self, svc: Service, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start a detached process (own session, so it outlives this CLI) and record its pid.

        It is started through a launcher that exits at once (`_LAUNCH`), so it is not this process's
        child: nothing here has to wait for it, no zombie is left when it stops, and no
        "subprocess is still running" ResourceWarning is printed when this process exits."""
        svc.log.parent.mkdir(parents=True, exist_ok=True)
        with open(svc.log, "ab") as log:
            launcher = subprocess.run(  # nosec B603  # our interpreter and launcher; cmd is our argv, no shell
                [sys.executable, "-I", "-S", "-c", _LAUNCH, *cmd], stdout=subprocess.PIPE,
                stderr=log, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=cwd)
        if launcher.returncode != 0:
            raise StackError(f"{svc.name} could not be started ({cmd[0]}); see {svc.log}")
        pid = int(launcher.stdout)
        svc.pidfile.write_text(str(pid))
        return pid

    def _stop_pid(self, svc: Service, timeout: float = 30.0) -> bool:
        pid = svc.pid()
        if pid is None:
            svc.pidfile.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        svc.pidfile.unlink(missing_ok=True)
        return True

    # ------------------------------------------------------------------ Kafka
    @property
    def kafka_home(self) -> Path:
        return self.cache / f"kafka-{self.cfg.KAFKA_VERSION}"

    def install_kafka(self) -> None:
        """Resolve the broker jars and their runtime dependencies from Maven Central into the cache."""
        libs = self.kafka_home / "libs"
        marker = self.kafka_home / ".complete"
        if marker.exists():
            return
        _require("java", "install a JDK 17+ (apt-get install -y openjdk-17-jre-headless) and re-run infra/up")
        mvn = _require("mvn", "install Maven (apt-get install -y maven) and re-run infra/up")
        self.echo(f"kafka: resolving org.apache.kafka:kafka_2.13:{self.cfg.KAFKA_VERSION} from Maven Central ...")
        # Into a folder of this process, then renamed: clones sharing the cache may install at once.
        tmp = self.kafka_home.with_name(f"{self.kafka_home.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        _run(
            [mvn, "-q", "-B", "-f", str(REPO_ROOT / "infra" / "kafka" / "pom.xml"),
             "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-Dkafka.version={self.cfg.KAFKA_VERSION}", f"-DoutputDirectory={tmp / libs.name}"],
            "maven dependency resolution", "install Maven",
        )
        (tmp / marker.name).write_text(self.cfg.KAFKA_VERSION)
        if not marker.exists():
            shutil.rmtree(self.kafka_home, ignore_errors=True)  # an unfinished install
            try:
                tmp.rename(self.kafka_home)
            except OSError:  # another process finished first
                if not marker.exists():
                    raise
        shutil.rmtree(tmp, ignore_errors=True)

    def _kafka_java(self) -> list[str]:
        java = _require("java", "install a JDK 17+ (apt-get install -y openjdk-17-jre-headless) and re-run infra/up")
        log4j = self.var / "kafka" / "log4j.properties"
        return [java, *self.cfg.KAFKA_HEAP.split(), "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{log4j}", f"-Dkafka.logs.dir={self.var / 'log'}",
                "-cp", str(self.kafka_home / "libs" / "*")]

    def start_kafka(self) -> None:
        cfg, svc = self.cfg, self.kafka
        if svc.pid() and _port_open(svc.host, svc.port):
            self.echo(f"kafka: already running (pid {svc.pid()})")
            return
        svc.ensure_port_free("KAFKA_PORT")
        if _port_open(cfg.KAFKA_HOST, cfg.KAFKA_CONTROLLER_PORT):
            raise StackError(f"port {cfg.KAFKA_CONTROLLER_PORT} (kafka controller) is in use; set KAFKA_CONTROLLER_PORT=<free port>")
        self.install_kafka()
        home = self.var / "kafka"
        data = home / "data"
        home.mkdir(parents=True, exist_ok=True)
        props = home / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{cfg.KAFKA_HOST}:{cfg.KAFKA_CONTROLLER_PORT}",
            f"listeners=PLAINTEXT://{cfg.KAFKA_HOST}:{cfg.KAFKA_PORT},CONTROLLER://{cfg.KAFKA_HOST}:{cfg.KAFKA_CONTROLLER_PORT}",
            f"advertised.listeners=PLAINTEXT://{cfg.KAFKA_HOST}:{cfg.KAFKA_PORT}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.retention.hours=168",
            "",
        ]))
        (home / "log4j.properties").write_text("\n".join([
            "log4j.rootLogger=INFO, stdout",
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
            "log4j.logger.kafka=INFO",
            "log4j.logger.org.apache.kafka=WARN",
            "",
        ]))
        if not (data / "meta.properties").exists():
            cluster_id = _run([*self._kafka_java(), "kafka.tools.StorageTool", "random-uuid"],
                              "kafka cluster id", "check the Java install").stdout.strip()
            _run([*self._kafka_java(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), "--ignore-formatted"],
                 "kafka storage format", "check var/kafka permissions")
        self.echo(f"kafka: starting {cfg.KAFKA_VERSION} (KRaft) on {cfg.KAFKA_BOOTSTRAP}")
        self._spawn(svc, [*self._kafka_java(), "kafka.Kafka", str(props)])
        _wait("kafka", lambda: self._kafka_ready(), 90, svc.log)

    def _kafka_ready(self) -> bool:
        if not self.kafka.pid():
            raise StackError(f"kafka exited during start-up; see {self.kafka.log}")
        if not _port_open(self.kafka.host, self.kafka.port):
            return False
        try:
            from infra.kafka_admin import broker_ready

            return broker_ready(self.cfg)
        except Exception:  # noqa: BLE001 - not ready yet is any failure here
            return False

    def stop_kafka(self, timeout: float = 60.0) -> bool:
        """Stop this stack's broker (SIGTERM, SIGKILL after ``timeout``); False when it was not running.

        With a Settings copy (own KAFKA_PORT, KAFKA_CONTROLLER_PORT and TWIN_VAR_DIR) a Stack runs a
        second, private broker beside the shared one: the fault tests stop and restart that one.
        """
        return self._stop_pid(self.kafka, timeout)

    # ------------------------------------------------------------------ PostgreSQL
    def _pg_bin(self, name: str) -> str:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
        if candidates:
            return candidates[-1]
        found = shutil.which(name)
        if found:
            return found
        raise StackError(
            f"PostgreSQL server binaries ({name}) not found: run `apt-get install -y postgresql` "
            "(infra/up does this itself when run as root)"
        )

    def _as_pg_user(self, cmd: list[str]) -> list[str]:
        # initdb and postgres refuse to run as root; Debian's package creates the `postgres` user.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def start_postgres(self) -> None:
        cfg, svc = self.cfg, self.postgres
        data = self.var / "postgres" / "data"
        sockdir = self.var / "postgres" / "sock"
        if _port_open(svc.host, svc.port) and (data / "postmaster.pid").exists():
            self.echo(f"postgres: already running on {svc.host}:{svc.port}")
            self._ensure_pg_database()
            return
        svc.ensure_port_free("POSTGRES_PORT")
        initdb = self._pg_bin("initdb")
        pg_ctl = self._pg_bin("pg_ctl")
        for path in (data.parent, sockdir):
            path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data.parent, "postgres", "postgres")
            shutil.chown(sockdir, "postgres", "postgres")
            # The server user must be able to reach var/ from the repo root.
            for parent in [self.var, *self.var.parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        if not (data / "PG_VERSION").exists():
            self.echo("postgres: initdb")
            pwfile = self.var / "postgres" / ".pw"
            pwfile.write_text(cfg.POSTGRES_PASSWORD.get_secret_value() + "\n")
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres", "postgres")
            try:
                _run(self._as_pg_user([initdb, "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
                                       f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"]),
                     "initdb", "check that var/ is writable")
            finally:
                pwfile.unlink(missing_ok=True)
        self.echo(f"postgres: starting on {svc.host}:{svc.port}")
        svc.log.touch()
        if os.geteuid() == 0:
            shutil.chown(svc.log, "postgres", "postgres")
        opts = f"-p {svc.port} -c listen_addresses={svc.host} -k {sockdir} -c max_connections=200 -c fsync=on"
        _run(self._as_pg_user([pg_ctl, "-D", str(data), "-o", opts, "-l", str(svc.log), "-w", "-t", "60", "start"]),
             "pg_ctl start", f"see {svc.log}")
        _wait("postgres", lambda: _port_open(svc.host, svc.port), 30, svc.log)
        self._ensure_pg_database()

    def _ensure_pg_database(self) -> None:
        """Create the project's role and database when missing (as the cluster superuser)."""
        import psycopg
        from psycopg import sql

        cfg = self.cfg
        admin = dict(host=cfg.POSTGRES_HOST, port=cfg.POSTGRES_PORT, user="postgres",
                     password=cfg.POSTGRES_PASSWORD.get_secret_value(), dbname="postgres", autocommit=True)
        with psycopg.connect(**admin) as conn:
            # CREATEDB: every test run creates (and drops) a database of its own (tests/namespace.py).
            role = conn.execute("SELECT rolcreatedb FROM pg_roles WHERE rolname=%s", (cfg.POSTGRES_USER,)).fetchone()
            if not role:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(cfg.POSTGRES_USER), sql.Literal(cfg.POSTGRES_PASSWORD.get_secret_value())))
            elif not role[0]:
                conn.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(cfg.POSTGRES_USER)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (cfg.POSTGRES_DB,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(cfg.POSTGRES_DB), sql.Identifier(cfg.POSTGRES_USER)))

    def stop_postgres(self) -> bool:
        data = self.var / "postgres" / "data"
        if not (data / "postmaster.pid").exists():
            return False
        subprocess.run(self._as_pg_user([self._pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)  # nosec B603  # pg_ctl of our cluster, argv, no shell
        return True

    # ------------------------------------------------------------------ Redis
    def start_redis(self) -> None:
        svc = self.redis
        if svc.pid() and _port_open(svc.host, svc.port):
            self.echo(f"redis: already running (pid {svc.pid()})")
            return
        svc.ensure_port_free("REDIS_PORT")
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(server).exists():
            raise StackError("redis-server not found: run `apt-get install -y redis-server` (infra/up does this as root)")
        data = self.var / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.echo(f"redis: starting on {svc.host}:{svc.port}")
        # Foreground under our own supervisor (pid file = the process we spawned).
        self._spawn(svc, [server, "--port", str(svc.port), "--bind", svc.host, "--dir", str(data),
                          "--appendonly", "yes", "--save", "60 1000", "--daemonize", "no",
                          "--protected-mode", "yes"])
        _wait("redis", lambda: self._redis_ready(), 20, svc.log)

    def _redis_ready(self) -> bool:
        if not self.redis.pid():
            raise StackError(f"redis exited during start-up; see {self.redis.log}")
        import redis

        try:
            return bool(redis.Redis(host=self.redis.host, port=self.redis.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    # ------------------------------------------------------------------ Weaviate
    @property
    def weaviate_bin(self) -> Path:
        return self.cache / "bin" / f"weaviate-server-{self.cfg.WEAVIATE_VERSION}"

    def install_weaviate(self) -> None:
        """Build weaviate-server from its Go module into the cache (minutes, once per machine)."""
        if self.weaviate_bin.exists():
            return
        go = _require("go", "install Go 1.24+ (apt-get install -y golang or the Go toolchain) and re-run infra/up")
        version = self.cfg.WEAVIATE_VERSION
        self.echo(f"weaviate: building github.com/weaviate/weaviate@{version} from the Go module proxy (several minutes, once) ...")
        env = {**os.environ, "GOFLAGS": "-mod=mod"}
        # `go install pkg@version` refuses modules with replace directives, so build inside the
        # downloaded module instead (its go.mod, replaces included, is then the main module).
        dl = _run([go, "mod", "download", "-json", f"github.com/weaviate/weaviate@{version}"],
                  "go mod download", "check access to the Go module proxy", env=env)
        src = json.loads(dl.stdout)["Dir"]
        self.weaviate_bin.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.weaviate_bin.with_suffix(f".tmp{os.getpid()}")  # clones sharing the cache may build at once
        _run([go, "build", "-trimpath", "-o", str(tmp), "./cmd/weaviate-server"], "go build weaviate-server",
             "see the Go error above", cwd=src, env=env)
        tmp.rename(self.weaviate_bin)

    def start_weaviate(self) -> None:
        cfg, svc = self.cfg, self.weaviate
        if svc.pid() and self._weaviate_ready():
            self.echo(f"weaviate: already running (pid {svc.pid()})")
            return
        svc.ensure_port_free("WEAVIATE_HTTP_PORT")
        if _port_open(cfg.WEAVIATE_HOST, cfg.WEAVIATE_GRPC_PORT):
            raise StackError(f"port {cfg.WEAVIATE_GRPC_PORT} (weaviate gRPC) is in use; set WEAVIATE_GRPC_PORT=<free port>")
        self.install_weaviate()
        data = self.var / "weaviate"
        data.mkdir(parents=True, exist_ok=True)
        base = cfg.WEAVIATE_HTTP_PORT
        env = {
            "PERSISTENCE_DATA_PATH": str(data),
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
            "DEFAULT_VECTORIZER_MODULE": "none",
            "ENABLE_MODULES": "",
            "QUERY_DEFAULTS_LIMIT": "25",
            "CLUSTER_HOSTNAME": "node1",
            # Pin gossip/raft to loopback: otherwise Weaviate advertises the first interface address,
            # which breaks on IPv6-only or multi-homed hosts ("too many colons in address").
            "CLUSTER_ADVERTISE_ADDR": cfg.WEAVIATE_HOST,
            "CLUSTER_BIND_ADDR": cfg.WEAVIATE_HOST,
            "CLUSTER_IN_LOCALHOST": "true",
            "GRPC_PORT": str(cfg.WEAVIATE_GRPC_PORT),
            # Cluster ports derive from the HTTP port so two stacks on one machine do not clash.
            "CLUSTER_GOSSIP_BIND_PORT": str(base + 1),
            "CLUSTER_DATA_BIND_PORT": str(base + 2),
            "RAFT_PORT": str(base + 3),
            "RAFT_INTERNAL_RPC_PORT": str(base + 4),
            "RAFT_BOOTSTRAP_EXPECT": "1",
            "DISABLE_TELEMETRY": "true",
            "LOG_LEVEL": "warning",
            "GOMEMLIMIT": "2GiB",
        }
        self.echo(f"weaviate: starting {cfg.WEAVIATE_VERSION} on {cfg.WEAVIATE_URL} (gRPC {cfg.WEAVIATE_GRPC_PORT})")
        self._spawn(svc, [str(self.weaviate_bin), "--host", cfg.WEAVIATE_HOST, "--port", str(base), "--scheme", "http"],
                    env=env, cwd=data)
        _wait("weaviate", self._weaviate_ready_or_dead, 120, svc.log)

    def _weaviate_ready_or_dead(self) -> bool:
        if not self.weaviate.pid():
            raise StackError(f"weaviate exited during start-up; see {self.weaviate.log}")
        return self._weaviate_ready()

    def _weaviate_ready(self) -> bool:
        import httpx

        try:
            ready = httpx.get(f"{self.cfg.WEAVIATE_URL}/v1/.well-known/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
        return ready and _port_open(self.cfg.WEAVIATE_HOST, self.cfg.WEAVIATE_GRPC_PORT)

    # ------------------------------------------------------------------ whole stack
    def up(self, services: tuple[str, ...] = ("postgres", "redis", "kafka", "weaviate")) -> None:
        """Start what is not running (in dependency-free order), then migrations and topics."""
        started = time.monotonic()
        for name in services:
            getattr(self, f"start_{name}")()
        if "postgres" in services:
            from infra.db import upgrade

            applied = upgrade(self.cfg)
            self.echo(f"postgres: migrations up to date ({len(applied)} applied now)")
        if "kafka" in services:
            from infra.kafka_admin import create_topics

            created = create_topics(self.cfg)
            self.echo(f"kafka: topics ready ({len(created)} created now)")
        self.echo(f"stack up in {time.monotonic() - started:.1f}s")

    def app_services(self, name: str = "") -> tuple[Service, Service]:
        """The (gateway, worker) pair called ``name`` (empty: the default pair `twin demo` runs)."""
        pre = f"{name}-" if name else ""
        return (Service(f"{pre}gateway", self.cfg.GATEWAY_HOST, self.cfg.GATEWAY_PORT, self.var),
                Service(f"{pre}worker", self.cfg.GATEWAY_HOST, 0, self.var))

    def start_app(self, name: str = "", extra_env: dict[str, str] | None = None, timeout: float = 180.0) -> str:
        """Start a gateway and a worker (all agents) in the background; return the gateway URL.

        They get this stack's TOPIC_PREFIX and GATEWAY_PORT (plus ``extra_env``), so a benchmark can
        run an isolated pair beside the demo's.
        """
        import httpx

        gateway, worker = self.app_services(name)
        py = sys.executable
        scheme = "https" if self.cfg.GATEWAY_TLS_CERT else "http"
        url = f"{scheme}://{self.cfg.GATEWAY_HOST}:{self.cfg.GATEWAY_PORT}"
        env = {"TOPIC_PREFIX": self.cfg.TOPIC_PREFIX, "GATEWAY_PORT": str(self.cfg.GATEWAY_PORT),
               # The local worker serves Prometheus metrics on 9464 unless told otherwise (0: off).
               "WORKER_METRICS_PORT": str(self.cfg.WORKER_METRICS_PORT or 9464), **(extra_env or {})}
        if not gateway.pid():  # before the worker starts: a busy port must not leave a worker behind
            gateway.ensure_port_free("GATEWAY_PORT")
        if not worker.pid():
            self.echo(f"{worker.name}: starting the Faust agents")
            worker.log.unlink(missing_ok=True)
            self._spawn(worker, [py, "-m", "processors.engine.app", "worker", "-l", "info", "--without-web"],
                        env=env, cwd=REPO_ROOT)
        if not gateway.pid():
            gateway.ensure_port_free("GATEWAY_PORT")
            self.echo(f"{gateway.name}: starting on {url}")
            tls_args = [arg for k, v in gateway_tls_options(self.cfg).items()
                        for arg in (f"--{k.replace('_', '-')}", str(int(v) if isinstance(v, bool) else v))]
            self._spawn(gateway, [py, "-m", "uvicorn", "gateway.main:app", "--host", self.cfg.GATEWAY_HOST,
                                  "--port", str(self.cfg.GATEWAY_PORT), "--log-level", "warning", *tls_args],
                        env=env, cwd=REPO_ROOT)

        def ready() -> bool:
            for svc in (worker, gateway):
                if not svc.pid():
                    raise StackError(f"{svc.name} exited during start-up; see {svc.log}")
            log = worker.log.read_text(errors="replace") if worker.log.exists() else ""
            if "twin engine ready" not in log:
                return False
            try:
                # A readiness probe of the gateway this process just started: it sends no credential and
                # reads only the status; the certificate is the operator's (often for another name) to verify.
                return httpx.get(f"{url}/readyz", timeout=1,
                                 verify=False).status_code == 200  # nosec B501  # no credential sent
            except httpx.HTTPError:
                return False

        _wait(f"{gateway.name} and {worker.name}", ready, timeout, worker.log)
        return url

    def stop_app(self, name: str = "") -> None:
        """Stop the (gateway, worker) pair called ``name``."""
        for svc in self.app_services(name):
            self._stop_pid(svc)

    def down(self) -> None:
        """Stop every service this stack started; data stays under var/."""
        # The project's own gateway/worker processes first (every pid file under var/run), then the services.
        ours = [Service(p.stem, "", 0, self.var) for p in (self.var / "run").glob("*.pid")
                if p.stem.endswith(("gateway", "worker"))]
        for svc in (*ours, self.weaviate, self.kafka, self.redis):
            if self._stop_pid(svc, timeout=60 if svc.name == "kafka" else 20):
                self.echo(f"{svc.name}: stopped")
        if self.stop_postgres():
            self.echo("postgres: stopped")

    def status(self) -> dict[str, dict[str, object]]:
        """Which services answer, and where."""
        cfg = self.cfg
        return {
            "kafka": {"endpoint": cfg.KAFKA_BOOTSTRAP, "up": _port_open(cfg.KAFKA_HOST, cfg.KAFKA_PORT)},
            "postgres": {"endpoint": f"{cfg.POSTGRES_HOST}:{cfg.POSTGRES_PORT}/{cfg.POSTGRES_DB}",
                         "up": _port_open(cfg.POSTGRES_HOST, cfg.POSTGRES_PORT)},
            "redis": {"endpoint": cfg.REDIS_URL, "up": _port_open(cfg.REDIS_HOST, cfg.REDIS_PORT)},
            "weaviate": {"endpoint": f"{cfg.WEAVIATE_URL} (gRPC {cfg.WEAVIATE_GRPC_PORT})",
                         "up": self._weaviate_ready()},
        }


def main(argv: list[str] | None = None) -> int:
    """`python -m infra.stack up|down|status` — what infra/up and infra/down run."""
    from infra.settings import settings

    args = argv if argv is not None else sys.argv[1:]
    action = args[0] if args else "up"
    stack = Stack(settings)
    try:
        if action == "up":
            stack.up(tuple(args[1:]) or ("postgres", "redis", "kafka", "weaviate"))
            for name, info in stack.status().items():
                print(f"  {name:9} {'up  ' if info['up'] else 'DOWN'} {info['endpoint']}")
        elif action == "down":
            stack.down()
        elif action == "status":
            for name, info in stack.status().items():
                print(f"  {name:9} {'up  ' if info['up'] else 'DOWN'} {info['endpoint']}")
        else:
            print(f"unknown action {action!r}: use up, down or status", file=sys.stderr)
            return 2
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
