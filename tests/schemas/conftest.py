"""Fixtures for the schema contract tests: a scratch copy of schemas/avro to edit freely."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import AVRO_DIR, snake_case


@pytest.fixture
def avro_copy(tmp_path: Path) -> Path:
    """A copy of schemas/avro (current and released) under tmp_path."""
    target = tmp_path / "avro"
    shutil.copytree(AVRO_DIR, target)
    return target


@pytest.fixture
def edit_schema(avro_copy: Path) -> Callable[[str, Callable[[dict], Any]], Path]:
    """``edit_schema("TwinRequest", fn)`` applies ``fn`` to the copy's current .avsc JSON."""

    def edit(record_name: str, change: Callable[[dict], Any]) -> Path:
        path = avro_copy / f"{snake_case(record_name)}.avsc"
        schema = json.loads(path.read_text())
        change(schema)
        path.write_text(json.dumps(schema, indent=2))
        return avro_copy

    return edit
