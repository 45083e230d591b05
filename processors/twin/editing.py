"""Adapting a past line of the interviewer to the current session.

A retrieved exemplar is something the interviewer said in another session: it addresses that
session's person ("Mr. Clement") and names that session's subject ("the Lanham Act").
``edit_exemplar`` keeps the interviewer's own words and grammar and changes only what belongs
to the other session:

* the addressee: a name or title the line spoke to becomes the person addressed here
  ("Mr. Clement?" -> "General Prelogar?"), or the address is dropped when nobody here is
  addressed by name; a person the line talks *about* who is not in this session becomes
  "they"/"their"/"them" (see ``grounding.rewrite_mentions``);
* case-specific terms: a name or noun phrase salient in the exemplar's own context and used by
  the line, but absent from this session, is swapped for this session's key term of the same
  kind (name for name, noun phrase for noun phrase), the closest by embedding when an embedder
  is given; at most ``MAX_SWAPS``, never a generic word, articles fixed ("a" -> "an");
* redaction placeholders never survive (``grounding.remove_placeholders``).

The phrase helpers (``is_name``, ``replace_phrase``, ``referenced_spans``) are shared with the
offline generator::

    state = SessionState.from_history(turns, candidate_turn)
    edited = edit_exemplar(ex.reply, ex.context, ex.candidate_turn, state, embedder=get_embedder())
    edited.text, edited.swaps    # "General Prelogar, ...", [("Mr. Clement", "General Prelogar"), ...]
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Collection, Sequence

import numpy as np

from processors.twin.corpus import Turn
from processors.twin.grounding import (
    BENCH_TITLES,
    PLACEHOLDER_RE,
    KeyTerm,
    Mention,
    SessionState,
    find_mentions,
    is_vague_term,
    phrase_positions,
    remove_placeholders,
    rewrite_mentions,
)
from processors.twin.text import STOPWORDS, content_words, salient_phrases, stem

__all__ = [
    "COMMON_NAME_SHARE",
    "MAX_SWAPS",
    "EditedLine",
    "common_names",
    "context_turns",
    "edit_exemplar",
    "is_name",
    "mid_sentence_names",
    "referenced_spans",
    "replace_phrase",
]

# More swaps than this and the line is about the other session, whatever its words say.
MAX_SWAPS = 3
# Below this cosine a session term is no counterpart of the exemplar's term. MiniLM puts
# unrelated short phrases at 0.1-0.55 ("money"/"understanding" 0.42, "state"/"district" 0.51,
# "state"/"government" 0.55) and counterparts at 0.6-0.9 ("tribal court"/"state court" 0.64,
# "automobile"/"car" 0.86); it cannot tell opposite roles apart ("debtor"/"creditor" 0.80).
MIN_SWAP_SIMILARITY = 0.6
# Addresses that fit anyone in any session: kept as they are.
GENERIC_ADDRESSES = frozenset({"Counsel", "Sir", "Ma'am", "Your Honor"})
_CONTEXT_LABEL_RE = re.compile(r"^\s*(Interviewer|Candidate)\s*:\s*(.*)$", re.I)
# Capitalised words after a lower-case word: names, not sentence starts ("the Kontrick line", "ask Linear").
_MID_SENTENCE_NAME_RE = re.compile(r"(?<=[a-z,;] )([A-Z][A-Za-z'’-]+(?: [A-Z][A-Za-z'’-]+)*)")
# A name used in at least this share of an interviewer's sessions (and in two) belongs to no one session:
# "Congress" or "the Joint Appendix" on the bench, a sponsor or a big company on a podcast. A justice's
# "Bartlett" or "FAA" (1 and 3 of 34 sessions) and a host's "Intercom" (1 of 17) are another session's.
COMMON_NAME_SHARE = 0.1


@dataclass
class EditedLine:
    """The adapted line, the (old, new) replacements made, and notes on what was done.

    ``leftovers`` are names of the exemplar's session still in the text (no counterpart
    here): a caller may prefer another exemplar over such a line.
    """

    text: str
    swaps: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def mid_sentence_names(text: str) -> list[str]:
    """Runs of capitalised words that follow a lower-case word ("First Amendment", "White"), in order."""
    return [m.group(1) for m in _MID_SENTENCE_NAME_RE.finditer(text)]


def common_names(sessions: Sequence[Sequence[str]], share: float = COMMON_NAME_SHARE) -> list[str]:
    """The names (``mid_sentence_names``) at least ``share`` of ``sessions``, and at least two, use.

    ``sessions`` are each session's turn texts. Training stores the list with the version, so that
    editing can tell a name any session may hear from one that belongs to the line's own session.
    """
    used = Counter(name for texts in sessions for name in {n for t in texts for n in mid_sentence_names(t)})
    least = max(2.0, share * len(sessions))
    return sorted(name for name, n in used.items() if n >= least)


# -- phrase helpers (shared with the offline generator) -----------------------------------------

def is_name(phrase: str) -> bool:
    """True when every word of ``phrase`` is capitalised ("Lanham Act", "Fishtown Analytics")."""
    return all(w[:1].isupper() for w in phrase.split())


def _is_name_word(text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` is capitalised and not just capitalised for starting a sentence."""
    word = text[start:end]
    if not word[:1].isupper() or word == "I":
        return False
    return not re.search(r"(?:^|[.?!:\"“]\s*)$", text[:start].rstrip() + (" " if text[:start].strip() else ""))


