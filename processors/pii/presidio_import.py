"""Import Presidio without the deep-learning stack it can use but this project does not.

``presidio_analyzer`` tries ``transformers`` and ``torch`` at import (for its Hugging Face NER
recognizer and device detection), and spaCy's thinc tries ``torch``: together 13-15 s of a worker's
start-up, though redaction runs the spaCy pipeline on numpy. ``import_presidio()`` makes those two
imports fail *in the calling thread only* while Presidio and spaCy import, so the packages take their
documented fallbacks; other threads import whatever they like meanwhile. Once torch or transformers
is loaded in the process (a tool that exports the embedder), Presidio simply imports as it is.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading

__all__ = ["import_presidio"]

_OPTIONAL_HEAVY = ("torch", "transformers")
_lock = threading.Lock()


class _HiddenInThread(importlib.abc.MetaPathFinder):
    """A finder that refuses ``_OPTIONAL_HEAVY`` to one thread and stays out of everyone else's way."""

    def __init__(self, thread_id: int) -> None:
        self.thread_id = thread_id

    def find_spec(self, fullname, path=None, target=None):
        if threading.get_ident() == self.thread_id and fullname.split(".")[0] in _OPTIONAL_HEAVY:
            raise ModuleNotFoundError(f"No module named {fullname!r} (left out of Presidio's import)", name=fullname)
        return None  # not ours: the normal finders carry on


def import_presidio() -> None:
    """Import presidio_analyzer, presidio_anonymizer and spaCy (a no-op once they are imported)."""
    if "presidio_analyzer" in sys.modules and "presidio_anonymizer" in sys.modules:
        return
    with _lock:
        finder = _HiddenInThread(threading.get_ident())
        sys.meta_path.insert(0, finder)
        try:
            import presidio_analyzer  # noqa: F401
            import presidio_anonymizer  # noqa: F401
            import spacy  # noqa: F401
        finally:
            sys.meta_path.remove(finder)
