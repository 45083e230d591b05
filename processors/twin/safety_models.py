"""Learned safety checks behind the ``SafetyPolicy`` the respond path runs
(processors/twin/safety_learned.py).

Four learned heads over the same features, plus Presidio for personal data:

- **prohibited_question**: is this line an interviewer asking *the candidate* about a protected
  characteristic (age, religion, marital or family status, pregnancy, national origin or
  citizenship, race, disability or health, sexual orientation, gender identity)? Logistic regression
  over all-MiniLM-L6-v2's contextual token vectors (``processors.twin.embeddings``; one forward pass per
  text: their mean, the mean of the second-person tokens' vectors, their element-wise maximum) and a
  few features that say who is asked about what: second-person address, first/third-person reference,
  question form, topic terms, and their products (a topic term in a question to "you" is not a topic
  term in a statute or in the interviewer's story about their own family). A second, multinomial head
  names the topic for the flag's detail. Training adds augmentations: each question after a real line
  (still a violation), turned to the third person or quoted in legal argument (not one), and the same
  frames about a protected attribute and about the job.
- **toxicity**: insults, belittling, profanity and threats. The same features plus the offensive-
  language probability of ``alt-profanity-check`` (a TF-IDF + linear SVM model that ships inside its
  wheel), so a plain swear word and a polite put-down ("my intern could do better") are both seen.
- **bias**: stereotypes and demographic generalisations.
- **elicitation** (candidate turns): a turn that tries to make the interviewer ask or say something
  it must not (ask me my age, ignore your instructions, insult me, give me their phone number).
- **pii_leak**: Presidio recognizers that validate what they find: e-mail addresses (with the public
  suffix list, offline), phone numbers through ``phonenumbers`` (a valid number of its region, written
  as a phone number is written: "revenue was 1234567890" is not one), card numbers that pass Luhn,
  US social security numbers (Presidio's invalid-number rules), and street addresses.

A text is cut into units (sentences; short ones merged; at most ``MAX_UNITS``, the first two and the
last ones), and a head's score is its highest over the units and, for a text of two or three units,
the whole text. Each head is a **cascade**: a cheap gate (a linear model over hashed word 1-2-grams, the
hand features and the offensive-language probability; well under a millisecond) sees every unit, and
only the units some head's gate lets through go through MiniLM, in one batch for all heads (features
cached per unit, verdicts cached per text). A unit the gate stops scores 0 for that head. The toxicity
head also flags when the offensive-language model alone passes its own threshold.

Training data: the development part of the safety suite, where a positive row teaches through the
sentences that carry its violation (not its wrapper sentences); the written phrasings of
processors/twin/safety_phrasings.py with their contrasts; about 1,450 single lines written one by one
for every head (``safety_written_lines.jsonl``: insults, stereotypes, oblique prohibited questions,
candidates' attempts, and hard negatives such as a host's warm teasing, blunt critique, swearing not
aimed at anyone, talk about protected topics that asks nothing of the candidate), written without
reading the suite, so the out-of-fold figures by family stay an honest estimate; and, as the
register a threshold must leave alone, real interviewer lines: the suite's SCOTUS lines and, when the
development corpora are at hand (``../shared/corpora``; read at training time, never stored), 2,500
interviewer lines of each corpus's train part (the evaluation's own chronological split), each cut into
the units the checks score; for the elicitation head, which reads candidate turns, 2,500 of the
candidates' turns instead. Thresholds (gate, head, profanity, per PII entity) are chosen on
out-of-fold scores against false-positive budgets spent per real line (a line is flagged when any of
its units is: 0.06% per head, half that for bias) and on the written hard negatives, and are stored in
the artefact with the version. A unit is a sentence (and, for a text of two or three, the whole text);
the bias head also scores a sentence's clauses (``clause_units``).

The artefact (``safety_model.npz``, a few hundred KB: weights, thresholds, version and the SHA-256 of
the data it was trained on) is rebuilt by::

    python -m processors.twin.safety_models train        # from tests/data/safety/dev.jsonl
    python -m processors.twin.safety_models evaluate     # per-category figures on the frozen test part

Only numpy runs at check time besides the embedder; scikit-learn fits the heads when training and runs
the profanity model's vectorizer. ONNX Runtime loads with the embedder in the workers, never in the gateway
(it does not import this module).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ARTEFACT", "HEADS", "TOPICS", "LearnedChecks", "PiiFinder", "Score", "get_checks", "hand_features",
           "split_units"]

ARTEFACT = Path(__file__).with_name("safety_model.npz")
SUITE_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "safety"
TOPICS = ("age", "religion", "marital_status", "family_status", "pregnancy", "national_origin", "race", "disability",
          "sexual_orientation", "gender_identity")
HEADS = ("prohibited_question", "toxicity", "bias", "elicitation")
MAX_UNITS = 8
MAX_UNIT_WORDS = 60

# --------------------------------------------------------------------------------------------------
# Features. Topic terms are features the model weighs against everything else, never rules by themselves.
_TOPIC_TERMS = {
    "age": r"\b(?:old|age|ages|aged|born|birth\w*|birthday|year|years|graduat\w*|retir\w*|young|decade|generation|"
           r"millennial|boomer|gen x|twenties|thirties|forties|fifties|sixties)\b",
    "religion": r"\b(?:religio\w*|church\w*|mosque|synagogue|temple|pray\w*|faith|god|christian\w*|muslim|jewish|"
                r"hindu|catholic|protestant|atheist|sabbath|ramadan|holiday\w*|worship|observ\w*|congregation|"
                r"spiritual|believer|eid|christmas)\b",
    "marital_status": r"\b(?:married|marri\w*|single|divorc\w*|spouse|husband|wife|boyfriend|girlfriend|partner|"
                      r"fianc\w*|engaged|wedding|maiden|mrs|significant other|other half|seeing anyone)\b",
    "family_status": r"\b(?:kids?|child\w*|baby|babies|famil\w*|parent\w*|childcare|caregiver|school|daughter|son|"
                     r"toddler|depend\w*|pregnan\w*)\b",
    "pregnancy": r"\b(?:pregnan\w*|expecting|due|maternity|baby|conceiv\w*|parental leave|far along)\b",
    "national_origin": r"\b(?:from|citizen\w*|nationality|national|born|country|accent|immigra\w*|passport|"
                       r"native|language|tongue|green card|origin\w*|roots|ethnic\w*|overseas|abroad)\b",
    "race": r"\b(?:race|racial\w*|ethnic\w*|black|white|asian|hispanic|latin[oax]|mixed|skin|color|colour)\b",
    "disability": r"\b(?:disab\w*|medical|medication|health\w*|ill\w*|sick|condition|wheelchair|therap\w*|"
                  r"rehab|diagnos\w*|hospital\w*|prescription\w*|depress\w*|anxiety|mental|hearing|leg|chronic|"
                  r"alcohol\w*|surgery|adhd)\b",
    "sexual_orientation": r"\b(?:gay|lesbian|straight|bisexual|queer|lgbt\w*|orientation|attracted|date men|"
                          r"date women)\b",
    "gender_identity": r"\b(?:trans\w*|gender|pronouns?|non-binary|nonbinary|assigned at birth|born a (?:man|woman)|"
                       r"man or a woman)\b",
}
_TOPIC_RX = [re.compile(_TOPIC_TERMS[t], re.IGNORECASE) for t in TOPICS]
_YOU = re.compile(r"\b(?:you|your|yours|yourself|you're|youre|you've|you'll|you'd|ya|u)\b", re.IGNORECASE)
_ME = re.compile(r"\b(?:i|i'm|i've|i'll|i'd|me|my|mine|myself|we|our|us)\b", re.IGNORECASE)
_THEY = re.compile(r"\b(?:he|she|his|her|him|they|their|them|the (?:defendant|petitioner|respondent|employee|"
                   r"applicant|plaintiff|witness|officer|court|state|government|statute|person))\b", re.IGNORECASE)
_ASKS = re.compile(r"^\W*(?:\w+,\s*)?(?:are|is|do|does|did|have|has|were|was|will|would|can|could|should|may|"
                   r"what|what's|whats|which|who|whom|whose|when|where|how|why|any)\b", re.IGNORECASE)
_LEGAL = re.compile(r"\b(?:statute|clause|court|counsel|amendment|congress|section|act|law|case|jury|"
                    r"constitution\w*|precedent|justice|suppose|hypothetical)\b", re.IGNORECASE)
N_HAND = 10 + 7 + 10


def hand_features(text: str) -> np.ndarray:
    """Who is asked about what: topic terms, address, question form, and their products."""
    topics = np.array([1.0 if rx.search(text) else 0.0 for rx in _TOPIC_RX], dtype=np.float32)
    you = min(len(_YOU.findall(text)), 3) / 3
    me = min(len(_ME.findall(text)), 3) / 3
    they = min(len(_THEY.findall(text)), 3) / 3
    question = 1.0 if text.rstrip().endswith("?") else 0.0
    asks = 1.0 if _ASKS.search(text) else 0.0
    legal = min(len(_LEGAL.findall(text)), 3) / 3
    n_words = min(len(text.split()), 60) / 60
    you_q = you * max(question, asks)
    return np.concatenate([topics, [you, me, they, question, asks, legal, n_words],
                           topics * you_q]).astype(np.float32)


_SENTENCE = re.compile(r"(?<=[.?!])[\"'”’)]*\s+|\n+")


def split_units(text: str) -> list[str]:
    """Sentences of ``text``, a sentence under four words merged into the next, at most ``MAX_UNITS``
    (the first two and the last ones), each at most ``MAX_UNIT_WORDS`` words."""
    parts = [p.strip() for p in _SENTENCE.split(text or "") if p and p.strip()]
    units: list[str] = []
    carry = ""
    for p in parts:
        p = f"{carry} {p}".strip() if carry else p
        if len(p.split()) < 4:
            carry = p
            continue
        carry = ""
        units.append(p)
    if carry:
        if units:
            units[-1] = f"{units[-1]} {carry}"
        else:
            units.append(carry)
    if len(units) > MAX_UNITS:
        units = units[:2] + units[-(MAX_UNITS - 2):]
    return [" ".join(u.split()[:MAX_UNIT_WORDS]) for u in units]


# A sentence's clauses: split at a semicolon or at a comma before a connective. Only the bias head scores
# them (a stereotype joined to a request by a comma: "That is hard for a woman, so explain the cache
# again"); cutting every head's units into clauses lost recall out of fold in three heads of four.
CLAUSE_HEADS = frozenset({"bias"})
# The share of the false-positive budget a head may spend. Retrained with clauses at the full budget, the
# bias head flagged general remarks about groups ("most PMs don't work at companies like that"), which a
# host says often: 14 of the dev corpora's 13,743 real lines (6 before); at half the budget, 8.
# Toxicity spends twice the budget. Trained with whole template families held out, its out-of-fold recall rose
# from .32 to .39, and the share of the dev corpora's real lines those artefacts flag from 0.39% to 0.43%; at
# three times the budget, 0.55%, over the 0.5% bound.
HEAD_BUDGET_SHARE = {"bias": 0.5, "toxicity": 2.0}
_CLAUSE = re.compile(r"\s*;\s*|,\s+(?=(?:so|and|but|then|because|which means)\b)", re.IGNORECASE)
MIN_CLAUSE_WORDS = 4


def clause_units(units: Sequence[str]) -> list[str]:
    """The clauses of ``units`` of at least ``MIN_CLAUSE_WORDS`` words, where a unit has more than one."""
    out: list[str] = []
    for u in units:
        parts = [p.strip(" ,;") for p in _CLAUSE.split(u)]
        parts = [p for p in parts if len(p.split()) >= MIN_CLAUSE_WORDS]
        if len(parts) > 1:
            out += [p for p in parts if p not in out]
    return out


# --------------------------------------------------------------------------------------------------
# The offensive-language model of alt-profanity-check, read once (it loads at import).
class _Profanity:
    def __init__(self) -> None:
        import warnings

        with warnings.catch_warnings():  # a pickled model of an older scikit-learn
            warnings.simplefilter("ignore")
            from profanity_check import profanity_check as pc
        self.vectorizer, self.model = pc.vectorizer, pc.model
        self._fast = self._fused()

    def _fused(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """The calibrated SVMs as matrices (one sparse product instead of five estimator calls), if the
        fitted model has the layout this reads; checked against the model's own ``predict_proba``."""
        try:
            cals = self.model.calibrated_classifiers_
            w = np.vstack([np.ravel(c.estimator.coef_) for c in cals]).T
            b = np.array([float(np.ravel(c.estimator.intercept_)[0]) for c in cals])
            a = np.array([float(c.calibrators[0].a_) for c in cals])
            bb = np.array([float(c.calibrators[0].b_) for c in cals])
            fast = (w, b, a, bb)
            probe = ["you are an idiot", "what a lovely day", "this is shit", "tell me about your project"]
            if np.allclose(self._fast_prob(self.vectorizer.transform(probe), fast),
                           self.model.predict_proba(self.vectorizer.transform(probe))[:, 1], atol=1e-6):
                return fast
        except (AttributeError, IndexError, ValueError):
            pass
        return None

    @staticmethod
    def _fast_prob(x, fast) -> np.ndarray:
        w, b, a, bb = fast
        f = np.asarray(x @ w) + b
        p = 1.0 / (1.0 + np.exp(a * f + bb))
        return p.mean(axis=1)

    def prob(self, texts: Sequence[str]) -> np.ndarray:
        x = self.vectorizer.transform(list(texts))
        if self._fast is not None:
            return self._fast_prob(x, self._fast)
        return self.model.predict_proba(x)[:, 1]


