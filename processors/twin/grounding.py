"""What the current session is about and who is in it, so a reused line can be grounded in it.

The twin answers with verbatim lines of the interviewer's *other* sessions. Those lines name
that session's people ("Mr. Clement"), its subject ("the Lanham Act"), and, since training data
goes through PII redaction (``processors.pii``), they carry its placeholders: Presidio's
``replace`` operator writes ``<ENTITY_TYPE>`` for every detected span (``<PERSON>``,
``<EMAIL_ADDRESS>``, ``<PHONE_NUMBER>``, ``<CREDIT_CARD>``, ``<US_SSN>``, ``<IBAN_CODE>``,
``<IP_ADDRESS>`` with the default ``PII_ENTITIES``; ``<LOCATION>``, ``<DATE_TIME>``,
``<ORGANIZATION>``, ``<NRP>`` ... when configured) and tenant deny terms become ``<REDACTED>``.
So a justice's line reads "General <PERSON>, how is that consistent with Chevron?".

``SessionState.from_history`` reads the current session once per request: who the interviewer
is addressing and how, the names the other party used, the session's key terms, the
interviewer's questions so far, the open question and the candidate's main claim. It is regexes
and counting (no model), and the topic is read from a bounded window of the session (its
opening and the most recent turns), so it costs a few milliseconds however long the session is.

``remove_placeholders`` guarantees no placeholder is ever spoken: an addressed ``<PERSON>``
becomes the name this session uses for the person addressed, any other is rephrased away::

    state = SessionState.from_history(turns, candidate_turn)
    text, notes = remove_placeholders("General <PERSON>, what is left of Chevron?", state)
    # "General Prelogar, what is left of Chevron?" when the session said "General Prelogar"
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from processors.twin.corpus import Role, Turn
from processors.twin.text import (
    GENERIC,
    STOPWORDS,
    VAGUE_NOUNS,
    content_words,
    is_question,
    salient_phrases,
    sentences,
    stem,
    stem_set,
    words,
)

__all__ = [
    "BENCH_TITLES",
    "PLACEHOLDER_RE",
    "STANDALONE_TITLES",
    "Address",
    "KeyTerm",
    "Mention",
    "SessionState",
    "find_mentions",
    "is_vague_term",
    "phrase_positions",
    "remove_placeholders",
    "rewrite_mentions",
]

# A redaction placeholder: "<PERSON>", "<US_SSN>", and numbered variants ("<PERSON_1>").
PLACEHOLDER_RE = re.compile(r"<([A-Z_][A-Z0-9_]*?)(?:_\d+)?>")
_PERSON = r"<PERSON(?:_\d+)?>"

# A surname or first name: "Prelogar", "McCarthy", "O'Connor", "Hallward-Driemeier".
_NAME = r"[A-Z](?:['’][A-Z])?[A-Za-z]*(?:-[A-Z][A-Za-z]+)*"
# Titles that go before a name, longest first so "Solicitor General" wins over "General".
# "Mr. Chief Justice" is a title on its own (the bench, not a person called "Chief").
_TITLE = (
    r"Mr\.?\s+Chief\s+Justice|Chief\s+Justice|Solicitor\s+General|Attorney\s+General|Mrs\.?|Mr\.?|Ms\.?|Dr\.?|"
    r"Prof\.?|Miss|Mister|Madam|Professor|General|Justice|Judge|Senator|Governor|Secretary|Commissioner|"
    r"Ambassador|Representative|Congressman|Congresswoman|Coach|Captain|Officer|Detective"
)
# The leading lookahead is a cheap first-letter filter: Python's re tries every position otherwise.
_TITLED_RE = re.compile(
    rf"(?=[MCSAPGJDRO])(?<![\w<])(?P<title>{_TITLE})"
    rf"(?:\s+(?P<name>{_PERSON}|{_NAME})(?:\s+(?P<name2>{_PERSON}|{_NAME}))?)?(?![\w-])"
)
# Forms of address without a name or a title before one ("Counsel, ...", "..., sir?").
_BARE_ADDRESS_RE = re.compile(r"(?=[CcSMmY])(?<![\w<])(?P<title>[Cc]ounsel|Sir|[Mm]a['’]am|Your Honor)(?![\w'’-])")
# Titles that can be spoken without a name ("General, how ..."); "Mr." and "Ms." cannot.
STANDALONE_TITLES = frozenset(
    "General|Solicitor General|Attorney General|Counsel|Professor|Judge|Senator|Governor|Secretary|Commissioner|"
    "Ambassador|Coach|Captain|Officer|Detective|Justice|Chief Justice|Mr. Chief Justice|Sir|Ma'am|Your Honor"
    .split("|")
)
# Titles of the bench: in a courtroom the other party addresses the interviewer by them, and an
# interviewer using them is speaking to a colleague, never to the party answering.
BENCH_TITLES = frozenset({"Justice", "Chief Justice", "Mr. Chief Justice", "Your Honor"})
# Words of forms of address that look like names to a phrase finder ("Your Honor").
_ADDRESS_WORDS = frozenset({"Honor", "Sir", "Madam", "Counsel"})
# Capitalised words that follow a title without being a name ("Justice Department").
_NOT_NAMES = frozenset(
    "Department Court Clause Act Code Circuit Counsel Office General Justice Chief Assembly Committee "
    "Motors Electric Store Hospital".split()
)
# Words a turn may open with before a name without a comma ("Well Mr. Clement, ...").
_LEAD_WORD_RE = re.compile(
    r"(?:^|\W)(?:hi|hey|hello|thanks|thank you|welcome|well|yes|no|okay|ok|so|now|but|and|sorry|please|look|oh)\s*$",
    re.I,
)
# "Hi Sarah", "Thanks, Sarah", "Welcome back, Sarah."
_GREETINGS = ("hi", "hey", "hello", "thank", "welcome")
_GREETED_NAME_RE = re.compile(
    rf"(?<![\w'’])(?:[Hh]i|[Hh]ey|[Hh]ello|[Tt]hanks|[Tt]hank you|[Ww]elcome(?: back)?),?\s+(?P<name>{_NAME})"
    r"(?=\s*(?:[,?!.;]|--|$))",
    re.M,
)
# "Ken, what do you ...", "..., Ken?": a first name opening a request or closing a question.
# Found from the punctuation after the name (a far rarer thing to scan for than capitals).
_ASK_AFTER_NAME_RE = re.compile(
    r"[?!]|,\s+(?:you|your|tell|what|how|why|can|could|would|will|do|did|does|let|let's|"
    r"walk|talk|give|help|thanks|thank|welcome|before|quick)\b"
)
_NAME_RE = re.compile(_NAME)
_FIRST_NAME_RE = re.compile(r"[A-Z][a-z]+(?:-[A-Z][a-z]+)?")
_LIST_BEFORE_RE = re.compile(r"[a-z,]\s+[A-Z][\w'’-]*,\s*$")
# Capitalised words that open sentences as discourse markers, never as a name ("Awesome, ...").
_DISCOURSE = frozenset(
    """awesome cool wow amazing sweet interesting perfect absolutely great nice excellent fantastic wonderful
    fine alright listen look anyway again first second third finally today tomorrow yesterday now here there
    yeah yep yup nope congrats congratulations welcome thanks hey hi hello good exactly true totally
    gotcha understood agreed fair whoa ooh wait plus instead meanwhile otherwise anyhow""".split()
)
# Self-introductions: "My name is Sarah Chen", "I'm Dana, ...", "call me Sam".
_SELF_INTRO_RE = re.compile(
    rf"(?=[MmCcI])\b(?:[Mm]y name is|[Mm]y name['’]s|[Cc]all me|I['’]m|I am)\s+(?P<name>{_NAME}(?:\s+{_NAME})?)"
    r"(?=\s*(?:[,.;!?]|--|$|\s(?:and|from|with|here|at)\b))",
    re.M,
)
# A new person starts answering: the opening formula of an advocate, a self-introduction.
_NEW_SPEAKER_FORMULAS = ("may it please the court", "my name is", "my name's", "my name’s", "for having me")
# Sentences that state a position rather than hedge or acknowledge.
_CLAIM_CUE_RE = re.compile(
    r"\b(?:the answer is|our position|my position|we think|I think|we believe|I believe|the point is|"
    r"the reason|because|is that|the problem is|the question is|what matters|the key)\b",
    re.I,
)
# Topic window: the session's opening states its subject; recent turns say where it is now.
OPENING_WORDS = 80
RECENT_WORDS = 240
INTRO_TURNS = 6
MAX_KEY_TERMS = 16
Kind = Literal["person", "name", "phrase"]


@dataclass(frozen=True)
class Mention:
    """A person named in a text: "General Prelogar", "Ms. <PERSON>", a bare "Counsel", "Sarah".

    ``start``/``end`` are offsets in the text searched; ``vocative`` is True when the person is
    spoken to ("..., Mr. Clement?") rather than about ("Mr. Clement says").
    """

    start: int
    end: int
    title: str
    name: str
    vocative: bool
    surface: str

    @property
    def redacted(self) -> bool:
        """True when the name is a redaction placeholder."""
        return bool(self.name) and PLACEHOLDER_RE.fullmatch(self.name.split()[0]) is not None


@dataclass(frozen=True)
class Address:
    """One use of a form of address in the session: by whom, where, and whether spoken to them."""

    title: str
    name: str
    role: Role
    turn: int
    offset: int
    vocative: bool

    @property
    def spoken(self) -> str | None:
        """How to say it: "General Prelogar", "Sarah", a bare "General"; None for a nameless "Mr.".

        A redacted name cannot be said, so its title is said alone when that is an address.
        """
        name = "" if PLACEHOLDER_RE.search(self.name) else self.name
        if name:
            return f"{self.title} {name}".strip()
        return self.title if self.title in STANDALONE_TITLES else None


@dataclass(frozen=True)
class KeyTerm:
    """A term the session is about: a person, a name ("Lanham Act") or a noun phrase."""

    text: str
    kind: Kind
    weight: float
    count: int


def _title_of(raw: str) -> str:
    """Normalise a title as written ("Mr", "Mr .", "Mr.\\nChief Justice") to one spelling."""
    t = re.sub(r"\s+", " ", raw.strip())
    if t in ("Mr", "Mrs", "Ms", "Dr", "Prof"):
        t += "."
    return t


def _is_vocative(text: str, start: int, end: int, lo: int = 0, hi: int | None = None) -> bool:
    """Whether ``text[start:end]`` is spoken to someone: set off by punctuation or a greeting.

    ``lo``/``hi`` bound the turn the span is in, so a neighbouring turn does not count.
    """
    hi = len(text) if hi is None else hi
    before = text[lo:start].rstrip()
    after = text[end:hi].lstrip()
    ok_before = (not before or before[-1] in ",.;:?!\"“(—" or before.endswith("--")
                 or _LEAD_WORD_RE.search(before[-24:]) is not None)
    ok_after = not after or after[0] in ",.;:?!—)\"”" or after.startswith("--")
    return ok_before and ok_after


def _has_full_name(text: str, first: str) -> bool:
    """Whether ``text`` has ``first`` followed by a surname ("my guest is Ken Norton", "Ken Norton is")."""
    at = text.find(first + " ")
    while at >= 0:
        nxt = text[at + len(first) + 1:at + len(first) + 3]
        before = text[:at].rstrip()[-1:]
        if len(nxt) == 2 and nxt[0].isupper() and nxt[1].islower() and (before in ("", ".", "?", "!", "\n")
                                                                        or (before.isalpha() and before.islower())):
            return True
        at = text.find(first + " ", at + 1)
    return False


def _is_name_word(word: str) -> bool:
    low = word.lower().replace("’", "'")
    return not (low in STOPWORDS or low in GENERIC or low in _DISCOURSE or low.endswith("ly") or len(low) < 2)


def find_mentions(text: str, turn_starts: Sequence[int] = (0,), first_names: frozenset[str] = frozenset()
                  ) -> list[Mention]:
    """People named in ``text``: titled names, placeholders, bare addresses, first-name vocatives.

    ``text`` may be several turns joined by newlines, ``turn_starts`` their offsets: whether a
    name is spoken to is judged inside its own turn. A first name counts only when spoken to and
    greeted ("Hi Sarah"), or in ``first_names``, or used elsewhere mid-sentence and opening a
    request ("Ken, what ..."; ", Ken?"): a capitalised word before a comma is usually a case name
    or a discourse marker ("Huggins, who ...", "Awesome, ..."). Mentions do not overlap; in order.
    """
    found: list[Mention] = []
    taken: list[tuple[int, int]] = []

    def bounds(pos: int) -> tuple[int, int]:
        i = bisect_right(turn_starts, pos) - 1
        lo = turn_starts[i] if i >= 0 else 0
        hi = turn_starts[i + 1] - 1 if i + 1 < len(turn_starts) else len(text)
        return lo, hi

    def vocative(s: int, e: int) -> bool:
        return _is_vocative(text, s, e, *bounds(s))

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in taken)

    for m in _TITLED_RE.finditer(text):
        title = _title_of(m.group("title"))
        name, end = m.group("name") or "", m.end()
        if name in _NOT_NAMES:
            name, end = "", m.end("title")
        elif m.group("name2"):
            second = m.group("name2")
            # "Mr. Clement And ..." or a name then a placeholder: the second word is not part of it.
            if second.lower() in STOPWORDS or second in _NOT_NAMES or (PLACEHOLDER_RE.match(second) is None) != (
                PLACEHOLDER_RE.match(name) is None
            ):
                end = m.end("name")
            else:
                name = f"{name} {second}"
        is_vocative = vocative(m.start(), end)
        if not name and not (is_vocative and title in STANDALONE_TITLES):
            continue  # "the General rule", "Justice Department", "Mr." with no name: not an address
        found.append(Mention(m.start(), end, title, name, is_vocative, text[m.start():end]))
        taken.append((m.start(), end))
    low = text.lower()
    has_bare = any(w in low for w in ("counsel", "sir", "ma'am", "ma’am", "honor"))
    for m in _BARE_ADDRESS_RE.finditer(text) if has_bare else ():
        if free(m.start(), m.end()) and vocative(m.start(), m.end()):
            title = m.group("title")
            title = "Counsel" if title.lower() == "counsel" else title.replace("’", "'")
            found.append(Mention(m.start(), m.end(), title, "", True, m.group(0)))
            taken.append((m.start(), m.end()))
    for m in re.finditer(_PERSON, text):
        if free(m.start(), m.end()):
            found.append(Mention(m.start(), m.end(), "", m.group(0), vocative(m.start(), m.end()), m.group(0)))
            taken.append((m.start(), m.end()))
    first_name_matches: list[tuple[int, int, bool]] = []  # (start, end, known to be a name)
    for hit in _ASK_AFTER_NAME_RE.finditer(text):
        end = hit.start()
        while end > 0 and text[end - 1] == " ":
            end -= 1
        start = end
        while start > 0 and (text[start - 1].isalpha() or text[start - 1] in "'’-"):
            start -= 1
        if start < end and text[start].isupper() and _NAME_RE.fullmatch(text, start, end):
            first_name_matches.append((start, end, False))
    for greeting in _GREETINGS:
        at = low.find(greeting)
        while at >= 0:
            m = _GREETED_NAME_RE.match(text, at)
            if m:
                first_name_matches.append((m.start("name"), m.end("name"), True))
            at = low.find(greeting, at + 1)
    if first_names:
        known = re.compile(r"(?<![\w'’<-])(?P<name>" + "|".join(map(re.escape, sorted(first_names))) + r")\b")
        first_name_matches += [(m.start("name"), m.end("name"), True) for m in known.finditer(text)]
    for s, e, sure in first_name_matches:
        name = text[s:e]
        if not free(s, e) or not _is_name_word(name) or re.fullmatch(_TITLE, name) or not vocative(s, e):
            continue
        # An unknown capitalised word is a first name only if it is spelt like one ("DoorDash" and
        # "PMs" are not), does not end a list ("at Uber, Lyft?"), and the text also gives it with a
        # surname ("my guest is Ken Norton"): "Lyft, you were there early" is a company.
        if not sure and (not _FIRST_NAME_RE.fullmatch(name) or _LIST_BEFORE_RE.search(text, max(0, s - 40), s)
                         or not _has_full_name(text, name)):
            continue
        found.append(Mention(s, e, "", name, True, name))
        taken.append((s, e))
    return sorted(found, key=lambda x: x.start)


@dataclass(frozen=True)
class SessionState:
    """Who is in the current session and what it is about; see the module docstring.

    ``addressee`` is how the interviewer now addresses the other party ("General Prelogar"), or
    None when unknown (nobody addressed yet, or a new person started answering since).
    ``addresses`` are the forms the interviewer used for the other party, latest first;
    ``self_names`` the names the other party gave themselves ("I'm Sarah"). ``key_terms`` are
    what the session is about, heaviest first; ``open_question`` is the interviewer's last
    question and ``claim`` the main claim of the candidate's new turn. The properties
    (``people``, ``interviewer_names``, ``questions``, ``lower_text`` ...) are computed on first
    use and kept on the instance, since most requests never need them.
    """

    addressee: str | None = None
    addressee_title: str = ""
    addresses: tuple[str, ...] = ()
    self_names: tuple[str, ...] = ()
    key_terms: tuple[KeyTerm, ...] = ()
    open_question: str | None = None
    claim: str | None = None
    roles: tuple[Role, ...] = field(default=(), repr=False)
    texts: tuple[str, ...] = field(default=(), repr=False)
    history_len: int = field(default=0, repr=False)  # texts after these are the candidate's new turn

    # -- building -------------------------------------------------------------------------
    @classmethod
    def from_history(cls, turns: Sequence[Turn], candidate_turn: str = "",
                     common: Mapping[str, float] | None = None) -> SessionState:
        """Read the session's ``turns`` and the candidate's new turn (not yet in ``turns``).

        ``common`` optionally maps word stems to how common they are for this interviewer (the
        share of their sessions using the stem, 0..1); key terms are weighted down by it. Without
        it, generic words are already excluded and terms weigh by how much this session uses them.
        """
        turns = list(turns)
        if candidate_turn and turns and turns[-1].role == "candidate" and turns[-1].text == candidate_turn.strip():
            turns = turns[:-1]  # the caller passed the new turn in the history as well
        roles: list[Role] = [t.role for t in turns]
        texts = [t.text for t in turns]
        if candidate_turn and candidate_turn.strip():
            roles.append("candidate")
            texts.append(candidate_turn.strip())

        # Where a new person starts answering: found in one lower-cased pass over the other side.
        cand_index = [i for i, r in enumerate(roles) if r == "candidate"]
        cand_starts, pos = [], 0
        for i in cand_index:
            cand_starts.append(pos)
            pos += len(texts[i]) + 1
        cand_lower = "\n".join(texts[i] for i in cand_index).lower()
        marker_set: set[int] = set()
        for formula in _NEW_SPEAKER_FORMULAS:
            at = cand_lower.find(formula)
            while at >= 0:
                marker_set.add(cand_index[bisect_right(cand_starts, at) - 1])
                at = cand_lower.find(formula, at + 1)
        markers = sorted(marker_set)
        last_marker = markers[-1] if markers else -1
        # People introduce themselves when they start talking: the first turns, or a new speaker's.
        intros: list[tuple[int, str]] = []
        for i in sorted({*cand_index[:INTRO_TURNS], *markers[-1:], *cand_index[-1:]}):
            low = texts[i].lower()
            if "i'm " in low or "i’m " in low or "i am " in low or "call me" in low or "my name" in low:
                intros.extend((i, m.group("name")) for m in _SELF_INTRO_RE.finditer(texts[i])
                              if _is_name_word(m.group("name").split()[0]))

        # The interviewer's side, scanned once as one text (turns joined by newlines).
        iv_index = [i for i, r in enumerate(roles) if r == "interviewer"]
        iv_starts, pos = [], 0
        for i in iv_index:
            iv_starts.append(pos)
            pos += len(texts[i]) + 1
        iv_text = "\n".join(texts[i] for i in iv_index)
        spoken_to: list[Address] = []
        named: list[str] = []
        for m in find_mentions(iv_text, iv_starts, frozenset(n.split()[0] for _, n in intros)):
            k = bisect_right(iv_starts, m.start) - 1
            a = Address(m.title, m.name, "interviewer", iv_index[k], m.start - iv_starts[k], m.vocative)
            if a.name and not m.redacted:
                named.append(a.name)
            # A bench title spoken by the interviewer names a colleague, never the party answering.
            if m.vocative and a.title not in BENCH_TITLES:
                spoken_to.append(a)

        current = [a for a in spoken_to if a.turn > last_marker]
        addressee: Address | None = None
        if current:
            addressee = current[-1]
            if not addressee.name or PLACEHOLDER_RE.search(addressee.name):
                # "General" after "General Prelogar": say the full name the session used.
                full_names = [a for a in current if a.title == addressee.title and a.name
                              and not PLACEHOLDER_RE.search(a.name)]
                if full_names:
                    addressee = full_names[-1]
        elif intros and intros[-1][0] >= last_marker:
            # Nobody addressed since this person introduced themselves: use their first name.
            addressee = Address("", intros[-1][1].split()[0], "candidate", intros[-1][0], 0, False)

        open_question = None
        for i in reversed(range(len(turns))):
            if roles[i] == "interviewer" and "?" in texts[i]:
                asked = _question_sentences(texts[i])
                if asked:
                    open_question = asked[-1]
                    break
        person_words = {w for n in named for w in n.split()} | {w for _, n in intros for w in n.split()}
        return cls(
            addressee=addressee.spoken if addressee else None,
            addressee_title=addressee.title if addressee else "",
            addresses=_without_bare_titles(_unique(a.spoken for a in reversed(spoken_to))),
            self_names=_unique(n for _, n in reversed(intros)),
            key_terms=_key_terms(texts, person_words, common),
            open_question=open_question,
            claim=_main_claim(candidate_turn, open_question),
            roles=tuple(roles),
            texts=tuple(texts),
            history_len=len(turns),
        )

    # -- computed on first use --------------------------------------------------------------
    @cached_property
    def text(self) -> str:
        """The session's turns joined by newlines (the candidate's new turn last)."""
        return "\n".join(self.texts)

    @cached_property
    def cased(self) -> bool:
        """Whether the session's text has capitals (a transcript from speech recognition may have none)."""
        return self.text != self.text.lower()

    @cached_property
    def lower_text(self) -> str:
        """The session's text, lower-cased (for presence checks)."""
        return self.text.lower().replace("’", "'")

    @cached_property
    def _all_mentions(self) -> list[tuple[Role, Mention]]:
        starts, pos = [], 0
        for t in self.texts:
            starts.append(pos)
            pos += len(t) + 1
        first = frozenset(n.split()[0] for n in self.self_names)
        return [(self.roles[bisect_right(starts, m.start) - 1], m)
                for m in find_mentions(self.text, starts, first)]

    @cached_property
    def people(self) -> tuple[str, ...]:
        """Every person the session named, latest first ("Ms. Spinelli", "Justice Alito", "Sarah Chen")."""
        found = _unique(f"{m.title} {m.name}".strip() for _, m in reversed(self._all_mentions)
                        if m.name and not m.redacted)
        return _unique([*found, *self.self_names])

    @cached_property
    def interviewer_names(self) -> tuple[str, ...]:
        """How the other party addressed the interviewer, latest first ("Justice Kagan", "Your Honor")."""
        spoken = (Address(m.title, m.name, r, 0, 0, True).spoken for r, m in reversed(self._all_mentions)
                  if r == "candidate" and m.vocative and not m.redacted)
        return _unique(spoken)

    @cached_property
    def questions(self) -> tuple[str, ...]:
        """The interviewer's question sentences so far, in order (the thread of questioning)."""
        n = self.history_len
        return tuple(q for r, t in zip(self.roles[:n], self.texts[:n]) if r == "interviewer" and "?" in t
                     for q in _question_sentences(t))

    @cached_property
    def name_words(self) -> frozenset[str]:
        """Every word of a person's name the session used ("Prelogar", "Elizabeth"), titles left out."""
        return frozenset(w for p in self.people for w in p.split() if not re.fullmatch(_TITLE, w) and w[:1].isupper())

    def entity_terms(self, kind: str) -> list[str]:
        """Session terms of a placeholder kind (ORGANIZATION, LOCATION/GPE, DATE_TIME), best first.

        People are not offered: a person not addressed could be anyone in the session.
        """
        return _entity_terms(self, kind)

    # -- queries ----------------------------------------------------------------------------
    def mentions(self, phrase: str) -> bool:
        """Whether the session used ``phrase`` (case-insensitive, whole words)."""
        return bool(phrase_positions(self.lower_text, phrase.lower().replace("’", "'").strip()))

    def uses_word(self, word: str) -> bool:
        """Whether the session used any form of ``word`` ("prices" for "pricing").

        Searches for the word's stem at word starts instead of stemming the whole session,
        which would cost more than building the state.
        """
        low = word.lower().replace("’", "'")
        root = stem(low)
        text = self.lower_text
        for prefix in {root, low}:
            at = text.find(prefix)
            while at >= 0:
                if at == 0 or not text[at - 1].isalnum():
                    end = at + len(prefix)
                    while end < len(text) and (text[end].isalnum() or text[end] in "'-"):
                        end += 1
                    token = text[at:end]
                    # "regulate"/"regulation" for "regulating": the crude stems differ by an ending.
                    if token == low or stem(token) == root or (len(root) >= 5 and len(token) - len(root) <= 3):
                        return True
                at = text.find(prefix, at + 1)
        return False

    def terms(self, kind: Kind | None = None) -> list[KeyTerm]:
        """Key terms, heaviest first, optionally of one kind."""
        return [t for t in self.key_terms if kind is None or t.kind == kind]

    def address_for(self, title: str = "") -> str | None:
        """How to address the other party in place of "<title> <PERSON>" (None: leave the address out).

        The current addressee when known; else, for a title one person holds per session
        ("General"), the last address with that title. The last "Mr." addressed may have sat down.
        """
        if self.addressee:
            return self.addressee
        if title in STANDALONE_TITLES:
            same = [a for a in self.addresses if a.split()[:len(title.split())] == title.split()]
            if same:
                return same[0]
        return None


