"""Interview transcripts: the models, the two readers, the chronological split, exchanges, and the
JSON Lines writer the training artefacts and the evaluation's turns file share.

Formats (see ``../shared/corpora/FORMAT.md``):

* JSON Lines, one session per line (``.jsonl``/``.json``, or any file whose first non-blank
  character is ``{``). Unknown fields (``meta``, ``speaker``, ``offset_s``) are ignored.
* Plain speaker-labelled text: ``Interviewer: ...`` / ``Candidate: ...`` lines; a line without a
  label continues the previous turn. Optional ``# interviewer_id: ...``, ``# session_id: ...``,
  ``# started_at: ...`` header lines, and a line of ``---`` starts the next session.

Reading never stops at a bad line: ``read_transcripts`` yields one ``ParsedLine`` per session,
holding either the ``Transcript`` or an error that names the line::

    for parsed in read_transcripts("dev.jsonl"):
        if parsed.error:
            print(parsed.line, parsed.error)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "ROLES",
    "Exchange",
    "InterviewerTurn",
    "ParsedLine",
    "Role",
    "Split",
    "Transcript",
    "Turn",
    "chronological_split",
    "exchanges",
    "interviewer_turns",
    "parse_jsonl_line",
    "parse_plain_text",
    "read_transcripts",
    "split_by_interviewer",
    "write_jsonl",
]

Role = Literal["interviewer", "candidate"]
ROLES: tuple[str, ...] = ("interviewer", "candidate")


def _as_utc(value: datetime | None) -> datetime | None:
    # Dates without a zone ("2014-11-05") are read as UTC so they compare with zoned ones.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class Turn(BaseModel):
    """One speaker turn: who spoke, what they said, and when (if known)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Role
    text: str
    ts: datetime | None = None

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("text is empty")
        return v

    @field_validator("ts")
    @classmethod
    def _ts_utc(cls, v: datetime | None) -> datetime | None:
        return _as_utc(v)


class Transcript(BaseModel):
    """One interview session of one interviewer, turns in spoken order."""

    model_config = ConfigDict(extra="ignore")

    interviewer_id: str = Field(min_length=1)
    session_id: str = Field(min_length=1)
    started_at: datetime | None = None
    source: str | None = None
    turns: list[Turn]

    @field_validator("started_at")
    @classmethod
    def _started_utc(cls, v: datetime | None) -> datetime | None:
        return _as_utc(v)

    @model_validator(mode="after")
    def _has_interviewer(self) -> Transcript:
        if not self.turns:
            raise ValueError("session has no turns")
        if not any(t.role == "interviewer" for t in self.turns):
            raise ValueError("session has no interviewer turns")
        return self


@dataclass(frozen=True)
class ParsedLine:
    """Result of reading one session: ``transcript`` when valid, else ``error`` (never both).

    ``line`` is the 1-based line number in the file: the JSON line, or for plain text the line
    where the session (or the offending label) starts.
    """

    line: int
    transcript: Transcript | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the line parsed into a valid transcript."""
        return self.transcript is not None


@dataclass(frozen=True)
class InterviewerTurn:
    """An interviewer's turn with the candidate turn it answers (input to ``StyleProfile.fit``)."""

    text: str
    previous_candidate_text: str | None = None
    previous_interviewer_text: str | None = None
    session_id: str | None = None
    index: int = 0


@dataclass(frozen=True)
class Exchange:
    """A moment of an interview: what came before, the candidate's turn, and what the interviewer said.

    ``candidate_turn`` is None when the interviewer spoke without a candidate turn just before
    (the opening of a session, or two interviewer turns in a row). ``index`` is the position of
    ``interviewer_reply`` in the transcript's turns.
    """

    session_id: str
    interviewer_id: str
    index: int
    context_turns: tuple[Turn, ...]
    candidate_turn: Turn | None
    interviewer_reply: Turn

    @property
    def previous_interviewer_turn(self) -> Turn | None:
        """The last interviewer turn before the reply, if any is inside the context window."""
        for t in reversed(self.context_turns):
            if t.role == "interviewer":
                return t
        return None


