"""Project recognizers added to Presidio's predefined ones (see ``processors.pii.engine``).

Each is a class with class-level defaults (``PATTERNS``, ``CONTEXT``) that ``__init__`` can
override, as Presidio's own recognizers are; ``CUSTOM_RECOGNIZERS`` lists the enabled ones.
"""

from processors.pii.recognizers.introduced_name import IntroducedNameRecognizer

__all__ = ["CUSTOM_RECOGNIZERS", "IntroducedNameRecognizer"]

CUSTOM_RECOGNIZERS = (IntroducedNameRecognizer,)
