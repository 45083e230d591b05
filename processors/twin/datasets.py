"""Training data in PostgreSQL: import transcripts (redacted), read them back, and fix the splits.

A dataset is named by its ``dataset_ref``:

* ``ds_<name>``: sessions imported from a file by ``twin import FILE --tenant T [--dataset NAME]``
  (JSON Lines or speaker-labelled text, see ``processors.twin.corpus``);
* ``live:<tenant>``: the tenant's live sessions captured by the telemetry pipeline (``sessions`` +
  ``turns``), copied in by :func:`sync_live_sessions` when a job trains on them. Only sessions with
  ``consent_training`` are used; ``twin`` turns are dropped (they are not the human interviewer).

Consent (nothing trains without it, :func:`require_training_consent`):

* live sessions carry their own: only those with ``consent_training`` (and not erased) are copied,
  and :func:`load_sessions` checks it again at read time, so a session whose consent was withdrawn
  after the copy is never trained on;
* an imported file has no per-session consent, so the importer attests it for the dataset
  (``twin import FILE --consent-attested``: who, when, an optional note such as "public record"),
  stored on ``datasets``; a dataset without an attestation is refused for training.

Every imported session goes through the same PII redaction as live telemetry (``processors.pii``)
before it is stored, and each session is written in its own transaction: a bad line is reported
with its line number and nothing of it is stored, the rest of the file still imports. Re-importing
an unchanged line is a no-op (content hash), a changed one replaces the stored session. A session's
turns are stored encrypted (``infra.crypto.DATASET_TURNS``: one sealed value per session, bound to
tenant, dataset and session); :func:`load_sessions` decrypts them, and reads rows stored in clear
before encryption as they are.

Splits (``interviewer_splits``) are per interviewer and chronological; they are stored the first
time an interviewer is trained and reused by every later job (:func:`ensure_split`)::

    with psycopg.connect(dsn, autocommit=True) as conn:
        report = import_file(conn, "dev.jsonl", tenant="acme", dataset_ref="ds_scotus")
        sessions = load_sessions(conn, "acme", "ds_scotus", "elena_kagan")
        split, reused = ensure_split(conn, "acme", "elena_kagan", "ds_scotus", sessions)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pydantic import ValidationError

from infra.crypto import DATASET_TURNS, TURNS_TEXT
from processors.twin.corpus import ParsedLine, Split, Transcript, Turn, chronological_split, read_transcripts

__all__ = [
    "DATASET_REF_RE",
    "LIVE_PREFIX",
    "ConsentMissing",
    "DatasetError",
    "ImportReport",
    "RedactionUnavailable",
    "Redactor",
    "dataset_exists",
    "dataset_interviewers",
    "dataset_ref_for",
    "default_redactor",
    "ensure_split",
    "import_file",
    "import_transcripts",
    "is_live",
    "list_datasets",
    "live_ref",
    "load_sessions",
    "redact_transcript",
    "require_training_consent",
    "stored_split",
    "sync_live_sessions",
]

DATASET_REF_RE = re.compile(r"^ds_[a-z0-9][a-z0-9_.-]{0,62}$")
LIVE_PREFIX = "live:"

Redactor = Callable[[list[str]], list[tuple[str, dict[str, int]]]]
"""Batch redaction for one tenant: texts in, [(redacted text, {entity type: count})] out, same order."""


class DatasetError(ValueError):
    """A dataset reference or request that cannot be served (bad name, unknown dataset)."""


class ConsentMissing(DatasetError):
    """The dataset (or the interviewer's sessions in it) lacks recorded consent to training."""


class RedactionUnavailable(RuntimeError):
    """The PII redaction of the telemetry pipeline (``processors.pii``) cannot be loaded."""


def dataset_ref_for(name: str) -> str:
    """``ds_<slug>`` for a human name ("SCOTUS dev" -> ``ds_scotus_dev``); a ref passes unchanged."""
    if DATASET_REF_RE.match(name) or name.startswith(LIVE_PREFIX):
        return name
    slug = re.sub(r"[^a-z0-9_.-]+", "_", name.lower()).strip("_.-")[:60]
    if not slug:
        raise DatasetError(f"cannot make a dataset name from {name!r}")
    return f"ds_{slug}"


def live_ref(tenant: str) -> str:
    """The dataset ref of a tenant's live sessions."""
    return f"{LIVE_PREFIX}{tenant}"


def is_live(dataset_ref: str) -> bool:
    return dataset_ref.startswith(LIVE_PREFIX)


# --------------------------------------------------------------------------- redaction


def default_redactor(tenant: str) -> Redactor:
    """The telemetry pipeline's redaction (``processors.pii``, with the tenant's allow/deny terms).

    Imported lazily so that reading this module needs no Presidio; raises RedactionUnavailable
    with what to install when it is missing.
    """
    try:
        from processors.pii import get_redactor  # noqa: PLC0415 - heavy (spaCy + Presidio)

        redactor = get_redactor()
    except ImportError as exc:
        raise RedactionUnavailable(
            "PII redaction is unavailable: processors.pii (the telemetry redaction) cannot be loaded "
            f"({exc}); install the ML extra: pip install 'interviewer-twin[ml]'") from exc

    def redact(texts: list[str]) -> list[tuple[str, dict[str, int]]]:
        return [(r.text, dict(r.counts)) for r in redactor.redact(texts, tenant)]

    return redact


def redact_transcript(transcript: Transcript, redact: Redactor | None) -> tuple[Transcript, dict[str, int]]:
    """The transcript with every turn redacted (one batch), and the entity counts; ``redact=None`` copies it."""
    if redact is None:
        return transcript, {}
    results = redact([t.text for t in transcript.turns])
    if len(results) != len(transcript.turns):
        raise RedactionUnavailable(f"redaction returned {len(results)} texts for {len(transcript.turns)}")
    counts: Counter[str] = Counter()
    turns = []
    for t, (text, found) in zip(transcript.turns, results):
        counts.update(found)
        turns.append(Turn(role=t.role, text=text if text.strip() else "[REDACTED]", ts=t.ts))
    return transcript.model_copy(update={"turns": turns}), dict(counts)


# --------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    """What an import did, line by line and per interviewer."""

    tenant: str
    dataset_ref: str
    sessions_read: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # live sessions that are not usable as training data (no interviewer turns)
    removed: int = 0  # live sessions no longer consented (or erased) removed from live:<tenant>
    errors: list[tuple[int, str]] = field(default_factory=list)
    per_interviewer: dict[str, dict[str, int]] = field(default_factory=dict)
    redactions: Counter = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def stored(self) -> int:
        """Sessions now in the dataset from this file (new, updated or already there)."""
        return self.imported + self.updated + self.unchanged

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "datasetRef": self.dataset_ref, "sessionsRead": self.sessions_read,
                "imported": self.imported, "updated": self.updated, "unchanged": self.unchanged,
                "skipped": self.skipped, "removed": self.removed, "failed": self.failed,
                "errors": [{"line": n, "error": e} for n, e in self.errors],
                "perInterviewer": self.per_interviewer, "redactions": dict(self.redactions)}


