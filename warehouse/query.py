"""Ad hoc SQL against the warehouse: `mementos sql "QUERY" --db PATH`.

Read-only means nothing on disk changes. Without `write=True` the warehouse is
opened read-only, statements that write files (COPY, EXPORT DATABASE, ATTACH,
INSTALL, PREPARE/EXECUTE, ...) are refused before anything runs, and the
connection is locked down: DuckDB's `enable_external_access` is off (no file
outside the warehouse's data directory can be read or written),
`allowed_directories` lets the base tables' Parquet files be read, and
`lock_configuration` stops any statement from turning either back. With
`write=True` the writer lock is taken first, as for ingest and build.

Statements run in order and each result is printed. Values are printed as DuckDB
prints them (cast to VARCHAR by DuckDB), rows are streamed: the table format shows
the first `max_rows` rows (40 by default) and says how many were left out; csv and
json write every row, a batch at a time, so memory stays bounded whatever the size.
The table format shows control characters from the data as escapes (\\x1b), so that a value
cannot drive the terminal; csv and json keep them byte for byte, except on a terminal.
Errors from DuckDB come back as one WarehouseError line.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import duckdb

from mementos.foundation import layout, snapshots
from mementos.foundation.errors import WarehouseError
from mementos.warehouse.console import CONTROL, escape_controls, is_terminal
from mementos.warehouse.guard import open_warehouse, require_warehouse

FORMATS = ("table", "csv", "json")
MAX_CELL = 60  # table format: longer values are cut, with "..."
DEFAULT_MAX_ROWS = 40  # table format: rows shown unless --max-rows says otherwise
BATCH_ROWS = 2048  # csv/json: rows fetched and written at a time

# Statement types that run on the read-only path. Everything else (COPY, EXPORT,
# ATTACH, DETACH, COPY_DATABASE, EXTENSION (INSTALL), PREPARE, EXECUTE, VACUUM, ...)
# is refused without --write. CREATE/INSERT/... are allowed through so that DuckDB
# refuses them on the read-only file (temporary tables stay possible) and the
# message says to pass --write.
READ_ONLY_TYPES = {"SELECT", "EXPLAIN", "PRAGMA", "CALL", "SET", "VARIABLE_SET", "TRANSACTION", "MULTI",
                   "CREATE", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "RELATION"}
# Statement types whose rows are the answer (for csv/json, at most one per query).
ROW_TYPES = {"SELECT", "EXPLAIN", "PRAGMA", "CALL", "MULTI"}
COUNT_TYPES = {"INSERT", "UPDATE", "DELETE"}  # the table format prints their row count, as the DuckDB CLI does
_WHAT = {"COPY": "COPY (it reads or writes files)", "EXPORT": "EXPORT DATABASE (it writes files)",
         "ATTACH": "ATTACH (it opens another database file, possibly for writing)",
         "COPY_DATABASE": "COPY FROM DATABASE", "EXTENSION": "INSTALL (it writes the extension directory)",
         "PREPARE": "PREPARE", "EXECUTE": "EXECUTE", "VACUUM": "VACUUM", "DETACH": "DETACH",
         "LOAD": "INSTALL or LOAD (extensions)",
         "UNKNOWN": "a kind of statement DuckDB's Python API cannot name (such as UPDATE EXTENSIONS)"}
_LEADING = r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
_EXPLAIN = re.compile(_LEADING + r"EXPLAIN\b\s*(?:ANALY[SZ]E\b)?\s*(?:\([^)]*\))?\s*(?:ANALY[SZ]E\b)?",
                      re.IGNORECASE | re.DOTALL)
_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist", re.IGNORECASE)
_NUMERIC = re.compile(r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|DOUBLE|FLOAT|REAL|DECIMAL.*|HUGEINT|UHUGEINT)$",
                      re.IGNORECASE)


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]


NO_QUERY = "no query given: pass QUERY, --file q.sql, or the query on stdin (echo 'SELECT 1' | mementos sql)"


def read_query_file(path: str | Path) -> str:
    """The query in the file; `-` is stdin."""
    if str(path) == "-":
        import sys

        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WarehouseError(f"cannot read the query file {path}: {exc}") from None


# ---------------------------------------------------------------------------
# Connections and statements


@contextmanager
def _open(db: str | Path, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection: with `write`, the writer's staged snapshot (published when the statements
    succeed, foundation/snapshots.py); without, the published one, locked down (`lock_down`)."""
    if write:
        require_warehouse(db, writing=True)
        with snapshots.writing(db, "sql --write") as writer, writer.stage() as stage:
            yield stage.con
    else:
        with open_warehouse(db) as con:
            lock_down(con, db)
            yield con


