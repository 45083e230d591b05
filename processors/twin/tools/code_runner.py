"""Run a candidate's Python snippet in a bubblewrap sandbox (``bwrap``, Debian package ``bubblewrap``).

The snippet sees an empty world: a new mount namespace whose root is a read-only tmpfs holding only the
interpreter, its standard library (``site-packages`` hidden, ``python -I -S``), the shared libraries
they link (``ldd``) and ``/etc/ld.so.cache``; a fresh ``/proc`` of its own PID namespace, a minimal
read-only ``/dev`` and a size-limited tmpfs ``/tmp`` as work directory. No repository, no ``var/keys``,
no ``/etc``, no other tenant's files, no host process (``--unshare-pid``), no network
(``--unshare-net``: not even loopback), no IPC/UTS namespace of the host, no environment of the
worker (``--clearenv``; only PATH, HOME and LANG), no inherited descriptors, no capabilities and
``no_new_privs``.

It runs as an unprivileged uid: for a non-root worker, uid/gid 65534 in a new user namespace
(``--unshare-user --disable-userns``: no nested user namespaces); for a root worker (no user
namespace, which would map the snippet to uid 0 outside, exempt from RLIMIT_NPROC), bwrap keeps only
CAP_SETUID/CAP_SETGID and the in-sandbox wrapper drops to a fresh uid/gid of its own before reading
anything the candidate wrote. The wrapper then sets RLIMIT_NPROC, RLIMIT_CPU, RLIMIT_AS,
RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CORE (inside the sandbox, so that the process count is that of
the sandbox, not of the worker's user) and executes the snippet, which it reads from stdin (a memfd:
the code never appears on a command line).

The whole sandbox dies with its PID namespace: when the snippet's main process exits, bwrap's init
(PID 1 of the namespace) exits and the kernel kills every process left in it, ``setsid`` or not; at
the wall-clock limit, or when the output passes its bound, the runner SIGKILLs that init (through a
pidfd) and waits for bwrap, so nothing the snippet started outlives ``run_snippet``. Output is read
incrementally and never beyond ``output_bytes`` per stream.

Fail closed: without ``bwrap``, or when it cannot build the namespaces on this machine (no user
namespaces for a non-root worker, no CAP_SYS_ADMIN in a container...), ``run_snippet`` refuses with
status ``refused`` and the reason; there is no unsandboxed path.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess  # nosec B404 - runs bwrap and ldd with fixed argument lists, no shell
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SandboxLimits", "RunOutcome", "run_snippet", "sandbox_available", "sandbox_problem",
           "screen_output", "code_tool_result", "reset_sandbox_cache"]

# A root worker runs each snippet under its own uid/gid drawn from here (no account uses them, so
# RLIMIT_NPROC counts the snippet's processes only); a non-root worker maps the snippet to NOBODY.
_ROOT_UID_BASE = 1_800_000_000
_ROOT_UID_SPAN = 100_000_000
NOBODY = 65534
# The snippet's work directory and HOME: a tmpfs of the sandbox's own (not the host's /tmp).
_WORKDIR = "/tmp"  # nosec B108 - a path inside the sandbox's mount namespace


@dataclass(frozen=True)
class SandboxLimits:
    cpu_s: int = 2                      # RLIMIT_CPU (soft; SIGKILL one second later)
    wall_s: float = 3.0                 # the whole sandbox is killed after this
    memory_mb: int = 256                # RLIMIT_AS per process
    output_bytes: int = 8_192           # per stream; more kills the sandbox (status output_limit)
    max_code_chars: int = 20_000
    processes: int = 16                 # RLIMIT_NPROC (threads count too)
    file_bytes: int = 1_048_576         # RLIMIT_FSIZE
    tmp_bytes: int = 4 * 1_048_576      # size of the tmpfs work directory /tmp
    open_files: int = 64                # RLIMIT_NOFILE


@dataclass
class RunOutcome:
    status: str  # ok | error | timeout | killed | output_limit | refused
    exit_code: int | None
    stdout: str
    stderr: str
    ms: float
    truncated: bool = False
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# The program that runs inside the sandbox as the snippet's process: drop root (root worker only),
# set the limits, read the code from stdin, run it as __main__.
_WRAPPER = r"""
import os, resource, sys
def _prepare():
    uid, nproc, cpu, mem, fsize, nofile = map(int, sys.argv[1:7])
    if os.getuid() == 0 or os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise SystemExit("sandbox: could not drop root")
    R = resource
    for res, soft, hard in ((R.RLIMIT_NPROC, nproc, nproc), (R.RLIMIT_CPU, cpu, cpu + 1), (R.RLIMIT_AS, mem, mem),
                            (R.RLIMIT_FSIZE, fsize, fsize), (R.RLIMIT_NOFILE, nofile, nofile), (R.RLIMIT_CORE, 0, 0)):
        R.setrlimit(res, (soft, hard))
    chunks = []
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        chunks.append(b)
    fd = os.open("/dev/null", os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")
_code = _prepare()
del _prepare
sys.argv = ["<snippet>"]
_g = {"__name__": "__main__", "__builtins__": __builtins__}
try:
    exec(compile(_code, "<snippet>", "exec"), _g)
except (SystemExit, KeyboardInterrupt):
    raise
except BaseException as _e:
    import traceback
    traceback.print_exception(type(_e), _e, _e.__traceback__.tb_next)
    sys.stderr.flush()
    os._exit(1)
"""


@dataclass(frozen=True)
class _Sandbox:
    bwrap: str
    python: str
    mounts: tuple[str, ...]   # bwrap arguments building the root
    as_root: bool


def _find_bwrap() -> str | None:
    return shutil.which("bwrap", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/bin"]))


def _shared_libraries(files: list[str]) -> list[str]:
    """What the interpreter and its extension modules load (ldd), plus libgcc_s (dlopened by glibc
    for thread exit)."""
    ldd = shutil.which("ldd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/bin"]))
    if not ldd:
        raise RuntimeError("ldd not found (Debian package libc-bin)")
    out = subprocess.run([ldd, *files], capture_output=True, text=True, timeout=30,  # nosec B603 - our own files
                         env={"PATH": "/usr/bin:/bin", "LANG": "C"}).stdout
    libs: set[str] = set()
    for line in out.splitlines():
        m = re.match(r"\s+(?:\S+ => )?(/\S+) \(0x", line)
        if m:
            libs.add(m.group(1))
    libc = next((p for p in libs if os.path.basename(p).startswith("libc.so")), None)
    if libc:
        gcc_s = os.path.join(os.path.dirname(libc), "libgcc_s.so.1")
        if os.path.exists(gcc_s):
            libs.add(gcc_s)
    return sorted(libs)


def _ancestors(path: str) -> list[str]:
    out, d = [], os.path.dirname(path)
    while d not in ("/", ""):
        out.append(d)
        d = os.path.dirname(d)
    return out


def _build_sandbox() -> _Sandbox:
    bwrap = _find_bwrap()
    if not bwrap:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    python = os.path.realpath(sys.executable)
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    if not os.path.isfile(os.path.join(stdlib, "os.py")):
        raise RuntimeError(f"no standard library at {stdlib}")
    dynload = [p for p in glob.glob(os.path.join(stdlib, "lib-dynload", "*.so")) if os.path.isfile(p)]
    libs = _shared_libraries([python, *dynload])
    if not libs:
        raise RuntimeError(f"ldd found no shared libraries for {python}")
    targets = [python, stdlib, *libs, "/etc/ld.so.cache"]
    parents = sorted({a for t in targets for a in _ancestors(t)}, key=lambda d: (d.count("/"), d))
    mounts: list[str] = []
    for d in parents:  # bwrap would copy the host's modes (/root is 0700): the uid needs to pass
        mounts += ["--perms", "0755", "--dir", d]
    mounts += ["--ro-bind", python, python, "--ro-bind", stdlib, stdlib]
    for hidden in ("site-packages", "dist-packages"):
        path = os.path.join(stdlib, hidden)
        if os.path.isdir(path):  # an empty read-only directory over the installed packages
            mounts += ["--size", "4096", "--tmpfs", path, "--remount-ro", path]
    for lib in libs:
        mounts += ["--ro-bind", os.path.realpath(lib), lib]
    if os.path.isfile("/etc/ld.so.cache"):
        mounts += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return _Sandbox(bwrap=bwrap, python=python, mounts=tuple(mounts), as_root=os.geteuid() == 0)


def _command(sb: _Sandbox, limits: SandboxLimits, status_fd: int) -> list[str]:
    if sb.as_root:
        # Without a user namespace (which would run the snippet as uid 0 outside); the wrapper drops
        # to a uid of its own with these two capabilities, and loses them with it.
        uid = _ROOT_UID_BASE + secrets.randbelow(_ROOT_UID_SPAN)
        who = ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        uid = NOBODY
        who = ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns"]
    mem = limits.memory_mb * 1024 * 1024
    return [sb.bwrap, *who,
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session",
            "--clearenv", "--setenv", "PATH", os.path.dirname(sb.python), "--setenv", "HOME", _WORKDIR,
            "--setenv", "LANG", "C.UTF-8",
            *sb.mounts,
            "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
            "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", _WORKDIR,
            "--chdir", _WORKDIR, "--remount-ro", "/",
            "--json-status-fd", str(status_fd),
            "--", sb.python, "-I", "-S", "-B", "-c", _WRAPPER,
            str(uid), str(limits.processes), str(limits.cpu_s), str(mem), str(limits.file_bytes),
            str(limits.open_files)]


_lock = threading.Lock()
_state: dict[str, Any] = {}  # sandbox: _Sandbox | None, problem: str | None, checked: float
_RECHECK_S = 60.0


def reset_sandbox_cache() -> None:
    """Forget the probed sandbox (tests; after installing bubblewrap)."""
    with _lock:
        _state.clear()


def _sandbox() -> tuple[_Sandbox | None, str | None]:
    """The sandbox, probed once by running a trivial snippet in it; a failed probe is retried after a
    minute (the answer meanwhile is a refusal)."""
    with _lock:
        if "sandbox" in _state and (_state["sandbox"] is not None or time.monotonic() - _state["checked"] < _RECHECK_S):
            return _state["sandbox"], _state["problem"]
        sb, problem = None, None
        try:
            sb = _build_sandbox()
            probe = _execute(sb, "print(6 * 7)", SandboxLimits(wall_s=15.0))
            if probe.status != "ok" or probe.stdout.strip() != "42":
                detail = (probe.stderr or probe.stdout).strip().splitlines()
                problem = f"bwrap cannot build the sandbox here: {detail[-1] if detail else probe.status}"
                sb = None
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            sb, problem = None, str(exc)
        _state.update(sandbox=sb, problem=problem, checked=time.monotonic())
        return sb, problem


def sandbox_available() -> bool:
    """Whether snippets can run in the bubblewrap sandbox on this machine."""
    return _sandbox()[0] is not None


def sandbox_problem() -> str | None:
    """Why the sandbox is unavailable (None when it works)."""
    return _sandbox()[1]


def run_snippet(code: str, limits: SandboxLimits = SandboxLimits()) -> RunOutcome:
    """Execute ``code`` in the sandbox under the limits; never raises for the snippet's own failures."""
    if len(code) > limits.max_code_chars:
        return RunOutcome("refused", None, "", f"snippet longer than {limits.max_code_chars} characters", 0.0)
    sb, problem = _sandbox()
    if sb is None:
        return RunOutcome("refused", None, "", f"the code sandbox is unavailable, so no code runs: {problem}", 0.0)
    try:
        return _execute(sb, code, limits)
    except OSError as exc:  # bwrap could not be started (the worker's process or descriptor limits...)
        return RunOutcome("refused", None, "", f"the code sandbox could not be started: {exc}", 0.0)


def _code_fd(code: str) -> int:
    data = code.encode("utf-8", "replace")
    try:
        fd = os.memfd_create("twin-snippet", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        f = tempfile.TemporaryFile()
        fd = os.dup(f.fileno())
        f.close()
    _write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _execute(sb: _Sandbox, code: str, limits: SandboxLimits) -> RunOutcome:
    started = time.perf_counter()
    deadline = time.monotonic() + limits.wall_s
    code_fd = _code_fd(code)
    status_r, status_w = os.pipe()
    try:
        # bwrap with a fixed argument list; the candidate's code goes in on stdin, into the sandbox.
        proc = subprocess.Popen(_command(sb, limits, status_w), stdin=code_fd, stdout=subprocess.PIPE,  # nosec B603
                                stderr=subprocess.PIPE, pass_fds=(status_w,), close_fds=True, cwd="/",
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, start_new_session=True)
    finally:
        os.close(code_fd)
        os.close(status_w)
    bound = limits.output_bytes
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    status_text = bytearray()
    init_pidfd: int | None = None
    stopped: str | None = None  # timeout | output_limit
    truncated = False
    sel = selectors.DefaultSelector()
    for fd in (*bufs, status_r):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    try:
        while sel.get_map() and stopped is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stopped = "timeout"
                break
            for key, _ in sel.select(remaining):
                fd = key.fd
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    continue
                if fd == status_r:
                    status_text += chunk[:4096]
                    if init_pidfd is None:
                        m = re.search(rb'"child-pid"\s*:\s*(\d+)', status_text)
                        if m:
                            init_pidfd = _pidfd(int(m.group(1)))
                    continue
                buf = bufs[fd]
                room = bound - len(buf)
                buf += chunk[:max(room, 0)]
                if len(chunk) > room:
                    truncated, stopped = True, "output_limit"
                    break
        if stopped is not None:
            _kill(proc, init_pidfd)
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()) + 5)
        except subprocess.TimeoutExpired:  # the snippet closed its output and kept running
            stopped = stopped or "timeout"
            _kill(proc, init_pidfd)
            rc = proc.wait()
        if stopped is None:  # bwrap exited: read what its last report says
            try:
                status_text += os.read(status_r, 4096)
            except BlockingIOError:
                pass
    finally:
        sel.close()
        for f in (proc.stdout, proc.stderr):
            f.close()
        os.close(status_r)
        if init_pidfd is not None:
            os.close(init_pidfd)
    out, err = bytes(bufs[out_fd]), bytes(bufs[err_fd])
    ms = round((time.perf_counter() - started) * 1000, 2)
    notes: list[str] = []
    exit_m = re.search(rb'"exit-code"\s*:\s*(-?\d+)', bytes(status_text))
    if stopped == "timeout":
        status = "timeout"
        notes.append(f"killed at the wall-clock limit of {limits.wall_s:g} s")
    elif stopped == "output_limit":
        status = "output_limit"
        notes.append(f"output passed {bound} bytes: truncated, and the program was stopped")
    elif exit_m is None:
        # bwrap failed before the snippet ran (the probe passed, so this is rare): not the snippet's error.
        return RunOutcome("refused", None, "", f"the sandbox failed to start: {err.decode(errors='replace').strip()}",
                          ms)
    else:
        rc = int(exit_m.group(1))
        if rc == 0:
            status = "ok"
        elif rc - 128 in (signal.SIGXCPU, signal.SIGKILL):
            status = "killed"
            notes.append("killed at the CPU or memory limit")
        else:
            status = "error"
    return RunOutcome(status, rc, out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace"), ms,
                      truncated=truncated, notes=notes)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _kill(proc: subprocess.Popen, init_pidfd: int | None) -> None:
    """SIGKILL the sandbox's init (the kernel then kills its whole PID namespace, and bwrap exits once
    it has reaped it); bwrap itself when the init is unknown (--die-with-parent takes the rest)."""
    if init_pidfd is not None:
        try:
            signal.pidfd_send_signal(init_pidfd, signal.SIGKILL)
            return
        except OSError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


