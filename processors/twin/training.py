"""Training one interviewer: split, fit style and policy, index persona memory, version, activate.

``train_interviewer`` is what the trainer agent, ``twin train`` and the evaluation run. It writes a
new profile version (inactive), indexes that version's memory in Weaviate, and activates it only
when everything succeeded; on failure it removes the half-written memory and the previous
version keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from processors.twin.corpus import Transcript, chronological_split, exchanges, interviewer_turns
from processors.twin.memory import PersonaDoc, PersonaMemory
from processors.twin.policy import PolicyStats
from processors.twin.profiles import InterviewerProfile, ProfileStore
from processors.twin.style import StyleProfile

__all__ = ["TrainResult", "train_interviewer", "TrainingError"]


class TrainingError(RuntimeError):
    """Training could not produce a usable version (bad data or a store failure)."""


@dataclass
class TrainResult:
    tenant: str
    interviewer_id: str
    version: int
    split: dict[str, list[str]]
    exemplars: int
    docs: int
    style: dict[str, Any] = field(default_factory=dict)


def train_interviewer(tenant: str, interviewer_id: str, transcripts: Sequence[Transcript], profiles: ProfileStore,
                      memory: PersonaMemory, *, val: float = 0.1, test: float = 0.2,
                      docs: Sequence[PersonaDoc] = (), config: dict[str, Any] | None = None,
                      progress: Callable[[str, float], None] | None = None, activate: bool = True) -> TrainResult:
    """Train a new version from the interviewer's sessions (chronological; final sessions held out)."""
    sessions = [t for t in transcripts if t.interviewer_id == interviewer_id]
    if not sessions:
        raise TrainingError(f"no sessions of interviewer {interviewer_id!r} in the dataset")
    report = progress or (lambda stage, fraction: None)
    split = chronological_split(sessions, val=val, test=test)
    train = split.train
    report("fit", 0.05)
    style = StyleProfile.fit(interviewer_turns(train), interviewer_id=interviewer_id)
    policy = PolicyStats.fit(train, interviewer_id=interviewer_id)
    pairs = [ex for t in train for ex in exchanges(t)]
    if not pairs:
        raise TrainingError(f"interviewer {interviewer_id!r} has no interviewer turns in the train split")
    version = profiles.next_version(tenant, interviewer_id)
    split_ids = {"train": [t.session_id for t in split.train], "val": [t.session_id for t in split.val],
                 "test": [t.session_id for t in split.test]}
    profiles.save(InterviewerProfile(tenant, interviewer_id, version, style, policy, artefacts={
        "split": split_ids, "config": config or {}, "counts": {"exchanges": len(pairs), "sessions": len(sessions)},
    }))
    report("index", 0.1)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        report("index", 0.1 + 0.85 * done / len(pairs))

    try:
        written = memory.index_exchanges(tenant, interviewer_id, version, pairs, progress=tick)
        ndocs = memory.index_docs(tenant, interviewer_id, version, docs)
        if activate:
            profiles.activate(tenant, interviewer_id, version)
    except Exception as exc:
        try:
            memory.delete_version(tenant, interviewer_id, version)
        finally:
            raise TrainingError(f"training {tenant}/{interviewer_id} v{version} failed: {exc}") from exc
    report("done", 1.0)
    return TrainResult(tenant, interviewer_id, version, split_ids, written, ndocs, style.to_dict())
