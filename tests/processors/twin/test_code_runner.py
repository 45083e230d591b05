"""The code runner's bubblewrap sandbox (processors/twin/tools/code_runner.py) against escapes.

Each test runs a snippet that tries one escape (the data-encryption keys under ``var/keys``, the
repository, ``/etc/shadow``, the worker's environment, a fork bomb, a ``setsid`` daemon, the network,
the disk, a flood of output) and asserts that it fails, that the runner returns within its limits,
that nothing the snippet started is still running afterwards (a unique marker on the command line,
looked for in the host's ``/proc``), and that the sandbox still runs a normal snippet. The last tests
check the fail-closed refusal (no bwrap, or a bwrap that cannot build namespaces) and the safety output
check of what the tool returns.

Nothing skips: a machine without bubblewrap or user namespaces fails these tests (infra/bootstrap
installs the Debian package ``bubblewrap``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest

from processors.twin.engine import TwinEngine
from processors.twin.safety_learned import SafetyPolicy
from processors.twin.tools import code_runner as cr
from processors.twin.tools.code_runner import SandboxLimits, run_snippet

REPO_ROOT = Path(__file__).resolve().parents[3]
LIMITS = SandboxLimits()


@pytest.fixture(scope="module", autouse=True)
def _sandbox():
    cr.reset_sandbox_cache()
    if not cr.sandbox_available():
        pytest.fail(f"the code sandbox does not work on this machine: {cr.sandbox_problem()} "
                    "(infra/bootstrap installs the Debian package bubblewrap)", pytrace=False)
    yield
    cr.reset_sandbox_cache()


def _marker() -> str:
    return f"twin-sandbox-test-{uuid.uuid4().hex}"


def _processes_with(marker: str) -> list[int]:
    """Host processes whose command line contains ``marker`` (this test process excluded)."""
    needle, found = marker.encode(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _assert_healthy() -> None:
    out = run_snippet("print(6 * 7)")
    assert (out.status, out.stdout) == ("ok", "42\n"), out


def _run(code: str, limits: SandboxLimits = LIMITS) -> tuple[cr.RunOutcome, float]:
    started = time.monotonic()
    out = run_snippet(textwrap.dedent(code), limits)
    return out, time.monotonic() - started


def test_a_normal_snippet_runs():
    out, took = _run("""
        def answer():
            return 6 * 7
        print(answer())
    """)
    assert (out.status, out.exit_code, out.stdout, out.stderr) == ("ok", 0, "42\n", "")
    assert took < LIMITS.wall_s
    err, _ = _run("raise ValueError('boom')")
    assert (err.status, err.exit_code) == ("error", 1)
    assert err.stderr.splitlines()[-1] == "ValueError: boom" and "<snippet>" in err.stderr


def test_the_keys_and_the_repository_are_out_of_reach(tmp_path):
    """A secret under a repository-like ``var/keys`` (as a worker's checkout has) and one in the real
    REPO_ROOT/var/keys: neither path, nor the repository, exists inside the sandbox."""
    fake_keys = tmp_path / "var" / "keys"
    fake_keys.mkdir(parents=True)
    secret_fake, secret_real = uuid.uuid4().hex, uuid.uuid4().hex
    (fake_keys / "dev.key").write_text(secret_fake)
    real_keys = REPO_ROOT / "var" / "keys"
    real_keys.mkdir(parents=True, exist_ok=True)
    real_file = real_keys / f"sandbox-test-{uuid.uuid4().hex}.key"  # crypto reads dev.key/object-store.key only
    real_file.write_text(secret_real)
    files = [fake_keys / "dev.key", real_file, real_keys / "dev.key", real_keys / "object-store.key",
             REPO_ROOT / ".env", REPO_ROOT / "infra" / "settings.py"]
    dirs = [fake_keys, real_keys, REPO_ROOT / "var", REPO_ROOT, tmp_path]
    try:
        out, _ = _run(f"""
            import os
            for p in {[str(f) for f in files]!r}:
                try:
                    print("READ", p, open(p).read())
                except OSError as e:
                    print("DENIED", p, type(e).__name__)
            for d in {[str(d) for d in dirs]!r}:
                try:
                    print("LISTED", d, os.listdir(d))
                except OSError as e:
                    print("DENIED", d, type(e).__name__)
            print("ROOT", sorted(os.listdir("/")))
            print("ETC", sorted(os.listdir("/etc")))
        """)
    finally:
        real_file.unlink()
    assert out.status == "ok", out
    assert secret_fake not in out.stdout and secret_real not in out.stdout
    lines = out.stdout.splitlines()
    assert not [x for x in lines if x.startswith(("READ", "LISTED"))]
    not_found = [x for x in lines if x.startswith("DENIED") and x.endswith("FileNotFoundError")]
    assert len(not_found) == len(files) + len(dirs)
    root = eval(next(x for x in lines if x.startswith("ROOT "))[5:])  # noqa: S307 - our own print
    # The repository's top folder is absent (unless it is /tmp, which inside is the sandbox's own tmpfs).
    top = REPO_ROOT.parts[1]
    assert (top == "tmp" or top not in root) and "home" not in root and "var" not in root
    assert eval(next(x for x in lines if x.startswith("ETC "))[4:]) == ["ld.so.cache"]  # noqa: S307
    _assert_healthy()


def test_etc_shadow_and_the_accounts_are_not_there():
    out, _ = _run("""
        for p in ("/etc/shadow", "/etc/passwd", "/etc/hosts", "/root/.bash_history", "/etc/ssh/ssh_host_ed25519_key"):
            try:
                print("READ", p, len(open(p).read()))
            except OSError as e:
                print("DENIED", p, type(e).__name__)
    """)
    assert out.status == "ok", out
    assert out.stdout.count("DENIED") == 5 and "READ" not in out.stdout
    _assert_healthy()


def test_the_workers_environment_is_not_visible(monkeypatch):
    """A secret in the worker's environment (set in this process and in a worker-like process started
    with it), sought in ``os.environ``, in ``/proc/<pid>/environ`` of those processes, of the parent
    and of every process the sandbox can see."""
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv("TWIN_SANDBOX_TEST_SECRET", secret)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              env={**os.environ, "POSTGRES_PASSWORD": secret})
    try:
        out, _ = _run(f"""
            import os
            print("ENV", sorted(os.environ))
            print("SEEN" if {secret!r} in repr(dict(os.environ)) else "NOT-IN-ENV")
            pids = {[os.getpid(), os.getppid(), worker.pid]!r} + [os.getppid(), 1]
            pids += [int(p) for p in os.listdir("/proc") if p.isdigit()]
            for pid in pids:
                try:
                    data = open(f"/proc/{{pid}}/environ", "rb").read()
                    print("READ", pid, {secret!r}.encode() in data)
                except OSError as e:
                    print("DENIED", pid, type(e).__name__)
        """)
        with open(f"/proc/{worker.pid}/environ", "rb") as f:
            assert secret.encode() in f.read()  # the secret is there to be stolen outside the sandbox
    finally:
        worker.kill()
        worker.wait()
    assert out.status == "ok", out
    assert secret not in out.stdout + out.stderr
    assert "NOT-IN-ENV" in out.stdout
    env = eval(next(x for x in out.stdout.splitlines() if x.startswith("ENV "))[4:])  # noqa: S307
    assert set(env) <= {"PATH", "HOME", "LANG", "PWD"}
    assert not re.search(r"^READ \d+ True$", out.stdout, re.M)
    # The host's PIDs of this process, its parent and the worker-like process are not in the sandbox's /proc.
    for pid in (os.getpid(), os.getppid(), worker.pid):
        if pid > 64:  # a small PID may exist inside the PID namespace by chance, and is a sandbox process
            assert f"DENIED {pid} FileNotFoundError" in out.stdout
    _assert_healthy()


def test_a_fork_bomb_hits_rlimit_nproc_and_is_killed_with_the_namespace():
    marker = _marker()
    limits = SandboxLimits(wall_s=2.0)
    bomb = f"""# {marker}
