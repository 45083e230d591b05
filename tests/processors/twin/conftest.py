"""Fixtures for the twin engine tests: real transcripts from the repository and one shared MiniLM embedder.

``scotus``: the SCOTUS oral-argument slice (``infra/samples/scotus_oyez_slice.jsonl``, see its README:
54 sessions of elena_kagan, antonin_scalia and ruth_bader_ginsburg). ``dana``: the synthetic technical interviewer of
``infra/samples/sample_interviews.jsonl`` (6 sessions), an interviewer of another register than a
justice. The tests read nothing outside the repository; larger corpora are for ``make eval``. A
missing or unreadable file fails the tests that need it rather than skipping them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.twin.corpus import Transcript, read_transcripts

SAMPLE_CORPUS = Path(__file__).resolve().parents[3] / "infra" / "samples" / "sample_interviews.jsonl"


def _load(path: Path) -> list[Transcript]:
    if not path.is_file():
        pytest.fail(f"test corpus missing: {path}")
    parsed = list(read_transcripts(path))
    bad = [p.error for p in parsed if not p.ok]
    assert not bad, f"{path.name} has unreadable lines: {bad[:3]}"
    return [p.transcript for p in parsed]


@pytest.fixture(scope="session")
def scotus(scotus_slice: Path) -> list[Transcript]:
    return _load(scotus_slice)


@pytest.fixture(scope="session")
def dana() -> list[Transcript]:
    return _load(SAMPLE_CORPUS)


@pytest.fixture(scope="session")
def embedder():
    from processors.twin.embeddings import get_embedder

    emb = get_embedder()
    emb.embed(["warm up"])  # load the model once for the whole session
    return emb


@pytest.fixture(scope="session")
def dana_fitted(dana: list[Transcript]):
    """dana's style profile and policy statistics (profile versions written without training)."""
    from processors.twin.corpus import interviewer_turns
    from processors.twin.policy import PolicyStats
    from processors.twin.style import StyleProfile

    return StyleProfile.fit(interviewer_turns(dana)), PolicyStats.fit(dana)
