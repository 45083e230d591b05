"""`twin config get|set|unset|reset` through typer's CliRunner, on real PostgreSQL and Redis."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from infra import cli
from infra.cli_config import parse_assignments
from infra.settings import settings
from processors.twin.config import ConfigStore


def twin(*args: str):
    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def wide(monkeypatch, postgres_dsn, redis_url):
    monkeypatch.setattr(cli.console, "width", 220)
    monkeypatch.setattr(cli.err, "width", 220)


@pytest.mark.parametrize("args, current, patch", [
    (["verbosity=terse", "tools=false"], {}, {"controls": {"verbosity": "terse"}, "flags": {"tools": False}}),
    (["controls.challengeLevel=0.7"], {}, {"controls": {"challengeLevel": 0.7}}),
    (["prohibitedTopics=salary, visa status"], {}, {"prohibitedTopics": ["salary", "visa status"]}),
    (["prohibitedTopics+=visa"], {"prohibitedTopics": ["salary"]}, {"prohibitedTopics": ["salary", "visa"]}),
    (["companyGuidelines=Be kind, always."], {}, {"companyGuidelines": ["Be kind, always."]}),  # one guideline
    (['companyGuidelines=["a", "b"]'], {}, {"companyGuidelines": ["a", "b"]}),
    (["disabledTools=run_code"], {}, {"flags": {"disabledTools": ["run_code"]}}),
    (["tone=warm and direct"], {}, {"controls": {"tone": "warm and direct"}}),
])
def test_assignments_become_a_merge_patch(args, current, patch):
    assert parse_assignments(args, current) == patch


def test_set_get_unset_reset_with_audit_and_live_invalidation(wide, tenant, pg):
    worker = ConfigStore.from_settings(settings)
    try:
        assert worker.effective(tenant, "dana").flags.tools is True  # cached now
        done = twin("config", "set", "--tenant", tenant, "--interviewer", "dana", "verbosity=terse", "tools=false",
                    "prohibitedTopics=salary")
        assert done.exit_code == 0, done.output
        assert "version 1" in done.output and "flags.tools" in done.output
        assert worker.effective(tenant, "dana").flags.tools is False  # the running worker sees it at once
        more = twin("config", "set", "-t", tenant, "-i", "dana", "prohibitedTopics+=visa")
        assert more.exit_code == 0, more.output
        got = json.loads(twin("config", "get", "--tenant", tenant, "--interviewer", "dana", "--json").output)
        assert got["version"] == 2 and got["config"] == {
            "controls": {"verbosity": "terse"}, "prohibitedTopics": ["salary", "visa"], "flags": {"tools": False}}
        twin("config", "set", "--tenant", tenant, "companyGuidelines=Never promise an offer.")
        eff = twin("config", "get", "--tenant", tenant, "--interviewer", "dana", "--effective")
        assert eff.exit_code == 0 and "Never promise an offer." in eff.output and "interviewer" in eff.output
        as_json = json.loads(twin("config", "get", "-t", tenant, "-i", "dana", "--effective", "--json").output)
        assert as_json["sources"]["flags.tools"] == "interviewer" and as_json["versions"]["tenant"] == 1

        unset = twin("config", "unset", "--tenant", tenant, "--interviewer", "dana", "tools", "verbosity")
        assert unset.exit_code == 0, unset.output
        assert worker.effective(tenant, "dana").flags.tools is True
        conflict = twin("config", "set", "--tenant", tenant, "--interviewer", "dana", "tone=warm", "--if-version", "1")
        assert conflict.exit_code == 1 and "at version 3, not 1" in conflict.output
        reset = twin("config", "reset", "--tenant", tenant, "--interviewer", "dana")
        assert reset.exit_code == 0 and "layer removed" in reset.output
        assert worker.effective(tenant, "dana").prohibitedTopics == []
        shown = twin("config", "get", "--tenant", tenant, "--interviewer", "dana")
        assert "nothing set" in shown.output
    finally:
        worker.close()
    audit = pg.execute("SELECT action, resource_type, resource_id, actor FROM audit_log WHERE tenant=%s"
                       " ORDER BY ts", (tenant,)).fetchall()
    assert [a[0] for a in audit] == ["config.set", "config.set", "config.set", "config.unset", "config.reset"]
    assert {(a[1], a[3].split(":")[0]) for a in audit} == {("twin_config", "cli")}
    assert [a[2] for a in audit].count("tenant") == 1


@pytest.mark.parametrize("args, message", [
    (["verbosity=chatty"], "controls.verbosity: Input should be 'terse', 'normal' or 'verbose'"),
    (["challengeLevel=2"], "controls.challengeLevel: Input should be less than or equal to 1"),
    (["flags.turbo=true"], "flags.turbo: Extra inputs are not permitted"),
    (["verbosity"], "expected key=value"),
    (["tone+=x"], "+= only works on list keys"),
])
def test_invalid_settings_are_refused_and_nothing_is_written(wide, tenant, pg, args, message):
    result = twin("config", "set", "--tenant", tenant, *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert pg.execute("SELECT count(*) FROM twin_config WHERE tenant=%s", (tenant,)).fetchone() == (0,)
