"""API keys for tests: one real key per (tenant, scopes, interviewers), created in PostgreSQL once.

The gateway under test verifies them exactly as it verifies production keys.
"""

from __future__ import annotations

import functools
from typing import Iterable

from infra.apikeys import create_api_key
from infra.settings import Settings


@functools.cache
def _token(tenant: str, scopes: tuple[str, ...] | None, interviewers: tuple[str, ...] | None, name: str) -> str:
    return create_api_key(Settings(), tenant, scopes=scopes, name=name, interviewers=interviewers)


def api_key(tenant: str, scopes: Iterable[str] | None = None, interviewers: Iterable[str] | None = None,
            name: str = "pytest") -> str:
    """A token for ``tenant`` (every scope unless ``scopes`` narrows it)."""
    return _token(tenant, tuple(scopes) if scopes is not None else None,
                  tuple(interviewers) if interviewers is not None else None, name)


def auth_headers(tenant: str, scopes: Iterable[str] | None = None,
                 interviewers: Iterable[str] | None = None, name: str = "pytest") -> dict[str, str]:
    """``Authorization`` headers acting for ``tenant``."""
    return {"Authorization": f"Bearer {api_key(tenant, scopes, interviewers, name)}"}
