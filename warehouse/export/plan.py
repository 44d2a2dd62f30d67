"""The plan of an export, as SQL over the export view: every candidate example's key and reason to be left
out (LeftOut; none: kept), the view's rows of the kept examples, and the chunks the kept traces are read in.
The plan and the kept rows are written to Parquet files in the export's spill directory, each with a temp
view over it (__export_plan, __export_kept), so no sort or window holds the spans or the texts."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Sequence

import duckdb

from mementos.foundation import disk
from mementos.foundation.errors import WarehouseError, first_line
from mementos.warehouse.export.spec import LeftOut

OUTLIER_MODEL = "outlier_traces"
# The one definition of a memento that copies its block (outlier_traces counts the same pairs):
# `summarize` leaves its pairs out, reason `copied`.
COPIES_MODEL = "memento_copies"
CHUNK_CHARS = 16_000_000  # response chars fetched per chunk (plus one trace at most)
CHUNK_TRACES = 20_000
PLAN_ROW_GROUP_ROWS = 4096  # the plan file's row groups: a chunk reads the few that hold its rows


def select_outliers(con, selected: bool | Sequence[str]) -> list[str]:
    """Fill the temp table __export_outliers (trace_id, reason): the traces of outlier_traces to leave out,
    each under the first of its reasons that was selected (True: any reason; the model's order). The reasons
    are read from a `reasons` or `reason` column, comma-separated text or a list, so a change of the model's
    other columns or of its grain (one row per trace and reason) does not matter. Returns the reasons present."""
    con.execute("CREATE OR REPLACE TEMP TABLE __export_outliers (trace_id VARCHAR, reason VARCHAR)")
    if not selected:
        return []
    columns = {name.lower(): type_ for name, type_, *_ in con.execute(f"DESCRIBE {OUTLIER_MODEL}").fetchall()}
    column = next((c for c in ("reasons", "reason") if c in columns), None)
    if "trace_id" not in columns or column is None:
        raise WarehouseError(f"--exclude-outliers: the model {OUTLIER_MODEL} has no trace_id and reasons column "
                             f"(its columns: {', '.join(columns)}); check models/{OUTLIER_MODEL}.sql")
    as_list = (f'"{column}"' if columns[column].endswith("[]")
               else f"""string_split(CAST("{column}" AS VARCHAR), ',')""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __outlier_reasons AS
        SELECT trace_id, trim(CAST(reason AS VARCHAR)) AS reason, pos FROM (
            SELECT trace_id, unnest({as_list}) AS reason, generate_subscripts({as_list}, 1) AS pos
            FROM {OUTLIER_MODEL})
        WHERE trim(CAST(reason AS VARCHAR)) <> ''""")
    present = [r for (r,) in con.execute("SELECT DISTINCT reason FROM __outlier_reasons ORDER BY ALL").fetchall()]
    wanted = None if selected is True else list(selected)
    unknown = [r for r in wanted or () if r not in present]
    if unknown:
        raise WarehouseError(f"--exclude-outliers {','.join(wanted)}: no trace in {OUTLIER_MODEL} has the reason "
                             f"{', '.join(unknown)}; reasons present: {', '.join(present) or '(none)'}")
    con.execute("""
        INSERT INTO __export_outliers
        SELECT trace_id, reason FROM __outlier_reasons
        WHERE $all OR list_contains($wanted, reason)
        QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY pos, reason) = 1""",
                {"all": wanted is None, "wanted": wanted or []})
    return present


def plan_sql(view: str, per_block: bool) -> str:
    """Every candidate's key, response_chars and reason to be left out (NULL: kept), in (dataset, source_row[,
    block_idx]) order. Narrow on purpose: the window and the sort hold these few columns, not the spans."""
    block = ", block_idx" if per_block else ""
    return f"""
WITH candidates AS (
    SELECT v.trace_id, v.dataset, v.source_row{', v.block_idx' if per_block else ''}, v.content_hash,
        v.response_chars, o.reason AS outlier_reason,
        CASE
            -- unsegmented traces have no mementos to train on: left out with the flagged ones
            WHEN NOT $include_flagged AND status <> 'ok' THEN '{LeftOut.FLAGGED}'
            WHEN $domain IS NOT NULL AND domain IS DISTINCT FROM $domain THEN '{LeftOut.DOMAIN}'
            WHEN o.reason IS NOT NULL THEN '{LeftOut.OUTLIER}'
        END AS pre
    FROM {view} AS v
    LEFT JOIN __export_outliers AS o ON o.trace_id = v.trace_id
),
ranked AS (
    SELECT *,
        row_number() OVER (PARTITION BY pre IS NULL, content_hash{block} ORDER BY dataset, source_row) AS copy
    FROM candidates
)
SELECT * EXCLUDE (content_hash, pre, copy),
    coalesce(pre, CASE
        WHEN copy > 1 THEN '{LeftOut.DUPLICATE}'
    END) AS reason
