"""PII redaction with Presidio: the engine built once per process, recognizers, tenant terms.

The agent is ``processors/pii_redaction.py``; this package is the job's machinery, importable by
the CLI, training and evaluation (``get_redactor().redact(texts, tenant)``).
"""

from processors.pii.engine import PiiRedactor, PlainPresidio, RedactedText, entities_for, get_redactor, needs_ner
from processors.pii.terms import DENY_ENTITY, TenantTerms

__all__ = ["DENY_ENTITY", "PiiRedactor", "PlainPresidio", "RedactedText", "TenantTerms", "entities_for", "get_redactor",
           "needs_ner"]
