"""Small, dependency-free text helpers shared by style, policy, generation and prosody.

Everything here is deterministic and cheap (regexes and sets) because it runs on every turn of
every transcript when profiles are fitted, and on every request when the twin answers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    "ASK_MIN_WORDS",
    "DETERMINERS",
    "GENERIC",
    "STOPWORDS",
    "VAGUE_NOUNS",
    "WORD_RE",
    "ask_sentence",
    "clean_transcript_text",
    "compile_cues",
    "cue_sum",
    "content_words",
    "finished_text",
    "is_cut_short",
    "is_question",
    "lexical_similarity",
    "ngrams",
    "restates",
    "repeats_words",
    "says_again",
    "salient_phrases",
    "sentences",
    "stem",
    "stem_set",
    "words",
]

# Words (keeps inner apostrophes and hyphens: "doesn't", "follow-up"); numbers count as words.
WORD_RE = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*")

# Sentence ends: ., ?, ! (possibly repeated or followed by quotes), or a dash-interruption "--"
# at the end of a clause, which transcripts use for cut-off speech.
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.?!])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9\-])")

# Common abbreviations that end with a period but do not end a sentence.
_ABBREVIATIONS = ("Mr.", "Mrs.", "Ms.", "Dr.", "St.", "v.", "vs.", "U.S.", "e.g.", "i.e.", "No.", "Jr.", "Inc.")

# A compact English stopword list: function words plus the fillers that dominate speech.
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
    don't down during each either else even ever every few for from further get gets getting got had
    hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself
    his how how's however i i'd i'll i'm i've if in into is isn't it it's its itself just let let's
    like lot lots maybe me might more most much must mustn't my myself no nor not now of off on once
    one only or other ought our ours ourselves out over own per quite rather really said same say says
    see shall shan't she she'd she'll she's should shouldn't so some something such than that that's
    the their theirs them themselves then there there's these they they'd they'll they're they've
    thing things think this those though through thus to too under until up upon us very was wasn't
    we we'd we'll we're we've well were weren't what what's when when's where where's whether which
    while who who's whom whose why why's will with won't would wouldn't yeah yes yet you you'd you'll
    you're you've your yours yourself yourselves okay ok oh um uh uh-huh hmm mm right sure kind sort
    gonna wanna going go goes went know knew mean means want wanted way ways many also actually
    basically sort-of kind-of still already back able anything everything nothing anyone someone
    everyone another whatever whichever may ah huh hey
    """.split()
)

# Frequent verbs, adjectives and time words: real words, but they never say what a turn is
# about, so they are left out of content words (overlap) and salient phrases (substitution).
GENERIC: frozenset[str] = frozenset(
    """
    make makes made making take takes took taken taking come comes came coming put puts look looks
    looked looking give gives gave given giving tell tells told telling call called talk talked talking
    ask asked asking work worked working try tried trying use used using need needs needed feel felt
    seem seems seemed start started keep kept run ran running find found saw seen put happen happened
    new old good great big small little large long short high low last first next second third
    different same important whole true real pretty probably definitely exactly certainly totally
    time times year years day days week weeks month months today people person guy guys stuff bit
    part point case fact question questions answer answers example idea ideas reason reasons sense
    yeah okay honestly obviously literally generally usually often sometimes always never
    """.split()
)

# Words after which a noun phrase starts: "the X", "about X", "your X".
DETERMINERS: frozenset[str] = frozenset(
    """
    the a an this these those your my our their his her its any some every each no about on
    with of in for to at from into over under between through against without by
    two three four five several many few both
    """.split()
)
# Interjections and sentence adverbs that would otherwise pass as content words.
GENERIC = GENERIC | frozenset(
    "sorry otherwise consider correct course indeed certainly absolutely okay least somewhat rather".split()
)
# Nouns that fit any conversation ("the situation", "a certain extent"): real content words, but
# never what one session is about as against another, so a line keeps them when it is reused.
VAGUE_NOUNS: frozenset[str] = frozenset(
    """
    matter matters extent bunch situation situations instance instances problem problems issue issues
    argument arguments view views side sides term terms level levels number numbers type types context
    world area areas concern concerns respect regard basis purpose purposes notion notions hypothetical
    hypotheticals circumstance circumstances scenario scenarios aspect aspects factor factors approach
    position positions response responses result results difference differences manner degree effect
    effects step steps place places end start beginning middle sort kind lot lots couple deal
    """.split()
)