def _unique(items) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for x in items:
        if x and x not in seen:
            seen[x] = None
    return tuple(seen)


def _without_bare_titles(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """Drop a bare "General" when "General Prelogar" is there too: it adds nothing."""
    return tuple(a for a in addresses if not any(b != a and b.startswith(a + " ") for b in addresses))


def phrase_positions(haystack: str, phrase: str) -> list[int]:
    """Start offsets of ``phrase`` in ``haystack`` as whole words (exact case; lower both to ignore it).

    Plain ``str.find``: a regex per phrase would be compiled per request, which costs more
    than the search itself.
    """
    out: list[int] = []
    if not phrase:
        return out
    at = haystack.find(phrase)
    while at >= 0:
        end = at + len(phrase)
        before = haystack[at - 1] if at > 0 else " "
        after = haystack[end] if end < len(haystack) else " "
        if not (before.isalnum() or before in "-_") and not (after.isalnum() or after in "-_"):
            out.append(at)
        at = haystack.find(phrase, at + 1)
    return out


def _question_sentences(text: str) -> list[str]:
    return [s for s in sentences(text) if is_question(s)]


def _main_claim(candidate_turn: str, open_question: str | None) -> str | None:
    """The sentence of the candidate's turn that states its point.

    Answers tend to lead with their claim, so early sentences score higher, as do sentences
    that carry content, share words with the open question, or state a position ("the answer is").
    """
    sents = sentences(candidate_turn or "")
    if not sents:
        return None
    asked = stem_set(open_question or "")
    best, best_score = None, -1.0
    for i, s in enumerate(sents[:8]):
        if is_question(s) or len(words(s)) < 4:
            continue
        stems = stem_set(s)
        if len(stems) < 2:
            continue
        score = min(len(stems), 10) / 10
        score += len(stems & asked) / len(asked) if asked else 0.0
        score += 0.4 if i == 0 else 0.2 if i == 1 else 0.0
        score += 0.3 if _CLAIM_CUE_RE.search(s) else 0.0
        if score > best_score:
            best, best_score = s, score
    return best or sents[0]


def _window(texts: list[str]) -> str:
    """The opening and the most recent turns, to a word budget (placeholders cut out)."""
    if not texts:
        return ""
    opening = " ".join(texts[0].split()[:OPENING_WORDS])
    recent: list[str] = []
    budget = RECENT_WORDS
    for t in reversed(texts[1:]):
        toks = t.split()
        recent.append(" ".join(toks[-budget:]))
        budget -= len(toks)
        if budget <= 0:
            break
    # A placeholder is no term; a clause break keeps it from joining its neighbours into one.
    return PLACEHOLDER_RE.sub(" , ", "\n".join([opening, *reversed(recent)]))


# Adjectives that hedge a noun rather than name a kind of it ("a certain extent", "the particular map").
_HEDGES = frozenset("""certain general particular whole ordinary entire current real basic simple specific relevant
    various mere usual normal typical actual main own other overall broad broader narrow big same""".split())
# Words after which the last word of a run was a verb, not a noun ("the government agrees that").
_AFTER_VERB = frozenset("that the a an it this these those them him her us me you we they he she its their his our "
                        "your my".split())


def is_vague_term(phrase: str) -> bool:
    """True when no word of ``phrase`` says what a session is about ("certain extent", "the situation")."""
    return all(w in GENERIC or w in STOPWORDS or w in VAGUE_NOUNS or w in _HEDGES
               for w in (x.lower() for x in words(phrase)))


def _as_term(phrase: str, window_lower: str) -> str | None:
    """``phrase`` as a key term: hedges dropped from its front, a trailing verb cut; None if nothing is left."""
    parts = re.sub(r"['’]s$", "", phrase).split()  # "the Government's brief": the term is "Government"
    while len(parts) > 1 and parts[0] in _HEDGES:
        parts = parts[1:]
    phrase = " ".join(parts)
    if not parts[-1][:1].isupper():
        # "the court lacks jurisdiction": a singular noun then an -s word inside a run is noun + verb.
        for k in range(1, len(parts) - 1):
            if _third_person(parts[k]) and not parts[k - 1].endswith("s"):
                parts = parts[:k]
                break
        phrase = " ".join(parts)
        low = phrase.lower()
        follow = [_next_word(window_lower, at + len(low)) for at in phrase_positions(window_lower, low)]
        shorter = " ".join(parts[:-1]).lower()
        if len(parts) > 1 and follow and (all(
                f in _AFTER_VERB or (_third_person(parts[-1]) and f and (f not in STOPWORDS or f in _VERB_PREPS))
                for f in follow) or (_third_person(parts[-1])
                                     and len(phrase_positions(window_lower, shorter)) > len(follow))):
            # "the government agrees that", "the license ends with", "the license says ... the
            # license controls": the last word is a verb.
            parts = parts[:-1]
            phrase = " ".join(parts)
        elif len(parts) == 1 and follow and all(f and (f not in STOPWORDS or f in _AFTER_VERB) for f in follow):
            # Always followed by its noun ("major questions doctrine": a modifier) or its object
            # ("to decide this": a verb).
            return None
    if phrase in STANDALONE_TITLES or phrase in _ADDRESS_WORDS or is_vague_term(phrase):
        return None
    return phrase


# Prepositions that follow a verb ("ends with", "applies to") more often than a plural noun.
_VERB_PREPS = frozenset("with to by on from into".split())


def _third_person(word: str) -> bool:
    """Whether ``word`` could be a third-person verb ("covers", "lacks"): ends in a plain "s"."""
    w = word.lower()
    return len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is", "'s", "’s"))


def _next_word(text: str, at: int) -> str:
    """The word right after offset ``at`` ("" when punctuation comes first)."""
    m = re.match(r" ([a-z][a-z'-]*)", text[at:at + 24])
    return m.group(1) if m else ""


def _key_terms(texts: list[str], person_words: set[str], common: Mapping[str, float] | None
               ) -> tuple[KeyTerm, ...]:
    """Salient noun phrases and names of the session, weighted by use and against commonness.

    Phrases come from the topic window (``_window``), ranked by ``salient_phrases``; repeated
    use raises a term's weight, so does being in the newest two turns (what is being talked
    about now), and ``common`` (stem -> share of the interviewer's sessions using it) lowers it.
    Counting over the whole session would cost more than all the rest of ``from_history``.
    """
    window = _window(texts)
    if not window.strip():
        return ()
    lower = window.lower()
    latest = "\n".join(texts[-2:]).lower()
    out: dict[str, KeyTerm] = {}
    for rank, raw in enumerate(salient_phrases(window, max_phrases=MAX_KEY_TERMS, nouns_only=True)):
        phrase = _as_term(raw, lower)
        if phrase is None or phrase.lower() in out:
            continue
        count = max(1, lower.count(phrase.lower()))
        kind: Kind = "name" if all(w[:1].isupper() for w in phrase.split()) else "phrase"
        if kind == "name" and set(phrase.split()) <= person_words:
            kind = "person"
        weight = (1.0 + math.log(count)) / (1.0 + 0.15 * rank)
        if phrase.lower() in latest:
            weight *= 1.5
        if common:
            stems = [stem(w) for w in content_words(phrase)] or [phrase.lower()]
            weight *= max(0.05, 1.0 - sum(common.get(s, 0.0) for s in stems) / len(stems))
        out[phrase.lower()] = KeyTerm(phrase, kind, round(weight, 4), count)
    return tuple(sorted(out.values(), key=lambda t: -t.weight))


# -- placeholder kinds --------------------------------------------------------------------------

_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DATE_RE = re.compile(
    rf"\b(?:(?:{_MONTHS})(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+(?:19|20)\d\d)?|"
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)|(?:19|20)\d\d)\b"
)
_ORG_SUFFIX = re.compile(
    r"\b(?:Inc|Corp|Corporation|Company|Co|LLC|Ltd|Agency|Commission|Department|Administration|Bureau|Board|"
    r"Court|Circuit|University|College|School|Bank|Association|Union|Institute|Foundation|Committee|Congress|"
    r"Service|Authority|Office|Group|Labs?|Partners|Ventures)\.?$"
)
_PLACES = frozenset(
    """Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii Idaho
    Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota
    Mississippi Missouri Montana Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas Utah
    Vermont Virginia Washington Wisconsin Wyoming America Canada Mexico China Japan India Germany France
    Britain England Ireland Italy Spain Russia Ukraine Israel Brazil Australia Europe Asia Africa London
    Paris Berlin Tokyo Boston Chicago Seattle Denver Atlanta Houston Dallas Austin Philadelphia
    """.split()
) | {"New York", "New Jersey", "New Mexico", "New Hampshire", "North Carolina", "South Carolina",
     "North Dakota", "South Dakota", "West Virginia", "Rhode Island", "San Francisco", "Los Angeles",
     "United States", "United Kingdom", "District of Columbia"}


