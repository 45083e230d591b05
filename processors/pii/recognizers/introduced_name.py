"""Names that follow a self-introduction: "my name is alex johnson", "I'm called Sam".

The small spaCy model finds most capitalised names, but transcripts are often lower-case and
the NER stage is skipped for texts without capitalised words (``PII_NER_PREFILTER``). A name
right after an introduction phrase is a name whatever its case, so this pattern catches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

import regex as re

if TYPE_CHECKING:  # presidio takes seconds to import: imported only where a redactor is built
    from presidio_analyzer import Pattern, PatternRecognizer

__all__ = ["CONTEXT", "PATTERN", "introduced_name_recognizer"]

# One or two name-like words after the phrase; stop words end the match ("my name is not ...").
_NAME = r"(?!(?:not|a|an|the|just|also|really|so|very|from|in|at|on|and|but)\b)[a-z][a-z'\-]+"
_PHRASES = r"(?:my name is|my name's|i am called|i'm called|they call me|you can call me|name's)"
PATTERN = rf"(?<=\b{_PHRASES}\s+){_NAME}(?:\s+{_NAME})?"
CONTEXT: List[str] = ["name", "call", "called"]


def introduced_name_recognizer(patterns: Optional[List["Pattern"]] = None, context: Optional[List[str]] = None,
                               supported_language: str = "en", supported_entity: str = "PERSON") -> "PatternRecognizer":
    """PERSON after an introduction phrase, matched case-insensitively (the phrase is not redacted).

    A factory rather than a subclass, so that importing this module (the worker imports every module
    of ``processors`` at start) does not import Presidio: a worker without the redaction agent starts
    ~10 s sooner.
    """
    from processors.pii.presidio_import import import_presidio

    import_presidio()
    from presidio_analyzer import Pattern, PatternRecognizer

    return PatternRecognizer(
        supported_entity=supported_entity,
        name="IntroducedNameRecognizer",
        patterns=patterns or [Pattern("introduced name", PATTERN, 0.6)],
        context=context or CONTEXT,
        supported_language=supported_language,
        global_regex_flags=re.IGNORECASE | re.MULTILINE,
    )