import os, sys
while True:
    try:
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", sys.argv[1], sys.argv[1]])
    except OSError:
        pass
"""
    out, took = _run(f"""
        import os, sys
        n = 0
        try:
            while True:
                if os.fork() == 0:
                    os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)",
                                              {marker!r}])
                n += 1
        except OSError as e:
            print("forks before the limit:", n, e.errno, flush=True)
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", {bomb!r}, {bomb!r}])
    """, limits)
    m = re.search(r"forks before the limit: (\d+) (\d+)", out.stdout)
    assert m, out
    assert 0 < int(m.group(1)) < limits.processes and int(m.group(2)) == 11  # EAGAIN
    assert out.status in ("timeout", "killed"), out
    assert took < limits.wall_s + 2.0
    assert _processes_with(marker) == []
    _assert_healthy()


@pytest.mark.parametrize("main", ["exits", "runs_past_the_wall_clock"])
def test_a_setsid_daemon_does_not_outlive_the_run(main):
    marker = _marker()
    limits = SandboxLimits(wall_s=1.5)
    out, took = _run(f"""
        import os, sys, time
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", "import time; time.sleep(30)", {marker!r}])
            os._exit(0)
        os.waitpid(pid, 0)
        for _ in range(50):
            if any({marker!r}.encode() in open(f"/proc/{{p}}/cmdline", "rb").read()
                   for p in os.listdir("/proc") if p.isdigit()):
                print("daemon running", flush=True)
                break
            time.sleep(0.02)
        if {main!r} != "exits":
            time.sleep(30)
    """, limits)
    assert "daemon running" in out.stdout, out
    assert out.status == ("ok" if main == "exits" else "timeout"), out
    assert took < limits.wall_s + 1.5
    assert _processes_with(marker) == []
    _assert_healthy()


def test_no_network_not_even_the_hosts_loopback():
    """The sandbox has a network namespace of its own: its ``lo`` is not the host's, so no service of
    the host (PostgreSQL, Redis, Kafka, a listener of this test, an abstract Unix socket) is reachable,
    and nothing outside is either."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp_port = udp.getsockname()[1]
    abstract = f"\0{_marker()}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(abstract)
    unix.listen(8)
    try:
        out, _ = _run(f"""
            import socket
            attempts = {{
                "tcp-listener": lambda: socket.create_connection(("127.0.0.1", {port}), timeout=1),
                "tcp-postgres": lambda: socket.create_connection(("127.0.0.1", 5432), timeout=1),
                "tcp-redis": lambda: socket.create_connection(("127.0.0.1", 6379), timeout=1),
                "tcp-kafka": lambda: socket.create_connection(("127.0.0.1", 9092), timeout=1),
                "tcp-outside": lambda: socket.create_connection(("1.1.1.1", 443), timeout=1),
                "abstract-unix": lambda: socket.socket(socket.AF_UNIX).connect({abstract!r}),
                "dns": lambda: socket.getaddrinfo("pypi.org", 443),
            }}
            for name, attempt in attempts.items():
                try:
                    attempt()
                    print("CONNECTED", name)
                except OSError as e:
                    print("BLOCKED", name, type(e).__name__)
            # UDP to 127.0.0.1 is "sent": into the sandbox's own loopback, where nobody listens.
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"{_marker()}", ("127.0.0.1", {udp_port}))
            print("IFACES", [n for _, n in socket.if_nameindex()])
        """)
        for sock in (listener, unix, udp):
            sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
        with pytest.raises(BlockingIOError):
            unix.accept()
        with pytest.raises(BlockingIOError):
            udp.recv(1024)
    finally:
        for sock in (listener, unix, udp):
            sock.close()
    assert out.status == "ok", out
    assert "CONNECTED" not in out.stdout
    assert out.stdout.count("BLOCKED") == 7, out.stdout
    assert "IFACES ['lo']" in out.stdout
    _assert_healthy()