def _entity_terms(state: SessionState, kind: str) -> list[str]:
    if kind == "ORGANIZATION":
        # Only a name that says it is an organisation ("Federal Trade Commission"): an acronym
        # may as well be a statute, and "the Court" alone reads wrong without its article.
        return [t.text for t in state.key_terms
                if t.kind == "name" and len(t.text.split()) > 1 and _ORG_SUFFIX.search(t.text)]
    if kind in ("LOCATION", "GPE"):
        return sorted((p for p in _PLACES if p in state.text), key=lambda p: -state.text.count(p))
    if kind == "DATE_TIME":
        # The latest date said is the likeliest one still in play.
        return [m.group(0) for m in _DATE_RE.finditer(state.text)][-1:]
    return []


# -- removing placeholders ----------------------------------------------------------------------

_SUBJECT_VERBS = {"is": "are", "was": "were", "has": "have", "does": "do", "doesn't": "don't", "isn't": "aren't",
                  "wasn't": "weren't", "hasn't": "haven't", "says": "say"}
# Words ending in "s" that are not third-person verbs.
_NOT_S_VERBS = frozenset("this thus its his hers yours ours theirs yes always perhaps sometimes less unless across "
                         "news towards afterwards besides whereas".split())
_SKIPPABLE_ADVERBS = frozenset("also just really now then never already still actually always clearly certainly "
                               "basically essentially simply".split())