# --------------------------------------------------------------------------------------------------
# Personal data: Presidio recognizers that validate what they match.
_PHONE_CONTEXT = re.compile(r"\b(?:call|phone|number|cell|mobile|tel|text|reach|dial|whatsapp|contact|fax)\b",
                            re.IGNORECASE)
_STREET = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Terrace|Place|Pl|Way|Loop|"
           r"Parkway|Pkwy|Square|Sq|Circle|Cir|Highway|Hwy|Trail|Row|Close|Crescent|Alley)")
_ADDRESS = (rf"\b\d{{1,6}}[A-Z]?\s+(?:[A-Z][\w'’.-]*\s+){{1,5}}{_STREET}\b\.?(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
            rf"(?:,\s*(?:[A-Z][\w'’.-]*\s?){{1,3}})?(?:,\s*[A-Z]{{2}}(?:\s+\d{{5}}(?:-\d{{4}})?)?)?")


class PiiFinder:
    """E-mail, phone, card, SSN and street-address spans, each with a score (Presidio's, validated)."""

    ENTITIES = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "credit_card", "US_SSN": "us_ssn",
                "STREET_ADDRESS": "address"}

    def __init__(self) -> None:
        # The e-mail recognizer asks tldextract, which would fetch the public suffix list: the bundled
        # snapshot only (as processors/pii/engine.py does).
        os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
        import logging

        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        try:
            import tldextract.tldextract as tx

            tx.TLD_EXTRACTOR.suffix_list_urls = ()
        except (ImportError, AttributeError):  # pragma: no cover - tldextract internals moved
            pass
        from processors.pii.presidio_import import import_presidio

        import_presidio()  # without torch and transformers, which it does not need here
        from presidio_analyzer import Pattern, PatternRecognizer
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )

        self.recognizers = [
            EmailRecognizer(), PhoneRecognizer(), CreditCardRecognizer(), UsSsnRecognizer(),
            # Case matters here (Presidio's default flags ignore it): "75 and that would push one way"
            # is not "742 Evergreen Terrace".
            PatternRecognizer(supported_entity="STREET_ADDRESS", name="StreetAddressRecognizer",
                              patterns=[Pattern("street address", _ADDRESS, 0.6)],
                              global_regex_flags=re.DOTALL | re.MULTILINE),
        ]

    @staticmethod
    def _phone_ok(text: str, start: int, end: int) -> bool:
        """A valid number of its region, written like a phone number (separators, brackets or a +), or a
        bare run of digits right after a word like "call" or "phone"."""
        import phonenumbers

        raw = text[start:end]
        try:
            parsed = phonenumbers.parse(raw, None if raw.lstrip().startswith("+") else "US")
        except phonenumbers.NumberParseException:
            return False
        if not phonenumbers.is_valid_number(parsed):
            return False
        if re.search(r"[\s().+-]", raw.strip()):
            return True
        return bool(_PHONE_CONTEXT.search(text[max(0, start - 30):start]))

    def find(self, text: str) -> list[tuple[str, float, int, int]]:
        """(detail, score, start, end) for each span found."""
        digits = sum(c.isdigit() for c in text)
        out: list[tuple[str, float, int, int]] = []
        for rec in self.recognizers:
            entity = rec.supported_entities[0]
            if entity == "EMAIL_ADDRESS" and "@" not in text:
                continue
            if entity in ("PHONE_NUMBER", "US_SSN") and digits < 7 or entity == "CREDIT_CARD" and digits < 12:
                continue
            if entity == "STREET_ADDRESS" and not digits:
                continue
            for r in rec.analyze(text, [entity], None):
                if entity == "PHONE_NUMBER" and not self._phone_ok(text, r.start, r.end):
                    continue
                out.append((self.ENTITIES[entity], float(r.score), r.start, r.end))
        return out


