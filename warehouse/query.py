"""Ad hoc SQL against the warehouse: `mementos sql "QUERY" --db PATH`.

Queries run on a read-only connection unless `write=True`, in which case the
writer lock is taken first, as for ingest and build. Errors from DuckDB come
back as one WarehouseError line.
"""

from __future__ import annotations

import re

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import duckdb

from warehouse import storage
from warehouse.storage import WarehouseError

FORMATS = ("table", "csv", "json")
MAX_CELL = 60  # table format: longer values are cut, with "..."


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def read_query_file(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WarehouseError(f"cannot read the query file {path}: {exc}") from None


def execute(db: str | Path, query: str, write: bool = False) -> QueryResult:
    """Run `query` (one or more statements; the last one's rows are returned)."""
    if not query or not query.strip():
        raise WarehouseError("no query given: pass QUERY or --file q.sql")
    if write:
        if not Path(db).exists():
            raise WarehouseError(f"no warehouse at {db}; create one with `mementos ingest SOURCE --db {db}`")
        with storage.write_lock(db, "sql --write"):
            with storage.connect(db, read_only=False) as con:
                return _run(con, query, write)
    with storage.connect(db, read_only=True) as con:
        return _run(con, query, write)


def _run(con: duckdb.DuckDBPyConnection, query: str, write: bool) -> QueryResult:
    try:
        rel = con.sql(query)
        if rel is None:  # a statement without a result (CREATE, INSERT ... in DuckDB's API)
            return QueryResult([], [])
        return QueryResult(list(rel.columns), rel.fetchall())
    except duckdb.Error as exc:
        raise WarehouseError(_explain(exc, write)) from None


def _explain(exc: duckdb.Error, write: bool) -> str:
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
    return f"the query failed: {text}"


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


def _text(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{value:.1f}"
        return f"{value:.6g}" if abs(value) < 1e-3 or abs(value) >= 1e9 else f"{value:.4f}".rstrip("0")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def format_result(result: QueryResult, fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps([dict(zip(result.columns, map(_plain, row))) for row in result.rows],
                          ensure_ascii=False, indent=1)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow(["" if v is None else v for v in row])
        return out.getvalue().rstrip("\n")
    if fmt != "table":
        raise WarehouseError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")
    if not result.columns:
        return "ok"
    cells = [[_cut(_text(v)) for v in row] for row in result.rows]
    numeric = [all(isinstance(row[c], (int, float, Decimal)) or row[c] is None for row in result.rows)
               and not all(row[c] is None for row in result.rows) for c in range(len(result.columns))]
    widths = [max([len(name)] + [len(r[c]) for r in cells]) for c, name in enumerate(result.columns)]

    def line(values):
        return "  ".join(v.rjust(w) if numeric[c] else v.ljust(w)
                         for c, (v, w) in enumerate(zip(values, widths))).rstrip()

    lines = [line(result.columns), "  ".join("-" * w for w in widths)]
    lines.extend(line(r) for r in cells)
    lines.append(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})")
    return "\n".join(lines)


def _cut(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 3] + "..."


def run_sql(db: str | Path, query: str | None = None, fmt: str = "table", file: str | Path | None = None,
            write: bool = False) -> str:
    """The `sql` command: run QUERY (or the file's) and format its rows."""
    if query and file:
        raise WarehouseError("give QUERY or --file, not both")
    if fmt not in FORMATS:
        raise WarehouseError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")
    text = read_query_file(file) if file else query
    return format_result(execute(db, text or "", write=write), fmt)