# Words after which a pronoun stands as an object ("I asked them", "according to them").
_OBJECT_AFTER = frozenset(
    """to for with by from at about of on against like than into onto toward towards between among
    asked ask told tell thank thanked call called heard hear met meet saw see agree agreed""".split()
)
# Everything a removed placeholder may drag along: the prepositions or determiners in front of it.
_LEAD_IN_RE = re.compile(
    r"(?:\b(?:at|in|to|from|on|of|for|with|by|near|via|during|since|until|before|after|the|a|an|your|my|our|"
    r"their|his|her|its)\s+)*$",
    re.I,
)
_PLACE_PREPS = {"in": "there", "at": "there", "to": "there", "into": "there", "near": "near there",
                "from": "from there"}
# A word a sentence cannot end on: what is left when a removal took the word it led to.
_DANGLING = frozenset("is are was were be been the a an my your our their his her its this that to at in on of for "
                      "with by from and or about called named".split())
_PERSON_GROUP_RE = re.compile(
    rf"(?:(?:{_TITLE})\s+)?{_PERSON}(?:(?:\s*,\s*(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+)(?:(?:{_TITLE})\s+)?{_PERSON})+"
)
# The interviewer introducing themselves with a redacted name: the introduction clause goes.
_REDACTED_INTRO_RE = re.compile(
    rf"(?:,\s*|\b)(?:I am|I['’]m|my name is|my name['’]s|this is)\s+{_PERSON}[^.?!;,]*(?=[.?!;,]|$)", re.I
)


