"""Masking credentials in settings before they are shown (`twin config show`) or logged (issue 15).

Three rules, applied to every value (strings inside lists and dicts included):

- a setting that is a ``SecretStr``, or whose name says it holds a secret (``*_PASSWORD``,
  ``*_SECRET``, ``*_TOKEN``, ``*_API_KEY``, ``*_SECRET_KEY``, ``*_ACCESS_KEY``, ``*_PRIVATE_KEY``,
  ``*_ENCRYPTION_KEY(S)``), is shown as ``***`` (or ``""`` when empty);
- the user information of any URL (``postgresql://user:password@host``, ``https://token@host``)
  becomes ``user:***@`` (``***@`` when there is no user name): everything up to the last ``@`` of
  the URL counts, so a password that itself holds ``@``, ``:`` or ``/`` does not leak;
- a ``name=value`` pair whose name holds ``pass``, ``pwd``, ``secret``, ``token``, ``key``,
  ``signature``, ``credential`` or ``auth`` (URL query parameters, libpq ``key=value`` DSNs) shows
  ``name=***``.

Masking errs on the side of hiding: a value that merely looks like a credential is masked too.

Usage::

    from infra.masking import mask_setting, mask_text
    mask_text("postgresql://twin:hunter2@db:5432/twin?sslpassword=x")
    # 'postgresql://twin:***@db:5432/twin?sslpassword=***'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

__all__ = ["MASK", "is_secret_name", "mask_setting", "mask_text", "mask_value"]

MASK = "***"

_SECRET_NAME = re.compile(
    r"(?:^|_)(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|SECRET_KEY|ACCESS_KEY|PRIVATE_KEY|ENCRYPTION_KEYS?|CREDENTIALS?)$",
    re.IGNORECASE)
# scheme://userinfo@ ... up to the last "@" before whitespace (greedy on purpose, see above).
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)(\S*)@")
# name=value where the name looks like it carries a credential; the value ends at & ; or whitespace,
# or is quoted (libpq: password='a b').
_SECRET_PARAM = re.compile(
    r"(?i)((?:^|(?<=[?&;\s,]))[\w.\-]*(?:pass|pwd|secret|token|key|signature|credential|auth)[\w.\-]*\s*=\s*)"
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^&;\s]+)")


def is_secret_name(name: str) -> bool:
    """Whether a setting's name says that it holds a secret (``POSTGRES_PASSWORD``, ``OPENAI_API_KEY``)."""
    return bool(_SECRET_NAME.search(name))


def _userinfo(match: re.Match) -> str:
    scheme, info = match.groups()
    user, colon, _ = info.partition(":")
    if colon and user and not re.search(r"[/?#@\s]", user):
        return f"{scheme}{user}:{MASK}@"
    return f"{scheme}{MASK}@"


def mask_text(text: str) -> str:
    """``text`` with URL user information and credential-like ``name=value`` pairs masked."""
    if "@" in text:
        text = _URL_USERINFO.sub(_userinfo, text)
    if "=" in text:
        text = _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, text)
    return text


def mask_value(value: Any) -> Any:
    """A value with :func:`mask_text` applied to every string in it (lists, tuples, dicts: their
    values and keys); SecretStr values become ``***``; paths become strings."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, Path):
        return mask_text(str(value))
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_value(k): mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask_value(v) for v in value]
    return value


def mask_setting(name: str, value: Any, secret: bool = False) -> Any:
    """How one setting is shown: ``***`` (``""`` when empty) for a secret (``secret`` set, a
    SecretStr, or a secret-looking name), else :func:`mask_value`."""
    if secret or isinstance(value, SecretStr) or is_secret_name(name):
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return MASK if value not in ("", None, [], {}) else ""
    return mask_value(value)
