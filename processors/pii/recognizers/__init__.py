"""Project recognizers added to Presidio's predefined ones (see ``processors.pii.engine``).

Each is a factory with keyword defaults (patterns, context, language, entity) that a caller can
override; ``CUSTOM_RECOGNIZERS`` lists the enabled ones. Factories, not subclasses, so that importing
this package does not import Presidio (seconds of a worker's start-up).
"""

from processors.pii.recognizers.introduced_name import introduced_name_recognizer

__all__ = ["CUSTOM_RECOGNIZERS", "introduced_name_recognizer"]

CUSTOM_RECOGNIZERS = (introduced_name_recognizer,)
