"""Prosody directives for a TTS voice: pace, pauses, emphasis and intonation of one reply.

Derived from the reply text, its style features and the policy move, deterministically::

    directives = prosody_directives("Why did you pick Kafka?", move=Move.PROBE_DEEPER)
    directives.to_dict()  # {"pace": "slow", "pauses": [...], "emphasis": ["Why", "Kafka"], ...}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from processors.twin.policy import Controls, Move
from processors.twin.style import StyleVector, extract_style
from processors.twin.text import GENERIC, STOPWORDS

__all__ = ["Pause", "ProsodyDirectives", "prosody_directives"]

Pace = Literal["slow", "normal", "fast"]
Intonation = Literal["statement", "question", "encouraging", "firm"]

# Base pause lengths in ms by the punctuation that ends a word; sentence ends pause longest.
_PAUSE_MS = {",": 180, ";": 280, ":": 280, "--": 300, "—": 300, ".": 420, "!": 400, "?": 480, "...": 600, "…": 600}
# Longest first, so "..." is not read as ".".
_MARKS = ("...", "…", "--", "—", "?", "!", ".", ",", ";", ":")
_PACE_SCALE = {"slow": 1.3, "normal": 1.0, "fast": 0.75}
# Words a speaker leans on when pressing or contrasting.
_STRESS_WORDS = {"not", "never", "why", "really", "exactly", "only", "must", "always", "both", "neither",
                 "every", "any", "actually", "specifically", "how", "what"}
_TOKEN_RE = re.compile(r"\S+")


class Pause(BaseModel):
    """A pause of ``ms`` after the word at index ``after_word`` (0-based, serialised ``afterWord``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    after_word: int
    ms: int
    word: str


class ProsodyDirectives(BaseModel):
    """How to say a reply: pace, pauses, words to stress, and the overall intonation."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    pace: Pace = "normal"
    pauses: list[Pause] = Field(default_factory=list)
    emphasis: list[str] = Field(default_factory=list)
    intonation: Intonation = "statement"

    def to_dict(self) -> dict[str, Any]:
        """camelCase dict for the reply event (``afterWord``)."""
        return self.model_dump(by_alias=True)


def _pace(style: StyleVector, move: Move | None, controls: Controls | None) -> Pace:
    # Pressing and hinting are said deliberately; quick acknowledgements and long friendly
    # monologues run faster. Controls can force the extremes.
    if controls is not None and controls.verbosity == "terse" and style.word_count <= 6:
        return "fast"
    if move in (Move.PROBE_DEEPER, Move.GIVE_HINT) or style.challenge >= 0.6 or style.coaching >= 0.6:
        return "slow"
    if move == Move.MOVE_ON and style.word_count <= 8:
        return "fast"
    if style.word_count >= 60 and style.challenge < 0.3:
        return "fast"
    return "normal"


def _intonation(text: str, style: StyleVector, move: Move | None, controls: Controls | None) -> Intonation:
    tone = controls.tone_kind if controls is not None else "neutral"
    if move == Move.GIVE_HINT or (style.coaching >= 0.5 and style.challenge < 0.3) or (
        tone == "warm" and style.warmth >= 0.6
    ):
        return "encouraging"
    if style.challenge >= 0.6 or (tone == "firm" and move == Move.PROBE_DEEPER):
        return "firm"
    if text.rstrip().rstrip("\"'”’)").endswith("?") or style.question_form >= 0.5:
        return "question"
    return "statement"


def _emphasis(tokens: list[str], max_words: int = 3) -> list[str]:
    """Stress words: contrast/pressing words first, then the longest content words (the topic)."""
    bare = [re.sub(r"^[^\w]+|[^\w]+$", "", t) for t in tokens]
    chosen: list[str] = []
    for b in bare:
        if b.lower() in _STRESS_WORDS and b not in chosen:
            chosen.append(b)
            break  # one pressing word is enough; more sounds theatrical
    content = [
        (len(b), -i, b) for i, b in enumerate(bare)
        if b and b.lower() not in STOPWORDS and b.lower() not in GENERIC and len(b) > 3
    ]
    for _, _, b in sorted(content, reverse=True):
        if len(chosen) >= max_words:
            break
        if b not in chosen:
            chosen.append(b)
    # Report in spoken order so a TTS markup pass can walk the text once.
    order = {b: i for i, b in reversed(list(enumerate(bare)))}
    return sorted(chosen, key=lambda b: order.get(b, 0))


def prosody_directives(
    text: str,
    style: StyleVector | None = None,
    move: Move | str | None = None,
    controls: Controls | None = None,
) -> ProsodyDirectives:
    """Directives for saying ``text``; ``style`` is extracted from the text when not given.

    Pauses follow punctuation (commas short, sentence ends long, none after the last word),
    scaled by pace. Intonation: encouraging for hints, firm for pushback, question when the
    reply ends in a question, else statement.
    """
    style = style or extract_style(text)
    mv = Move(move) if move is not None else None
    pace = _pace(style, mv, controls)
    tokens = _TOKEN_RE.findall(text or "")
    pauses: list[Pause] = []
    # Index by spoken words: a token that is only punctuation ("--") attaches to the word before.
    word_index = -1
    last_word = ""
    for i, tok in enumerate(tokens):
        if re.search(r"\w", tok):
            word_index += 1
            last_word = re.sub(r"^[^\w]+|[^\w]+$", "", tok)
        if word_index < 0 or i == len(tokens) - 1:
            continue
        stripped = tok.rstrip("\"'”’)")
        mark = next((m for m in _MARKS if stripped.endswith(m)), None)
        if mark is None:
            continue
        # "Mr." and "U.S." end with a period but do not end a sentence.
        if mark == "." and re.fullmatch(r"(?:Mr|Mrs|Ms|Dr|St|v|vs|No|[A-Z](?:\.[A-Z])*)\.", stripped):
            continue
        ms = int(round(_PAUSE_MS[mark] * _PACE_SCALE[pace]))
        if pauses and pauses[-1].after_word == word_index:
            pauses[-1] = Pause(after_word=word_index, ms=max(ms, pauses[-1].ms), word=last_word)
        else:
            pauses.append(Pause(after_word=word_index, ms=ms, word=last_word))
    return ProsodyDirectives(
        pace=pace,
        pauses=pauses,
        emphasis=_emphasis(tokens),
        intonation=_intonation(text or "", style, mv, controls),
    )
