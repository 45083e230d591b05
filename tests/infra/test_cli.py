"""The `twin` command: every subcommand explains itself, and the cheap ones work."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from infra.cli import app

runner = CliRunner()


def _commands(typer_app, prefix=()):
    import typer.main

    group = typer.main.get_command(typer_app)
    stack = [(prefix, group)]
    while stack:
        path, cmd = stack.pop()
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append(((*path, name), sub))


@pytest.mark.parametrize("path", sorted(_commands(app)), ids=lambda p: " ".join(p) or "twin")
def test_every_subcommand_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and len(result.output.strip().splitlines()) > 3


def test_python_dash_m_has_every_command():
    # Run as ``python -m infra.cli`` the file is __main__; it must still offer eval, train, ...
    out = subprocess.run([sys.executable, "-m", "infra.cli", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("eval", "train", "import", "canary", "crypto"):
        assert f" {name} " in out.stdout, out.stdout


def test_topics_list_shows_the_catalogue():
    result = runner.invoke(app, ["topics", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in ("telemetry.raw", "twin.requests", "twin.replies", "deadletter"):
        assert name in result.output


def test_config_show_masks_secrets():
    result = runner.invoke(app, ["config", "show"], env={"OPENAI_API_KEY": "sk-secret-value", "COLUMNS": "200"})
    assert result.exit_code == 0
    assert "sk-secret-value" not in result.output and "POSTGRES_PASSWORD" in result.output


def test_db_upgrade_is_idempotent(postgres_dsn):
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "0 migration(s) applied" in result.output


def test_unknown_service_is_a_clear_error():
    result = runner.invoke(app, ["up", "zookeeper"])
    assert result.exit_code == 1
    assert "unknown service" in result.output


def test_chat_talks_to_a_trained_twin(sample_tenant):
    result = runner.invoke(app, ["chat", "dana", "--tenant", sample_tenant, "--verbosity", "terse"],
                           input="I built a rate limiter with Redis.\n/reset\nWe used a token bucket.\n/quit\n",
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # Prompts ("you> ") share lines with replies when input is piped.
    replies = [line.split("dana> ", 1)[1] for line in result.output.splitlines() if "dana> " in line]
    assert len(replies) == 2 and all(len(r) > 3 for r in replies), result.output


def test_chat_refuses_an_untrained_interviewer(sample_tenant):
    result = runner.invoke(app, ["chat", "nobody", "--tenant", sample_tenant], input="/quit\n")
    assert result.exit_code == 1 and "no trained twin" in result.output


def test_sigterm_unwinds_an_eval_run_so_its_finally_stops_what_it_started():
    # twin eval stops the gateway and worker it started in a finally; a real SIGTERM must reach it.
    code = ("import os, signal, time\n"
            "from infra.cli_eval import sigterm_unwinds\n"
            "try:\n"
            "    with sigterm_unwinds():\n"
            "        os.kill(os.getpid(), signal.SIGTERM)\n"
            "        time.sleep(10)\n"
            "finally:\n"
            "    print('stopped what it started', flush=True)\n"
            "print('after the block: never', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143, (done.returncode, done.stderr[-2000:])
    assert done.stdout.splitlines() == ["stopped what it started"]
