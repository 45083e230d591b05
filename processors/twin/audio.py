"""Interview audio → transcript lines (``twin import-audio``): faster-whisper ASR + pyannote diarisation.

Optional: ``pip install 'interviewer-twin[audio]'`` installs faster-whisper and pyannote.audio, and
both need model files on disk (this project never downloads weights at run time):

* ASR: a CTranslate2 Whisper model directory (``--whisper-model /models/faster-whisper-small``), or a
  size name ("small") already in the Hugging Face cache;
* diarisation: a pyannote pipeline (``--diarization-model /models/speaker-diarization-3.1/config.yaml``),
  or a hub id already cached (gated on the hub: accept its terms and set ``HF_TOKEN`` once).

The pure part, :func:`assign_speakers` and :func:`to_session`, turns timed ASR segments and speaker
turns into one session in the transcript format; the interviewer is ``interviewer_speaker`` or else
the speaker who asks the most questions. Everyone else is the candidate.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["AudioUnavailable", "Segment", "SpeakerTurn", "assign_speakers", "to_session", "transcribe_to_jsonl"]

INSTALL_HINT = "pip install 'interviewer-twin[audio]'  (faster-whisper, pyannote.audio)"


class AudioUnavailable(RuntimeError):
    """The audio extra or its model files are missing; the message says what to install or pass."""


@dataclass(frozen=True)
class Segment:
    """An ASR segment: seconds from the start, and its text."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class SpeakerTurn:
    """A diarisation turn: seconds from the start, and the speaker label."""

    start: float
    end: float
    speaker: str


def assign_speakers(segments: Sequence[Segment], turns: Sequence[SpeakerTurn]) -> list[tuple[Segment, str]]:
    """Each segment with the speaker who overlaps it most (the nearest one when none overlaps)."""
    out = []
    for seg in segments:
        best, best_overlap = None, 0.0
        for t in turns:
            overlap = min(seg.end, t.end) - max(seg.start, t.start)
            if overlap > best_overlap:
                best, best_overlap = t.speaker, overlap
        if best is None and turns:
            mid = (seg.start + seg.end) / 2
            best = min(turns, key=lambda t: min(abs(mid - t.start), abs(mid - t.end))).speaker
        out.append((seg, best or "SPEAKER_00"))
    return out


_QUESTION_RE = re.compile(r"\?")


def to_session(labelled: Sequence[tuple[Segment, str]], interviewer_id: str, session_id: str,
               interviewer_speaker: str | None = None, started_at: datetime | None = None,
               source: str | None = None) -> dict[str, Any]:
    """One session in the transcript format (consecutive segments of one role merged)."""
    speakers = sorted({s for _, s in labelled})
    if interviewer_speaker is None:
        questions = Counter(s for seg, s in labelled for _ in _QUESTION_RE.finditer(seg.text))
        words = Counter({s: 0 for s in speakers})
        for seg, s in labelled:
            words[s] += len(seg.text.split())
        # Most questions; ties go to the one who talks less (interviewers ask, candidates answer).
        interviewer_speaker = max(speakers, key=lambda s: (questions[s], -words[s])) if speakers else None
    elif interviewer_speaker not in speakers:
        raise ValueError(f"speaker {interviewer_speaker!r} not found; diarisation found {', '.join(speakers)}")
    turns: list[dict[str, Any]] = []
    for seg, speaker in labelled:
        text = seg.text.strip()
        if not text:
            continue
        role = "interviewer" if speaker == interviewer_speaker else "candidate"
        if turns and turns[-1]["role"] == role:
            turns[-1]["text"] += " " + text
            continue
        turns.append({"role": role, "text": text, "ts": None, "speaker": speaker, "offset_s": round(seg.start, 2)})
    return {"interviewer_id": interviewer_id, "session_id": session_id,
            "started_at": started_at.isoformat() if started_at else None, "source": source, "turns": turns,
            "meta": {"speakers": speakers, "interviewerSpeaker": interviewer_speaker}}


def _load_models(whisper_model: str, diarization_model: str | None):
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise AudioUnavailable(f"faster-whisper is not installed: {INSTALL_HINT}") from exc
    try:
        from pyannote.audio import Pipeline
    except ImportError as exc:
        raise AudioUnavailable(f"pyannote.audio is not installed: {INSTALL_HINT}") from exc
    try:
        asr = WhisperModel(whisper_model, device="cpu", compute_type="int8", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - missing files surface as various errors
        raise AudioUnavailable(
            f"Whisper model {whisper_model!r} is not on disk ({type(exc).__name__}); pass --whisper-model with the "
            f"path of a CTranslate2 model directory") from exc
    name = diarization_model or "pyannote/speaker-diarization-3.1"
    try:
        pipeline = Pipeline.from_pretrained(name)
    except Exception as exc:  # noqa: BLE001
        raise AudioUnavailable(
            f"pyannote pipeline {name!r} cannot be loaded ({type(exc).__name__}: {exc}); pass --diarization-model "
            f"with a local pipeline config") from exc
    if pipeline is None:
        raise AudioUnavailable(f"pyannote pipeline {name!r} is gated or missing; pass a local --diarization-model")
    return asr, pipeline


def transcribe_to_jsonl(paths: Sequence[Path], out: Path, *, interviewer_id: str, interviewer_speaker: str | None = None,
                        whisper_model: str = "small", diarization_model: str | None = None,
                        language: str | None = None,
                        progress: Callable[[Path], None] | None = None) -> list[dict[str, Any]]:
    """Transcribe and diarise each recording, append one session per file to ``out``; returns them."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise AudioUnavailable(f"no such file(s): {', '.join(missing)}")
    asr, pipeline = _load_models(whisper_model, diarization_model)
    sessions = []
    for path in paths:
        path = Path(path)
        segs, _info = asr.transcribe(str(path), language=language, vad_filter=True)
        segments = [Segment(s.start, s.end, s.text) for s in segs]
        diarization = pipeline(str(path))
        turns = [SpeakerTurn(t.start, t.end, spk) for t, _, spk in diarization.itertracks(yield_label=True)]
        started = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        sessions.append(to_session(assign_speakers(segments, turns), interviewer_id, f"{interviewer_id}:{path.stem}",
                                   interviewer_speaker, started, source=f"audio:{path.name}"))
        if progress:
            progress(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as fh:
        for s in sessions:
            fh.write(json.dumps(s, ensure_ascii=False) + "\n")
    return sessions