# Determiners before a name that only modifies the noun after it ("the Kennedy question").
_ATTRIBUTIVE_AFTER = frozenset({"the", "a", "an", "this", "that"})


def _agree(after: str) -> str:
    """Make the verb after a new "they" plural: "says" -> "say", "is" -> "are" (after adverbs)."""
    m = re.match(r"(\s+)((?:\w+\s+)*?)([A-Za-z'’]+)", after)
    if not m:
        return after
    if any(w.lower() not in _SKIPPABLE_ADVERBS for w in m.group(2).split()):
        return after
    verb = m.group(3)
    low = verb.lower().replace("’", "'")
    if low in _SUBJECT_VERBS:
        new = _SUBJECT_VERBS[low]
    elif len(low) < 4 or not low.endswith("s") or low.endswith(("ss", "us", "is")) or low in _NOT_S_VERBS:
        return after
    elif low.endswith("ies"):
        new = low[:-3] + "y"
    elif low.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        new = low[:-2]
    else:
        new = low[:-1]
    return after[: m.start(3)] + new + after[m.end(3):]


def _pronoun(text: str, start: int, end: int) -> tuple[str, int]:
    """A pronoun for someone not named, and where the replaced span ends (after a "'s" it ate).

    "what <PERSON> said" -> "they"; "<PERSON>'s brief" -> "their"; "I asked <PERSON>" -> "them".
    """
    poss = re.match(r"['’]s\b(?!\s+(?:right|wrong|saying|going|not|been|got|correct)\b)", text[end:])
    if poss:
        return "their", end + poss.end()
    prev = re.search(r"([A-Za-z'’]+)\W*$", text[:start])
    if prev and prev.group(1).lower() in _ATTRIBUTIVE_AFTER and re.match(r"\s+[a-z]", text[end:]):
        return "", end  # "the Justice Kennedy question" -> "the question": the name only modified it
    if prev and prev.group(1).lower() in _OBJECT_AFTER and not re.search(r"[.?!,;:]\s*$", text[:start]):
        return "them", end
    return "they", end


