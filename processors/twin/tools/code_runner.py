"""Run a candidate's Python snippet in a sandbox: no network, CPU/memory/time/output limits.

The child runs ``python -I`` (isolated: no site-packages of ours, no env-driven imports) in a new
network namespace (``unshare -n``, or ``unshare -rn`` for non-root), in an empty temporary
directory, with RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE and RLIMIT_NOFILE set, and is killed (the whole
process group) at the wall-clock limit. When no network namespace can be made, it refuses to run:
the sandbox fails closed.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

__all__ = ["SandboxLimits", "RunOutcome", "run_snippet", "sandbox_available"]


@dataclass(frozen=True)
class SandboxLimits:
    cpu_s: int = 2
    wall_s: float = 3.0
    memory_mb: int = 256
    output_bytes: int = 8_192
    max_code_chars: int = 20_000


@dataclass
class RunOutcome:
    status: str  # ok | error | timeout | killed | refused
    exit_code: int | None
    stdout: str
    stderr: str
    ms: float


@functools.lru_cache(maxsize=1)
def _netns_prefix() -> tuple[str, ...] | None:
    unshare = shutil.which("unshare")
    if not unshare:
        return None
    for args in ((unshare, "-n"), (unshare, "-rn")):
        try:
            if subprocess.run([*args, "true"], capture_output=True, timeout=5).returncode == 0:
                return args
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


def sandbox_available() -> bool:
    """Whether snippets can run without network access on this machine."""
    return _netns_prefix() is not None


def _limit(limits: SandboxLimits) -> None:  # runs in the child before exec
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
    mem = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_048_576, 1_048_576))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_snippet(code: str, limits: SandboxLimits = SandboxLimits()) -> RunOutcome:
    """Execute ``code`` under the limits; never raises for the snippet's own failures."""
    started = time.perf_counter()
    if len(code) > limits.max_code_chars:
        return RunOutcome("refused", None, "", f"snippet longer than {limits.max_code_chars} characters", 0.0)
    prefix = _netns_prefix()
    if prefix is None:
        return RunOutcome("refused", None, "", "no network namespace available: sandbox refuses to run code", 0.0)
    with tempfile.TemporaryDirectory(prefix="twin-sandbox-") as workdir:
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen([*prefix, sys.executable, "-I", "-c", code], cwd=workdir, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: _limit(limits))
        try:
            out, err = proc.communicate(timeout=limits.wall_s)
            status = "ok" if proc.returncode == 0 else "error"
            if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
                status = "killed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            status = "timeout"
    cut = limits.output_bytes
    return RunOutcome(status, proc.returncode, out[:cut].decode(errors="replace"), err[:cut].decode(errors="replace"),
                      round((time.perf_counter() - started) * 1000, 2))