def lock_down(con: duckdb.DuckDBPyConnection, db: str | Path) -> None:
    """No file access but reading the warehouse's own data directory, and no way to change that.

    `allowed_directories` is what lets views over the base tables' Parquet files
    read them once external access is off; it allows writing there too, which is
    why the statements that write files are also refused by type (`statements`).
    """
    data = layout.data_dir(db)
    # The base views name their files relative to the warehouse's folder (found through
    # file_search_path), and DuckDB checks a relative name as if it were relative to the
    # working directory: allow the data directory by that relative name as well.
    dirs = sorted({str(p) + "/" for p in (data.absolute(), data.resolve(), Path(data.name))})
    con.execute("SET allowed_directories = ?", [dirs])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def statements(con: duckdb.DuckDBPyConnection, query: str, write: bool) -> list:
    """The query's statements, parsed by DuckDB; without `write`, refuse any that would write a file."""
    try:
        parsed = con.extract_statements(query)
    except duckdb.Error as exc:
        raise WarehouseError(_explain(exc, write)) from None
    if not parsed:
        raise WarehouseError(NO_QUERY)
    if not write:
        for i, statement in enumerate(parsed, 1):
            refused = _refused_type(con, statement)
            if refused:
                where = f"statement {i} " if len(parsed) > 1 else ""
                raise WarehouseError(
                    f"{where}runs {_WHAT.get(refused, refused)}, and `sql` without --write changes nothing on "
                    f"disk; pass --write to run it (it then takes the writer lock)")
    return parsed


def _type(statement) -> str:
    try:
        kind = statement.type
    except ValueError:  # a type DuckDB's Python enum lacks ("29 is not a valid StatementType": UPDATE EXTENSIONS)
        return "UNKNOWN"
    return kind.name if hasattr(kind, "name") else str(kind).split(".")[-1]


def _refused_type(con, statement) -> str | None:
    kind = _type(statement)
    if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: judge that one
        match = _EXPLAIN.match(statement.query)
        inner = statement.query[match.end():] if match else ""
        try:
            inner_statements = con.extract_statements(inner) if inner.strip() else []
        except duckdb.Error:
            inner_statements = []
        if not inner_statements:
            return "EXPLAIN" if re.search(r"\bANALY[SZ]E\b", statement.query, re.IGNORECASE) else None
        return next((r for r in (_refused_type(con, s) for s in inner_statements) if r), None)
    return None if kind in READ_ONLY_TYPES else kind


def _relation(con: duckdb.DuckDBPyConnection, statement, db, write: bool):
    """Run (or, for a SELECT, prepare lazily) one statement; None when it returns nothing."""
    try:
        return con.sql(statement.query)
    except duckdb.Error as exc:
        raise WarehouseError(_explain(exc, write, db)) from None


def _explain(exc: duckdb.Error, write: bool, db=None) -> str:
    """DuckDB's message as one line: its first paragraph, without the LINE/caret pointer."""
    kept = []
    for line in str(exc).strip().splitlines():
        if not line.strip() or line.startswith("LINE "):
            break
        kept.append(line.strip())
    text = " ".join(kept) or type(exc).__name__
    if not write and "read-only" in text.lower():
        return ("this query writes to the warehouse, which `sql` opens read-only; "
                "pass --write to allow it (it then takes the writer lock)")
    if re.search(r"can only (delete from|update|insert into) base table", text, re.I):
        return ("the base tables are views over the Parquet files ingest wrote and cannot be changed: "
                "re-ingest the dataset to replace its rows (`mementos ingest SOURCE --name NAME`)")
    if not write and "disabled by configuration" in text:
        return (f"the query failed: {text} (`sql` without --write reads only the warehouse's own files; "
                f"pass --write to read others)")
    missing = _MISSING_TABLE.search(text)
    if missing:
        name = missing.group(1).strip("\"'!").lower()
        model = _model_named(name)
        if model:
            where = f" --db {db}" if db is not None else ""
            return (f"the model {name} is not built in this warehouse yet: run `mementos build{where}` "
                    f"(or `mementos build{where} --select {name}`), then query it")
    return f"the query failed: {text}"


