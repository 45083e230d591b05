"""Freeze an edited schema as the next released version.

Run from the repository root::

    python -m schemas.release TwinRequest      # one record
    python -m schemas.release --all            # every record whose .avsc changed

For each record it compares ``schemas/avro/<snake>.avsc`` with every released copy using
:func:`schemas.codec.check_compatible`, refuses on any problem, and otherwise writes
``schemas/avro/released/<snake>.v<N+1>.avsc``. Bumping ``SCHEMA_VERSIONS`` in codec.py stays
a manual, reviewed edit: it is the moment producers start writing the new version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.codec import AVRO_DIR, SCHEMA_IDS, SchemaError, check_compatible, current_schemas, snake_case

__all__ = ["release", "released_versions"]


def released_versions(record_name: str, avro_dir: Path = AVRO_DIR) -> list[int]:
    """Versions of ``record_name`` present in ``<avro_dir>/released``, ascending."""
    stem = snake_case(record_name)
    versions = []
    for path in (Path(avro_dir) / "released").glob(f"{stem}.v*.avsc"):
        suffix = path.name[len(stem) + 2 : -len(".avsc")]
        if suffix.isdigit():
            versions.append(int(suffix))
    return sorted(versions)


def release(record_name: str, avro_dir: Path = AVRO_DIR) -> Path | None:
    """Write the next released version of ``record_name`` if its current schema changed.

    :returns: the written file, or None when the current schema equals the latest release.
    :raises SchemaError: the change is incompatible with a released version (all problems listed).
    """
    avro_dir = Path(avro_dir)
    current = current_schemas(avro_dir, SCHEMA_IDS)[record_name]
    versions = released_versions(record_name, avro_dir)
    released_dir = avro_dir / "released"
    problems: list[str] = []
    for version in versions:
        old = json.loads((released_dir / f"{snake_case(record_name)}.v{version}.avsc").read_text())
        if version == versions[-1] and old == current:
            return None
        problems += [f"v{version}: {p}" for p in check_compatible(old, current)]
    if problems:
        raise SchemaError(f"{record_name} change is incompatible:\n  " + "\n  ".join(problems))
    next_version = (versions[-1] if versions else 0) + 1
    released_dir.mkdir(parents=True, exist_ok=True)
    path = released_dir / f"{snake_case(record_name)}.v{next_version}.avsc"
    path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    names = list(SCHEMA_IDS) if args == ["--all"] else args
    status = 0
    for name in names:
        if name not in SCHEMA_IDS:
            print(f"unknown record {name!r}", file=sys.stderr)
            status = 1
            continue
        try:
            path = release(name)
        except SchemaError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        if path is not None:
            version = released_versions(name)[-1]
            print(f"wrote {path}; now set SCHEMA_VERSIONS[{name!r}] = {version} in schemas/codec.py")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