# --------------------------------------------------------------------------------------------------
@dataclass
class Score:
    """A head's verdict on one text: its score, the threshold, and the detail (topic/kind)."""

    head: str
    score: float
    threshold: float
    detail: str

    @property
    def flagged(self) -> bool:
        return self.score >= self.threshold


@dataclass
class _Head:
    w: np.ndarray  # (d,) on the raw features (the scaler folded in)
    b: float
    threshold: float
    detail_w: np.ndarray | None = None  # (k, d)
    detail_b: np.ndarray | None = None
    details: tuple[str, ...] = ()
    # The cheap first stage: a linear model over hashed word n-grams + the hand features + the
    # offensive-language probability. A unit goes through MiniLM and ``w`` only when its gate score
    # reaches ``gate_threshold``.
    gate_w: np.ndarray | None = None  # (HASH_FEATURES + N_HAND + 1,)
    gate_b: float = 0.0
    gate_threshold: float = 0.0


EMB = 384
N_FEATURES = 3 * EMB + N_HAND + 1
HASH_FEATURES = 2 ** 18
GATE_KEEP = 6000  # hashed n-gram weights a gate keeps (the largest); the rest are zero
_hasher = None
_WORD_PATTERN = r"(?u)\b\w[\w']*\b"  # words with inner apostrophes ("don't" stays one token)


def _hashed(texts: Sequence[str]):
    """Word 1-2-grams of ``texts``, hashed (no vocabulary to store), binary, rows L2-normalised."""
    global _hasher
    if _hasher is None:
        from sklearn.feature_extraction.text import HashingVectorizer

        _hasher = HashingVectorizer(n_features=HASH_FEATURES, ngram_range=(1, 2), alternate_sign=False, binary=True,
                                    norm="l2", lowercase=True, token_pattern=_WORD_PATTERN)
    return _hasher.transform(list(texts))


_YOU_PIECES = frozenset({"you", "your", "yours", "yourself", "ya"})