def _model_named(name: str) -> bool:
    from mementos.warehouse.models import MODELS_DIR

    return (MODELS_DIR / f"{name}.sql").is_file()


# ---------------------------------------------------------------------------
# Values


def _plain(value):
    """A value as JSON can carry it."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


def _visible(text: str) -> str:
    """Text for the table format: newlines and tabs as \\n and \\t (they would break the layout), every
    other control character escaped (they would drive the terminal: console.escape_controls)."""
    return escape_controls(text.replace("\n", "\\n").replace("\t", "\\t"))


def _cell(value: str | None) -> str:
    """A VARCHAR value as a table cell: NULL spelled out, control characters visible, long values cut."""
    if value is None:
        return "NULL"
    text = _visible(value)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 3] + "..."


class _Escaping:
    """A text stream that writes to `out` with control characters escaped, the way `escape` writes them."""

    def __init__(self, out: TextIO, escape):
        self.out, self.escape = out, escape

    def write(self, text: str) -> int:
        return self.out.write(self.escape(text))


def _json_escape(text: str) -> str:
    """Control characters as JSON escapes (\\u001b): the same JSON, with nothing raw for a terminal to obey.
    json.dumps already escapes C0 inside strings; this catches DEL and C1 (U+0080-U+009F)."""
    return CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _as_text(rel):
    """The relation with every column cast to VARCHAR by DuckDB: values read as DuckDB prints them."""
    return rel.select("COLUMNS(*)::VARCHAR")


def _batches(rel, batch_rows: int = BATCH_ROWS) -> Iterator[list[tuple]]:
    """The relation's rows, a batch at a time, streamed (never the whole result in memory)."""
    reader = rel.to_arrow_reader(batch_rows)
    for batch in reader:
        if batch.num_rows:
            yield list(zip(*(column.to_pylist() for column in batch.columns)))


# ---------------------------------------------------------------------------
# Formats: each writes one result and returns nothing


def _table(rel, out: TextIO, max_rows: int | None) -> None:
    columns = list(rel.columns)
    numeric = [bool(_NUMERIC.match(str(t))) for t in rel.types]
    limit = DEFAULT_MAX_ROWS if max_rows is None else max_rows
    text = _as_text(rel)
    if limit:
        rows = text.limit(limit + 1).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        total = len(rel) if more else len(rows)  # count(*) over the query: DuckDB reads only what it needs
        batches: Iterator[list[tuple]] = iter([rows])
    else:
        batches, more, total = _batches(text), False, None
    first = next(batches, [])
    # Widths come from the first batch (cells are cut at MAX_CELL, so later rows rarely exceed them).
    names = [_visible(name) for name in columns]
    widths = [max([len(name)] + [len(_cell(row[c])) for row in first]) for c, name in enumerate(names)]

    def line(values):
        return "  ".join(v.rjust(w) if numeric[c] else v.ljust(w)
                         for c, (v, w) in enumerate(zip(values, widths))).rstrip()

    out.write(line(names) + "\n" + "  ".join("-" * w for w in widths) + "\n")
    shown = 0
    for batch in itertools.chain([first], batches):
        for row in batch:
            out.write(line([_cell(v) for v in row]) + "\n")
            shown += 1
    total = shown if total is None else total
    noun = "row" if total == 1 else "rows"
    if more:
        out.write(f"({total:,} {noun}, first {shown:,} shown; --max-rows N shows more, --max-rows 0 all)\n")
    else:
        out.write(f"({total:,} {noun})\n")