def _sha(transcript: Transcript) -> str:
    return hashlib.sha256(transcript.model_dump_json().encode()).hexdigest()


def _ensure_dataset(conn: psycopg.Connection, tenant: str, dataset_ref: str, kind: str, source: str | None,
                    consent_attested_by: str | None = None, consent_note: str | None = None) -> None:
    attested_at = "now()" if consent_attested_by else "NULL"
    with conn.transaction():
        conn.execute("INSERT INTO tenants (tenant, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (tenant, tenant))
        # An attestation is recorded when given and never cleared by a later import without one.
        conn.execute(
            "INSERT INTO datasets (tenant, dataset_ref, name, kind, source, consent_attested_by, consent_attested_at,"
            f" consent_note) VALUES (%s, %s, %s, %s, %s, %s, {attested_at}, %s)"  # nosec B608  # now() or NULL
            " ON CONFLICT (tenant, dataset_ref) DO UPDATE SET updated_at = now(),"
            " source = coalesce(EXCLUDED.source, datasets.source),"
            " consent_attested_by = coalesce(EXCLUDED.consent_attested_by, datasets.consent_attested_by),"
            " consent_attested_at = coalesce(EXCLUDED.consent_attested_at, datasets.consent_attested_at),"
            " consent_note = coalesce(EXCLUDED.consent_note, datasets.consent_note)",
            (tenant, dataset_ref, dataset_ref.removeprefix("ds_"), kind, source, consent_attested_by, consent_note))


def _store_session(conn: psycopg.Connection, tenant: str, dataset_ref: str, transcript: Transcript, seq: int,
                   redact: Redactor | None, report: ImportReport, line: int) -> None:
    sha = _sha(transcript)
    row = conn.execute("SELECT content_sha256, interviewer_id FROM dataset_sessions"
                       " WHERE tenant=%s AND dataset_ref=%s AND session_id=%s",
                       (tenant, dataset_ref, transcript.session_id)).fetchone()
    if row is not None and row[1] != transcript.interviewer_id:
        report.errors.append((line, f"line {line}: session {transcript.session_id!r} is already stored for "
                                    f"interviewer {row[1]!r}, not {transcript.interviewer_id!r}"))
        return
    stats = report.per_interviewer.setdefault(transcript.interviewer_id,
                                              {"sessions": 0, "turns": 0, "interviewerTurns": 0, "new": 0})
    n_int = sum(1 for t in transcript.turns if t.role == "interviewer")
    stats["sessions"] += 1
    stats["turns"] += len(transcript.turns)
    stats["interviewerTurns"] += n_int
    if row is not None and row[0] == sha:
        report.unchanged += 1
        return
    # Redaction is CPU work outside the transaction; the write below is all or nothing.
    redacted, counts = redact_transcript(transcript, redact)
    turns = [{"role": t.role, "text": t.text, "ts": t.ts.isoformat() if t.ts else None} for t in redacted.turns]
    with conn.transaction():
        conn.execute(
            "INSERT INTO interviewers (tenant, interviewer_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (tenant, transcript.interviewer_id))
        conn.execute(
            "INSERT INTO dataset_sessions (tenant, dataset_ref, session_id, interviewer_id, started_at, seq, source,"
            " turns, n_turns, n_interviewer_turns, redactions, content_sha256) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant, dataset_ref, session_id) DO UPDATE SET interviewer_id=EXCLUDED.interviewer_id,"
            " started_at=EXCLUDED.started_at, seq=EXCLUDED.seq, source=EXCLUDED.source, turns=EXCLUDED.turns,"
            " n_turns=EXCLUDED.n_turns, n_interviewer_turns=EXCLUDED.n_interviewer_turns,"
            " redactions=EXCLUDED.redactions, content_sha256=EXCLUDED.content_sha256, imported_at=now()",
            (tenant, dataset_ref, transcript.session_id, transcript.interviewer_id, transcript.started_at, seq,
             transcript.source, json.dumps(DATASET_TURNS.seal(turns, tenant, (dataset_ref, transcript.session_id))),
             len(turns), n_int, json.dumps(counts), sha))
    report.redactions.update(counts)
    if row is None:
        report.imported += 1
        stats["new"] += 1
    else:
        report.updated += 1


def import_transcripts(conn: psycopg.Connection, tenant: str, dataset_ref: str, parsed: Iterable[ParsedLine], *,
                       redact: Redactor | None, kind: str = "import", source: str | None = None,
                       progress: Callable[[ParsedLine], None] | None = None, consent_attested_by: str | None = None,
                       consent_note: str | None = None) -> ImportReport:
    """Store parsed sessions in a dataset, one transaction per session; errors are collected, not raised.

    :param conn: an autocommit connection (each session gets its own transaction).
    :param parsed: ``ParsedLine`` results (``corpus.read_transcripts``); error lines are reported.
    :param redact: the redaction applied to every turn before it is stored (None: already redacted).
    :param progress: called after each line, with the line.
    :param consent_attested_by: who attests that every session may be used for training (recorded on
        the dataset; an imported dataset without it cannot be trained on); ``consent_note``: the basis.
    """
    ref = dataset_ref_for(dataset_ref)
    if not (DATASET_REF_RE.match(ref) or (is_live(ref) and ref == live_ref(tenant))):
        raise DatasetError(f"bad dataset ref {dataset_ref!r}: use ds_<name> or live:<tenant>")
    _ensure_dataset(conn, tenant, ref, kind, source, consent_attested_by if kind == "import" else None, consent_note)
    report = ImportReport(tenant, ref)
    for item in parsed:
        report.sessions_read += 1
        if item.transcript is None:
            report.errors.append((item.line, item.error or f"line {item.line}: unreadable"))
        else:
            try:
                _store_session(conn, tenant, ref, item.transcript, item.line, redact, report, item.line)
            except RedactionUnavailable:
                raise
            except (psycopg.Error, ValueError) as exc:  # that session is rolled back; the next one goes on
                report.errors.append((item.line, f"line {item.line}: not stored: {type(exc).__name__}: {exc}"))
        if progress:
            progress(item)
    return report


def import_file(conn: psycopg.Connection, path: str | Path, tenant: str, dataset_ref: str | None = None, *,
                interviewer_id: str | None = None, redact: Redactor | None | bool = True,
                progress: Callable[[ParsedLine], None] | None = None, consent_attested_by: str | None = None,
                consent_note: str | None = None) -> ImportReport:
    """Import a transcript file into ``dataset_ref`` (default ``ds_<file stem>``).

    ``redact=True`` uses the pipeline's redaction for the tenant (:func:`default_redactor`), a
    callable is used as is; ``interviewer_id`` names the interviewer of plain text without an ``# interviewer_id:`` header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    redactor = default_redactor(tenant) if redact is True else (redact or None)
    ref = dataset_ref_for(dataset_ref or path.stem)
    return import_transcripts(conn, tenant, ref, read_transcripts(path, interviewer_id=interviewer_id),
                              redact=redactor, source=str(path.name), progress=progress,
                              consent_attested_by=consent_attested_by, consent_note=consent_note)


def sync_live_sessions(conn: psycopg.Connection, tenant: str, redact: Redactor | None = None,
                       progress: Callable[[ParsedLine], None] | None = None,
                       session_ids: Sequence[str] | None = None) -> ImportReport:
    """Copy the tenant's consented live sessions (``sessions`` + ``turns``) into ``live:<tenant>``.

    The turns were redacted by the telemetry pipeline before they were stored, so ``redact`` is
    None by default. Sessions without an interviewer turn (a twin-led interview) are skipped, and
    sessions copied earlier that no longer qualify (consent withdrawn, erased) are removed.
    ``session_ids``: only these sessions (the dataset growth agent's batch), else all of the tenant's.
    """
    only = " AND s.session_id = ANY(%s)" if session_ids is not None else ""
    rows = conn.execute(
        "SELECT s.session_id, s.interviewer_id, s.created_at, t.role, t.text, t.ts, t.event_id"
        " FROM sessions s JOIN turns t ON t.session_id = s.session_id AND t.tenant = s.tenant"
        " WHERE s.tenant = %s AND s.consent_training AND s.status <> 'erased'" + only +  # nosec B608  # a constant
        " ORDER BY s.created_at, s.session_id, t.ts, t.event_id",
        (tenant, list(session_ids)) if session_ids is not None else (tenant,)).fetchall()
    sessions: dict[str, dict[str, Any]] = {}
    for sid, iid, created, role, text, ts, eid in rows:
        text = TURNS_TEXT.open(text, tenant, (sid, eid))  # stored encrypted (sinks/postgres.py)
        s = sessions.setdefault(sid, {"interviewer_id": iid, "session_id": sid, "started_at": created,
                                      "source": "live telemetry", "turns": []})
        if role in ("interviewer", "candidate") and text and text.strip():
            s["turns"].append({"role": role, "text": text, "ts": ts})
    parsed: list[ParsedLine] = []
    skipped = 0
    for data in sessions.values():
        # A live session's place in the dataset (``seq``) is when it was created, in epoch milliseconds:
        # the same whether the whole tenant or one session is synced.
        seq = int(data["started_at"].timestamp() * 1000)
        # Merge consecutive same-role turns, as the corpora do, so exchanges alternate.
        merged: list[dict[str, Any]] = []
        for t in data["turns"]:
            if merged and merged[-1]["role"] == t["role"]:
                merged[-1] = {**merged[-1], "text": merged[-1]["text"] + " " + t["text"]}
            else:
                merged.append(t)
        data["turns"] = merged
        try:
            parsed.append(ParsedLine(seq, transcript=Transcript.model_validate(data)))
        except ValidationError:
            skipped += 1  # no interviewer turns (or none at all): nothing to learn from
    report = import_transcripts(conn, tenant, live_ref(tenant), parsed, redact=redact, kind="live",
                                source="live telemetry", progress=progress)
    report.skipped = skipped
    # Consent withdrawn, session erased or purged: its copy leaves the training data too.
    keep = [p.transcript.session_id for p in parsed]
    if session_ids is None:
        report.removed = conn.execute(
            "DELETE FROM dataset_sessions WHERE tenant=%s AND dataset_ref=%s AND NOT (session_id = ANY(%s))",
            (tenant, live_ref(tenant), keep)).rowcount
    else:
        report.removed = conn.execute(
            "DELETE FROM dataset_sessions WHERE tenant=%s AND dataset_ref=%s AND session_id = ANY(%s)"
            " AND NOT (session_id = ANY(%s))", (tenant, live_ref(tenant), list(session_ids), keep)).rowcount
    return report


# --------------------------------------------------------------------------- reading
_LIVE_CONSENTED = (" AND EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = d.session_id AND s.tenant = d.tenant"
                   " AND s.consent_training AND s.status <> 'erased')")


def require_training_consent(conn: psycopg.Connection, tenant: str, dataset_ref: str,
                             interviewer_id: str | None = None) -> None:
    """Raise :class:`ConsentMissing` unless the dataset may be trained on.

    Imported: the dataset carries an attestation. Live: the interviewer has at least one session
    with ``consent_training`` (only those are ever read, see :func:`load_sessions`).
    """
    if is_live(dataset_ref):
        if interviewer_id is None:
            return
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE consent_training AND status <> 'erased') FROM sessions"
            " WHERE tenant=%s AND interviewer_id=%s", (tenant, interviewer_id)).fetchone()
        if row[0] and not row[1]:
            raise ConsentMissing(f"none of the {row[0]} live session(s) of {interviewer_id!r} has consent to "
                                 "training (consentTraining); nothing of them is used")
        return
    row = conn.execute("SELECT consent_attested_by FROM datasets WHERE tenant=%s AND dataset_ref=%s",
                       (tenant, dataset_ref)).fetchone()
    if row is not None and not row[0]:
        raise ConsentMissing(f"dataset {dataset_ref!r} has no consent attestation: re-import it with "
                             "`twin import FILE --consent-attested` once you have confirmed that every session "
                             "may be used for training")



def dataset_exists(conn: psycopg.Connection, tenant: str, dataset_ref: str) -> bool:
    """True when the tenant owns the dataset (``live:<tenant>`` always exists for its tenant)."""
    if is_live(dataset_ref):
        return dataset_ref == live_ref(tenant)
    return conn.execute("SELECT 1 FROM datasets WHERE tenant=%s AND dataset_ref=%s",
                        (tenant, dataset_ref)).fetchone() is not None


def dataset_interviewers(conn: psycopg.Connection, tenant: str, dataset_ref: str) -> dict[str, int]:
    """Interviewer id -> number of sessions in the dataset."""
    rows = conn.execute("SELECT interviewer_id, count(*) FROM dataset_sessions WHERE tenant=%s AND dataset_ref=%s"
                        " GROUP BY interviewer_id ORDER BY interviewer_id", (tenant, dataset_ref)).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def list_datasets(conn: psycopg.Connection, tenant: str) -> list[dict[str, Any]]:
    """The tenant's datasets with session and interviewer counts."""
    rows = conn.execute(
        "SELECT d.dataset_ref, d.kind, d.source, d.updated_at, count(s.session_id), count(DISTINCT s.interviewer_id),"
        " coalesce(sum(s.n_turns), 0) FROM datasets d LEFT JOIN dataset_sessions s"
        " ON s.tenant = d.tenant AND s.dataset_ref = d.dataset_ref WHERE d.tenant=%s"
        " GROUP BY d.dataset_ref, d.kind, d.source, d.updated_at ORDER BY d.dataset_ref", (tenant,)).fetchall()
    return [{"datasetRef": r[0], "kind": r[1], "source": r[2], "updatedAt": r[3], "sessions": int(r[4]),
             "interviewers": int(r[5]), "turns": int(r[6])} for r in rows]


def load_sessions(conn: psycopg.Connection, tenant: str, dataset_ref: str, interviewer_id: str | None = None,
                  exclude_interviewer: str | None = None, limit: int | None = None) -> list[Transcript]:
    """Sessions of a dataset in source order (one interviewer, all, or all but one)."""
    sql = ("SELECT interviewer_id, session_id, started_at, source, turns FROM dataset_sessions d"
           " WHERE tenant=%s AND dataset_ref=%s")
    params: list[Any] = [tenant, dataset_ref]
    if is_live(dataset_ref):
        # Consent as it is now, not as it was when the session was copied: withdrawn means unused.
        sql += _LIVE_CONSENTED
    if interviewer_id is not None:
        sql += " AND interviewer_id=%s"
        params.append(interviewer_id)
    if exclude_interviewer is not None:
        sql += " AND interviewer_id<>%s"
        params.append(exclude_interviewer)
    sql += " ORDER BY interviewer_id, seq, session_id"
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    out = []
    for iid, sid, started, source, turns in conn.execute(sql, params).fetchall():
        turns = DATASET_TURNS.open(turns, tenant, (dataset_ref, sid))  # sealed, or clear from before encryption
        out.append(Transcript(interviewer_id=iid, session_id=sid, started_at=started, source=source,
                              turns=[Turn.model_validate(t) for t in turns]))
    return out


# --------------------------------------------------------------------------- splits


def stored_split(conn: psycopg.Connection, tenant: str, interviewer_id: str) -> dict[str, str]:
    """session id -> train/val/test, as stored for the interviewer."""
    rows = conn.execute("SELECT session_id, split FROM interviewer_splits WHERE tenant=%s AND interviewer_id=%s",
                        (tenant, interviewer_id)).fetchall()
    return {r[0]: r[1] for r in rows}


def ensure_split(conn: psycopg.Connection, tenant: str, interviewer_id: str, dataset_ref: str,
                 sessions: Sequence[Transcript], val: float = 0.1, test: float = 0.2,
                 resplit: bool = False) -> tuple[Split, bool]:
    """The interviewer's stored chronological split of ``sessions``; assigns and stores what is new.

    Sessions already assigned keep their split forever (a test session never becomes training
    data). Sessions seen for the first time fill what each part lacks of the shares a chronological
    split of all the given sessions has (``val``, ``test``), in time order: the earlier new sessions
    go to train, the later ones to validation and test. The first time, that is the chronological
    split itself; as sessions accrue (a refresh), train grows with the test set instead of every new
    session landing in test. ``resplit=True`` forgets the stored split first. Returns the split and
    whether a stored split was reused.
    """
    proposal = chronological_split(sessions, val=val, test=test)
    ordered = proposal.train + proposal.val + proposal.test  # chronological
    order = {t.session_id: i for i, t in enumerate(ordered)}
    with conn.transaction():
        # One assignment at a time per interviewer: two jobs must not both assign new sessions.
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"split/{tenant}/{interviewer_id}",))
        if resplit:
            conn.execute("DELETE FROM interviewer_splits WHERE tenant=%s AND interviewer_id=%s", (tenant, interviewer_id))
        existing = stored_split(conn, tenant, interviewer_id)
        present = Counter(existing[t.session_id] for t in ordered if t.session_id in existing)
        lacking = {name: max(0, len(getattr(proposal, name)) - present[name]) for name in ("train", "val", "test")}
        assigned = dict(existing)
        new = [t for t in ordered if t.session_id not in existing]
        for t in new:
            name = next((n for n in ("train", "val", "test") if lacking[n] > 0), "test")
            lacking[name] -= 1
            assigned[t.session_id] = name
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO interviewer_splits (tenant, interviewer_id, session_id, split, position, dataset_ref)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(tenant, interviewer_id, t.session_id, assigned[t.session_id], order[t.session_id], dataset_ref)
                 for t in new])
    split = Split(train=[t for t in ordered if assigned[t.session_id] == "train"],
                  val=[t for t in ordered if assigned[t.session_id] == "val"],
                  test=[t for t in ordered if assigned[t.session_id] == "test"])
    return split, bool(existing) and not resplit

