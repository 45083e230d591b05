"""`twin crypto ...`: encryption at rest — what is encrypted under which key, key rotation.

    twin crypto generate-key                 # a new key-encryption key (base64 of 32 random bytes)
    twin crypto status [--json]              # sealed values and recordings per key id, clear rows left
    twin crypto rotate [--batch 500]         # rewrap every data key with DATA_ENCRYPTION_ACTIVE_KEY
    twin crypto encrypt-existing             # seal transcript rows stored in clear before encryption

Rotation unwraps each value's data key with the key that wrapped it and wraps it again with the
active key; the ciphertext is not touched (recordings get a new header, the rest of the object is
copied as is). It works in batches, each committed on its own, and only picks what the active key
does not wrap yet, so a run that was interrupted continues where it stopped when run again. Every
run is written to the audit log (action ``crypto.rotate`` / ``crypto.encrypt_existing``, actor
``cli:<os user>``), one record per tenant touched. The plain functions (:func:`pg_status`,
:func:`rotate_postgres`, :func:`rotate_objects`, ...) are what the commands call; the columns are
``infra.crypto.SEALED_COLUMNS``. Registered on the main `twin` app by the last lines of infra/cli.py.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra import crypto
from infra.cli import _fail as _fail_markup
from infra.cli import app, connect_db, console
from infra.crypto import PREFIX, SEALED_COLUMNS, CryptoError, KeyRing, SealedColumn

__all__ = ["RotationReport", "crypto_app", "encrypt_existing", "object_status", "pg_status", "rotate_objects",
           "rotate_postgres"]

crypto_app = typer.Typer(help="Encryption at rest: key status, key rotation, encrypting rows stored in clear.",
                         no_args_is_help=True)
app.add_typer(crypto_app, name="crypto")

OBJECTS = "objects (recordings)"
TenantOpt = typer.Option(None, "--tenant", "-t", help="Only this tenant (default: every tenant).")
Progressed = Callable[[int], None]


def _fail(message: str) -> None:
    _fail_markup(escape(message))


# --------------------------------------------------------------------------- SQL per column
# Table, column and key names in these statements come from infra.crypto.SEALED_COLUMNS (constants of the
# code, never input); every value is a query parameter. Hence the `nosec B608` below.


def _clear_sql(col: SealedColumn) -> str:
    """Rows of ``col`` that hold transcript text in clear (stored before encryption)."""
    c = col.column
    if col.shape == "text":
        return f"{c} IS NOT NULL AND {c} <> '' AND {c} NOT LIKE %(like)s"
    if col.shape == "json":
        return f"({c}->>'sealed') IS NULL"
    names = ", ".join(f"'{n}'" for n in col.names)
    return f"({c}->>'sealed') IS NULL AND {c} ?| array[{names}]"


def _set_sql(col: SealedColumn) -> str:
    """``SET`` clause writing a rewrapped sealed string ``%(new)s`` into the column."""
    c = col.column
    if col.shape == "text":
        return f"{c} = %(new)s"
    if col.shape == "json":
        return f"{c} = jsonb_build_object('sealed', %(new)s::text)"
    return f"{c} = jsonb_set({c}, '{{sealed}}', to_jsonb(%(new)s::text))"


def _scope(where: str, params: dict[str, Any], tenant: str | None) -> tuple[str, dict[str, Any]]:
    """``where`` limited to one tenant (None: every tenant)."""
    if tenant is None:
        return where, params
    return f"tenant = %(tenant)s AND {where}", {**params, "tenant": tenant}


def _page(col: SealedColumn) -> tuple[str, ...]:
    return col.page or col.key


def _row_match(col: SealedColumn) -> str:
    cols = dict.fromkeys(("tenant", *_page(col), *col.key))
    return " AND ".join(f"{c} = %({c})s" for c in cols)


def _batches(conn, col: SealedColumn, where: str, params: dict[str, Any], batch: int):
    """Rows ``(tenant, {key column: value}, stored value)`` matching ``where``, in primary-key order,
    ``batch`` at a time (keyset pagination: a row that stays as it is, e.g. one that failed, is not
    read again)."""
    page = _page(col)
    cols = list(dict.fromkeys(("tenant", *page, *col.key)))
    last: tuple | None = None
    while True:
        after = ""
        args = dict(params, limit=batch)
        if last is not None:
            after = f" AND ({', '.join(page)}) > ({', '.join(f'%(after_{i})s' for i in range(len(page)))})"
            args.update({f"after_{i}": v for i, v in enumerate(last)})
        rows = conn.execute(f"SELECT {', '.join(cols)}, {col.column} FROM {col.table} WHERE {where}{after}"
                            f" ORDER BY {', '.join(page)} LIMIT %(limit)s",  # nosec B608  # SEALED_COLUMNS names
                            args).fetchall()
        if not rows:
            return
        out = []
        for row in rows:
            values = dict(zip(cols, row[:-1]))
            out.append((values["tenant"], values, row[-1]))
        yield out
        last = tuple(out[-1][1][c] for c in page)


# --------------------------------------------------------------------------- status


def pg_status(conn, tenant: str | None = None) -> dict[str, dict[str, int]]:
    """``{table.column: {key id: sealed values, "clear": rows in clear}}`` of one tenant or all."""
    out: dict[str, dict[str, int]] = {}
    for col in SEALED_COLUMNS:
        counts: dict[str, int] = {}
        where, params = _scope(f"{col.sealed_sql} LIKE %(like)s", {"like": f"{PREFIX}:%"}, tenant)
        rows = conn.execute(f"SELECT split_part({col.sealed_sql}, ':', 2), count(*) FROM {col.table}"
                            f" WHERE {where} GROUP BY 1 ORDER BY 1",  # nosec B608  # SEALED_COLUMNS names
                            params).fetchall()
        counts.update({kid: int(n) for kid, n in rows})
        where, params = _scope(_clear_sql(col), {"like": f"{PREFIX}:%"}, tenant)
        clear = conn.execute(f"SELECT count(*) FROM {col.table} WHERE {where}",  # nosec B608  # SEALED_COLUMNS names
                             params).fetchone()[0]
        if clear:
            counts["clear"] = int(clear)
        out[col.field] = counts
    return out


async def object_status(store, tenant: str | None = None) -> dict[str, int]:
    """``{key id: recordings}`` of an object store (``none``: not envelope-encrypted by this
    store, e.g. S3 with server-side encryption only; ``unreadable``: no key in the ring unwraps it)."""
    counts: Counter[str] = Counter()
    for key in await store.keys(f"{tenant}/" if tenant else ""):
        try:
            counts[await store.key_id(key) or "none"] += 1
        except Exception:  # noqa: BLE001 - ObjectStoreError: a key missing from the ring, a foreign file
            counts["unreadable"] += 1
    return dict(counts)


# --------------------------------------------------------------------------- rotation


@dataclass
class RotationReport:
    """What a rotation (or an encrypt-existing pass) did: per tenant, per place, per previous key id."""

    active: str
    done: dict[str, dict[str, Counter]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Counter)))
    errors: list[str] = field(default_factory=list)

    def add(self, tenant: str, where: str, old: str) -> None:
        self.done[tenant][where][old] += 1

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for places in self.done.values() for c in places.values())

    def tenant_detail(self, tenant: str) -> dict[str, Any]:
        return {"toKey": self.active, "changed": {w: dict(c) for w, c in self.done[tenant].items()},
                "total": sum(sum(c.values()) for c in self.done[tenant].values())}

    def to_dict(self) -> dict[str, Any]:
        return {"activeKey": self.active, "total": self.total, "errors": self.errors,
                "tenants": {t: self.tenant_detail(t) for t in sorted(self.done)}}


def _rewrap_rows(conn, col: SealedColumn, ring: KeyRing, batch: int, report: RotationReport,
                 progress: Progressed | None, tenant: str | None) -> None:
    where, params = _scope(f"{col.sealed_sql} LIKE %(like)s AND {col.sealed_sql} NOT LIKE %(current)s",
                           {"like": f"{PREFIX}:%", "current": f"{PREFIX}:{ring.active}:%"}, tenant)
    update = (f"UPDATE {col.table} SET {_set_sql(col)} WHERE {_row_match(col)}"  # nosec B608  # SEALED_COLUMNS names
              f" AND {col.sealed_sql} = %(old)s")
    for rows in _batches(conn, col, where, params, batch):
        changes = []
        for tenant, keys, stored in rows:
            old = stored if col.shape == "text" else stored["sealed"]
            try:
                new = crypto.rewrap(old, tenant, col.field, *(keys[k] for k in col.key), ring=ring)
            except CryptoError as exc:
                report.errors.append(f"{col.field} {tenant}/{'/'.join(str(keys[k]) for k in col.key)}: {exc}")
                continue
            changes.append(({**keys, "old": old, "new": new}, tenant, crypto.key_id_of(old)))
        with conn.transaction():
            for params_row, tenant, old_kid in changes:
                # Only if nobody rewrote the value meanwhile (a re-import, an erasure): theirs wins.
                if conn.execute(update, params_row).rowcount:
                    report.add(tenant, col.field, old_kid)
        if progress:
            progress(len(rows))


def rotate_postgres(conn, ring: KeyRing, batch: int = 500, progress: Progressed | None = None,
                    report: RotationReport | None = None, tenant: str | None = None) -> RotationReport:
    """Rewrap every sealed value of ``SEALED_COLUMNS`` not wrapped by ``ring.active`` yet.

    :param conn: an autocommit psycopg connection; each batch is its own transaction.
    :param progress: called with the number of rows handled after each batch.
    :param tenant: only this tenant's rows (None: every tenant).
    """
    report = report or RotationReport(ring.active)
    for col in SEALED_COLUMNS:
        _rewrap_rows(conn, col, ring, batch, report, progress, tenant)
    return report


async def rotate_objects(store, report: RotationReport, progress: Progressed | None = None,
                         tenant: str | None = None) -> RotationReport:
    """Rewrap the data key of every recording of ``store`` (of one tenant, or all) not wrapped by
    the store's active key yet (the store's cipher holds the ring)."""
    for key in await store.keys(f"{tenant}/" if tenant else ""):
        try:
            old = await store.rewrap(key)
        except Exception as exc:  # noqa: BLE001 - ObjectStoreError, an S3 error: reported, the rest goes on
            report.errors.append(f"{OBJECTS} {key}: {exc}")
            old = None
        if old is not None:
            report.add(key.split("/", 1)[0], OBJECTS, old)
        if progress:
            progress(1)
    return report


def encrypt_existing(conn, ring: KeyRing, batch: int = 500, progress: Progressed | None = None,
                     report: RotationReport | None = None, tenant: str | None = None) -> RotationReport:
    """Seal the transcript values stored in clear (rows written before encryption), in batches, of
    one tenant or all (an autocommit connection: each batch is its own transaction)."""
    report = report or RotationReport(ring.active)
    for col in SEALED_COLUMNS:
        cast = "" if col.shape == "text" else "::jsonb"
        update = (f"UPDATE {col.table} SET {col.column} = %(new)s{cast}"  # nosec B608  # SEALED_COLUMNS names
                  f" WHERE {_row_match(col)} AND {col.column} = %(old)s{cast}")
        where, params = _scope(_clear_sql(col), {"like": f"{PREFIX}:%"}, tenant)
        for rows in _batches(conn, col, where, params, batch):
            with conn.transaction():
                for tenant, keys, stored in rows:
                    new = col.seal(stored, tenant, tuple(keys[k] for k in col.key), ring=ring)
                    if cast:
                        stored, new = json.dumps(stored), json.dumps(new)
                    if conn.execute(update, {**keys, "old": stored, "new": new}).rowcount:
                        report.add(tenant, col.field, "clear")
            if progress:
                progress(len(rows))
    return report


def _audit(conn, report: RotationReport, action: str, fallback_tenant: str) -> None:
    from infra.audit import cli_actor, record

    outcome = "error" if report.errors else "ok"
    tenants = sorted(report.done) or [fallback_tenant]  # a run that changed nothing is audited too
    with conn.transaction():
        for tenant in tenants:
            detail = report.tenant_detail(tenant)
            if report.errors:
                detail["errors"] = len(report.errors)
            record(conn, tenant, cli_actor(), action, "encryption_key", report.active, outcome, detail)


# --------------------------------------------------------------------------- commands


def _settings():
    from infra.settings import Settings

    return Settings()  # read now, so the environment of this invocation counts


def _ring(cfg) -> KeyRing:
    try:
        return crypto.key_ring(cfg)
    except CryptoError as exc:
        _fail(str(exc))


def _store(cfg):
    from sinks.object_store import object_store_from_settings

    try:
        return object_store_from_settings(cfg)
    except Exception as exc:  # noqa: BLE001 - misconfigured or unreachable
        _fail(f"object storage is not usable (OBJECT_STORE_URL): {exc}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


@crypto_app.command("generate-key")
def generate_key(key_id: str = typer.Option("k1", "--key-id", help="The id to show in the example setting.")) -> None:
    """Print a new key-encryption key (base64 of 32 random bytes) and how to configure it."""
    key = crypto.generate_key()
    console.print(key, soft_wrap=True, highlight=False)
    console.print(f"[dim]DATA_ENCRYPTION_KEYS='{{\"{escape(key_id)}\": \"{key}\", ...old keys}}'  "
                  f"DATA_ENCRYPTION_ACTIVE_KEY={escape(key_id)}[/]", soft_wrap=True)


@crypto_app.command("status")
def status(objects: bool = typer.Option(True, "--objects/--no-objects", help="Also read every recording's header."),
           tenant: str | None = TenantOpt,
           json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Sealed values and recordings per key id (and transcript rows still in clear)."""
    cfg = _settings()
    ring = _ring(cfg)
    with connect_db(cfg) as conn:
        counts = pg_status(conn, tenant)
    if objects:
        counts[OBJECTS] = asyncio.run(object_status(_store(cfg), tenant))
    if json_out:
        console.print_json(json.dumps({"activeKey": ring.active, "keys": ring.key_ids, "counts": counts}))
        return
    table = Table(title=f"encryption at rest (active key: {escape(ring.active)})")
    for col in ("where", "key id", "count", "note"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for where, by_key in counts.items():
        if not by_key:
            table.add_row(escape(where), "-", "0", "")
        for kid, n in sorted(by_key.items()):
            note = ("active" if kid == ring.active else "in the ring: `twin crypto rotate`" if kid in ring
                    else "encrypt-existing" if kid == "clear" else "" if kid == "none"
                    else "[red]not in the ring: unreadable[/]")
            table.add_row(escape(where), escape(kid), str(n), note)
    console.print(table)
    left = sorted({k for by_key in counts.values() for k in by_key if k not in ("clear", "none", ring.active)})
    console.print("every value is wrapped by the active key" if not left
                  else f"still wrapped by: {escape(', '.join(left))}")


@crypto_app.command("rotate")
def rotate(batch: int = typer.Option(500, "--batch", min=1, help="Rows per transaction."),
           objects: bool = typer.Option(True, "--objects/--no-objects", help="Also rewrap recordings."),
           tenant: str | None = TenantOpt,
           json_out: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Rewrap every data key with DATA_ENCRYPTION_ACTIVE_KEY (resumable: run it again after a failure)."""
    cfg = _settings()
    ring = _ring(cfg)
    store = _store(cfg) if objects else None
    report = RotationReport(ring.active)
    with connect_db(cfg) as conn:
        conn.autocommit = True  # each batch is its own transaction
        pending = sum(n for by_key in pg_status(conn, tenant).values() for kid, n in by_key.items()
                      if kid not in ("clear", ring.active))
        try:
            with _progress() as bar:
                task = bar.add_task(f"rewrapping to {escape(ring.active)}", total=pending)
                rotate_postgres(conn, ring, batch, lambda n: bar.advance(task, n), report, tenant)
                if store is not None:
                    keys = asyncio.run(store.keys(f"{tenant}/" if tenant else ""))
                    task = bar.add_task("recordings", total=len(keys))
                    asyncio.run(rotate_objects(store, report, lambda n: bar.advance(task, n), tenant))
        finally:  # audited even when interrupted: what was rewrapped so far
            _audit(conn, report, "crypto.rotate", tenant or cfg.DEFAULT_TENANT)
    _print_report(report, json_out, "rewrapped")


@crypto_app.command("encrypt-existing")
def encrypt_existing_cmd(batch: int = typer.Option(500, "--batch", min=1, help="Rows per transaction."),
                         tenant: str | None = TenantOpt,
                         json_out: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Encrypt transcript rows stored in clear before encryption at rest existed (resumable)."""
    cfg = _settings()
    ring = _ring(cfg)
    with connect_db(cfg) as conn:
        conn.autocommit = True
        pending = sum(by_key.get("clear", 0) for by_key in pg_status(conn, tenant).values())
        report = RotationReport(ring.active)
        try:
            with _progress() as bar:
                task = bar.add_task(f"encrypting with {escape(ring.active)}", total=pending)
                encrypt_existing(conn, ring, batch, lambda n: bar.advance(task, n), report, tenant)
        finally:
            _audit(conn, report, "crypto.encrypt_existing", tenant or cfg.DEFAULT_TENANT)
    _print_report(report, json_out, "encrypted")


def _print_report(report: RotationReport, json_out: bool, verb: str) -> None:
    if json_out:
        console.print_json(json.dumps(report.to_dict()))
    else:
        table = Table(title=f"{verb}: {report.total} value(s), now under key {escape(report.active)}")
        for col in ("tenant", "where", "from", "count"):
            table.add_column(col, justify="right" if col == "count" else "left")
        for tenant in sorted(report.done):
            for where, by_key in sorted(report.done[tenant].items()):
                for kid, n in sorted(by_key.items()):
                    table.add_row(escape(tenant), escape(where), escape(kid), str(n))
        console.print(table)
        for error in report.errors:
            console.print(f"[red]error:[/] {escape(error)}")
    if report.errors:
        raise typer.Exit(1)