FROM ranked
ORDER BY dataset, source_row{block}
"""


def kept_sql(view: str, per_block: bool) -> str:
    """The view's rows of the kept examples (the plan's rows whose reason is NULL), with the plan's columns, in
    no particular order: nothing is sorted or held but the view's own aggregates, and a chunk sorts its rows.
    Per block, COPIES_MODEL's memento_copies_block too."""
    if not per_block:
        return f"""
SELECT v.*, p.outlier_reason, p.reason
FROM {view} AS v
JOIN __export_plan AS p ON v.trace_id = p.trace_id
WHERE p.reason IS NULL
"""
    return f"""
SELECT v.*, coalesce(c.memento_copies_block, FALSE) AS memento_copies_block, p.outlier_reason, p.reason
FROM {view} AS v
JOIN __export_plan AS p ON v.trace_id = p.trace_id AND v.block_idx = p.block_idx
LEFT JOIN {COPIES_MODEL} AS c ON c.trace_id = v.trace_id AND c.block_idx = v.block_idx
WHERE p.reason IS NULL
"""


def write_parquet(con, sql: str, params: dict, path: Path, ordered: bool) -> str:
    """The query's rows into a Parquet file in the export's spill directory (`ordered`: in the query's order),
    and a temp view over it; returns the view's name."""
    if ordered:
        con.execute("SET preserve_insertion_order = true")  # the file in the query's order
    try:
        con.sql(sql, params=params).write_parquet(str(path), row_group_size=PLAN_ROW_GROUP_ROWS)
    except duckdb.Error as exc:
        if disk.is_disk_full(exc):  # as an OSError naming the file, like the split files' (disk.failed_path)
            raise OSError(errno.ENOSPC, first_line(exc), str(path)) from None
        raise
    finally:
        con.execute("SET preserve_insertion_order = false")
    return "read_parquet('" + str(path).replace("'", "''") + "')"


def write_plan(con, view: str, per_block: bool, params: dict, spill: Path) -> None:
    """The plan in two Parquet files in the export's spill directory, each with a temp view over it (a temp
    table would keep every candidate's spans in memory for the whole export): __export_plan, every candidate's
    key and reason, in order (the counts and the chunks come from it); __export_kept, the view's rows of the
    kept examples (the chunks read theirs). One query doing both held every trace's span lists in its window
    and its sort: ~600 MiB at 228,557 traces against ~240 at 20,000."""
    source = write_parquet(con, plan_sql(view, per_block), params, spill / "plan.parquet", ordered=True)
    con.execute(f"CREATE OR REPLACE TEMP VIEW __export_plan AS SELECT * FROM {source}")
    source = write_parquet(con, kept_sql(view, per_block), {}, spill / "kept.parquet", ordered=False)
    con.execute(f"CREATE OR REPLACE TEMP VIEW __export_kept AS SELECT * FROM {source}")


# Kept traces cut into chunks of consecutive source rows: a new chunk starts every CHUNK_CHARS
# response chars or CHUNK_TRACES traces, whichever comes first.
def chunks_sql() -> str:
    return f"""
WITH kept AS (
    SELECT DISTINCT dataset, source_row, response_chars FROM __export_plan WHERE reason IS NULL
),
numbered AS (
    SELECT dataset, source_row,
        (sum(response_chars) OVER w - response_chars) // {int(CHUNK_CHARS)} AS by_chars,
        (row_number() OVER w - 1) // {int(CHUNK_TRACES)} AS by_traces
    FROM kept
    WINDOW w AS (PARTITION BY dataset ORDER BY source_row ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT dataset, min(source_row) AS first_row, max(source_row) AS last_row
FROM numbered
GROUP BY dataset, by_chars, by_traces
ORDER BY dataset, first_row
"""

# In order: a slice of the chunk's traces is then a slice of these rows, not a copy of their texts.
TEXTS_SQL = """
SELECT source_row, problem, response FROM traces
WHERE dataset = $dataset AND source_row BETWEEN $first AND $last
  AND trace_id IN (SELECT trace_id FROM __export_plan
                   WHERE reason IS NULL AND dataset = $dataset AND source_row BETWEEN $first AND $last)
ORDER BY source_row
"""