# csv and json are data: to a pipe or a file they are written byte for byte; only on a terminal, where they
# are read, are control characters escaped.


def _csv(rel, out: TextIO, max_rows: int | None) -> None:
    writer = csv.writer(_Escaping(out, escape_controls) if is_terminal(out) else out, lineterminator="\n")
    writer.writerow(rel.columns)
    text = _as_text(rel)
    for batch in _batches(text.limit(max_rows) if max_rows else text):
        writer.writerows(["" if v is None else v for v in row] for row in batch)


def _json(rel, out: TextIO, max_rows: int | None) -> None:
    columns = list(rel.columns)
    if is_terminal(out):
        out = _Escaping(out, _json_escape)
    out.write("[")
    first = True
    for batch in _batches(rel.limit(max_rows) if max_rows else rel):
        for row in batch:
            out.write(("\n" if first else ",\n")
                      + json.dumps(dict(zip(columns, map(_plain, row))), ensure_ascii=False))
            first = False
    out.write("\n]\n" if not first else "]\n")


WRITERS = {"table": _table, "csv": _csv, "json": _json}


# ---------------------------------------------------------------------------
# Entry points


def write_sql(db: str | Path, query: str | None = None, out: TextIO | None = None, fmt: str = "table",
              file: str | Path | None = None, write: bool = False, max_rows: int | None = None) -> None:
    """The `sql` command: run QUERY (or the file's) statement by statement, writing each result to `out`.

    `max_rows`: None shows 40 rows in the table format and every row in csv/json;
    N shows at most N; 0 shows all.
    """
    import sys

    out = out if out is not None else sys.stdout
    if query and file:
        raise WarehouseError("give QUERY or --file, not both")
    if fmt not in FORMATS:
        raise WarehouseError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")
    if max_rows is not None and max_rows < 0:
        raise WarehouseError(f"--max-rows must be 0 (all rows) or more, not {max_rows}")
    text = read_query_file(file) if file else query
    if not text or not text.strip():
        raise WarehouseError(NO_QUERY)
    with _open(db, write) as con:
        parsed = statements(con, text, write)
        with_rows = [i for i, s in enumerate(parsed, 1) if _type(s) in ROW_TYPES]
        if fmt != "table" and len(with_rows) > 1:
            raise WarehouseError(
                f"--format {fmt} writes one result, and statements {', '.join(map(str, with_rows))} of this "
                f"query each return rows: run them one at a time, or use --format table to see each result")
        printed = 0
        for statement in parsed:
            rel = _relation(con, statement, db, write)
            kind = _type(statement)
            if rel is None or (kind not in ROW_TYPES and (fmt != "table" or kind not in COUNT_TYPES)):
                continue  # SET, CREATE, ...: nothing to show
            if printed and fmt == "table":
                out.write("\n")
            try:
                WRITERS[fmt](rel, out, max_rows)
            except duckdb.Error as exc:
                raise WarehouseError(_explain(exc, write, db)) from None
            printed += 1
        if not printed and fmt == "table":
            out.write("ok\n")


def run_sql(db: str | Path, query: str | None = None, fmt: str = "table", file: str | Path | None = None,
            write: bool = False, max_rows: int | None = None) -> str:
    """`write_sql` into a string (without the final newline): for tests and callers that want the text."""
    buffer = io.StringIO()
    write_sql(db, query, buffer, fmt=fmt, file=file, write=write, max_rows=max_rows)
    return buffer.getvalue().rstrip("\n")


def execute(db: str | Path, query: str, write: bool = False) -> QueryResult:
    """Run `query` (one or more statements, in order); the last one's rows as Python values."""
    if not query or not query.strip():
        raise WarehouseError(NO_QUERY)
    with _open(db, write) as con:
        result = QueryResult([], [])
        for statement in statements(con, query, write):
            rel = _relation(con, statement, db, write)
            if rel is not None:
                try:
                    result = QueryResult(list(rel.columns), rel.fetchall())
                except duckdb.Error as exc:
                    raise WarehouseError(_explain(exc, write, db)) from None
        return result