def _put_pronoun(text: str, start: int, end: int) -> tuple[str, str]:
    """Replace ``text[start:end]`` with the fitting pronoun, fixing case and verb agreement."""
    pronoun, end = _pronoun(text, start, end)
    if not pronoun:
        return text[:start].rstrip() + " " + text[end:].lstrip(), pronoun
    after = _agree(text[end:]) if pronoun == "they" else text[end:]
    if re.search(r"(?:^|[.?!]\s+|[\"“(]\s*)$", text[:start]):
        pronoun = pronoun.capitalize()
    return text[:start] + pronoun + after, pronoun


_TITLE_RESTART_RE = re.compile(r"\b(?:Mrs?|Ms|Mister|Dr)\.?\s*(?:--|—)\s*$")


def rewrite_mentions(text: str, mentions: Sequence[Mention], state: SessionState
                     ) -> tuple[str, list[tuple[str, str]], list[str]]:
    """Rewrite the person ``mentions`` of ``text`` for this session.

    A vocative becomes the session's address (``state.address_for``) or is dropped with its
    commas; any other mention becomes a pronoun ("they", "their", "them"). Returns the text,
    the (old, new) replacements, and notes.
    """
    swaps: list[tuple[str, str]] = []
    notes: list[str] = []
    # Right to left, so earlier offsets stay valid.
    for m in sorted(mentions, key=lambda x: -x.start):
        if m.vocative:
            # A bench title is a colleague spoken to ("Justice Breyer -- ..."), never the party here.
            fill = None if m.title in BENCH_TITLES else state.address_for(m.title)
            if fill:
                # A restart on the old title ("Mr. -- Mr. Geyser") goes with the old name.
                before = _TITLE_RESTART_RE.sub("", text[:m.start])
                text = before + fill + text[m.end:]
                swaps.append((m.surface, fill))
                notes.append(f"addressed {fill!r} instead of {m.surface!r}")
            else:
                text = _drop_vocative(text, m.start, m.end)
                swaps.append((m.surface, ""))
                why = "a colleague, not the party" if m.title in BENCH_TITLES else "nobody here to address by it"
                notes.append(f"dropped the address {m.surface!r}: {why}")
            continue
        text, said = _put_pronoun(text, m.start, m.end)
        swaps.append((m.surface, said))
        notes.append(f"rephrased {m.surface!r} as {said!r}" if said else f"left out {m.surface!r}")
    return text, swaps, notes