def replace_phrase(text: str, old: str, new: str) -> tuple[str, int]:
    """Replace the first free-standing ``old`` with ``new``, fixing a preceding "a"/"an".

    An occurrence inside a longer name ("York" in "New York Times") is skipped; a name across
    punctuation is another name ("license, General Prelogar").
    """
    for m in re.finditer(r"(?:\b(an?)\s+)?(?<!\w)" + re.escape(old) + r"(?!\w)", text, re.I):
        before = re.search(r"(\w+)\s*$", text[: m.start()])
        after = re.match(r"\s*(\w+)", text[m.end() :])
        if before and _is_name_word(text, before.start(1), before.end(1)):
            continue
        if after and _is_name_word(text, m.end() + after.start(1), m.end() + after.end(1)):
            continue
        break
    else:
        return text, 0
    article = m.group(1)
    if article:
        fixed = "an" if new[:1].lower() in "aeiou" else "a"
        if article[0].isupper():
            fixed = fixed.capitalize()
        replacement = f"{fixed} {new}"
    else:
        replacement = new
    return text[: m.start()] + replacement + text[m.end() :], 1


def referenced_spans(reply: str, own_candidate_turn: str) -> list[str]:
    """Noun phrases of the exemplar's candidate turn that its reply repeats as noun phrases, longest first."""
    in_reply = {p.lower() for p in salient_phrases(reply, max_phrases=50, nouns_only=True)}
    # Sub-spans count too: "the pricing page" in the reply contains "pricing page" and "page".
    reply_spans = {" ".join(p.split()[i:]) for p in in_reply for i in range(len(p.split()))}
    theirs = salient_phrases(own_candidate_turn, max_phrases=8, nouns_only=True)
    spans = [p for p in theirs if p.lower() in reply_spans]
    return sorted(spans, key=len, reverse=True)


def context_turns(context: str) -> list[Turn]:
    """Turns of an exemplar's context rendered as ``Interviewer: ...`` / ``Candidate: ...`` lines."""
    turns: list[dict[str, str]] = []
    for line in (context or "").splitlines():
        m = _CONTEXT_LABEL_RE.match(line)
        if m:
            turns.append({"role": m.group(1).lower(), "text": m.group(2)})
        elif turns and line.strip():
            turns[-1]["text"] += " " + line.strip()
    return [Turn(role=t["role"], text=t["text"]) for t in turns if t["text"].strip()]


# -- editing ------------------------------------------------------------------------------------