def test_filling_the_disk_stops_at_the_file_and_tmpfs_limits():
    marker = _marker()
    out, took = _run(f"""
        import errno, os, sys
        chunk = b"x" * 65536
        def fill(path):
            n = 0
            try:
                with open(path, "wb") as f:
                    while True:
                        f.write(chunk)
                        f.flush()
                        n += len(chunk)
            except OSError as e:
                return n, errno.errorcode[e.errno]
        print("ONE", *fill("/tmp/{marker}-big"))
        total, i = 0, 0
        while True:
            n, err = fill(f"/tmp/{marker}-{{i}}")
            total, i = total + n, i + 1
            if err != "EFBIG" or i > 1000:
                break
        print("MANY", total, err)
        for p in ("/{marker}", "/root/{marker}", "/etc/{marker}", "/dev/shm/{marker}", "/dev/{marker}",
                  "/proc/{marker}", os.path.dirname(os.__file__) + "/{marker}", "{REPO_ROOT}/var/{marker}"):
            try:
                open(p, "wb").write(b"x")
                print("WROTE", p)
            except OSError as e:
                print("DENIED", p, type(e).__name__)
    """)
    assert out.status == "ok", out
    one = re.search(r"ONE (\d+) (\w+)", out.stdout)
    assert one and (int(one.group(1)), one.group(2)) == (LIMITS.file_bytes, "EFBIG"), out
    many = re.search(r"MANY (\d+) (\w+)", out.stdout)
    assert many and many.group(2) == "ENOSPC" and int(many.group(1)) <= LIMITS.tmp_bytes, out
    assert "WROTE" not in out.stdout and out.stdout.count("DENIED") == 8
    assert took < LIMITS.wall_s
    leaked = [p for d in ("/tmp", "/dev/shm", "/", "/root", str(REPO_ROOT / "var")) if os.path.isdir(d)
              for p in os.listdir(d) if marker in p]
    assert leaked == []
    _assert_healthy()


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_hundred_megabytes_of_output_is_cut_at_the_bound(stream):
    tracemalloc.start()
    try:
        out, took = _run(f"""
            import sys
            line = "x" * 1_000_000
            for _ in range(100):
                sys.{stream}.write(line)
        """)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.status == "output_limit" and out.truncated, out.status
    assert len(getattr(out, stream)) == LIMITS.output_bytes
    assert took < LIMITS.wall_s
    assert peak < 2_000_000, f"the runner held {peak} bytes"
    _assert_healthy()