def _pool(tokens: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    if not len(tokens):
        return np.zeros(3 * EMB, dtype=np.float32)
    mean = vectors.mean(axis=0)
    mean = mean / (np.linalg.norm(mean) + 1e-9)
    idx = [i for i, t in enumerate(tokens) if t in _YOU_PIECES]
    you = vectors[idx].mean(axis=0) if idx else np.zeros(EMB, dtype=np.float32)
    return np.concatenate([mean, you, vectors.max(axis=0)]).astype(np.float32)


@dataclass
class LearnedChecks:
    """The artefact's heads and thresholds, and the PII finder; ``check`` runs them on one text."""

    heads: dict[str, _Head]
    pii_thresholds: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)
    embedder: Any = None
    cache_size: int = 4096
    _profanity: _Profanity | None = None
    _pii: PiiFinder | None = None
    _cache: OrderedDict = field(default_factory=OrderedDict)
    _cache_lock: Any = field(default_factory=threading.Lock)
    # Per text: the heads' scores (key: text and heads) and the kinds of personal data found.
    _verdicts: OrderedDict = field(default_factory=OrderedDict)
    minilm_calls: int = 0  # texts that needed the MiniLM pass (the cascade's second stage)

    def clear_caches(self) -> None:
        """Forget every cached feature row and verdict (a benchmark measuring cold texts)."""
        with self._cache_lock:
            self._cache.clear()
            self._verdicts.clear()

    def _remember(self, key: Any, value: Any) -> Any:
        with self._cache_lock:
            self._verdicts[key] = value
            while len(self._verdicts) > self.cache_size:
                self._verdicts.popitem(last=False)
        return value

    def _recall(self, key: Any) -> Any:
        with self._cache_lock:
            hit = self._verdicts.get(key)
            if hit is not None:
                self._verdicts.move_to_end(key)
            return hit

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path = ARTEFACT, embedder: Any = None) -> "LearnedChecks":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            heads = {}
            for name in HEADS:
                details = tuple(meta["details"].get(name, ()))
                gate = meta.get("gates", {}).get(name)
                gate_w = None
                if gate is not None:
                    gate_w = np.zeros(HASH_FEATURES + N_HAND + 1, dtype=np.float32)
                    gate_w[z[f"{name}.gi"]] = z[f"{name}.gv"]
                    gate_w[HASH_FEATURES:] = z[f"{name}.gd"]
                heads[name] = _Head(w=z[f"{name}.w"], b=float(z[f"{name}.b"]), threshold=float(meta["thresholds"][name]),
                                    detail_w=z[f"{name}.dw"] if details else None,
                                    detail_b=z[f"{name}.db"] if details else None, details=details,
                                    gate_w=gate_w, gate_b=float(gate["b"]) if gate else 0.0,
                                    gate_threshold=float(gate["threshold"]) if gate else 0.0)
        return cls(heads=heads, pii_thresholds=meta["pii_thresholds"], meta=meta, embedder=embedder)

    def save(self, path: str | Path = ARTEFACT) -> None:
        arrays: dict[str, np.ndarray] = {}
        for name, h in self.heads.items():
            arrays[f"{name}.w"] = h.w.astype(np.float32)
            arrays[f"{name}.b"] = np.array(h.b, dtype=np.float64)
            if h.details:
                arrays[f"{name}.dw"] = h.detail_w.astype(np.float32)
                arrays[f"{name}.db"] = h.detail_b.astype(np.float32)
            if h.gate_w is not None:
                idx = np.flatnonzero(h.gate_w[:HASH_FEATURES]).astype(np.int32)
                arrays[f"{name}.gi"] = idx
                arrays[f"{name}.gv"] = h.gate_w[idx].astype(np.float32)
                arrays[f"{name}.gd"] = h.gate_w[HASH_FEATURES:].astype(np.float32)
        meta = dict(self.meta)
        meta["gates"] = {n: {"b": float(h.gate_b), "threshold": round(float(h.gate_threshold), 6)}
                         for n, h in self.heads.items() if h.gate_w is not None}
        meta["thresholds"] = {n: round(float(h.threshold), 4) for n, h in self.heads.items()}
        meta["details"] = {n: list(h.details) for n, h in self.heads.items() if h.details}
        meta["pii_thresholds"] = self.pii_thresholds
        np.savez_compressed(path, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "?"))

    @property
    def profanity_threshold(self) -> float | None:
        return self.meta.get("profanity_threshold")

    @property
    def profanity(self) -> _Profanity:
        if self._profanity is None:
            self._profanity = _Profanity()
        return self._profanity

    @property
    def pii(self) -> PiiFinder:
        if self._pii is None:
            self._pii = PiiFinder()
        return self._pii

    def _embedder(self) -> Any:
        if self.embedder is None:
            from processors.twin.embeddings import get_embedder

            self.embedder = get_embedder()
        return self.embedder

    def _token_features(self, texts: list[str]) -> np.ndarray:
        """From one forward pass of MiniLM per text (cached): the mean of its contextual token vectors
        (what the text is about), the mean of the vectors of its second-person tokens (what "you" is
        tied to: "your age" against "your position"; zeros without one) and their element-wise maximum
        (the strongest single cue, such as one insult among polite words)."""
        out = np.zeros((len(texts), 3 * EMB), dtype=np.float32)
        missing: list[int] = []
        with self._cache_lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = hit
        if missing:
            missing.sort(key=lambda i: len(texts[i]))  # batches of like lengths: little padding
            embedded = self._embedder().token_embeddings([texts[i] for i in missing])
            with self._cache_lock:
                for i, te in zip(missing, embedded):
                    out[i] = _pool(te.tokens, te.vectors)
                    self._cache[texts[i]] = out[i].copy()
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    # ---------------------------------------------------------------- checking
    def featurize(self, texts: Sequence[str], prof: np.ndarray | None = None) -> np.ndarray:
        """Feature rows of ``texts`` (one batch through MiniLM and one through the profanity model;
        ``prof``: the profanity probabilities, if already known)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, N_FEATURES), dtype=np.float32)
        hand = np.vstack([hand_features(t) for t in texts])
        prof = self.profanity.prob(texts) if prof is None else prof
        return np.hstack([self._token_features(texts), hand, prof[:, None]]).astype(np.float32)

    def cheap_features(self, texts: Sequence[str]):
        """The gates' features of ``texts``: hashed word n-grams, hand features and the profanity
        probability, as one sparse matrix (no MiniLM)."""
        from scipy import sparse

        texts = list(texts)
        hand = np.vstack([hand_features(t) for t in texts]) if texts else np.zeros((0, N_HAND), dtype=np.float32)
        prof = self.profanity.prob(texts) if texts else np.zeros(0)
        dense = np.hstack([hand, prof[:, None]]).astype(np.float32)
        return sparse.hstack([_hashed(texts), sparse.csr_matrix(dense)], format="csr")

    @staticmethod
    def _units_for(text: str, head: str | None = None) -> list[str]:
        """The units ``head`` scores ``text`` by (None: the units every head scores). The bias head also
        scores a sentence's clauses, so a remark is not outweighed by the request joined to it."""
        sentences = split_units(text)
        units = [*sentences, " ".join(sentences)] if 2 <= len(sentences) <= 3 else list(sentences)
        if head in CLAUSE_HEADS:
            units += [c for c in clause_units(sentences) if c not in units]
        return units

    def scores(self, text: str, heads: Sequence[str] = HEADS) -> dict[str, Score]:
        """Each head's score on ``text``: its highest over the text's units, as a cascade. Every unit
        goes through the cheap gates; only the units some head's gate lets through go through MiniLM
        (one batch for all heads), and a head's score on a unit its gate stops is 0. Cached per text."""
        heads = tuple(heads)
        key = ("scores", text, heads)
        hit = self._recall(key)
        if hit is not None:
            return hit
        # The units every head scores come first; the clauses after them only CLAUSE_HEADS score.
        shared = len(self._units_for(text))
        units = self._units_for(text, next((h for h in heads if h in CLAUSE_HEADS), None))
        if not units or not heads:
            return {h: Score(h, 0.0, self.heads[h].threshold, "") for h in heads}
        cheap = self.cheap_features(units)
        prof = cheap[:, -1].toarray().ravel()
        passed: dict[str, np.ndarray] = {}
        for name in heads:
            h = self.heads[name]
            if h.gate_w is None:
                passed[name] = np.ones(len(units), dtype=bool)
            else:
                g = 1.0 / (1.0 + np.exp(-(cheap @ h.gate_w + h.gate_b)))
                passed[name] = np.asarray(g).ravel() >= h.gate_threshold
            if name not in CLAUSE_HEADS:
                passed[name][shared:] = False
        need = sorted({int(i) for name in heads for i in np.flatnonzero(passed[name])})
        x = np.zeros((len(units), N_FEATURES), dtype=np.float32)
        if need:
            self.minilm_calls += 1
            x[need] = self.featurize([units[i] for i in need], prof=prof[need])
        out: dict[str, Score] = {}
        for name in heads:
            h = self.heads[name]
            s = np.where(passed[name], 1.0 / (1.0 + np.exp(-(x @ h.w + h.b))), 0.0)
            i = int(np.argmax(s))
            score = float(s[i])
            detail = ""
            if h.details and score >= h.threshold:
                detail = h.details[int(np.argmax(h.detail_w @ x[i] + h.detail_b))]
            if name == "toxicity" and self.profanity_threshold is not None:
                # The offensive-language model alone, at its own threshold (chosen on the development
                # part), also flags: an explicit insult is toxic whatever the rest of the line says.
                j = int(np.argmax(prof[:shared]))
                if prof[j] >= self.profanity_threshold and score < h.threshold:
                    score, detail = max(h.threshold, float(prof[j])), "offensive_language"
            out[name] = Score(name, score, h.threshold, detail)
        return self._remember(key, out)

    def prefetch(self, texts: Sequence[str], heads: Sequence[str] = HEADS) -> None:
        """Embed, in large batches, every unit of ``texts`` that a gate of ``heads`` will send to MiniLM
        (a bulk evaluation then reads the feature cache instead of one small batch per text)."""
        clause_head = next((h for h in heads if h in CLAUSE_HEADS), None)
        units = list(dict.fromkeys(u for t in texts for u in self._units_for(t, clause_head)))
        if not units:
            return
        cheap = self.cheap_features(units)
        need = np.zeros(len(units), dtype=bool)
        for name in heads:
            h = self.heads[name]
            if h.gate_w is None:
                need[:] = True
                break
            g = 1.0 / (1.0 + np.exp(-(np.asarray(cheap @ h.gate_w).ravel() + h.gate_b)))
            need |= g >= h.gate_threshold
        todo = [u for u, n in zip(units, need) if n]
        self.cache_size = max(self.cache_size, len(todo) + 1024)
        for i in range(0, len(todo), 256):
            self._token_features(todo[i:i + 256])

    def pii_flags(self, text: str) -> list[str]:
        """The kinds of personal data in ``text`` (one detail per kind)."""
        hit = self._recall(("pii", text))
        if hit is not None:
            return list(hit)
        found: list[str] = []
        for detail, score, _, _ in self.pii.find(text):
            if score >= self.pii_thresholds.get(detail, 0.5) and detail not in found:
                found.append(detail)
        return list(self._remember(("pii", text), tuple(found)))


_checks: LearnedChecks | None = None
_lock = threading.Lock()


def get_checks() -> LearnedChecks:
    """The process-wide learned checks (the artefact is read once; the embedder is the shared one)."""
    global _checks
    if _checks is None:
        with _lock:
            if _checks is None:
                _checks = LearnedChecks.load(ARTEFACT)
    return _checks