def _people_to_rewrite(reply: str, ex_state: SessionState, state: SessionState) -> list[Mention]:
    """The person mentions of ``reply`` that belong to the exemplar's session, not this one."""
    first_names = frozenset(n.split()[0] for n in ex_state.self_names)
    if ex_state.addressee and " " not in ex_state.addressee:
        first_names |= {ex_state.addressee}
    out: list[Mention] = []
    for m in find_mentions(reply, first_names=first_names):
        if m.redacted:
            out.append(m)  # always: a placeholder is never spoken
        elif m.vocative and m.title in BENCH_TITLES:
            if not m.name or not state.mentions(m.name):
                out.append(m)  # a colleague of the other session: the address goes
        elif m.vocative:
            spoken = f"{m.title} {m.name}".strip()
            if spoken == state.addressee or (not m.name and m.title in GENERIC_ADDRESSES):
                continue  # already right, or fits anyone
            if not m.name and m.title == state.addressee_title:
                continue  # a bare "General" when the General is the one addressed here
            out.append(m)
        elif m.title in BENCH_TITLES:
            continue  # a colleague talked about ("as Justice Scalia said") sits on every bench
        elif m.name and not state.mentions(m.name):
            out.append(m)  # talks about someone of the other session
    return out


def _is_plural(phrase: str) -> bool:
    last = phrase.split()[-1].lower()
    return last.endswith("s") and not last.endswith(("ss", "us", "is")) and stem(last) != last


def _sub_spans(phrase: str) -> list[str]:
    """Contiguous word spans of ``phrase``, longest first ("tribal court decides" -> ..., "tribal court", ...)."""
    w = phrase.split()
    return [" ".join(w[i:i + n]) for n in range(len(w), 0, -1) for i in range(len(w) - n + 1)]


def _old_terms(reply: str, ex_state: SessionState, state: SessionState, people_words: set[str]
               ) -> list[tuple[str, str]]:
    """(term, kind) of the exemplar's session that the line uses and this session lacks, best first.

    A term is the longest part of a noun phrase of the line that is a key term of the
    exemplar's own context and candidate turn ("tribal court" of "the tribal court decides"),
    or a name (names are case-specific wherever they come from). It must be absent from this
    session and carry a word this session never used, so "the statute" said in both sessions is
    never touched. Person names are left to the address rewriting.
    """
    # The exemplar's key terms are read from its context and candidate turn (the newest turn there).
    ex_terms = {t.text.lower() for t in ex_state.key_terms}
    out: list[tuple[str, str]] = []
    for phrase in salient_phrases(reply, max_phrases=20, nouns_only=True):
        if PLACEHOLDER_RE.search(phrase) or set(phrase.split()) & people_words:
            continue
        term = next((span for span in _sub_spans(phrase) if span.lower() in ex_terms), None)
        if term is None and is_name(phrase):
            term = phrase
        if term is None or state.mentions(term) or any(term == t for t, _ in out):
            continue
        specific = [w for w in content_words(term) if not state.uses_word(w)]
        if not specific or is_vague_term(" ".join(specific)):
            continue
        if not is_name(term) and " " not in term and len(term) < 5:
            continue  # short common nouns are not what a case is about
        out.append((term, "name" if is_name(term) else "phrase"))
    return out


def _topic_stems(phrase: str) -> set[str]:
    return {stem(w) for w in content_words(phrase) if not is_vague_term(w)}