# Words that continue the clause an address interrupted ("the question, Mr. X, is ...").
_CLAUSE_GOES_ON = frozenset("is are was were has have had does do did can could would will should that if whether "
                            "isn't aren't wasn't doesn't don't didn't".split())


def _drop_vocative(text: str, start: int, end: int) -> str:
    """Remove the address ``text[start:end]`` and the punctuation setting it off.

    "General X, how ..." -> "How ..."; "Well, X, how" -> "Well, how"; "..., X?" -> "...?".
    """
    before, after = text[:start], text[end:]
    b = before.rstrip()
    a = after.lstrip()
    if b.endswith(",") and (not a or a[0] in ".?!;:"):
        return b[:-1].rstrip() + a  # "..., X?" -> "...?"
    if b.endswith(",") and a.startswith(("--", "—")):
        return b[:-1].rstrip() + " " + a  # "finish here, X -- I mean" -> "finish here -- I mean"
    if b.endswith(",") and a.startswith(","):
        rest = a[1:].lstrip()
        # "the question, X, is what" -> "the question is what": the commas only set off the name.
        if rest.split()[:1] and rest.split()[0].lower() in _CLAUSE_GOES_ON:
            return b[:-1].rstrip() + " " + rest
        return b + a[1:]  # "Well, X, how" -> "Well, how"
    if not b or b[-1] in ".?!:;\"“(" or b.endswith("--"):
        a = re.sub(r"^(?:,|--|—)\s*", "", a)
        if not re.search(r"\w", a):
            return b  # the address was the whole sentence ("Mr. Clement?")
        if a[:1].islower():
            a = a[0].upper() + a[1:]
        return f"{b} {a}" if b else a
    # A lead word without a comma ("Thanks X.", "Well X, how"): keep the lead word.
    return b + a if a[:1] in ",.?!;:" else b + " " + a


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """Start and end offsets of the sentence holding ``text[start:end]``."""
    s = max((m.end() for m in re.finditer(r"[.?!][\"'”’)]*\s+", text[:start])), default=0)
    m = re.search(r"[.?!][\"'”’)]*", text[end:])
    return s, end + m.end() if m else len(text)


