"""Every third-party module the project's code imports is declared in pyproject.toml (issue 15).

A module that only arrives as a dependency of a dependency (joserfc came through weaviate-client and
Authlib) disappears the day that dependency drops it, and the gateway breaks at its first JWT. So every
top-level import in the packages below (module-level or inside a function, TYPE_CHECKING included)
must name a distribution in ``[project] dependencies`` or a run-time extra (ml, audio), directly or
through an extra of a declared requirement (``psycopg[pool]`` declares psycopg-pool). The ``dev`` extra
does not count (a production install has none of it; joserfc also arrives through ``moto[server]``),
except for the few modules named in DEV_ONLY, in the files named there; and llama.cpp's server, which infra/bootstrap
builds from source per machine, is declared there with its range (BOOTSTRAP_ONLY).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "processors", "sinks", "infra", "schemas")

# Imported inside try/except and never required: the code works without them.
OPTIONAL = {
    "tiktoken": "processors/twin/finetune.py: exact token counts when installed, a conservative estimate otherwise",
}

# Product-side modules that serve the tests only, taken from the dev extra: module -> the files allowed.
DEV_ONLY = {
    "moto": {"infra/object_store_server.py"},  # the local S3-compatible server the tests start
}
# Built from source once per machine by infra/bootstrap (an sdist that compiles llama.cpp for ~5 min), so its
# range is declared there, not in an extra: module -> (distribution, the files allowed).
BOOTSTRAP_ONLY = {
    "llama_cpp": ("llama-cpp-python", {"infra/llm_server.py"}),  # the local LLM server the tests start
}
RUNTIME_EXTRAS = ("ml", "audio")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imports() -> dict[str, set[str]]:
    """Top-level module -> files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(path.relative_to(ROOT).as_posix())
    return found


def declared() -> set[str]:
    """Canonical names of the distributions declared for run time, plus what their declared extras pull in."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    extras = project.get("optional-dependencies", {})
    assert set(RUNTIME_EXTRAS) <= set(extras), f"pyproject.toml lost an extra of {RUNTIME_EXTRAS}"
    reqs += [Requirement(r) for name in RUNTIME_EXTRAS for r in extras[name]]
    names = {_canon(r.name) for r in reqs}
    for req in reqs:
        for extra in req.extras:
            try:
                requires = md.requires(req.name) or []
            except md.PackageNotFoundError:
                continue
            for line in requires:
                sub = Requirement(line)
                if sub.marker is not None and sub.marker.evaluate({"extra": extra}) and \
                        not sub.marker.evaluate({"extra": ""}):
                    names.add(_canon(sub.name))
    return names


def undeclared() -> dict[str, list[str]]:
    """Third-party top-level modules none of whose distributions is declared -> the files importing them."""
    first_party = set(PACKAGES)
    module_dists = md.packages_distributions()
    names = declared()
    missing: dict[str, list[str]] = {}
    for module, files in sorted(imports().items()):
        if module in sys.stdlib_module_names or module in first_party or module in OPTIONAL or module == "__future__":
            continue
        if module in DEV_ONLY and files <= DEV_ONLY[module]:
            continue
        if module in BOOTSTRAP_ONLY and files <= BOOTSTRAP_ONLY[module][1]:
            continue
        dists = module_dists.get(module)
        if dists:
            ok = any(_canon(d) in names for d in dists)
        else:  # not installed here (the audio extra): its distribution is named after it
            ok = any(n == _canon(module) or n.startswith(_canon(module) + "-") for n in names)
        if not ok:
            missing[module] = sorted(files)
    return missing


def test_the_scan_sees_the_imports_it_is_for():
    found = imports()
    assert "gateway/auth.py" in found["joserfc"]  # imported inside a function
    assert {"fastapi", "aiokafka", "psycopg_pool", "faust"} <= set(found)
    assert "psycopg-pool" in declared()  # through psycopg[pool]
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert all(_canon(m) in {_canon(Requirement(r).name) for r in dev} for m in DEV_ONLY)
    bootstrap = (ROOT / "infra" / "bootstrap").read_text()
    for dist, _ in BOOTSTRAP_ONLY.values():  # installed there with a range
        assert re.search(rf'"{re.escape(dist)}(?:\[[\w,]+\])?>=[\d.]+,<[\d.]+"', bootstrap), dist


def test_every_third_party_import_is_declared_in_pyproject():
    missing = undeclared()
    assert not missing, "imported but not declared in pyproject.toml (add them with a tested range):\n" + "\n".join(
        f"  {module} ({', '.join(md.packages_distributions().get(module, ['?']))}): {', '.join(files)}"
        for module, files in missing.items())


def test_optional_imports_are_really_optional():
    # An allowance must stay an import guarded by try/except, never a hard dependency in disguise.
    for module, why in OPTIONAL.items():
        path = ROOT / why.split(":")[0]
        tree = ast.parse(path.read_text())
        guarded = [node for node in ast.walk(tree) if isinstance(node, ast.Try)
                   for inner in ast.walk(ast.Module(body=node.body, type_ignores=[]))
                   if isinstance(inner, ast.Import) and any(a.name.split(".")[0] == module for a in inner.names)]
        assert guarded, f"{module} is allowed as optional but {path} does not import it inside try/except"


def test_the_lock_pins_every_declared_requirement_within_its_range():
    lock = ROOT / "requirements.lock"
    pinned = dict((_canon(name), version) for name, _, version in
                  (line.partition("==") for line in lock.read_text().splitlines()) if version)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        req = Requirement(line)
        assert _canon(req.name) in pinned, f"{req.name} is declared but not pinned in requirements.lock"
        assert req.specifier.contains(pinned[_canon(req.name)], prereleases=True), \
            f"requirements.lock pins {req.name}=={pinned[_canon(req.name)]}, outside {req.specifier}"