_BRACKETED_NOTE_RE = re.compile(r"\[[^\]]{0,80}\]|\((?:Laughter|Laughs|Crosstalk|Inaudible|Applause)[^)]{0,40}\)", re.I)
_STUTTER_RE = re.compile(r"\b((?:\w+['’]?\w*\s+){0,2}\w+['’]?\w*)\s*--\s*\1\b", re.I)
_SPACES_RE = re.compile(r"\s+")


def _anchor(pattern: str) -> str:
    # The longest literal run every match must contain: groups (alternations may not share a
    # literal), optional parts (x?, \w*) and escapes are cut out first. Checking it with `in`
    # before the regex skips most scans, which makes fitting a profile about 3x faster.
    stripped = re.sub(r"\(\?:[^)]*\)[?*]?|\\.[*?+]?|.[?*]", " ", pattern)
    pieces = re.findall(r"[a-z]+", stripped.lower())
    return max(pieces, key=len) if pieces else ""


def compile_cues(spec: Sequence[tuple[str, float]]) -> list[tuple[str, re.Pattern[str], float]]:
    """Compile ``(regex phrase, weight)`` pairs into cue matchers for ``cue_sum``."""
    # Phrases match on word boundaries, case-insensitively; curly apostrophes are normalised first.
    return [(_anchor(pat), re.compile(r"(?<![\w'])" + pat + r"(?![\w'])", re.I), w) for pat, w in spec]


def cue_sum(text: str, cues: list[tuple[str, re.Pattern[str], float]], cap_per_cue: int = 2) -> float:
    """Weighted count of cue matches in ``text`` (each cue counted at most ``cap_per_cue`` times)."""
    # Capping repeats per cue stops one stuttered word ("but -- but -- but") from dominating.
    lowered = text.lower()
    return sum(w * min(cap_per_cue, len(p.findall(text))) for a, p, w in cues if a in lowered)


def words(text: str) -> list[str]:
    """Return the word tokens of ``text`` in their original case (punctuation dropped)."""
    return WORD_RE.findall(text or "")


def stem(word: str) -> str:
    """Reduce ``word`` to a crude stem so "pricing"/"prices"/"priced" match; lower-cases it."""
    w = word.lower().replace("’", "'")
    for suffix, min_len in (("ing", 5), ("ies", 5), ("ied", 5), ("ed", 5), ("es", 5), ("ly", 5), ("s", 4)):
        if w.endswith(suffix) and len(w) >= min_len + len(suffix) - 2:
            base = w[: -len(suffix)]
            if suffix in ("ies", "ied"):
                base += "y"
            # "ss" endings (e.g. "business", "class") are not plurals.
            if suffix == "s" and w.endswith("ss"):
                return w
            return base
    return w


def content_words(text: str) -> list[str]:
    """Lower-cased non-stopword tokens of ``text`` (length > 2 or digits), in order."""
    out = []
    for w in words(text):
        lw = w.lower().replace("’", "'")
        if lw in STOPWORDS or lw in GENERIC or (len(lw) <= 2 and not lw.isdigit()):
            continue
        out.append(lw)
    return out


# The worker compares the same remembered lines and the session's turns at request after request (the
# selector's shared words, the generator's similarities, ``restates``): their stems are worked out once. Keys
# are single turns (a few KB at most), so the cache stays within tens of MB.
@lru_cache(maxsize=8192)
def stem_set(text: str) -> frozenset[str]:
    """The stems of ``text``'s content words (one turn or line: the result is cached by the text)."""
    return frozenset(stem(w) for w in content_words(text))


