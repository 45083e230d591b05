"""The project reads its configuration through ``infra/settings.py`` only (issue 15).

A setting read straight from ``os.environ`` is missing from ``twin config show``, ignores ``.env``
and ``TWIN_ENV_FILE``, and cannot be overridden by a test's ``Settings(...)``. This test parses every
module of the product packages and fails on any read of the process environment outside
infra/settings.py. Allowed: the OS's own variables (ALLOWED_VARIABLES: PATH), writes (``os.environ[k] = v``, ``setdefault``, ``update``: configuring a
library or the environment of a child process) and copying the whole environment into a child's
(``{**os.environ, ...}``). Variables read by third-party libraries themselves (the OpenTelemetry SDK's
``OTEL_*``, ``HF_*``) are theirs, not ours.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "processors", "sinks", "infra", "schemas")
ALLOWED_FILES = {
    "infra/settings.py",  # the settings object itself (and TWIN_ENV_FILE, which names its .env file)
}
WRITE_METHODS = {"setdefault", "update", "pop"}  # pop: removing a variable before starting a child
# Variables of the operating system, not of the project: reading them is not configuration.
ALLOWED_VARIABLES = {
    "PATH": "where executables are looked up (shutil.which), as the OS defines it",
}


def _name(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) \
        and node.value.id == "os"


def environment_reads(source: str, filename: str = "<src>") -> list[tuple[int, str]]:
    """(line, what) for every read of the process environment in ``source``."""
    tree = ast.parse(source, filename=filename)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    reads: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" and \
                any(a.name in ("environ", "getenv", "environb", "getenvb") for a in node.names):
            reads.append((node.lineno, "from os import environ/getenv"))
        elif isinstance(node, ast.Attribute) and node.attr in ("getenv", "getenvb") and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            call = parents.get(node)
            if isinstance(call, ast.Call) and call.args and _name(call.args[0]) in ALLOWED_VARIABLES:
                continue
            reads.append((node.lineno, "os.getenv"))
        elif _is_os_environ(node) or (isinstance(node, ast.Attribute) and node.attr == "environb"):
            parent = parents.get(node)
            if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, (ast.Store, ast.Del)):
                continue  # os.environ[k] = v / del os.environ[k]
            if isinstance(parent, ast.Attribute) and parent.attr in WRITE_METHODS:
                continue  # os.environ.setdefault(...) / .update(...) / .pop(...)
            if isinstance(parent, ast.Subscript) and _name(parent.slice) in ALLOWED_VARIABLES:
                continue  # os.environ["PATH"]
            call = parents.get(parent)
            if isinstance(parent, ast.Attribute) and parent.attr == "get" and isinstance(call, ast.Call) and \
                    call.args and _name(call.args[0]) in ALLOWED_VARIABLES:
                continue  # os.environ.get("PATH", ...)
            if isinstance(parent, ast.Dict) and node in parent.values and \
                    parent.keys[parent.values.index(node)] is None:
                continue  # {**os.environ, ...}: a child process's environment
            how = f"os.environ.{parent.attr}" if isinstance(parent, ast.Attribute) else "os.environ"
            reads.append((node.lineno, how))
    return sorted(reads)


def _files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_environment_read_outside_the_settings():
    found = []
    for path in _files():
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED_FILES:
            continue
        text = path.read_text()
        for line, what in environment_reads(text, rel):
            found.append(f"{rel}:{line}: {what}: {text.splitlines()[line - 1].strip()}")
    assert not found, "read these through infra/settings.py (a Settings field) instead:\n" + "\n".join(found)


def test_the_guard_tells_reads_from_writes():
    reads = environment_reads(
        "import os\n"
        "a = os.environ.get('A')\n"                   # 2 read
        "b = os.getenv('B', '')\n"                    # 3 read
        "c = os.environ['C']\n"                       # 4 read
        "d = 'D' in os.environ\n"                     # 5 read
        "os.environ['E'] = '1'\n"                     # write
        "os.environ.setdefault('F', '1')\n"           # write
        "env = {**os.environ, 'G': '1'}\n"            # child environment
        "h = dict(os.environ)\n"                      # 9 read
        "from os import getenv\n"                     # 10 read
        "p = os.environ.get('PATH', '')\n"            # the OS's
        "q = os.getenv('PATH')\n")                    # the OS's
    assert [line for line, _ in reads] == [2, 3, 4, 5, 9, 10]


def test_the_guard_sees_the_product_packages():
    files = {p.relative_to(ROOT).as_posix() for p in _files()}
    assert {"infra/tracing.py", "processors/engine/app.py", "gateway/auth.py", "infra/settings.py"} <= files


def test_the_settings_own_the_variables_that_were_read_directly():
    from infra.settings import Settings

    cfg = Settings(TWIN_AGENTS="pii_redaction,safety_filter", TWIN_TRACE_FILE="/tmp/spans.jsonl",
                   OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318")
    assert cfg.TWIN_AGENTS == "pii_redaction,safety_filter"
    assert str(cfg.TWIN_TRACE_FILE) == "/tmp/spans.jsonl"
    assert cfg.OTEL_EXPORTER_OTLP_ENDPOINT == "http://collector:4318"
    assert {"TWIN_AGENTS", "TWIN_TRACE_FILE", "OTEL_EXPORTER_OTLP_ENDPOINT"} <= set(cfg.public_dict())