# ------------------------------------------------------------------------------------------------
def screen_output(text: str, policy, what: str = "output") -> tuple[str, list[str]]:
    """``text`` if it passes the safety output check (``SafetyPolicy.check(text, "output")``), else a
    note in its place; returns the text and the flags that withheld it."""
    if not text:
        return text, []
    verdict = policy.check(text, stage="output")
    if verdict.passed:
        return text, []
    flags = sorted({f"{f.category}:{f.detail}" for f in verdict.flags})
    return f"[{what} withheld: it failed the safety check ({', '.join(flags)})]", flags


def code_tool_result(outcome: RunOutcome, policy, tail_chars: int = 2000) -> dict[str, Any]:
    """The ``run_code`` tool's result: status, exit code, the tail of stdout/stderr after the safety
    output check (a flagged stream is withheld with a note), and why a refused run did not run."""
    result: dict[str, Any] = {"status": outcome.status, "exitCode": outcome.exit_code}
    if outcome.status == "refused":
        result.update(stdout="", stderr="", error=outcome.stderr)
        return result
    withheld: list[str] = []
    for key, text in (("stdout", outcome.stdout[-tail_chars:]), ("stderr", outcome.stderr[-tail_chars:])):
        shown, flags = screen_output(text, policy, key)
        result[key] = shown
        if flags:
            withheld.append(f"{key} withheld by the safety check: {', '.join(flags)}")
    if outcome.truncated:
        result["truncated"] = True
    notes = [*outcome.notes, *withheld]
    if notes:
        result["notes"] = notes
    return result