def lexical_similarity(a: str, b: str) -> float:
    """Jaccard similarity of the stemmed content-word sets of ``a`` and ``b`` (0 when either is empty)."""
    sa, sb = stem_set(a), stem_set(b)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences; abbreviations such as "Mr." do not end one."""
    text = _SPACES_RE.sub(" ", (text or "").strip())
    if not text:
        return []
    # Protect abbreviations by swapping their period for a placeholder during the split.
    protected = text
    for abbr in _ABBREVIATIONS:
        protected = protected.replace(abbr, abbr.replace(".", "\u2024"))
    parts = _SENTENCE_SPLIT_RE.split(protected)
    return [p.replace("\u2024", ".").strip() for p in parts if p.strip()]


def clean_transcript_text(text: str) -> str:
    """Remove transcription artefacts ("[inaudible]", "(Laughter.)", "the -- the" stutters).

    Used before a real line is reused as a reply: the notes are not speech, and a stutter
    repeated by a TTS sounds like a glitch rather than like the interviewer.
    """
    t = _BRACKETED_NOTE_RE.sub(" ", text or "")
    # Collapse "it -- it" style restarts, repeatedly, since they chain ("the -- the -- the").
    for _ in range(4):
        new = _STUTTER_RE.sub(r"\1", t)
        if new == t:
            break
        t = new
    t = _SPACES_RE.sub(" ", t).strip()
    t = re.sub(r"^(?:--|—)\s*", "", t)
    # A cut at the end: "--" in the court's transcripts, a hyphen on the last word in the podcast's ("so we
    # could try the-", 2.8% of the host's lines), which would be said as "try the-."
    t = re.sub(r"(?:\s*(?:--|—|-))+\s*$", "", t)
    t = re.sub(r"\s+([,.?!;:])", r"\1", t)
    return t.strip()


def salient_phrases(text: str, max_phrases: int = 5, max_len: int = 3, nouns_only: bool = False) -> list[str]:
    """Rank the noun-phrase-like spans of ``text`` that best summarise what it is about.

    Returns the spans as first written (original case), best first.

    A span is a run of up to ``max_len`` consecutive content words inside one clause. Spans are
    scored by how often their words recur in the text, their length in characters (specific
    terms are longer), and a bonus for multi-word spans; ties keep first-mention order. This is a
    heuristic stand-in for a noun-phrase chunker, chosen so no tagger has to load per request.

    With ``nouns_only`` a span must end its run and the run must follow a determiner or
    preposition ("the pricing page", "about retention") or be capitalised mid-sentence (a name):
    the spans that can replace one another inside a sentence without breaking it.
    """
    if not text:
        return []
    freq = Counter(stem(w) for w in content_words(text))
    spans: dict[str, tuple[float, int, str]] = {}
    position = 0
    # Clause boundaries: punctuation stops a span so "pricing, onboarding" stays two spans.
    for clause in re.split(r"[,.;:?!()\"“”]|--|—", text):
        run: list[str] = []
        before_run = ""  # the word just before the current run ("" at clause start)
        prev = ""
        for w in words(clause) + [""]:
            lw = w.lower().replace("’", "'")
            is_content = bool(w) and lw not in STOPWORDS and lw not in GENERIC and (len(lw) > 2 or lw.isdigit())
            if is_content:
                if not run:
                    before_run = prev
                run.append(w)
                prev = lw
                continue
            if nouns_only:
                # Adverbs and participles are not nouns: drop them from the front ("somewhat
                # adversely affected") and refuse runs that end in one.
                while run and run[0].lower().endswith("ly"):
                    run = run[1:]
                # "the Administrative Procedure Act suggests": a name ends where capitals end.
                caps = 0
                while caps < len(run) and run[caps][:1].isupper():
                    caps += 1
                if 0 < caps < len(run):
                    run = run[:caps]
                if run and re.search(r"(?:ly|ed)$", run[-1].lower()):
                    run = []
            named = bool(run) and before_run != "" and all(x[:1].isupper() for x in run)
            noun_run = before_run in DETERMINERS or named
            # Emit every sub-span ending in the run (head-final, like English noun phrases).
            for end in range(1, len(run) + 1):
                if nouns_only and (end != len(run) or not noun_run):
                    position += 1
                    continue
                # Names keep all their words ("New York Times"); other spans stop at max_len.
                span_max = len(run) if named else max_len
                for start in range(max(0, end - span_max), end):
                    span_words = run[start:end]
                    key = " ".join(x.lower() for x in span_words)
                    score = sum(freq[stem(x)] for x in span_words) / len(span_words)
                    score += 0.08 * sum(len(x) for x in span_words) / len(span_words)
                    score += 0.6 * (len(span_words) - 1)
                    if key not in spans:
                        spans[key] = (score, position, " ".join(span_words))
                    position += 1
            run = []
            prev = lw
    ranked = sorted(spans.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    out: list[str] = []
    chosen: list[str] = []
    for key, (_, _, surface) in ranked:
        # Skip spans that are contained in, or contain, one already chosen: they add no coverage.
        if any(key in c or c in key for c in chosen):
            continue
        chosen.append(key)
        out.append(surface)
        if len(out) >= max_phrases:
            break
    return out


def ngrams(tokens: Iterable[str], n: int) -> list[tuple[str, ...]]:
    """Return the consecutive ``n``-grams of ``tokens``."""
    toks = list(tokens)
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


_CUT_OFF_RE = re.compile(r"(?:--|—|-)\s*$")
CUT_SHORT_WORDS = 6


# Words no sentence that reads finished ends on: a line cut off right after one stopped mid-clause (an article,
# a preposition, a conjunction, a possessive, an auxiliary, a subject, a filler: "... you've been --",
# "Well, I --", "Justice Kennedy asked you about the question of whether Mister --").
_DANGLING_WORDS = frozenset("a an the of to for from by than or and but nor if because whether which my your our "
                            "their his her its in on at with into about under over between through against without "
                            "upon onto within among is are was were be been being am have has had will would could "
                            "should can may might must shall do does did not don't i we they he she i'm it's that's "
                            "there's you're we're they're that this these those well so just then how why what where "
                            "when who mister mr mrs ms".split())


# Words no English sentence ends on at all (an article, a possessive, a subject, a subject with its verb, a
# conjunction): a one-sentence line ending on one was cut off even where the transcript marks no cut ("Sure,
# we're.", "And that's [inaudible 00:12:34]."); a question is not ("They don't know, do they?"). Unlike
# _DANGLING_WORDS, no preposition or verb: "They had to." and "What is it made of." are finished.
_NEVER_LAST_WORDS = frozenset("a an the my your our their i we they he she i'm you're we're they're it's that's "
                              "there's and but or nor because whether".split())


# The end of a line the unmarked-cut test reads: its last word is all it needs, and cleaning a whole long line
# (the stutter pass) on every candidate of every request tripled the select step's time (cached as well: the
# same memory lines come back request after request).
_TAIL_CHARS = 200


@lru_cache(maxsize=16384)
def is_cut_short(text: str) -> bool:
    """Whether a real line ends where its speaker was interrupted before saying anything ("Mr. --", "So, just
    to --", "May I ask, Mister --"; tidied for reuse they read "Mr.", "So, just to."), or before finishing the
    one sentence it has ("You addressed it where, Footnote 1 of --"; "Sure, we're." unmarked). A longer line cut
    off at its end has said its piece (``finished_text`` drops its unfinished last sentence) and is not."""
    t = (text or "").strip()
    if not _CUT_OFF_RE.search(t):
        if is_question(t):  # a tag question ends on its subject: "..., do we?"
            return False
        # Only a note at the end ("[inaudible 00:12:34].", "(Laughter.)") needs the cleaning to find the last word.
        noted = t.rstrip(".!,;:\"'”’ ").endswith(("]", ")"))
        end = words(clean_transcript_text(t[-_TAIL_CHARS:]) if noted else t[-_TAIL_CHARS:])
        return bool(end) and end[-1].lower().replace("’", "'") in _NEVER_LAST_WORDS and len(sentences(t)) < 2
    said = words(clean_transcript_text(t))
    return len(said) < CUT_SHORT_WORDS or (said[-1].lower() in _DANGLING_WORDS and len(sentences(t)) < 2)


def is_question(text: str) -> bool:
    """Whether ``text`` (a sentence, or a line by its last one) ends with a question mark, closing quotes and
    brackets aside."""
    return text.rstrip("\"'”’) ").endswith("?")


# A request that asks for an answer as a question does: "Tell me about ...", "Walk us through ...", "Describe ...".
_REQUEST_RE = re.compile(r"^(?:(?:so|and|now|well|okay|ok|then),?\s+)?(?:please\s+)?"
                         r"(?:(?:tell|walk|talk|take|show|give)\s+(?:me|us)\b|(?:describe|explain)\b)", re.IGNORECASE)
# Fewer words than this is a tag ("Right?", "Is that it?") that asks nothing on its own.
ASK_MIN_WORDS = 4


def ask_sentence(line: str) -> str | None:
    """What ``line`` asks the other party to answer: its last question or request ("Tell me about ...") of
    ``ASK_MIN_WORDS`` words or more, as said (``finished_text``); None when it asks nothing or its speaker was
    cut off before finishing it."""
    if not line or is_cut_short(line):
        return None
    for s in reversed(sentences(finished_text(line))):
        asks = is_question(s) or _REQUEST_RE.match(s)
        if asks and len(words(s)) >= ASK_MIN_WORDS:
            return s
    return None


def finished_text(text: str) -> str:
    """A real line as the twin says it again: ``clean_transcript_text``, and when its speaker was cut off
    ("... for torts. The --"), without the unfinished last sentence if a finished one comes before it."""
    cleaned = clean_transcript_text(text)
    if _CUT_OFF_RE.search((text or "").strip()):
        said = sentences(cleaned)
        if len(said) >= 2:
            return " ".join(said[:-1])
    return cleaned


# A line restates an earlier one when most of its content words are that line's (Jaccard of stems) and it
# has enough of them to be more than "Yeah, okay." Among all the interviewer lines of the two dev corpora,
# a line restates one of the speaker's own last two lines in 0.02% of the podcast host's and 0.43% of the
# justices' (a question re-asked after an evasive answer: "Is there any way to comply with Section 5
# without using race?"); 0.5 would take in 1.05% of the justices', 0.7 misses near-copies retold in a
# compilation episode with a word changed.
RESTATE_SIMILARITY = 0.6
RESTATE_MIN_WORDS = 4


def restates(text: str, earlier: str) -> bool:
    """Whether ``text`` says ``earlier`` again, near-verbatim (case, punctuation and a few words aside)."""
    return len(stem_set(text)) >= RESTATE_MIN_WORDS and lexical_similarity(text, earlier) >= RESTATE_SIMILARITY


# The twin says a remembered line trimmed to length and edited, so what it said is often part of the line it
# remembers ("Don't you also have to say ...?" of a three-sentence line): saying that line would say it again.
# ``says_again`` counts a run of the line's words, or this share of a longer said line's distinct words. Real
# interviewers, so counted, say one of their own last two lines again in 1.1% of the justices' lines and 0.1%
# of the podcast host's, and a line they had said twice in their last 30 in 0.02% of the justices' and none of his.
SAID_PART_SHARE = 0.8
SAID_PART_MIN_WORDS = 8


@lru_cache(maxsize=8192)
def _said_form(text: str) -> tuple[str, frozenset[str]]:
    """``text``'s words lower-cased, a restart of up to three words said once ("with -- with" is "with", as
    ``clean_transcript_text`` has it, at a hundredth of its cost), single-spaced between two spaces; and their set.
    Cached like ``stem_set``: the same lines are compared at every request of a session."""
    said: list[str] = []
    for w in words(text):
        said.append(w.lower())
        for n in (1, 2, 3):
            if len(said) >= 2 * n and said[-n:] == said[-2 * n:-n]:
                del said[-n:]
                break
    return " " + " ".join(said) + " ", frozenset(said)


def says_again(line: str, said: str) -> bool:
    """Whether saying ``line`` (a remembered line, as it was said then) says ``said`` again: ``said`` is a run
    of its words (the line trimmed), holds ``SAID_PART_SHARE`` of its distinct words (the line edited: another
    address, "they" for a name), or restates it (``restates``). ``said`` needs ``RESTATE_MIN_WORDS`` words:
    "Got it." may come back."""
    # Each test needs most of the said line's content stems in the line (a run all of them, a restatement 60%):
    # the cached stem sets rule out most pairs before the first tidy-up and split of a new line, the cost here.
    theirs = stem_set(said)
    if theirs and len(theirs & stem_set(line)) < RESTATE_SIMILARITY * len(theirs):
        return False
    spoken, said_words = _said_form(said)
    if spoken.count(" ") <= RESTATE_MIN_WORDS:
        return False
    remembered, line_words = _said_form(line)
    if len(said_words) >= SAID_PART_MIN_WORDS:
        if len(said_words & line_words) >= SAID_PART_SHARE * len(said_words):
            return True
    elif spoken in remembered:
        return True
    return restates(line, said)


def repeats_words(text: str, source: str, n: int = 8) -> bool:
    """Whether ``text`` repeats ``n`` or more consecutive words of ``source`` (case and punctuation aside)."""
    said = set(ngrams((w.lower() for w in words(source)), n))
    return bool(said) and any(g in said for g in ngrams((w.lower() for w in words(text)), n))
