"""The suite and the benchmarks run from a clone alone: none of their files reads a corpus folder beside
the repository. A newcomer has no such folder; a test that reads it fails for them (issue 16).

They read ``infra/samples/`` (the public-record SCOTUS slice and the synthetic sample) instead; larger
corpora go through ``make eval`` (or a benchmark's ``--corpus``), never through ``make test``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("tests", "benchmarks")
THIS = Path(__file__).resolve()

# Written as pieces so that this file does not match itself.
_SHARED = "sha" + "red"
FORBIDDEN = [
    (re.compile(_SHARED + r"/corpora"), "the shared corpora folder"),
    (re.compile(r"\.\./" + _SHARED + r"\b"), "a folder beside the repository"),
    # The same path built with pathlib: parent / "shared" / "corpora", "shared" / ...
    (re.compile(r"/\s*[\"']" + _SHARED + r"[\"']|[\"']" + _SHARED + r"[\"']\s*/"), "a path through a 'shared' folder"),
    # The folders of the shared set by name (corpora_dir / "scotus_oyez" / "dev.jsonl"); the in-repo
    # slice is infra/samples/scotus_oyez_slice.jsonl. The podcast corpus is never read, nor copied into the
    # repository.
    (re.compile(r"[\"']scotus_oyez[\"']|scotus_oyez/"), "a corpus folder of the shared set"),
    (re.compile("lennys" + "_podcast"), "the podcast corpus"),
]


def _files() -> list[Path]:
    return sorted(p for d in CHECKED for p in (ROOT / d).rglob("*.py") if p.resolve() != THIS)


def test_the_guard_sees_the_suite_and_the_benchmarks():
    files = {p.relative_to(ROOT).as_posix() for p in _files()}
    assert {"tests/conftest.py", "benchmarks/telemetry.py", "benchmarks/retrieval.py"} <= files
    assert "tests/test_self_contained.py" not in files


def test_no_test_or_benchmark_reads_outside_the_repository():
    found = []
    for path in _files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for pattern, what in FORBIDDEN:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {what}: {line.strip()}")
    assert not found, ("tests and benchmarks must read only the repository (infra/samples):\n" + "\n".join(found))


def test_the_patterns_catch_what_they_are_for():
    caught = [
        f"CORPORA = ROOT.parent / \"{_SHARED}\" / \"corpora\"",
        f"open('../{_SHARED}/corpora/scotus_oyez/dev.jsonl')",
        f"path = REPO / '..' / '{_SHARED}'",
        "lennys" + "_podcast/dev.jsonl",
        'lines = (corpora_dir / "scotus_oyez" / "dev.jsonl").read_text()',
    ]
    for line in caught:
        assert any(p.search(line) for p, _ in FORBIDDEN), line
    for line in ("a shared MiniLM embedder", "the shared error shape", "shared_state = {}",
                 'SCOTUS_SLICE = REPO_ROOT / "infra" / "samples" / "scotus_oyez_slice.jsonl"'):
        assert not any(p.search(line) for p, _ in FORBIDDEN), line


def test_the_corpora_are_in_the_repository():
    samples = ROOT / "infra" / "samples"
    # The SCOTUS slice ships with its README (source and licence) beside it; `twin demo` replays it.
    assert (samples / "scotus_oyez_slice.jsonl").is_file() and (samples / "README.md").is_file()
    assert (samples / "sample_interviews.jsonl").is_file()
    assert not (ROOT / "tests" / "fixtures" / "corpora" / "scotus_oyez_slice.jsonl").exists(), "one copy only"