def test_no_privileges_and_no_packages_of_the_worker():
    out, _ = _run("""
        import os, sys
        status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
        print("UIDS", os.getresuid(), os.getresgid(), os.getgroups())
        print("CAPEFF", status["CapEff"].strip(), "CAPPRM", status["CapPrm"].strip(),
              "NNP", status["NoNewPrivs"].strip())
        print("PID", os.getpid())
        for mod in ("fastapi", "psycopg", "processors", "infra"):
            try:
                __import__(mod)
                print("IMPORTED", mod)
            except ImportError:
                print("NO", mod)
        print("PATH", sys.path)
    """)
    assert out.status == "ok", out
    uids = re.search(r"UIDS \((\d+), (\d+), (\d+)\) \((\d+), (\d+), (\d+)\) \[\]", out.stdout)
    assert uids and 0 not in map(int, uids.groups()), out.stdout
    assert "CAPEFF 0000000000000000 CAPPRM 0000000000000000 NNP 1" in out.stdout
    assert re.search(r"^PID [2-9]$", out.stdout, re.M)  # its own PID namespace: bwrap's init is 1
    assert out.stdout.count("NO ") == 4 and "IMPORTED" not in out.stdout
    assert ".venv" not in out.stdout and "site-packages" not in out.stdout
    _assert_healthy()


