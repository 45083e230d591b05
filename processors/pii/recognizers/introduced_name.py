"""Names that follow a self-introduction: "my name is alex johnson", "I'm called Sam".

The small spaCy model finds most capitalised names, but transcripts are often lower-case and
the NER stage is skipped for texts without capitalised words (``PII_NER_PREFILTER``). A name
right after an introduction phrase is a name whatever its case, so this pattern catches it.
"""

from __future__ import annotations

from typing import List, Optional

import regex as re
from presidio_analyzer import Pattern, PatternRecognizer

__all__ = ["IntroducedNameRecognizer"]

# One or two name-like words after the phrase; stop words end the match ("my name is not ...").
_NAME = r"(?!(?:not|a|an|the|just|also|really|so|very|from|in|at|on|and|but)\b)[a-z][a-z'\-]+"
_PHRASES = r"(?:my name is|my name's|i am called|i'm called|they call me|you can call me|name's)"


class IntroducedNameRecognizer(PatternRecognizer):
    """PERSON after an introduction phrase, matched case-insensitively (the phrase is not redacted)."""

    PATTERNS = [
        Pattern("introduced name", rf"(?<=\b{_PHRASES}\s+){_NAME}(?:\s+{_NAME})?", 0.6),
    ]
    CONTEXT: List[str] = ["name", "call", "called"]

    def __init__(self, patterns: Optional[List[Pattern]] = None, context: Optional[List[str]] = None,
                 supported_language: str = "en", supported_entity: str = "PERSON"):
        super().__init__(
            supported_entity=supported_entity,
            patterns=patterns or self.PATTERNS,
            context=context or self.CONTEXT,
            supported_language=supported_language,
            global_regex_flags=re.IGNORECASE | re.MULTILINE,
        )
