"""Audits: SQL that returns a model's offending rows. An audit passes when it returns none.

Declared in a model's header under `audits:` (the grain's `unique` audit is
always added)::

    audits:
      - unique: [trace_id, block_idx]
      - not_null: [block_chars, memento_chars]
      - accepted_values: {column: k, values: [1, 2, 4, 8]}
      - accepted_range: {column: ratio_chars, min: 0, max: 1000}
      - custom:
          name: memento_shorter_than_trace
          sql: SELECT * FROM {this} WHERE memento_chars > trace_chars

`{this}` stands for the table being audited: the new table, before it
replaces the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlglot import exp

from mementos.foundation.errors import WarehouseError

SHOW_ROWS = 5


@dataclass(frozen=True)
class Audit:
    name: str  # shown in messages, e.g. "not_null(block_chars, memento_chars)"
    query: str  # SELECT returning offending rows; {this} is the audited table
    sql: str | None = None  # the custom audit's SQL as written (None for built-in kinds)


@dataclass
class AuditFailure:
    audit: str
    offending: int  # number of offending rows
    columns: list[str]
    rows: list[tuple]  # the first SHOW_ROWS of them

    def describe(self) -> str:
        lines = [f"audit {self.audit} failed: {self.offending} offending row{'s' if self.offending != 1 else ''}"
                 + (f" (first {len(self.rows)})" if self.offending > len(self.rows) else "")]
        lines.append("    " + " | ".join(self.columns))
        for row in self.rows:
            lines.append("    " + " | ".join(_cell(v) for v in row))
        return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def unique(columns: list[str]) -> Audit:
    cols = ", ".join(quote(c) for c in columns)
    return Audit(f"unique({', '.join(columns)})",
                 f"SELECT {cols}, count(*) AS n_rows FROM {{this}} GROUP BY {cols} HAVING count(*) > 1")


def not_null(columns: list[str]) -> Audit:
    where = " OR ".join(f"{quote(c)} IS NULL" for c in columns)
    return Audit(f"not_null({', '.join(columns)})", f"SELECT * FROM {{this}} WHERE {where}")


def accepted_values(column: str, values: list) -> Audit:
    listed = ", ".join(exp.convert(v).sql(dialect="duckdb") for v in values)
    return Audit(f"accepted_values({column})",
                 f"SELECT * FROM {{this}} WHERE {quote(column)} IS NOT NULL AND {quote(column)} NOT IN ({listed})")


def accepted_range(column: str, low=None, high=None) -> Audit:
    conditions = []
    if low is not None:
        conditions.append(f"{quote(column)} < {exp.convert(low).sql(dialect='duckdb')}")
    if high is not None:
        conditions.append(f"{quote(column)} > {exp.convert(high).sql(dialect='duckdb')}")
    bounds = f"[{'' if low is None else low}, {'' if high is None else high}]"
    return Audit(f"accepted_range({column} in {bounds})", f"SELECT * FROM {{this}} WHERE {' OR '.join(conditions)}")


def custom(name: str, sql: str) -> Audit:
    sql = sql.strip().rstrip(";")
    return Audit(name, sql, sql=sql)


def _columns(value, kind: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        raise WarehouseError(f"{where}: audit {kind} takes a list of column names")
    return [c.lower() for c in value]


def parse_audits(spec, where: str) -> list[Audit]:
    """Audits declared in a header, in order (the grain's unique audit is added by the engine)."""
    if spec is None:
        return []
    if not isinstance(spec, list):
        raise WarehouseError(f"{where}: `audits` must be a list")
    audits = []
    for item in spec:
        if not isinstance(item, dict) or len(item) != 1:
            raise WarehouseError(f"{where}: each audit is one `kind: arguments` entry, not {item!r}")
        [(kind, args)] = item.items()
        if kind == "unique":
            audits.append(unique(_columns(args, kind, where)))
        elif kind == "not_null":
            audits.append(not_null(_columns(args, kind, where)))
        elif kind == "accepted_values":
            if not isinstance(args, dict) or "column" not in args or not isinstance(args.get("values"), list):
                raise WarehouseError(f"{where}: accepted_values takes {{column: C, values: [...]}}")
            audits.append(accepted_values(str(args["column"]).lower(), args["values"]))
        elif kind == "accepted_range":
            if not isinstance(args, dict) or "column" not in args or ("min" not in args and "max" not in args):
                raise WarehouseError(f"{where}: accepted_range takes {{column: C, min: X, max: Y}} (min or max or both)")
            audits.append(accepted_range(str(args["column"]).lower(), args.get("min"), args.get("max")))
        elif kind == "custom":
            if not isinstance(args, dict) or not args.get("name") or not args.get("sql"):
                raise WarehouseError(f"{where}: custom audits take {{name: N, sql: SELECT ... FROM {{this}} ...}}")
            if "{this}" not in args["sql"]:
                raise WarehouseError(f"{where}: custom audit {args['name']!r} must read {{this}}, the table being audited")
            audits.append(custom(str(args["name"]), str(args["sql"])))
        else:
            raise WarehouseError(f"{where}: unknown audit kind {kind!r}; use unique, not_null, accepted_values, "
                                 f"accepted_range or custom")
    return audits


def run_audits(query_rows: Callable[[str], tuple[list[str], list[tuple]]], audits: list[Audit],
               ref: str) -> tuple[int, list[AuditFailure]]:
    """(rows of the relation `ref`, written as the engine quotes it; the audits that failed). Every count
    is one statement, so that a model's audits cost one query on either engine; the offending rows are
    read only for the audits that fail. `query_rows(sql)` runs a query: (column names, rows)."""
    queries = [a.query.replace("{this}", ref) for a in audits]
    counts = ", ".join([f"(SELECT count(*) FROM {ref}) AS n_rows"]
                       + [f"(SELECT count(*) FROM ({q}) AS offending) AS a{i}" for i, q in enumerate(queries)])
    _, [(rows, *offending_counts)] = query_rows(f"SELECT {counts}")
    failures = []
    for audit, query, offending in zip(audits, queries, offending_counts):
        if offending:
            columns, examples = query_rows(f"SELECT * FROM ({query}) AS offending LIMIT {SHOW_ROWS}")
            failures.append(AuditFailure(audit.name, offending, columns, examples))
    return rows, failures
