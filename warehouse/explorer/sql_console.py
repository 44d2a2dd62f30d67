"""The explorer's SQL console: one read-only statement, a time limit, a row cap.

On top of what `mementos sql` does without --write (warehouse/query.py: the snapshot locked down by
`lock_down`, and `statements` refusing COPY, ATTACH, INSTALL, LOAD, EXPORT, ...), the console runs one
statement per request, of a kind that only reads: SELECT (which is also what DuckDB makes of WITH,
VALUES, FROM-first queries, DESCRIBE, SHOW and SUMMARIZE) or EXPLAIN. DuckDB has no statement
timeout, so a timer thread interrupts the connection at the time limit. Every refusal or failure is
one line.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb

from mementos.foundation.errors import WarehouseError
from mementos.warehouse.query import _WHAT, _as_text, _batches, _explain, _plain, _type, statements

KINDS = ("SELECT", "EXPLAIN")
EXAMPLE = "SELECT domain, count(*) AS traces FROM traces GROUP BY domain ORDER BY traces DESC"


@dataclass
class Limits:
    seconds: float = 5.0  # --sql-time-limit
    max_rows: int = 1000  # --max-rows: rows shown in the page and in /sql.json


@dataclass
class Result:
    columns: list[str]
    types: list[str]
    rows: list[list]
    truncated: bool  # more rows than max_rows: the CSV and JSON Lines links give them all

    def to_json(self) -> dict:
        return {"columns": self.columns, "rows": [[_plain(v) for v in row] for row in self.rows],
                "truncated": self.truncated}


def checked(con: duckdb.DuckDBPyConnection, sql: str | None):
    """The one statement of `sql`, refused in one line if there are several or it is not a reading kind."""
    if not sql or not sql.strip():
        raise WarehouseError(f"no query given: pass one in ?sql=, e.g. {EXAMPLE}")
    try:
        parsed = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise WarehouseError(_explain(exc, write=True)) from None
    if len(parsed) != 1:
        raise WarehouseError(f"the console runs one statement at a time, and this query has {len(parsed)}: "
                             f"send them one by one")
    kind = _type(parsed[0])
    if kind not in KINDS:
        what = _WHAT.get(kind, kind)
        raise WarehouseError(f"the console only reads: it runs SELECT, WITH, EXPLAIN, DESCRIBE, SHOW and SUMMARIZE "
                             f"statements, and this one runs {what}")
    [statement] = statements(con, sql, write=False)  # query.py's refusals (EXPLAIN ANALYZE COPY ...) as well
    return statement


@contextmanager
def time_limit(con: duckdb.DuckDBPyConnection, seconds: float):
    """Interrupt `con`'s query after `seconds`; the interruption as one line."""
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        raise WarehouseError(f"the query ran longer than the time limit of {seconds:g} s and was stopped "
                             f"(mementos serve --sql-time-limit sets it)") from None
    finally:
        timer.cancel()


def run(con: duckdb.DuckDBPyConnection, sql: str | None, limits: Limits) -> Result:
    """The first `limits.max_rows` rows of the statement's result, within the time limit."""
    statement = checked(con, sql)
    with time_limit(con, limits.seconds):
        try:
            rel = con.sql(statement.query)
            if rel is None:
                return Result([], [], [], False)
            limited = rel.limit(limits.max_rows + 1) if _type(statement) == "SELECT" else rel
            rows = limited.fetchall()[:limits.max_rows + 1]
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            raise WarehouseError(_explain(exc, write=True)) from None
    return Result(list(rel.columns), [str(t) for t in rel.types], [list(r) for r in rows[:limits.max_rows]],
                  len(rows) > limits.max_rows)


def stream(con: duckdb.DuckDBPyConnection, sql: str | None, limits: Limits, fmt: str) -> Iterator[str]:
    """Every row of the statement's result as CSV (values as DuckDB prints them) or JSON Lines, a batch at a
    time, within the time limit. The statement is checked and started before the first chunk, so that a
    refusal or an error in it is still one line with HTTP 400; one later stops the stream."""
    statement = checked(con, sql)
    try:
        rel = con.sql(statement.query)
    except duckdb.Error as exc:
        raise WarehouseError(_explain(exc, write=True)) from None
    if rel is None:
        return iter(())
    return _chunks(con, rel, limits, fmt)


def _chunks(con, rel, limits: Limits, fmt: str) -> Iterator[str]:
    columns = list(rel.columns)
    with time_limit(con, limits.seconds):
        if fmt == "csv":
            yield _csv_lines([columns])
            for batch in _batches(_as_text(rel)):
                yield _csv_lines([["" if v is None else v for v in row] for row in batch])
        else:
            for batch in _batches(rel):
                yield "".join(json.dumps(dict(zip(columns, map(_plain, row))), ensure_ascii=False) + "\n"
                              for row in batch)


def _csv_lines(rows) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()