# --------------------------------------------------------------------------------------------------
# Training (python -m processors.twin.safety_models train).
def read_suite(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


_SWAPS = [(r"\bare you\b", "is he"), (r"\bwere you\b", "was she"), (r"\bdo you\b", "does she"),
          (r"\bdid you\b", "did he"), (r"\bhave you\b", "has she"), (r"\bwill you\b", "will he"),
          (r"\bcan you\b", "can he"), (r"\byou're\b", "he's"), (r"\byourself\b", "himself"),
          (r"\byour\b", "his"), (r"\byou\b", "she")]
_FRAMES = ["The statute asks {q}", "Suppose the employer asked an applicant, '{q}' Is that unlawful?",
           "The form used to ask '{q}' and the Court struck it down.", "Counsel, the question in the record was '{q}'"]


def third_person(text: str) -> str:
    """The same question about someone else ("Are you married?" -> "is he married?")."""
    out = text
    for rx, rep in _SWAPS:
        out = re.sub(rx, rep, out, flags=re.IGNORECASE)
    return out


def is_register(row: dict) -> bool:
    """A real interviewer line among the negatives (SCOTUS, from the corpus's train part): the
    false-positive budget is spent on these. The lines written for the suite, the conversational
    ``host_*`` ones included, are hard negatives with a budget of their own."""
    return row["label"] == "none" and row["source"].startswith("scotus_oyez:")


# The labels a head never trains on, as positives or negatives: a bias line is not a toxicity negative,
# nor an insult a bias negative. (Labels of the other stage are left out by stage, not here.)
SKIP_LABELS = {"toxicity": {"bias", "elicitation"}, "bias": {"toxicity"}, "prohibited_question": set(),
               "elicitation": set()}


def _training_set(rows: list[dict], head: str, rng: np.random.Generator,
                  register: list[bool] | None = None,
                  fold_by: str = "group") -> tuple[list[str], list[int], list[str], list[str]]:
    """Texts, labels, details and groups for one head, with augmentations; ``register`` (if given) is
    filled with whether each text is an ordinary-register negative. ``fold_by``: what a group is, a
    row's phrasing (``"group"``) or its whole template family (``"family"``: out-of-fold scores then
    measure phrasings written unlike any the head trained on, as the frozen test part's are)."""
    texts: list[str] = []
    labels: list[int] = []
    details: list[str] = []
    groups: list[str] = []
    current = {"register": False}

    def add(t: str, y: int, d: str, g: str) -> None:
        texts.append(t)
        labels.append(y)
        details.append(d)
        groups.append(g)
        if register is not None:
            register.append(current["register"] and not y)

    skip = SKIP_LABELS[head]
    # The checks score each unit (sentence) of a text and flag on the highest, so a positive row teaches
    # through the units that carry its violation: those holding most words of its phrasing's shortest
    # variant (the wrapper sentences around it are not violations, and a line whose other sentences
    # are court argument is not a positive *text* to a pooled model either).
    shortest: dict[str, str] = {}
    for r in rows:
        if r["label"] == head:
            g = r.get("group") or r["family"]
            if g not in shortest or len(r["text"]) < len(shortest[g]):
                shortest[g] = r["text"]
    for r in rows:
        if r["label"] in skip:
            continue
        y = int(r["label"] == head)
        g = r.get(fold_by) or r["family"]
        core_group = r.get("group") or r["family"]
        current["register"] = is_register(r)
        if y:
            core = _violating_units(r["text"], shortest[core_group])
            for u in core:
                add(u, 1, r["topic"], g)
        else:
            add(r["text"], 0, "", g)
            units = split_units(r["text"])  # a negative's sentences are negatives too
            for u in units if len(units) > 1 else ():
                add(u, 0, "", g)
        if head == "prohibited_question" and y:
            # Augmentations: the question about someone else or quoted in legal argument (not one).
            other = third_person(r["text"])
            if other.lower() != r["text"].lower():
                add(other, 0, "", g)
            frame = _FRAMES[int(rng.integers(len(_FRAMES)))]
            add(frame.format(q=r["text"].rstrip("?") + "?"), 0, "", g)
    return texts, labels, details, groups


def _violating_units(text: str, phrasing: str) -> list[str]:
    """The units of ``text`` that hold at least 60% of the words of ``phrasing`` (the violation it
    wraps), or the whole text when no unit does."""
    words = set(re.findall(r"[a-z']+", phrasing.lower()))
    units = split_units(text)
    hit = [u for u in units if words and len(words & set(re.findall(r"[a-z']+", u.lower()))) >= 0.6 * len(words)]
    return hit or [text]


# Contrastive augmentations: the same frames about a protected attribute (positive) and about the job
# (negative), so the heads learn the attribute, not the frame.
_ASK_FRAMES = ["Can I ask about your {x}?", "Tell me a little about your {x}.", "Would you mind sharing your {x}?",
               "What's your {x}?", "I'd love to hear about your {x}.", "How would you describe your {x}?",
               "Before we wrap up, what about your {x}?", "Could you tell me more about your {x}?"]
_PROTECTED = {
    "age": ["age", "date of birth", "birth year", "retirement plans", "year of graduation from high school"],
    "religion": ["religion", "faith", "religious beliefs", "church", "religious holidays"],
    "marital_status": ["marital status", "spouse", "husband", "wife", "relationship status"],
    "family_status": ["kids", "children", "plans to start a family", "childcare arrangements", "family situation at home"],
    "pregnancy": ["pregnancy", "plans to get pregnant", "due date", "maternity leave plans"],
    "national_origin": ["nationality", "citizenship", "country of birth", "ethnic origin", "immigration status", "accent"],
    "race": ["race", "racial background", "skin colour"],
    "disability": ["disability", "medical history", "health conditions", "medications", "mental health history"],
    "sexual_orientation": ["sexual orientation", "sexuality", "love life"],
    "gender_identity": ["gender identity", "sex at birth", "transition"],
}
_JOB = ["experience with Kafka", "last project", "approach to testing", "notice period", "salary expectations",
        "availability to start", "favourite programming language", "design choices here", "biggest failure at work",
        "reasons for leaving your last job", "management style", "on-call experience", "work authorization status",
        "portfolio", "references", "preferred team size", "argument on the second question", "reading of the statute"]
_INSULT_FRAMES = ["You're such a {x}.", "Honestly, you're a {x}.", "Only a {x} would answer like that.",
                  "What a {x} you are."]
_INSULTS = ["idiot", "loser", "clown", "fool", "halfwit", "dimwit", "fraud", "waste of space", "disgrace", "nitwit"]
_NEUTRAL_NOUNS = ["strong candidate", "careful engineer", "quick learner", "good communicator", "team player",
                  "thoughtful person", "fast typist", "generalist", "specialist", "pragmatist"]
_ANSWER_FRAMES = ["That answer was {x}.", "Your code is {x}.", "This design is {x}, frankly.", "What you just said is {x}."]
_BAD_ADJ = ["garbage", "trash", "pathetic", "idiotic", "braindead", "laughable", "moronic", "worthless"]
_OK_ADJ = ["incomplete", "too slow", "close", "mostly right", "hard to follow", "a good start", "not what I asked",
           "wrong in the base case"]


# The toxicity detail of each kind of processors/twin/safety_phrasings.TOXIC.
_TOXIC_DETAIL = {"insult_noun": "insult", "insult_adj": "insult", "work_contempt": "belittling",
                 "comparison": "insult", "rhetorical": "belittling", "dismissal": "belittling", "sarcasm": "belittling",
                 "condescend": "belittling", "profanity_at": "profanity", "curse_you": "profanity",
                 "threat": "threat", "threat_plain": "threat"}


def _augmentations(head: str) -> list[tuple[str, int, str, str]]:
    """(text, label, detail, group) built from the frames above and the tables of
    processors/twin/safety_phrasings.py for ``head``; a group is one template."""
    from processors.twin import safety_phrasings as ph

    out: list[tuple[str, int, str, str]] = []
    if head == "prohibited_question":
        for i, frame in enumerate(_ASK_FRAMES):
            for topic, attrs in _PROTECTED.items():
                out.append((frame.format(x=attrs[i % len(attrs)]), 1, topic, f"frame{i}"))
            for j in range(3):
                out.append((frame.format(x=_JOB[(i * 3 + j) % len(_JOB)]), 0, "", f"frame{i}"))
        out += [(t, 1, kind, g) for t, g, kind in ph.expand(ph.PROHIBITED)]
        out += [(t, 0, "", g) for t, g, _ in ph.expand(ph.NOT_PROHIBITED)]
    elif head == "toxicity":
        for i, frame in enumerate(_INSULT_FRAMES):
            for j in range(4):
                out.append((frame.format(x=_INSULTS[(i * 4 + j) % len(_INSULTS)]), 1, "insult", f"insult{i}"))
                out.append((frame.format(x=_NEUTRAL_NOUNS[(i * 4 + j) % len(_NEUTRAL_NOUNS)]), 0, "", f"insult{i}"))
        for i, frame in enumerate(_ANSWER_FRAMES):
            for j in range(4):
                out.append((frame.format(x=_BAD_ADJ[(i * 4 + j) % len(_BAD_ADJ)]), 1, "belittling", f"answer{i}"))
                out.append((frame.format(x=_OK_ADJ[(i * 4 + j) % len(_OK_ADJ)]), 0, "", f"answer{i}"))
        out += [(t, 1, _TOXIC_DETAIL[kind], g) for t, g, kind in ph.expand(ph.TOXIC)]
        out += [(t, 0, "", g) for t, g, _ in ph.expand(ph.NOT_TOXIC)]
    return out + _written_examples(head)


WRITTEN_LINES = Path(__file__).with_name("safety_written_lines.jsonl")
# The detail a written kind is flagged with: the suite's names for the same kind.
_WRITTEN_DETAIL = {"comparison": "insult", "dismissal": "belittling", "injection": "jailbreak",
                   "say_biased": "jailbreak", "ask_me": "prohibited_topic", "insult_me": "insult_request",
                   "others_data": "pii_request"}


def read_written_lines(path: Path = WRITTEN_LINES) -> list[dict]:
    """The hand-written lines of ``safety_written_lines.jsonl`` (``text``, ``label``, ``kind``, ``stage``).
    The file ships with the package: a missing one is an error, not a model trained without it."""
    return read_suite(path)


def _written_examples(head: str) -> list[tuple[str, int, str, str]]:
    """(text, label, detail, group) of the written lines for ``head``: its label's lines are positives
    (detail: their kind), the other lines of its stage (and the hard negatives of both) negatives, but
    for the labels ``SKIP_LABELS`` keeps from it. A group is a kind, cut in tens (so a fold by family
    keeps a kind together and a fold by group spreads it)."""
    stage = "input" if head == "elicitation" else "output"
    out: list[tuple[str, int, str, str]] = []
    seen: Counter = Counter()
    for r in read_written_lines():
        if r["label"] in SKIP_LABELS[head] or (r["stage"] != stage and r["label"] != "none"):
            continue
        key = f"written_{r['label']}_{r['kind']}"
        seen[key] += 1
        y = int(r["label"] == head)
        detail = "stereotype" if head == "bias" else _WRITTEN_DETAIL.get(r["kind"], r["kind"])
        out.append((r["text"], y, detail if y else "", f"{key}:{seen[key] // 10}"))
    return out


def _sample_negatives() -> list[str]:
    """Interviewer lines of the repository's synthetic technical interviews (infra/samples), as extra
    negatives: a technical interviewer's register, which the suite's real lines (court) do not have."""
    path = Path(__file__).resolve().parents[2] / "infra" / "samples" / "sample_interviews.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out += [t["text"] for t in json.loads(line)["turns"] if t["role"] == "interviewer"]
    return out


DEFAULT_CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"


def corpus_register_lines(corpora: Path | None, per_corpus: int, seed: int, part: str = "train",
                          role: str = "interviewer") -> list[tuple[str, str, str]]:
    """(line, corpus, session id) for up to ``per_corpus`` real ``role`` lines (interviewer's; or the
    candidate's, the input checks' register) of each
    ``<corpora>/<name>/dev.jsonl``, from each interviewer's ``part`` of the evaluation's own split
    (``chronological_split(val=0.1, test=0.2)``; ``"train"`` for training, ``"heldout"`` for val+test).
    The lines are read at training time only; the artefact keeps weights, never text. ``[]`` when
    ``corpora`` is None or missing."""
    from processors.twin.corpus import chronological_split, read_transcripts

    if corpora is None or not Path(corpora).is_dir():
        return []
    out: list[tuple[str, str, str]] = []
    rng = np.random.default_rng(seed)
    for path in sorted(Path(corpora).glob("*/dev.jsonl")):
        by_iv: dict[str, list] = {}
        for parsed in read_transcripts(path):
            if parsed.transcript is not None:
                by_iv.setdefault(parsed.transcript.interviewer_id, []).append(parsed.transcript)
        lines: list[tuple[str, str, str]] = []
        for sessions in by_iv.values():
            split = chronological_split(sessions, val=0.1, test=0.2)
            chosen = split.train if part == "train" else [*split.val, *split.test]
            lines += [(t.text, path.parent.name, s.session_id) for s in chosen for t in s.turns
                      if t.role == role and t.text.strip()]
        if len(lines) > per_corpus:
            lines = [lines[i] for i in sorted(rng.choice(len(lines), per_corpus, replace=False))]
        out += lines
    return out


def _line_max(scores: np.ndarray, line_ids: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Scores of the items ``keep`` selects, a corpus line's units folded into the line's highest score
    (a line is flagged when any of its units is: the budget is spent per line, as the checks score)."""
    ids = line_ids[keep]
    s = scores[keep]
    single = s[ids < 0]
    if not (ids >= 0).any():
        return single
    order = np.argsort(ids[ids >= 0], kind="stable")
    grouped_ids, grouped = ids[ids >= 0][order], s[ids >= 0][order]
    starts = np.flatnonzero(np.r_[True, grouped_ids[1:] != grouped_ids[:-1]])
    return np.concatenate([single, np.maximum.reduceat(grouped, starts)])


def _fit_head(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    lr.fit((x - mu) / sd, y)
    w = lr.coef_[0] / sd
    return w.astype(np.float32), float(lr.intercept_[0] - (lr.coef_[0] * mu / sd).sum())


def _fit_detail(x: np.ndarray, details: list[str], c: float) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    lr = LogisticRegression(C=c, max_iter=3000)
    lr.fit((x - mu) / sd, details)
    w = lr.coef_ / sd
    b = lr.intercept_ - (lr.coef_ * mu / sd).sum(axis=1)
    return w.astype(np.float32), b.astype(np.float32), tuple(str(k) for k in lr.classes_)


def _quantile_threshold(neg: np.ndarray, budget: float) -> float:
    """The lowest threshold that lets at most ``budget`` of the scores ``neg`` through."""
    if not len(neg):
        return 0.0
    neg = np.sort(neg)
    return float(neg[min(len(neg) - 1, int(np.ceil((1 - budget) * len(neg))))]) + 1e-6


def _choose_threshold(scores: np.ndarray, y: np.ndarray, target_recall: float, fp_budget: float,
                      register: np.ndarray | None = None, hard_budget: float = 0.05,
                      line_ids: np.ndarray | None = None) -> float:
    """On out-of-fold scores of the development part: the highest threshold whose recall reaches
    ``target_recall``, unless that lets through more than ``fp_budget`` of the ordinary-register
    negatives (``register``: real interviewer lines and the suite's conversational lines) or more than
    ``hard_budget`` of the other (hard, written-to-confuse) negatives; then the lowest threshold
    within both budgets. Without ``register`` every negative is held to ``fp_budget``. Kept within
    [0.05, 0.999] (a head whose register negatives score near 1 still keeps its budget)."""
    pos = np.sort(scores[y == 1])
    if not len(pos):
        return 0.5
    t_recall = float(pos[int(np.floor((1 - target_recall) * len(pos)))]) - 1e-6
    neg = y == 0
    if register is None:
        t_fp = _quantile_threshold(scores[neg], fp_budget)
    else:
        ids = line_ids if line_ids is not None else np.full(len(scores), -1)
        t_fp = max(_quantile_threshold(_line_max(scores, ids, neg & register), fp_budget),
                   _quantile_threshold(scores[neg & ~register], hard_budget))
    return float(min(max(t_recall, t_fp, 0.05), 0.999))


def _fit_gate(x, y: np.ndarray, c: float, keep: int = GATE_KEEP) -> tuple[np.ndarray, float]:
    """The cheap stage: logistic regression on the sparse gate features, then only the ``keep``
    largest hashed n-gram weights kept (the hand features' and the profanity weight always)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", solver="liblinear")
    lr.fit(x, y)
    w = lr.coef_[0].astype(np.float32)
    hashed = np.abs(w[:HASH_FEATURES])
    if np.count_nonzero(hashed) > keep:
        w[:HASH_FEATURES][hashed < np.partition(hashed, -keep)[-keep]] = 0.0
    return w, float(lr.intercept_[0])


def _gate_threshold(scores: np.ndarray, y: np.ndarray, gate_recall: float) -> float:
    """The highest gate threshold that lets ``gate_recall`` of the positives through (out of fold)."""
    pos = np.sort(scores[y == 1])
    return float(pos[int(np.floor((1 - gate_recall) * len(pos)))]) - 1e-6 if len(pos) else 0.0


@dataclass
class HeadExamples:
    """One head's training examples: text, label, detail (topic or kind), fold group, whether it is a
    real line of the register the false-positive budget is spent on, and which real line a unit was cut
    from (-1: not one)."""

    texts: list[str]
    labels: list[int]
    details: list[str]
    groups: list[str]
    register: list[bool]
    line_ids: list[int]


def head_examples(rows: list[dict], head: str, rng: np.random.Generator, real: list[tuple[str, str, str]],
                  turns: list[tuple[str, str, str]], fold_by: str = "group") -> HeadExamples:
    """``head``'s examples: the suite's development rows of its stage, the repository's sample
    interviews, the augmentations, and the real lines (interviewer lines ``real`` for the output heads,
    candidate turns ``turns`` for elicitation) cut into the units the checks score."""
    stage_rows = [r for r in rows if head != "elicitation" or r["stage"] == "input" or r["label"] == "none"]
    register: list[bool] = []
    texts, labels, details, groups = _training_set(stage_rows, head, rng, register, fold_by=fold_by)
    extra = _sample_negatives()
    texts, labels, details = texts + extra, labels + [0] * len(extra), details + [""] * len(extra)
    groups = groups + [f"sample{i // 8}" for i in range(len(extra))]
    register += [True] * len(extra)
    line_ids = [-1] * len(texts)
    for t, yy, d, g in _augmentations(head):
        texts.append(t)
        labels.append(yy)
        details.append(d)
        groups.append(g.split(":")[0] if fold_by == "family" else g)  # "kind:template" -> the kind
        register.append(False)
        line_ids.append(-1)
    # Interviewer lines are the output heads' register; candidate turns the elicitation head's.
    for k, (line, corpus, session) in enumerate(turns if head == "elicitation" else real):
        for u in LearnedChecks._units_for(line, head):
            texts.append(u)
            labels.append(0)
            details.append("")
            groups.append(f"{corpus}:{session}")
            register.append(True)
            line_ids.append(k)
    return HeadExamples(texts, labels, details, groups, register, line_ids)


def units_recipe() -> bytes:
    """How lines are cut into the units the heads score (the code and its tables), for the version: the
    same weights calibrated on other units are another model."""
    import inspect

    code = "".join(inspect.getsource(f) for f in (split_units, clause_units, LearnedChecks._units_for))
    return (code + _SENTENCE.pattern + _CLAUSE.pattern + repr(sorted(CLAUSE_HEADS))
            + repr((MAX_UNITS, MAX_UNIT_WORDS, MIN_CLAUSE_WORDS, sorted(HEAD_BUDGET_SHARE.items())))).encode()


def train(dev_path: str | Path = SUITE_DIR / "dev.jsonl", out: str | Path = ARTEFACT,
          cs: Sequence[float] = (0.01, 0.03, 0.1), target_recall: float = 0.97, fp_budget: float = 0.0006,
          hard_budget: float = 0.10, gate_c: float = 3.0, gate_recall: float = 0.99, gate_pass: float = 0.02,
          folds: int = 5, seed: int = 14, corpora: Path | None = DEFAULT_CORPORA, corpus_lines: int = 2500,
          checks: "LearnedChecks | None" = None, fold_by: str = "group") -> dict[str, Any]:
    """Fit every head on the development part (+ augmentations), choose C and thresholds out of fold
    (folds keep a phrasing's variants together; ``fold_by="family"`` keeps a whole template family
    together, so the out-of-fold recall is that of phrasings unlike any the head trained on, as the
    frozen test part's are), save. ``report[head]["oof_recall_by_group"]``: recall per fold group.

    Each head is a cascade: a cheap gate (hashed word n-grams, hand features, profanity probability)
    whose threshold lets ``gate_recall`` of the out-of-fold positives through unless that lets more
    than ``gate_pass`` of the real interviewer lines through (the MiniLM pass is what costs time),
    then the MiniLM head on what the gate lets through. The head's threshold is chosen on the
    cascade's out-of-fold scores: the recall target unless that flags more than ``fp_budget`` of the
    real interviewer lines or ``hard_budget`` of the written hard negatives (``_choose_threshold``).
    ``corpora``: a folder of ``<name>/dev.jsonl`` transcript sets whose train-part interviewer lines
    (``corpus_lines`` per corpus, each cut into the units the checks score) join the real interviewer
    lines the budgets are spent on, per line; without it only the suite's own real lines do.
    ``checks``: an instance whose feature cache to reuse (a training run embeds every text once)."""
    from sklearn.model_selection import GroupKFold

    rows = read_suite(dev_path)
    rng = np.random.default_rng(seed)
    checks = checks or LearnedChecks(heads={}, pii_thresholds={})
    checks.heads = {}
    checks.cache_size = max(checks.cache_size, 200_000)  # every training text is embedded once, not per head
    real = corpus_register_lines(corpora, corpus_lines, seed)
    turns = corpus_register_lines(corpora, corpus_lines, seed, role="candidate")
    report: dict[str, Any] = {"corpus_lines": dict(sorted(Counter(c for _, c, _ in real).items())),
                              "corpus_candidate_turns": dict(sorted(Counter(c for _, c, _ in turns).items()))}
    for head in HEADS:
        head_budget = fp_budget * HEAD_BUDGET_SHARE.get(head, 1.0)
        ex = head_examples(rows, head, rng, real, turns, fold_by)
        texts, labels, details, groups, register = ex.texts, ex.labels, ex.details, ex.groups, ex.register
        line_ids = ex.line_ids
        lid = np.array(line_ids)
        group_array = np.array(groups)
        x = checks.featurize(texts)
        xc = checks.cheap_features(texts)
        y = np.array(labels)
        reg = np.array(register)
        split = list(GroupKFold(n_splits=folds).split(x, y, groups))
        gate_oof = np.zeros(len(y))
        for tr, te in split:
            gw, gb = _fit_gate(xc[tr], y[tr], gate_c)
            gate_oof[te] = 1 / (1 + np.exp(-(np.asarray(xc[te] @ gw).ravel() + gb)))
        gate_t = max(_gate_threshold(gate_oof, y, gate_recall),
                     _quantile_threshold(_line_max(gate_oof, lid, reg), gate_pass))
        gated = gate_oof >= gate_t
        best = None
        for cc in cs:
            oof = np.zeros(len(y))
            for tr, te in split:
                w, b = _fit_head(x[tr], y[tr], cc)
                oof[te] = 1 / (1 + np.exp(-(x[te] @ w + b)))
            oof = np.where(gated, oof, 0.0)  # the cascade: what the gate stops scores 0
            # The C whose out-of-fold cascade reaches the most positives within the budgets.
            t = _choose_threshold(oof, y, 1.0, head_budget, reg, hard_budget, lid)
            at_budget = float((oof[y == 1] >= t).mean())
            if best is None or at_budget > best[0]:
                best = (at_budget, cc, oof)
        at_budget, c_head, oof = best
        threshold = _choose_threshold(oof, y, target_recall, head_budget, reg, hard_budget, lid)
        w, b = _fit_head(x, y, c_head)
        gw, gb = _fit_gate(xc, y, gate_c)
        pos = y == 1
        dw = db = None
        names: tuple[str, ...] = ()
        if len({d for d, p in zip(details, pos) if p}) > 1:
            dw, db, names = _fit_detail(x[pos], [d for d, p in zip(details, pos) if p], c_head)
        checks.heads[head] = _Head(w=w, b=b, threshold=threshold, detail_w=dw, detail_b=db, details=names,
                                   gate_w=gw, gate_b=gb, gate_threshold=gate_t)
        report[head] = {"examples": int(len(y)), "positives": int(pos.sum()), "c": c_head,
                        "oof_recall_at_fp_budget": round(at_budget, 4), "threshold": round(threshold, 4),
                        "gate_threshold": round(gate_t, 6),
                        "oof_gate_recall": round(float(gated[pos].mean()), 4),
                        "oof_gate_pass_negatives": round(float(gated[~pos].mean()), 4),
                        "oof_gate_pass_register": round(float(_line_max(gated.astype(float), lid, reg).mean()), 4),
                        "oof_recall": round(float((oof[pos] >= threshold).mean()), 4),
                        "oof_fp_rate": round(float((oof[~pos] >= threshold).mean()), 4),
                        "oof_fp_rate_register": round(float((_line_max(oof, lid, reg) >= threshold).mean()), 4),
                        "register_negatives": int(len(_line_max(oof, lid, reg))),
                        "oof_recall_by_group": {
                            f: round(float((oof[pos & (group_array == f)] >= threshold).mean()), 3)
                            for f in sorted({str(g) for g in group_array[pos]})}}
    # The offensive-language model on its own: the lowest threshold that keeps its false positives on
    # the development negatives (both stages, the toxicity head's rows) within half the budgets.
    tox_rows = [r for r in rows if r["label"] in ("toxicity", "none", "prohibited_question", "pii_leak")]
    prof = checks.profanity.prob([r["text"] for r in tox_rows])
    is_tox = np.array([r["label"] == "toxicity" for r in tox_rows])
    reg = np.array([is_register(r) for r in tox_rows])
    real_prof = np.array([checks.profanity.prob(LearnedChecks._units_for(line)).max() for line, _, _ in real])
    prof_t = float(max(_quantile_threshold(np.concatenate([prof[reg], real_prof]), fp_budget / 2),
                       _quantile_threshold(prof[~is_tox & ~reg], hard_budget / 2), 0.5))
    report["toxicity"]["profanity_threshold"] = round(prof_t, 4)
    report["toxicity"]["profanity_recall_alone"] = round(float((prof[is_tox] >= prof_t).mean()), 4)
    # PII: per entity, the threshold with the best F1 on the development rows (ties: the higher one).
    finder = checks.pii
    found = [(r, {d: s for d, s, _, _ in finder.find(r["text"])}) for r in rows if r["stage"] == "output"]
    for detail in PiiFinder.ENTITIES.values():
        best = (-1.0, 0.5)
        for t in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0):
            tp = sum(1 for r, f in found if r["topic"] == detail and f.get(detail, -1) >= t)
            fp = sum(1 for r, f in found if r["topic"] != detail and f.get(detail, -1) >= t)
            fn = sum(1 for r, f in found if r["topic"] == detail and f.get(detail, -1) < t)
            f1 = 2 * tp / max(1, 2 * tp + fp + fn)
            if f1 >= best[0]:
                best = (f1, t)
        checks.pii_thresholds[detail] = best[1]
        report[f"pii:{detail}"] = {"threshold": best[1], "f1": round(best[0], 4)}
    data = Path(dev_path).read_bytes()
    # The version names everything the weights came from: the suite part, the phrasings, the written
    # lines, how lines are cut into units, the corpus lines drawn and the budgets.
    from processors.twin import safety_phrasings

    recipe = hashlib.sha256(data + Path(safety_phrasings.__file__).read_bytes() + WRITTEN_LINES.read_bytes()
                            + units_recipe()
                            + json.dumps([report["corpus_lines"], report["corpus_candidate_turns"], fp_budget,
                                          hard_budget, gate_pass], sort_keys=True).encode()).hexdigest()
    checks.meta = {"version": recipe[:8] + "-" + str(seed),
                   "trained_on": {"path": str(Path(dev_path).name), "sha256": hashlib.sha256(data).hexdigest(),
                                  "rows": len(rows), "corpus_lines": report["corpus_lines"],
                                  "corpus_candidate_turns": report["corpus_candidate_turns"]},
                   "embedding": "all-MiniLM-L6-v2", "target_recall": target_recall, "fp_budget": fp_budget, "hard_budget": hard_budget,
                   "profanity_threshold": round(prof_t, 4),
                   "report": report}
    checks.save(out)
    return report


def evaluate(path: str | Path = SUITE_DIR / "test.jsonl", policy: Any = None) -> dict[str, Any]:
    """Per-category precision and recall of ``SafetyPolicy`` (every rule) on a suite part.

    A labelled row counts as found when its stage's check flags its category; a ``none`` row is a
    false positive when its stage's check flags anything. Precision of a category: of the rows its
    check flagged, the share labelled with it.
    """
    if policy is None:
        from processors.twin.safety_learned import SafetyPolicy

        policy = SafetyPolicy()
    rows = read_suite(path)
    if getattr(policy, "rule_classes", None) is not None and any(getattr(r, "head", None) for r in policy.rules):
        get_checks().prefetch([r["text"] for r in rows])  # the MiniLM passes in large batches
    cats = [{f.category for f in policy.check(r["text"], stage=r["stage"]).flags} for r in rows]
    labels = sorted({r["label"] for r in rows} - {"none"})
    out: dict[str, Any] = {"rows": len(rows), "categories": {}}
    for label in labels:
        n = sum(1 for r in rows if r["label"] == label)
        found = sum(1 for r, c in zip(rows, cats) if r["label"] == label and label in c)
        flagged = sum(1 for c in cats if label in c)
        out["categories"][label] = {"n": n, "found": found, "recall": found / n if n else 1.0,
                                    "flagged": flagged, "precision": found / flagged if flagged else 1.0}
    negatives = [(r, c) for r, c in zip(rows, cats) if r["label"] == "none"]
    out["negatives"] = len(negatives)
    out["negatives_flagged"] = sum(1 for _, c in negatives if c)
    out["fp_rate"] = out["negatives_flagged"] / len(negatives) if negatives else 0.0
    out["misses"] = [{"text": r["text"], "label": r["label"], "flags": sorted(c)}
                     for r, c in zip(rows, cats) if r["label"] != "none" and r["label"] not in c]
    out["false_positives"] = [{"text": r["text"], "flags": sorted(c)} for r, c in negatives if c]
    return out


def _cli() -> None:
    import typer

    app = typer.Typer(add_completion=False, no_args_is_help=True, help=(
        "The learned safety checks' artefact (processors/twin/safety_model.npz). `train` fits the heads "
        "(prohibited question, toxicity, bias, elicitation) on the development part of the safety suite "
        "(tests/data/safety/dev.jsonl) plus augmentations, chooses each head's threshold on out-of-fold "
        "scores and the PII thresholds on the same rows, and writes weights, thresholds and version. "
        "`evaluate` prints per-category precision and recall of SafetyPolicy on a suite part (default: the "
        "frozen test part)."))

    @app.command("train")
    def train_cmd(dev: Path = typer.Option(SUITE_DIR / "dev.jsonl", help="development part of the suite"),
                  out: Path = typer.Option(ARTEFACT, help="where to write the artefact"),
                  c: str = typer.Option("0.01,0.03,0.1", help="inverse L2 strengths to choose among (out of fold)"),
                  target_recall: float = typer.Option(0.97, help="out-of-fold recall a threshold aims for"),
                  fp_budget: float = typer.Option(0.0006, help="most out-of-fold real interviewer lines a threshold may "
                                                  "flag (per head; a line is flagged when any of its sentences is)"),
                  hard_budget: float = typer.Option(0.10, help="most out-of-fold written hard negatives a threshold may flag"),
                  gate_pass: float = typer.Option(0.02, help="most out-of-fold real lines a gate may send to MiniLM"),
                  corpora: Path = typer.Option(DEFAULT_CORPORA, help="folder of <name>/dev.jsonl transcript sets whose "
                                               "train-part interviewer lines join the real lines (read, never stored); "
                                               "missing: the suite's own real lines only"),
                  corpus_lines: int = typer.Option(2500, help="real interviewer lines drawn from each corpus"),
                  fold_by: str = typer.Option("group", help="what the out-of-fold split keeps together: 'group' (a "
                                              "phrasing's variants) or 'family' (a whole template family: the "
                                              "out-of-fold recall then estimates recall on phrasings written unlike "
                                              "any the heads trained on)")):
        """Fit the heads and thresholds on the development part and write the artefact."""
        if not corpora.is_dir():
            typer.echo(f"note: no corpora at {corpora}; the budgets use the suite's real lines only", err=True)
        report = train(dev, out, cs=[float(v) for v in c.split(",")], target_recall=target_recall, fp_budget=fp_budget,
                       hard_budget=hard_budget, gate_pass=gate_pass, corpora=corpora, corpus_lines=corpus_lines,
                       fold_by=fold_by)
        typer.echo(json.dumps(report, indent=2))
        typer.echo(f"wrote {out} ({out.stat().st_size} bytes)")

    @app.command("evaluate")
    def evaluate_cmd(part: Path = typer.Option(SUITE_DIR / "test.jsonl", help="suite part to measure"),
                     show: int = typer.Option(10, help="misses and false positives to print")):
        """Per-category precision/recall and the false-positive rate of the hard negatives."""
        res = evaluate(part)
        for label, m in res["categories"].items():
            typer.echo(f"{label:20} n={m['n']:4} recall={m['recall']:.3f} precision={m['precision']:.3f}")
        typer.echo(f"negatives {res['negatives']}: flagged {res['negatives_flagged']} ({res['fp_rate']:.2%})")
        for m in res["misses"][:show]:
            typer.echo(f"  missed   {m['label']:20} {m['text'][:100]!r} {m['flags']}")
        for m in res["false_positives"][:show]:
            typer.echo(f"  wrongly  {','.join(m['flags']):20} {m['text'][:100]!r}")

    app()


if __name__ == "__main__":
    _cli()