@dataclass(frozen=True)
class Split:
    """Chronological train/validation/test sessions of one interviewer."""

    train: list[Transcript] = field(default_factory=list)
    val: list[Transcript] = field(default_factory=list)
    test: list[Transcript] = field(default_factory=list)


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = list(e.get("loc", ()))
        # pydantic reports turns.3.role; users count turns from 1 and read "turn 4 role".
        if len(loc) >= 2 and loc[0] == "turns" and isinstance(loc[1], int):
            where = f"turn {loc[1] + 1}" + (f" {'.'.join(map(str, loc[2:]))}" if len(loc) > 2 else "")
        else:
            where = ".".join(map(str, loc))
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        if e.get("type") == "literal_error":
            msg = f"unknown role {e.get('input')!r} (expected one of {', '.join(ROLES)})"
        elif e.get("type") == "missing":
            msg = "missing field"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def parse_jsonl_line(line: str, line_no: int = 1) -> ParsedLine:
    """Parse one JSON Lines session; errors are returned in the result, never raised."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return ParsedLine(line_no, error=f"line {line_no}: invalid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(data, dict):
        return ParsedLine(line_no, error=f"line {line_no}: expected a JSON object, got {type(data).__name__}")
    try:
        return ParsedLine(line_no, transcript=Transcript.model_validate(data))
    except ValidationError as exc:
        sid = data.get("session_id")
        label = f"line {line_no}" + (f" (session {sid})" if isinstance(sid, str) else "")
        return ParsedLine(line_no, error=f"{label}: {_format_validation_error(exc)}")


_LABEL_RE = re.compile(r"^\s*([A-Za-z][A-Za-z _.'-]{0,30}?)\s*:\s*(.*)$")
_HEADER_RE = re.compile(r"^\s*#\s*(interviewer_id|session_id|started_at|source)\s*:\s*(.*?)\s*$", re.I)
_SEPARATOR_RE = re.compile(r"^\s*(?:-{3,}|={3,})\s*$")
# Spoken labels that are unambiguous aliases; anything else with a colon at the start of a
# line that looks like a speaker name is reported rather than silently merged into a turn.
_ROLE_ALIASES = {"interviewer": "interviewer", "candidate": "candidate", "q": "interviewer", "a": "candidate"}
# Prose that can start a line with "Word:" inside a turn.
_NOT_SPEAKERS = {"note", "example", "update", "edit", "answer", "question", "summary", "ps"}


def _looks_like_speaker(label: str) -> bool:
    parts = label.split()
    return (
        1 <= len(parts) <= 3
        and all(p[0].isupper() for p in parts)
        and label.lower() not in _NOT_SPEAKERS
    )


def parse_plain_text(
    text: str,
    interviewer_id: str | None = None,
    session_id: str | None = None,
    first_line: int = 1,
) -> list[ParsedLine]:
    """Parse speaker-labelled text (one or more sessions separated by ``---``).

    ``interviewer_id``/``session_id`` are defaults for sessions whose header does not name them
    (an ``interviewer_id`` header also applies to the sessions after it); a session without
    either gets an error. Additional sessions in one file get ``-2``, ``-3``...
    appended to the default session id. A line labelled with an unknown speaker
    (``Moderator: ...``) is an error for its session, reported at that line.
    """
    results: list[ParsedLine] = []
    block: list[tuple[int, str]] = []
    # A file usually holds one interviewer, so an interviewer_id header carries to later sessions.
    carried = {"interviewer_id": interviewer_id}

    def flush(block_lines: list[tuple[int, str]], ordinal: int) -> None:
        if not any(s.strip() for _, s in block_lines):
            return
        start = next(n for n, s in block_lines if s.strip())
        header: dict[str, str] = {}
        turns: list[dict] = []
        for n, raw in block_lines:
            if not raw.strip():
                continue
            h = _HEADER_RE.match(raw)
            if h:
                header[h.group(1).lower()] = h.group(2)
                continue
            if raw.lstrip().startswith("#"):
                continue  # comment
            m = _LABEL_RE.match(raw)
            if m:
                label = m.group(1).strip()
                role = _ROLE_ALIASES.get(label.lower())
                if role is not None:
                    turns.append({"role": role, "text": m.group(2).strip()})
                    continue
                # A name-like label ("Moderator:", "John Smith:") is a speaker we cannot map,
                # so the session is rejected rather than silently mis-attributed.
                if _looks_like_speaker(label):
                    results.append(ParsedLine(n, error=f"line {n}: unknown speaker label {label!r} "
                                              f"(expected Interviewer: or Candidate:)"))
                    return
            if not turns:
                results.append(ParsedLine(
                    n, error=f"line {n}: text before the first 'Interviewer:' or 'Candidate:' label"))
                return
            turns[-1]["text"] += " " + raw.strip()
        sid = header.get("session_id") or (
            session_id if ordinal == 1 or session_id is None else f"{session_id}-{ordinal}"
        )
        iid = header.get("interviewer_id") or carried["interviewer_id"]
        carried["interviewer_id"] = iid
        missing = [name for name, v in (("interviewer_id", iid), ("session_id", sid)) if not v]
        if missing:
            results.append(ParsedLine(start, error=f"line {start}: missing {' and '.join(missing)} "
                                      f"(add a '# {missing[0]}: ...' header)"))
            return
        data = {"interviewer_id": iid, "session_id": sid, "started_at": header.get("started_at") or None,
                "source": header.get("source"), "turns": turns}
        try:
            results.append(ParsedLine(start, transcript=Transcript.model_validate(data)))
        except ValidationError as exc:
            results.append(ParsedLine(start, error=f"line {start} (session {sid}): {_format_validation_error(exc)}"))

    ordinal = 0
    for offset, raw in enumerate(text.splitlines()):
        n = first_line + offset
        if _SEPARATOR_RE.match(raw):
            ordinal += 1
            flush(block, ordinal)
            block = []
            continue
        block.append((n, raw))
    ordinal += 1
    flush(block, ordinal)
    return results


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """``rows`` as JSON Lines at ``path``, whole or not at all: written to a temporary file beside it (its
    folder made when missing), then renamed over it. Returns how many rows were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def read_transcripts(path: str | Path, interviewer_id: str | None = None) -> Iterator[ParsedLine]:
    """Yield one ``ParsedLine`` per session in ``path`` (JSON Lines or speaker-labelled text).

    A bad line yields an error result and reading continues. ``interviewer_id`` is only used by
    plain text without a header; the session id then defaults to the file stem. Duplicate
    session ids within one file are errors on the later line.
    """
    path = Path(path)
    seen: dict[str, int] = {}

    def dedupe(parsed: ParsedLine) -> ParsedLine:
        if parsed.transcript is None:
            return parsed
        sid = parsed.transcript.session_id
        if sid in seen:
            return ParsedLine(parsed.line, error=f"line {parsed.line}: duplicate session_id {sid!r} "
                              f"(first on line {seen[sid]})")
        seen[sid] = parsed.line
        return parsed

    with path.open(encoding="utf-8") as fh:
        first_chunk = fh.read(4096)
        fh.seek(0)
        is_jsonl = path.suffix.lower() in (".jsonl", ".json", ".ndjson") or first_chunk.lstrip().startswith("{")
        if is_jsonl:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                yield dedupe(parse_jsonl_line(line, line_no))
            return
        content = fh.read()
    for parsed in parse_plain_text(content, interviewer_id=interviewer_id, session_id=path.stem):
        yield dedupe(parsed)


