"""Per-tenant allow and deny terms for PII redaction.

- ``allow``: detections whose text is exactly one of these are kept (a product called
  "Amplitude" that the model tags as a person);
- ``deny``: these terms are always redacted, case-insensitively on word boundaries (an internal
  project code name, a nickname the model cannot know), as ``TENANT_DENY_TERM``.

Configured in ``PII_TENANT_TERMS`` (JSON): ``{"acme": {"allow": [...], "deny": [...]}}``; the
``"*"`` entry applies to every tenant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # presidio takes seconds to import: imported where a recognizer is built
    from presidio_analyzer import PatternRecognizer

__all__ = ["DENY_ENTITY", "TenantTerms"]

DENY_ENTITY = "TENANT_DENY_TERM"


class TenantTerms:
    """Allow/deny lists per tenant, with the deny recognizers built once per tenant.

    :param terms: ``{tenant: {"allow": [...], "deny": [...]}}``; ``"*"`` applies to all tenants.
    """

    def __init__(self, terms: Mapping[str, Mapping[str, Sequence[str]]] | None = None):
        self._terms = {t: {k: [s for s in v if s and s.strip()] for k, v in spec.items()}
                       for t, spec in (terms or {}).items()}
        self._deny: dict[str, "PatternRecognizer | None"] = {}

    def _list(self, tenant: str, kind: str) -> list[str]:
        out = list(self._terms.get("*", {}).get(kind, []))
        out += [s for s in self._terms.get(tenant, {}).get(kind, []) if s not in out]
        return out

    def allow(self, tenant: str) -> list[str]:
        """Texts never redacted for this tenant (exact match of the detected span)."""
        return self._list(tenant, "allow")

    def deny(self, tenant: str) -> list[str]:
        """Terms always redacted for this tenant."""
        return self._list(tenant, "deny")

    def deny_recognizer(self, tenant: str) -> "PatternRecognizer | None":
        """An ad-hoc recognizer for the tenant's deny terms (None when it has none)."""
        if tenant not in self._deny:
            from processors.pii.presidio_import import import_presidio

            import_presidio()
            from presidio_analyzer import PatternRecognizer

            terms = self.deny(tenant)
            self._deny[tenant] = (
                PatternRecognizer(supported_entity=DENY_ENTITY, deny_list=terms, name=f"deny:{tenant}")
                if terms else None
            )
        return self._deny[tenant]

    @cached_property
    def any_deny(self) -> bool:
        return any(spec.get("deny") for spec in self._terms.values())
