"""Training one interviewer: split, fit, augment, classify, export, index, version, activate.

``train_interviewer`` is what the trainer agent (``processors/training_jobs.py``), ``twin train`` and
the evaluation run. From the interviewer's sessions it produces a new profile **version**:

1. the chronological split (given, e.g. the stored one from ``datasets.ensure_split``, or computed);
2. the style profile (feature distributions, openings, closings, lead-ins, question templates) and
   the policy statistics, fitted on the train split only;
3. augmentations (spec §9, ``augment.py``): paraphrase negatives and candidate perturbations for the
   classifier, and a policy stress set whose report is stored with the version;
4. the auxiliary style classifier (``style_classifier.py``), validated on the val split;
5. the chat fine-tune files (``finetune.py``), validated against the provider's format;
6. the move model (``move_model.py``: the next move from the state of the conversation) and the
   response selector (``selection.py``: which past line fits this moment), both chosen and measured
   on the val split;
7. persona memory in Weaviate: context → reply exemplars of the train split, plus notes, rubrics
   and preferences (given ones and ones derived from the fitted profile), all tagged with the version.

Files go to ``<artefact_root>/<tenant>/<interviewer>/v<N>/``::

    style_classifier.joblib  move_model.joblib  selector.joblib
    finetune/train.jsonl  finetune/val.jsonl  finetune/report.json  finetune/axolotl.yaml
    augment/paraphrase_negatives.jsonl  augment/candidate_perturbations.jsonl  augment/policy_stress.jsonl
    manifest.json

The version is written inactive and activated only when everything succeeded; on failure its
memory, its row and its folder are removed and the previous version keeps serving. A new version
inherits the previous version's configuration (controls, prohibited topics, fine-tuned model) unless
``config`` overrides it, so retraining never silently drops what an operator set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from processors.twin.config import clean_list
from processors.twin.corpus import (Split, Transcript, chronological_split, exchanges, interviewer_turns,
                                    write_jsonl)
from processors.twin.editing import common_names
from processors.twin.memory import SITUATION_CUT, PersonaDoc, PersonaMemory
from processors.twin.options import prohibited_topics_of
from processors.twin.policy import PolicyStats
from processors.twin.profiles import InterviewerProfile, ProfileStore
from processors.twin.style import StyleProfile

__all__ = ["TrainResult", "TrainingError", "artefact_dir", "derive_persona_docs", "train_interviewer"]

log = logging.getLogger(__name__)

MAX_OTHER_LINES = 1500  # lines of other interviewers used as classifier negatives
MAX_STRESS_ITEMS = 200


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
    artefacts: dict[str, Any] = field(default_factory=dict)
    activated: bool = True

    def summary(self) -> dict[str, Any]:
        """A JSON-able digest (what a job row records as its result)."""
        clf = self.artefacts.get("styleClassifier") or {}
        ft = self.artefacts.get("fineTune") or {}
        return {
            "version": self.version, "activated": self.activated,
            "split": {k: len(v) for k, v in self.split.items()}, "splitReused": self.artefacts.get("splitReused"),
            "exemplars": self.exemplars, "docs": self.docs, "artefactDir": self.artefacts.get("dir"),
            "styleClassifier": {"path": clf.get("path"), "valAuc": ((clf.get("metrics") or {}).get("val") or {}).get("auc"),
                                "error": clf.get("error")},
            "fineTune": {"train": ft.get("train"), "examples": ft.get("examples"), "valid": ft.get("valid"),
                         "openai": ft.get("openai")},
        }


_SAFE_RE = re.compile(r"[^A-Za-z0-9_.-]")


def _safe(name: str) -> str:
    """A path segment for a tenant or interviewer id (no traversal; a hash keeps mapped names unique)."""
    cleaned = _SAFE_RE.sub("_", name).strip(".") or "_"
    if cleaned != name:
        cleaned += "-" + hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return cleaned[:100]


def artefact_dir(root: Path, tenant: str, interviewer_id: str, version: int) -> Path:
    """``<root>/<tenant>/<interviewer>/v<version>`` with both ids made path-safe."""
    return Path(root) / _safe(tenant) / _safe(interviewer_id) / f"v{version}"


def derive_persona_docs(style: StyleProfile, policy: PolicyStats) -> list[PersonaDoc]:
    """Preference notes derived from the fitted profile (what the twin can look up about itself)."""
    docs: list[PersonaDoc] = []
    if style.n_turns:
        wc = style.word_count
        docs.append(PersonaDoc("preference", "length",
                               f"Typically speaks about {wc.get('p50', 0):.0f} words per turn "
                               f"(between {wc.get('p25', 0):.0f} and {wc.get('p75', 0):.0f} most of the time)."))
        docs.append(PersonaDoc("preference", "questions",
                               f"Asks a question in {style.question_rate:.0%} of turns and follows up on the "
                               f"candidate's own words in {style.follow_up_rate:.0%}; challenge level "
                               f"{style.challenge_level:.2f}, coaching in {style.coaching_ratio:.0%} of turns."))
    # One persona document per recurring-phrase list of the profile: (list, kind, key, label, how many).
    for phrases, kind, key, label, most in (
        (style.openings, "preference", "openings", "Often starts a turn with", 6),
        (style.lead_ins, "preference", "lead_ins", "Habitual lead-ins", 6),
        (style.closings, "preference", "closings", "Often ends a turn with", 6),
        (style.question_templates, "note", "question_templates", "Typical question frames", 8),
    ):
        if phrases:
            docs.append(PersonaDoc(kind, key, f"{label}: " + "; ".join(f'"{p.text}"' for p in phrases[:most]) + "."))
    if policy.n_turns:
        rates = sorted(policy.move_rates.items(), key=lambda kv: -kv[1])
        docs.append(PersonaDoc("note", "moves", "Usual next moves: "
                               + ", ".join(f"{m.replace('_', ' ')} {r:.0%}" for m, r in rates[:4])
                               + f"; stays about {policy.mean_topic_length:.1f} turns on a topic."))
    return docs


def _lines(transcripts: Sequence[Transcript], role: str) -> list[str]:
    return [t.text for tr in transcripts for t in tr.turns if t.role == role]


def _sample(items: list[str], n: int, seed: int) -> list[str]:
    if len(items) <= n:
        return items
    return random.Random(seed).sample(items, n)  # nosec B311  # a reproducible sample, not a secret


def _classifier(interviewer_id: str, split: Split, others: Sequence[Transcript], style: StyleProfile, memory,
                out: Path, seed: int, aug_dir: Path) -> dict[str, Any]:
    from processors.twin.augment import candidate_perturbations, paraphrase_negatives
    from processors.twin.style_classifier import StyleClassifierError, TrainingLines, train_style_classifier

    other_lines = _sample(_lines(others, "interviewer"), MAX_OTHER_LINES, seed)
    n_other_train = int(len(other_lines) * 0.8)

    def lines_for(sessions: Sequence[Transcript], other: list[str], salt: int) -> tuple[Any, list, list]:
        mine, cand = _lines(sessions, "interviewer"), _lines(sessions, "candidate")
        paras = paraphrase_negatives(mine, style, seed=seed + salt)
        perts = candidate_perturbations(cand, seed=seed + salt)
        return TrainingLines(interviewer=mine, candidate=cand, other_interviewers=other,
                             paraphrase_negatives=[a.text for a in paras],
                             perturbed_candidate=[a.text for a in perts]), paras, perts

    train_lines, paras, perts = lines_for(split.train, other_lines[:n_other_train], 0)
    val_lines = lines_for(split.val, other_lines[n_other_train:], 1)[0] if split.val else None
    mine = _lines(split.train, "interviewer")
    cand = _lines(split.train, "candidate")
    write_jsonl(aug_dir / "paraphrase_negatives.jsonl",
                 [{"kind": a.kind, "source": mine[a.source], "text": a.text} for a in paras])
    write_jsonl(aug_dir / "candidate_perturbations.jsonl",
                 [{"kind": a.kind, "source": cand[a.source], "text": a.text} for a in perts])
    augmentation = {"paraphraseNegatives": len(paras), "candidatePerturbations": len(perts),
                    "otherInterviewerLines": len(other_lines)}
    try:
        clf = train_style_classifier(interviewer_id, train_lines, val_lines, embedder=memory.embedder, seed=seed)
    except StyleClassifierError as exc:
        return {"error": str(exc), "augmentation": augmentation}
    path = clf.save(out / "style_classifier.joblib")
    return {"path": str(path), "metrics": clf.metrics, "trainCounts": clf.meta.get("trainCounts"),
            "augmentation": augmentation}


def _learned_models(split: Split, pairs: Sequence[Any], situations, embedder, out: Path, seed: int) -> dict[str, Any]:
    """Fit, measure and save the move model and the response selector; what the profile records."""
    from processors.twin.move_model import fit_move_model
    from processors.twin.selection import fit_selector

    found: dict[str, Any] = {}
    move_model = None
    try:
        move_model, move_metrics = fit_move_model(split, embedder, seed=seed)
        # Read by the engine (``rubric_of``): whether the generic rubric's verdicts steer this interviewer's moves.
        found["rubricCheck"] = move_metrics.pop("rubricCheck")
        found["moveModel"] = {"path": str(move_model.save(out / "move_model.joblib")), "metrics": move_metrics}
    except ValueError as exc:  # too little data (e.g. one move only): the rule-based policy serves
        found["moveModel"] = {"error": str(exc)}
    keyed = {f"{ex.session_id}#{ex.index}": vec for ex, vec in zip(pairs, situations)}
    try:
        selector = fit_selector(split.train, embedder, situation_vectors=keyed, move_model=move_model,
                                val=split.val, seed=seed)
        found["selector"] = {"path": str(selector.save(out / "selector.joblib")), **selector.meta}
    except ValueError as exc:  # one train session: nothing to learn from; retrieval order serves
        found["selector"] = {"error": str(exc)}
    return found


def train_interviewer(tenant: str, interviewer_id: str, transcripts: Sequence[Transcript], profiles: ProfileStore,
                      memory: PersonaMemory, *, val: float = 0.1, test: float = 0.2,
                      docs: Sequence[PersonaDoc] = (), config: dict[str, Any] | None = None,
                      progress: Callable[[str, float], None] | None = None, activate: bool = True,
                      split: Split | None = None, artefact_root: Path | None = None,
                      others: Sequence[Transcript] = (), classifier: bool = True, fine_tune_file: bool = True,
                      derive_docs: bool = True, learned: bool = True, seed: int = 0, base_model: str | None = None,
                      on_version: Callable[[int], None] | None = None,
                      provenance: dict[str, Any] | None = None) -> TrainResult:
    """Train a new version from the interviewer's sessions (chronological; final sessions held out).

    :param transcripts: sessions (others' sessions in it are ignored); unused when ``split`` is given.
    :param split: a fixed split (the stored one) instead of splitting ``transcripts`` with val/test.
    :param artefact_root: where version folders go (default ``TWIN_VAR_DIR/models``).
    :param others: other interviewers' sessions, whose lines are negatives for the style classifier.
    :param learned: fit the move model and the response selector (without them the engine falls
        back to its rule-based policy and hand-weighted ranking).
    :param on_version: called with the version number as soon as it is allocated (job bookkeeping).
    :param provenance: recorded in the artefacts (dataset ref, job id).
    :raises TrainingError: no usable data, or a store failed (the previous version keeps serving).
    """
    report = progress or (lambda stage, fraction: None)
    if split is None:
        sessions = [t for t in transcripts if t.interviewer_id == interviewer_id]
        if not sessions:
            raise TrainingError(f"no sessions of interviewer {interviewer_id!r} in the dataset")
        split = chronological_split(sessions, val=val, test=test)
    n_sessions = len(split.train) + len(split.val) + len(split.test)
    train = split.train
    if not train:
        raise TrainingError(f"interviewer {interviewer_id!r} has no sessions in the train split")
    report("fit", 0.02)
    style = StyleProfile.fit(interviewer_turns(train), interviewer_id=interviewer_id)
    policy = PolicyStats.fit(train, interviewer_id=interviewer_id)
    pairs = [ex for t in train for ex in exchanges(t)]
    if not pairs:
        raise TrainingError(f"interviewer {interviewer_id!r} has no interviewer turns in the train split")
    if artefact_root is None:
        from infra.settings import settings

        artefact_root = settings.TWIN_VAR_DIR / "models"
    previous = profiles.load(tenant, interviewer_id)
    merged_config = {**((previous.config if previous else None) or {}), **(config or {})}
    doc_topics = [t for d in docs if d.kind == "prohibited" for t in prohibited_topics_of(d.text)]
    if doc_topics:
        # A prohibited document's topics join the version's prohibitedTopics: the engine's line checks, the safety
        # agent, the LLM prompt and retrieval all read that list (and later versions keep it, as configured topics).
        merged_config["prohibitedTopics"] = clean_list([*(merged_config.get("prohibitedTopics") or []), *doc_topics])
    version = profiles.next_version(tenant, interviewer_id)
    if on_version:
        on_version(version)
    out = artefact_dir(artefact_root, tenant, interviewer_id, version)
    split_ids = {"train": [t.session_id for t in split.train], "val": [t.session_id for t in split.val],
                 "test": [t.session_id for t in split.test]}
    artefacts: dict[str, Any] = {
        "split": split_ids, "config": merged_config, "dir": str(out),
        "counts": {"exchanges": len(pairs), "sessions": n_sessions, "trainSessions": len(split.train)},
        # The recipe of memory's situation vectors: the engine's queries must use the same one.
        "situationCut": SITUATION_CUT,
        # Names any of this interviewer's sessions may hear; editing treats the others as their session's own.
        "commonNames": common_names([[t.text for t in s.turns] for s in train]),
        **({"provenance": provenance, "splitReused": provenance.get("splitReused")} if provenance else {}),
    }
    saved = False
    try:
        if out.exists():  # left by a run that died before cleaning up (the version was never active)
            shutil.rmtree(out)
        out.mkdir(parents=True)
        aug_dir = out / "augment"
        aug_dir.mkdir()
        report("augment", 0.05)
        from processors.twin.augment import policy_stress_report, policy_stress_set

        stress = policy_stress_set(split.val or train, seed=seed, max_items=MAX_STRESS_ITEMS)
        write_jsonl(aug_dir / "policy_stress.jsonl", [s.to_dict() for s in stress])
        artefacts["policyStress"] = policy_stress_report(stress, policy)
        if classifier:
            report("classifier", 0.1)
            artefacts["styleClassifier"] = _classifier(interviewer_id, split, others, style, memory, out, seed, aug_dir)
        if fine_tune_file:
            report("fine-tune file", 0.3)
            from processors.twin.finetune import write_fine_tune_files

            kwargs = {"base_model": base_model} if base_model else {}
            artefacts["fineTune"] = write_fine_tune_files(out / "finetune", interviewer_id, style, split.train,
                                                          split.val, **kwargs)
        report("embed situations", 0.31)
        situations = memory.situation_vectors(pairs)
        if learned:
            report("move model and selector", 0.32)
            artefacts.update(_learned_models(split, pairs, situations, memory.embedder, out, seed))
        all_docs = [*(derive_persona_docs(style, policy) if derive_docs else []), *docs]
        artefacts["docs"] = [{"kind": d.kind, "key": d.key} for d in all_docs]
        # The rubric documents are the criteria the rubric check grades answers against (the engine's ``rubric_of``).
        rubric = [d.text for d in all_docs if d.kind == "rubric"]
        if rubric:
            artefacts["rubric"] = rubric
        (out / "manifest.json").write_text(json.dumps(
            {"tenant": tenant, "interviewerId": interviewer_id, "version": version,
             "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())}, indent=2))
        profiles.save(InterviewerProfile(tenant, interviewer_id, version, style, policy, artefacts=artefacts))
        saved = True
        report("index", 0.35)
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            report("index", 0.35 + 0.6 * done / len(pairs))

        written = memory.index_exchanges(tenant, interviewer_id, version, pairs, progress=tick, vectors=situations)
        ndocs = memory.index_docs(tenant, interviewer_id, version, all_docs)
        if activate:
            profiles.activate(tenant, interviewer_id, version)
    except Exception as exc:
        # Undo this version everywhere; the active one (if any) was never touched.
        for undo in (lambda: memory.delete_version(tenant, interviewer_id, version),
                     lambda: saved and profiles.discard(tenant, interviewer_id, version),
                     lambda: shutil.rmtree(out, ignore_errors=True)):
            try:
                undo()
            except Exception:  # noqa: BLE001 - cleanup is best effort; the original error matters
                log.warning("training %s/%s v%s failed and a clean-up step failed too", tenant, interviewer_id,
                            version, exc_info=True)
        raise TrainingError(f"training {tenant}/{interviewer_id} v{version} failed: {type(exc).__name__}: {exc}") from exc
    report("done", 1.0)
    return TrainResult(tenant, interviewer_id, version, split_ids, written, ndocs, style.to_dict(), artefacts,
                       activated=activate)