def test_a_non_root_worker_gets_the_same_sandbox():
    """The suite runs as root on CI: run the runner as an unprivileged user too (a user namespace maps
    the snippet to 65534; RLIMIT_NPROC counts the sandbox's processes only)."""
    if os.geteuid() != 0:
        assert not cr._sandbox()[0].as_root  # this whole module already ran the non-root path
        return
    python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
    assert python and setpriv, "needs /usr/bin/python3 and setpriv (util-linux) to run as another user"
    marker = _marker()
    script = textwrap.dedent(f"""
        import importlib.util, json, os, sys
        spec = importlib.util.spec_from_file_location("code_runner", {str(Path(cr.__file__))!r})
        cr = sys.modules["code_runner"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cr)
        res = {{"uid": os.getuid(), "available": cr.sandbox_available(), "problem": cr.sandbox_problem(),
               "as_root": cr._sandbox()[0].as_root if cr.sandbox_available() else None}}
        for name, code in {{
            "normal": "print(6 * 7)",
            "who": "import os; print(os.getuid(), sorted(os.environ))",
            "forks": "import os, time\\nn = 0\\ntry:\\n    while True:\\n        if os.fork() == 0:\\n"
                     "            time.sleep(5); os._exit(0)\\n        n += 1\\nexcept OSError as e:\\n    print(n)",
            "daemon": "import os, sys\\nif os.fork() == 0:\\n    os.setsid()\\n    os.execv(sys.executable, "
                      "[sys.executable, '-c', 'import time; time.sleep(30)', {marker!r}])\\n"
                      "import time; time.sleep(0.3)",
            "keys": "print(open({str(REPO_ROOT / 'infra' / 'settings.py')!r}).read()[:10])",
        }}.items():
            o = cr.run_snippet(code)
            res[name] = [o.status, o.stdout.strip(), o.stderr.strip()[-200:]]
        print(json.dumps(res))
    """)
    proc = subprocess.run([setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", python, "-c", script],
                          capture_output=True, text=True, timeout=60, cwd="/",
                          env={"PATH": "/usr/bin:/bin", "TWIN_SANDBOX_TEST_SECRET": "hunter2"})
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.splitlines()[-1])
    assert res["uid"] == 65534 and res["available"], res
    assert res["as_root"] is False
    assert res["normal"][:2] == ["ok", "42"]
    assert res["who"][:2] == ["ok", "65534 ['HOME', 'LANG', 'PATH', 'PWD']"]
    assert res["forks"][0] == "ok" and 0 < int(res["forks"][1]) < LIMITS.processes
    assert res["daemon"][0] == "ok"
    assert res["keys"][0] == "error" and "FileNotFoundError" in res["keys"][2]
    assert _processes_with(marker) == []


# ------------------------------------------------------------------------------------------------
# Fail closed, and the safety check of what comes back.
def _engine() -> TwinEngine:
    return TwinEngine(profiles=None, memory=None, embedder=None)


def _tool(candidate_turn: str, policy: SafetyPolicy | None = None):
    return _engine()._run_tool("run_code", {}, "acme", "dana", None, None, [], candidate_turn,
                               policy=policy or SafetyPolicy())


@pytest.fixture
def _fresh_probe():
    cr.reset_sandbox_cache()
    yield
    cr.reset_sandbox_cache()


def test_without_bwrap_no_code_runs(monkeypatch, _fresh_probe, tmp_path):
    planted = tmp_path / "ran"
    monkeypatch.setattr(cr, "_find_bwrap", lambda: None)
    out = run_snippet(f"open({str(planted)!r}, 'w').write('x')")
    assert out.status == "refused" and "bubblewrap (bwrap) is not installed" in out.stderr
    assert not planted.exists()
    assert not cr.sandbox_available()
    result = _tool(f"Here:\n```python\nopen({str(planted)!r}, 'w').write('x')\n```\n")
    assert result.ok is False
    assert result.result["status"] == "refused" and "no code runs" in result.result["error"]
    assert not planted.exists()


def test_a_bwrap_that_cannot_make_namespaces_refuses(monkeypatch, _fresh_probe, tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    planted = tmp_path / "ran"
    monkeypatch.setattr(cr, "_find_bwrap", lambda: str(fake))
    out = run_snippet(f"open({str(planted)!r}, 'w').write('x')")
    assert out.status == "refused"
    assert "No permissions to create new namespace" in out.stderr
    assert not planted.exists()


def test_what_the_code_prints_passes_the_safety_output_check():
    clean = _tool("Done:\n```python\nprint(sum(range(10)))\n```\n")
    assert clean.ok and clean.result["stdout"] == "45\n" and "notes" not in clean.result
    leak = _tool("```python\nprint('write to jane.doe@example.com or call 415-555-0134')\n```")
    assert leak.ok
    assert leak.result["stdout"].startswith("[stdout withheld: it failed the safety check (pii_leak:")
    assert "jane.doe" not in json.dumps(leak.result) and "555" not in json.dumps(leak.result)
    assert any("pii_leak:email" in n for n in leak.result["notes"])
    rude = _tool("```python\nimport sys\nsys.stderr.write('you idiot')\n```")
    assert rude.result["stderr"].startswith("[stderr withheld") and "idiot" not in rude.result["stderr"]
    # A tenant's own prohibited topic counts too.
    topic = _tool("```python\nprint('salary bands')\n```", SafetyPolicy(prohibited_topics=["salary"]))
    assert topic.result["stdout"].startswith("[stdout withheld") and "prohibited_topic:salary" in topic.result["stdout"]
