"""Fixtures for the twin engine tests: the real dev corpora and one shared MiniLM embedder.

The corpora live outside the repository (``../shared/corpora``, see FORMAT.md there) and are
never copied in. A missing corpus fails the tests that need it rather than skipping them, so a
broken checkout cannot pass as green.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.twin.corpus import Transcript, read_transcripts

CORPORA = Path(__file__).resolve().parents[3].parent / "shared" / "corpora"


def _load(name: str) -> list[Transcript]:
    path = CORPORA / name / "dev.jsonl"
    if not path.is_file():
        pytest.fail(f"corpus missing: {path} (the tests read ../shared/corpora beside the repo)")
    parsed = list(read_transcripts(path))
    bad = [p.error for p in parsed if not p.ok]
    assert not bad, f"{name} has unreadable lines: {bad[:3]}"
    return [p.transcript for p in parsed]


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    if not CORPORA.is_dir():
        pytest.fail(f"corpora folder missing: {CORPORA}")
    return CORPORA


@pytest.fixture(scope="session")
def scotus() -> list[Transcript]:
    return _load("scotus_oyez")


@pytest.fixture(scope="session")
def lenny() -> list[Transcript]:
    return _load("lennys_podcast")


@pytest.fixture(scope="session")
def embedder():
    from processors.twin.embeddings import get_embedder

    emb = get_embedder()
    emb.embed(["warm up"])  # load the model once for the whole session
    return emb