def chronological_split(
    sessions: Sequence[Transcript], val: float = 0.1, test: float = 0.2
) -> Split:
    """Split one interviewer's sessions by time: the earliest train, then val, the final ones test.

    Sessions are ordered by ``started_at`` when every session has one (ties keep input order),
    otherwise by input order, which the format defines as chronological. With at least 3
    sessions the test set has at least 1 and train keeps at least 1. Raises ``ValueError`` for
    mixed interviewers or fractions outside [0, 1).
    """
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise ValueError(f"val={val} and test={test} must be in [0, 1) and sum to less than 1")
    ids = {s.interviewer_id for s in sessions}
    if len(ids) > 1:
        raise ValueError(f"chronological_split expects one interviewer, got {sorted(ids)}")
    ordered = list(sessions)
    if ordered and all(s.started_at is not None for s in ordered):
        ordered = sorted(ordered, key=lambda s: s.started_at)  # stable: ties keep file order
    n = len(ordered)
    n_test = int(n * test + 0.5)
    if n >= 3 and test > 0:
        n_test = max(1, n_test)
    n_val = int(n * val + 0.5)
    # Train must keep at least one session; take it from val first, since test matters more.
    while n - n_test - n_val < 1 and n_val > 0:
        n_val -= 1
    while n - n_test - n_val < 1 and n_test > 0:
        n_test -= 1
    n_train = n - n_val - n_test
    return Split(
        train=ordered[:n_train],
        val=ordered[n_train : n_train + n_val],
        test=ordered[n_train + n_val :],
    )


def split_by_interviewer(
    transcripts: Iterable[Transcript], val: float = 0.1, test: float = 0.2
) -> dict[str, Split]:
    """Group ``transcripts`` by interviewer (keeping input order) and split each chronologically."""
    groups: dict[str, list[Transcript]] = {}
    for t in transcripts:
        groups.setdefault(t.interviewer_id, []).append(t)
    return {iid: chronological_split(group, val=val, test=test) for iid, group in groups.items()}


def exchanges(transcript: Transcript, max_context_turns: int = 6) -> list[Exchange]:
    """Every interviewer turn of ``transcript`` as (context, candidate turn) -> interviewer reply.

    ``context_turns`` are up to ``max_context_turns`` turns before the candidate turn (or before
    the reply when there is no candidate turn right before it).
    """
    out: list[Exchange] = []
    turns = transcript.turns
    for i, turn in enumerate(turns):
        if turn.role != "interviewer":
            continue
        prev = turns[i - 1] if i > 0 and turns[i - 1].role == "candidate" else None
        ctx_end = i - 1 if prev is not None else i
        ctx_start = max(0, ctx_end - max_context_turns)
        out.append(
            Exchange(
                session_id=transcript.session_id,
                interviewer_id=transcript.interviewer_id,
                index=i,
                context_turns=tuple(turns[ctx_start:ctx_end]) if max_context_turns > 0 else (),
                candidate_turn=prev,
                interviewer_reply=turn,
            )
        )
    return out


def interviewer_turns(transcripts: Iterable[Transcript]) -> list[InterviewerTurn]:
    """Flatten transcripts into interviewer turns with the turns they answer (for style fitting)."""
    out: list[InterviewerTurn] = []
    for tr in transcripts:
        last_interviewer: str | None = None
        for i, turn in enumerate(tr.turns):
            if turn.role != "interviewer":
                continue
            prev = tr.turns[i - 1].text if i > 0 and tr.turns[i - 1].role == "candidate" else None
            out.append(InterviewerTurn(turn.text, prev, last_interviewer, tr.session_id, i))
            last_interviewer = turn.text
    return out