def _counterparts(olds: list[tuple[str, str]], reply: str, state: SessionState, embedder: Any
                  ) -> list[tuple[str, str, float]]:
    """Pair old terms with unused session terms of their kind: (old, new, score), at most ``MAX_SWAPS``.

    A counterpart shares a topical word with the old term ("tribal court" -> "state court",
    "Lanham Act" -> "Tariff Act") or, with an embedder, is close in meaning (cosine at least
    ``MIN_SWAP_SIMILARITY``). Nothing else is a counterpart: a wrong swap is worse than none.
    """
    reply_lower = reply.lower()
    pool: list[KeyTerm] = [t for t in state.key_terms
                           if t.kind != "person" and not phrase_positions(reply_lower, t.text.lower())]
    if not olds or not pool:
        return []
    sims: np.ndarray | None = None
    if embedder is not None:
        vecs = embedder.embed_cached([o for o, _ in olds] + [t.text for t in pool])
        sims = vecs[: len(olds)] @ vecs[len(olds):].T
    pool_stems = [_topic_stems(t.text) for t in pool]
    pairs: list[tuple[str, str, float]] = []
    used: set[int] = set()
    for i, (old, kind) in enumerate(olds):
        old_stems = _topic_stems(old)
        scored: list[tuple[float, int]] = []
        for j, t in enumerate(pool):
            if j in used or t.kind != kind:
                continue
            shared = bool(old_stems & pool_stems[j])
            sim = float(sims[i, j]) if sims is not None else 0.0
            if not shared and sim < MIN_SWAP_SIMILARITY:
                continue
            # Same number where possible: "the trademarks are" must not become "the tariff are".
            score = sim + (0.3 if shared else 0.0) + (0.1 if _is_plural(t.text) == _is_plural(old) else 0.0)
            scored.append((score, j))
        if not scored:
            continue
        score, j = max(scored, key=lambda x: (x[0], -x[1]))  # ties: the heavier session term
        used.add(j)
        pairs.append((old, pool[j].text, score))
        if len(pairs) >= MAX_SWAPS:
            break
    return pairs


def _capitalise_sentence_starts(text: str) -> str:
    return re.sub(r"(^|[.?!]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def _leftover_names(text: str, ex_state: SessionState, state: SessionState, common: Collection[str] = ()
                    ) -> list[str]:
    """Names (``mid_sentence_names``) of the exemplar's session still in ``text``, absent here and not common.

    A name is here only as a name: the session's "a white person" is no "White", nor "the rule" a "Rule";
    unless the session has no capitals at all (speech recognition that does not case its text), where
    "kontrick" is as much a name as it gets.
    """
    ex_text = ex_state.text
    here = state.text if state.cased else state.lower_text
    out = []
    for word in mid_sentence_names(text):
        if word.lower() in STOPWORDS or word in GENERIC_ADDRESSES or word in common:
            continue
        if phrase_positions(here, word if state.cased else word.lower()):
            continue
        if phrase_positions(ex_text, word) and word not in out:
            out.append(word)
    return out


def edit_exemplar(reply: str, exemplar_context: str, exemplar_candidate_turn: str, state: SessionState,
                  embedder: Any = None, common: Collection[str] = ()) -> EditedLine:
    """Adapt an exemplar's ``reply`` to the session ``state`` describes; see the module docstring.

    ``exemplar_context`` is the exemplar's context as ``Interviewer:``/``Candidate:`` lines and
    ``exemplar_candidate_turn`` the turn the reply answered. ``embedder``
    (``processors.twin.embeddings.Embedder``) also accepts counterparts close in meaning; without
    it only a session term sharing a topical word is one. ``common`` are names any session may hear
    (``common_names``): they are never leftovers. The text may come back empty when the line was
    nothing but an address to someone not here ("Mr. Clement?").
    """
    ex_state = SessionState.from_history(context_turns(exemplar_context), exemplar_candidate_turn or "")
    text = reply
    notes: list[str] = []
    swaps: list[tuple[str, str]] = []

    people = _people_to_rewrite(text, ex_state, state)
    people_words = {w for m in people for w in m.name.split()} | set(ex_state.name_words)
    text, person_swaps, person_notes = rewrite_mentions(text, people, state)
    swaps += [s for s in person_swaps if s[0] != s[1]]
    notes += person_notes

    olds = _old_terms(text, ex_state, state, people_words)
    for old, new, score in _counterparts(olds, text, state, embedder):
        count = 0
        while count < 4:  # every use of the term, so the line stays consistent
            text, n = replace_phrase(text, old, new)
            if not n:
                break
            count += 1
        if count:
            swaps.append((old, new))
            notes.append(f"swapped the exemplar's {old!r} for this session's {new!r} (score {score:.2f})")
    text = _capitalise_sentence_starts(text)

    text, placeholder_notes = remove_placeholders(text, state)
    notes += placeholder_notes
    leftovers = _leftover_names(text, ex_state, state, common)
    if leftovers:
        notes.append(f"names of the exemplar's session left in: {', '.join(leftovers)}")
    return EditedLine(text=text, swaps=swaps, notes=notes, leftovers=leftovers)