def _remove_one(text: str, m: re.Match[str], kind: str) -> str:
    """Remove the placeholder ``m`` and what leads to it, keeping the sentence readable.

    "in <LOCATION>" -> "there"; "at <EMAIL_ADDRESS> or <PHONE_NUMBER>" -> removed; an
    unnamed organisation as subject -> "they"; a sentence the removal leaves unfinished
    ("My number is.") is dropped, or, when it is the whole reply, says "that" instead.
    """
    start, end = m.start(), m.end()
    # Coordinated placeholders go together: "at <EMAIL_ADDRESS> or <PHONE_NUMBER>".
    while more := re.match(r"\s*(?:,\s*)?(?:and|or|&|,)\s*" + PLACEHOLDER_RE.pattern, text[end:]):
        end += more.end()
    lead = _LEAD_IN_RE.search(text[:start])
    lead_words = lead.group(0).lower().split() if lead else []
    if kind in ("LOCATION", "GPE", "ORGANIZATION") and lead_words and lead_words[0] in _PLACE_PREPS:
        return text[: lead.start()] + _PLACE_PREPS[lead_words[0]] + text[end:]
    if kind in ("ORGANIZATION", "NRP") and not lead_words:
        return _put_pronoun(text, start, end)[0]
    cut = lead.start() if lead_words else start
    prev = re.search(r"([A-Za-z'’]+)\W*$", text[:cut])
    nxt = text[end:].lstrip()
    broken = (not prev or prev.group(1).lower() in _DANGLING) and (not nxt or nxt[0] in ".?!,;:")
    if not broken:
        return text[:cut].rstrip() + " " + nxt if text[:cut].strip() else nxt
    if not re.search(r"\w", text[:start] + text[end:]):
        return ""  # the placeholder was all there was
    s, e = _sentence_bounds(text, start, end)
    if text[:s].strip() or text[e:].strip():
        return text[:s] + text[e:].lstrip()
    return text[:start] + "that" + text[end:]


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\s+([,.;:?!])", r"\1", text)
    text = re.sub(r",\s*([,.;:?!])", r"\1", text)
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"^\s*[,;:]\s*", "", text)
    return text.strip()


def _capitalise_sentences(text: str) -> str:
    return re.sub(r"(^|[.?!]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def remove_placeholders(text: str, state: SessionState) -> tuple[str, list[str]]:
    """Replace or rephrase away every redaction placeholder; returns the text and what was done.

    An addressed ``<PERSON>`` becomes ``state``'s address for the person spoken to ("General
    <PERSON>, ..." -> "General Prelogar, ..."), or is dropped with its commas when there is none;
    another ``<PERSON>`` becomes "they"/"them"/"their" (and the interviewer's own redacted
    self-introduction goes). ``<LOCATION>``, ``<ORGANIZATION>``, ``<DATE_TIME>`` become the
    session's term of that kind when it has one; otherwise they and all other placeholders are
    removed with the words that led to them ("in <LOCATION>" -> "there"). The result never
    contains ``<[A-Z_]+>``; it is empty when nothing is left to say ("<PERSON>?").
    """
    if not PLACEHOLDER_RE.search(text or ""):
        return text, []
    notes: list[str] = []
    if _REDACTED_INTRO_RE.search(text):
        text = _REDACTED_INTRO_RE.sub("", text)
        notes.append("dropped a self-introduction with a redacted name")
    if _PERSON_GROUP_RE.search(text):
        # "<PERSON> and <PERSON> argue" is one "they", not "they and they".
        text = _PERSON_GROUP_RE.sub("<PERSON>", text)
    people = [m for m in find_mentions(text) if m.redacted]
    text, _, person_notes = rewrite_mentions(text, people, state)
    notes.extend(person_notes)
    for _ in range(50):  # bounded: each pass handles one placeholder
        m = PLACEHOLDER_RE.search(text)
        if m is None:
            break
        kind = m.group(1)
        # A person not spoken to is never named from elsewhere in the session: it could be anyone.
        fill = next(iter(state.entity_terms(kind)), None)
        if fill:
            text = text[:m.start()] + fill + text[m.end():]
            notes.append(f"filled <{kind}> with the session's {fill!r}")
        else:
            text = _remove_one(text, m, kind)
            notes.append(f"removed <{kind}>")
    # Whatever a rule missed, a placeholder is never spoken.
    if PLACEHOLDER_RE.search(text):
        text = PLACEHOLDER_RE.sub("", text)
        notes.append("removed leftover placeholders")
    text = _capitalise_sentences(_tidy(text))
    if not re.search(r"\w", text):
        text = ""
    return text, notes
