"""The command line prints its progress and results, and nothing else: no ResourceWarning about an
unclosed connection or a still-running subprocess, no traceback.

Importing weaviate turns every warning on (``simplefilter("default")``), so whatever a command leaves
open shows up on the user's console; these run the real commands as a user would, as subprocesses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from infra.stack import _pid_alive
from tests.conftest import REPO_ROOT

NOISE = ("Warning", "Traceback", "Exception ignored")


def _twin(args: list[str], env: dict[str, str], stdin: str = "", timeout: float = 300):
    # `-W default`: every warning once, as weaviate's import sets it; the console script's code.
    code = "import sys; from infra.cli import app; app(sys.argv[1:], prog_name='twin')"
    return subprocess.run([sys.executable, "-W", "default", "-c", code, *args], input=stdin, env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_chat_leaves_nothing_open(sample_tenant, process_env):
    """`twin chat` opens PostgreSQL, Redis and Weaviate through the engine; all are closed at exit."""
    out = _twin(["chat", "dana", "--tenant", sample_tenant], {**process_env, "COLUMNS": "200"},
                stdin="I built a rate limiter with Redis.\n/quit\n")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "dana> " in out.stdout
    assert not any(word in out.stderr for word in NOISE), out.stderr[-3000:]


def test_services_started_by_the_stack_are_not_children_of_the_command(tmp_path, process_env):
    """`twin up` / `twin demo` start services that outlive the command: they are launched detached, so the
    command exits without a "subprocess is still running" ResourceWarning and leaves no zombie."""
    code = ("import os, sys; from pathlib import Path; from infra.settings import Settings; "
            "from infra.stack import Service, Stack; import weaviate; "  # weaviate: all warnings on, as in the CLI
            "st = Stack(Settings(TWIN_VAR_DIR=Path(sys.argv[1])), echo=print); "
            "print(st._spawn(Service('probe', '127.0.0.1', 0, st.var), ['sleep', '60']), os.getpid())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=process_env, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not any(word in out.stderr for word in NOISE), out.stderr[-3000:]
    pid, parent = map(int, out.stdout.split()[-2:])
    try:
        assert (tmp_path / "run" / "probe.pid").read_text() == str(pid)
        with open(f"/proc/{pid}/stat") as fh:
            state, ppid, _, sid = fh.read().rsplit(")", 1)[1].split()[:4]
        assert state != "Z" and int(ppid) != parent and int(sid) == pid  # alive, re-parented, own session
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
