"""A static security check of the product code (issue 15, item 5): bandit over gateway/ processors/
sinks/ infra/ schemas/ (configuration: ``[tool.bandit]`` in pyproject.toml) finds nothing.

Every finding of any severity is fixed, or justified where it is: ``# nosec BXXX  # why this is
safe`` (or ``# nosec BXXX - why``; bandit then logs a warning per word of the reason) on the flagged
line, or the reason in a comment on the line just above. A bare ``# nosec`` (which silences every
check on its line) and a ``nosec`` without a reason are refused, so a justification cannot be skipped.

Run it alone: ``.venv/bin/python -m pytest -q tests/test_static_security.py``; or bandit itself:
``.venv/bin/python -m bandit -c pyproject.toml -r gateway processors sinks infra schemas``.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "processors", "sinks", "infra", "schemas")
# "# nosec B123[, B456]  # reason" (or "- reason"): named checks, then a reason of a few words.
_NOSEC = re.compile(r"#\s*nosec\b")
_NAMED = re.compile(r"#\s*nosec:?\s+B\d{3}(?:\s*,\s*B\d{3})*(?P<rest>.*)$")
_REASON = re.compile(r"^\s*(?:#|-{1,2}|:|\u2014)\s*\S.{7,}")


def _bandit() -> dict:
    proc = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
        [sys.executable, "-m", "bandit", "-c", "pyproject.toml", "-r", *PACKAGES, "-f", "json", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"bandit did not report (exit {proc.returncode}): {proc.stderr[-2000:]}") from None


def test_bandit_finds_nothing_in_the_product_code():
    report = _bandit()
    assert report["errors"] == [], f"files bandit could not check: {report['errors']}"
    assert report["metrics"]["_totals"]["loc"] > 10_000, "bandit scanned the packages"
    findings = [f"{r['filename']}:{r['line_number']} {r['test_id']} ({r['issue_severity'].lower()}): "
                f"{r['issue_text']}" for r in report["results"]]
    assert findings == [], ("fix these, or justify each on its line with `# nosec BXXX  # reason`:\n"
                            + "\n".join(findings))


def _justified(comment: str, line_above: str) -> bool:
    named = _NAMED.search(comment)
    if named is None:
        return False  # a bare `# nosec` silences every check of its line
    return bool(_REASON.match(named["rest"])) or line_above.lstrip().startswith("#")


def test_every_nosec_names_its_check_and_says_why():
    unjustified = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            if "nosec" not in source:
                continue
            lines = source.splitlines()
            for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                if tok.type == tokenize.COMMENT and _NOSEC.search(tok.string):
                    above = lines[tok.start[0] - 2] if tok.start[0] > 1 else ""
                    if not _justified(tok.string, above):
                        unjustified.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {tok.string}")
    assert unjustified == [], "each `# nosec` names the check(s) and gives a reason:\n" + "\n".join(unjustified)
