"""The base tables as views over the committed runs' Parquet files.

Ingest stores two Parquet tables (sql/schema.sql: `stored_traces`, `stored_full_traces`)
under the warehouse's data directory; the DuckDB file holds only views over them
(sql/views.sql), `ingest_runs`, the models and `model_builds`. The views name
their files relative to the folder that holds the DuckDB file, so the folder can
be moved or copied: `storage.connect` points DuckDB's `file_search_path` there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import duckdb

from mementos.foundation.errors import WarehouseError
from mementos.foundation.layout import run_dir, run_key
from mementos.foundation.resources import resource_dir

SQL_DIR = resource_dir("sql")
SCHEMA_SQL = SQL_DIR / "schema.sql"
VIEWS_SQL = SQL_DIR / "views.sql"
SPARK_VIEWS_SQL = SQL_DIR / "views.spark.sql"

# directory under the data directory -> the DDL table describing its files
STORES = {"traces": "stored_traces", "full_traces": "stored_full_traces"}
VIEW_NAMES = ("traces", "segments", "parse_issues", "full_traces", "sentences", "full_blocks")


@lru_cache(maxsize=1)
def _statements() -> dict[str, str]:
    """CREATE TABLE statements of sql/schema.sql by table name."""
    out = {}
    for statement in duckdb.extract_statements(SCHEMA_SQL.read_text()):
        sql = statement.query
        name = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", sql).group(1)
        out[name] = sql
    return out


@lru_cache(maxsize=2)
def view_templates(engine: str = "duckdb") -> dict[str, str]:
    """name -> SELECT, from sql/views.sql ({stored_traces} / {stored_full_traces} placeholders)
    or, for engine='spark', from sql/views.spark.sql (over temp views of those names)."""
    text = (SPARK_VIEWS_SQL if engine == "spark" else VIEWS_SQL).read_text()
    parts = re.split(r"^-- view: (\w+)\s*$", text, flags=re.M)
    views = {name: body.strip().rstrip(";").strip() for name, body in zip(parts[1::2], parts[2::2])}
    assert tuple(views) == VIEW_NAMES, f"the {engine} views are {tuple(views)}"
    return views


@lru_cache(maxsize=1)
def _stored_tables() -> dict[str, tuple[list[tuple[str, str]], "pyarrow.Schema"]]:
    """By directory name: the (name, DuckDB type) columns and the Arrow schema of each stored table,
    read once from sql/schema.sql in an in-memory DuckDB."""
    con = duckdb.connect()
    try:
        out = {}
        for directory, table in STORES.items():
            con.execute(_statements()[table])
            columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]
            out[directory] = (columns, con.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table().schema)
        return out
    finally:
        con.close()


def store_schemas() -> dict[str, "pyarrow.Schema"]:
    """Arrow schemas of the stored Parquet tables, by directory name ('traces', 'full_traces')."""
    return {directory: schema for directory, (_, schema) in _stored_tables().items()}


def ensure_ingest_runs(con: duckdb.DuckDBPyConnection) -> None:
    """Create ingest_runs, or give one written before runs were numbered its run_seq (in the order
    they finished, as their committed run was chosen then) and one written before shards were
    recorded the shard counters (NULL in its earlier runs)."""
    con.execute(_statements()["ingest_runs"])
    con.execute("ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS run_seq BIGINT")
    for column, type_ in (("rows_unsegmented", "BIGINT"), ("rows_rejected", "BIGINT"), ("rejected_reasons", "VARCHAR")):
        con.execute(f"ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS {column} {type_}")
    con.execute("UPDATE ingest_runs SET run_seq = n.seq FROM (SELECT run_id, row_number() OVER "
                "(ORDER BY finished_at, run_id) AS seq FROM ingest_runs) AS n "
                "WHERE ingest_runs.run_id = n.run_id AND ingest_runs.run_seq IS NULL").fetchall()
    for name in SHARD_COUNTERS:
        con.execute(f"ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS {name} "
                    f"{'BOOLEAN' if name == 'full_refresh' else 'BIGINT'}")


def ensure_ingest_shards(con: duckdb.DuckDBPyConnection) -> None:
    """Create ingest_shards, ingest_rejections and the view rejected_rows over them. A warehouse written before it has no rows there: its committed runs are
    read from their run directories (live_files), and its next ingest re-reads every shard."""
    con.execute(_statements()["ingest_shards"])
    con.execute("ALTER TABLE ingest_shards ADD COLUMN IF NOT EXISTS traces BIGINT")
    con.execute(_statements()["ingest_rejections"])
    con.execute(REJECTED_ROWS_VIEW)  # over the live shards


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    [(found,)] = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                             "AND schema_name = 'main' AND table_name = ?", [name]).fetchall()
    return bool(found)


# The rejected rows of every dataset's live shards: those its committed run (the latest run_seq) keeps,
# each with the rejections of the run that read it (an unchanged shard keeps its earlier run's).
REJECTED_ROWS_VIEW = """CREATE OR REPLACE VIEW rejected_rows AS
SELECT r.dataset, r.source_file, r.source_row, r.reason, r.run_id
FROM ingest_rejections AS r
SEMI JOIN (SELECT dataset, data_run_id, path FROM ingest_shards
           WHERE config = 'default' AND run_id IN (SELECT run_id FROM ingest_runs
               QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY run_seq DESC) = 1)) AS live
  ON live.dataset = r.dataset AND live.data_run_id = r.run_id AND live.path = r.source_file"""


def insert_rejections(con: duckdb.DuckDBPyConnection, run: "IngestRun", rows: list[tuple[str, int, str]]) -> None:
    """Record the run's rejected rows, (source_file, source_row, reason); the view rejected_rows shows those
    of the live shards."""
    if rows:
        import pyarrow as pa

        files, source_rows, reasons = zip(*rows)
        table = pa.table({"run_id": [run.run_id] * len(rows), "dataset": [run.dataset] * len(rows),
                          "source_file": list(files), "source_row": list(source_rows), "reason": list(reasons)})
        con.register("_rejected", table)
        con.execute("INSERT INTO ingest_rejections BY NAME SELECT * FROM _rejected")
        con.unregister("_rejected")


def _empty(directory: str) -> str:
    cols = ", ".join(f'CAST(NULL AS {typ}) AS "{name}"' for name, typ in _stored_tables()[directory][0])
    return f"(SELECT {cols} WHERE false)"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sources(root: Path, files: dict[str, list[str]]) -> dict[str, str]:
    """The FROM clause of each stored table: read_parquet over the given Parquet files of the data
    directory `root` ({'traces': ['traces/<slug>/<run_id>/<file>', ...], ...}: live_files), each
    named relative to the warehouse's folder, or a typed empty SELECT when there are none. Named,
    not globbed: a snapshot reads exactly the files it was published with, a run directory may
    hold files of shards replaced since, and a folder name with glob characters (`w[1].duckdb`)
    is no pattern."""
    out = {}
    for directory, table in STORES.items():
        named = [f"{root.name}/{rel}" for rel in files.get(directory) or []]
        # union_by_name: runs written before a column was added (sql/schema.sql) read it as NULL
        out[table] = (f"read_parquet([{', '.join(map(_quote, named))}], union_by_name = true)" if named
                      else _empty(directory))
    return out


# A full row's trace_id is derived, not stored: the default trace of its dataset with the same
# content hash (problem and response), the lowest source_row when there are copies.
LINKED_FULL_TRACES = """(SELECT f.*, d.trace_id
    FROM {stored_full_traces} AS f
    LEFT JOIN (SELECT dataset, content_hash, {min_by}(trace_id, source_row) AS trace_id
               FROM {stored_traces} GROUP BY dataset, content_hash) AS d
      ON d.dataset = f.dataset AND d.content_hash = f.content_hash)"""


@lru_cache(maxsize=1)
def trace_range_view_names() -> tuple[str, ...]:
    """The base views trace_range_views renders: those over the stored tables themselves (traces,
    segments, parse_issues), not over the full rows linked to their default traces."""
    return tuple(name for name, template in view_templates().items()
                 if set(re.findall(r"\{(\w+)\}", template)) <= {"stored_traces", "stored_full_traces"})


def committed_sources(con: duckdb.DuckDBPyConnection, root: Path) -> dict[str, str]:
    """`sources` of the live files of the warehouse whose data directory is `root`."""
    return sources(root, live_files(con, root))


def sources_by_rows(con: duckdb.DuckDBPyConnection, root: Path) -> Callable[[str, int, int], dict[str, str]]:
    """A function (dataset, first_row, last_row) -> committed_sources, with `dataset`'s default traces
    narrowed to the files of the shards whose source rows meet first_row..last_row (ingest_shards): a
    lookup of a few traces then opens a file or two instead of every file's statistics. The catalog is
    read once, for any number of lookups. A dataset written before shards were recorded keeps every file."""
    files = live_files(con, root)
    default_shards = {dataset: [s for s in shards_of_run(con, run_id) if s.config == "default"]
                      for dataset, run_id in current_runs(con).items()}

    def of_rows(dataset: str, first_row: int, last_row: int) -> dict[str, str]:
        shards = default_shards.get(dataset)
        if not shards:
            return sources(root, files)
        theirs = {f for s in shards for f in s.files}
        meeting = {f for s in shards if s.first_row <= last_row and first_row < s.first_row + s.rows
                   for f in s.files}
        return sources(root, {**files, "traces": [f for f in files["traces"] if f not in theirs or f in meeting]})

    return of_rows


def trace_range_views(src: dict[str, str], dataset: str, first_row: int, last_row: int) -> dict[str, str]:
    """The SELECT of each base view whose trace_id is a default trace's (traces, segments,
    parse_issues) over the traces of `dataset` from source row `first_row` to `last_row`, from the
    sources `src` (committed_sources): DuckDB skips the row groups whose source_row statistics lie
    outside, so a batch of a batched model reads its own rows only. parse_issues keeps its default
    rows: a full row's issues carry its full_trace_id, which is no default trace's."""
    ranged = dict(src)
    ranged["stored_traces"] = (f"(SELECT * FROM {src['stored_traces']} WHERE dataset = {_quote(dataset)} "
                               f"AND source_row BETWEEN {int(first_row)} AND {int(last_row)})")
    ranged["stored_full_traces"] = _empty("full_traces")
    return {name: view_templates()[name].format(**ranged) for name in trace_range_view_names()}


FULL_RANGE_VIEW_NAMES = ("full_traces", "sentences", "full_blocks")  # the views over the full rows themselves


def full_range_views(src: dict[str, str], dataset: str, first_row: int, last_row: int) -> dict[str, str]:
    """The SELECT of each base view of the full rows (full_traces, sentences, full_blocks) over the
    full rows of `dataset` from source row `first_row` to `last_row`, as trace_range_views does for the
    default traces. Their trace_id still links each row to its default trace among all of them."""
    ranged = dict(src)
    ranged["stored_full_traces"] = (f"(SELECT * FROM {src['stored_full_traces']} WHERE dataset = {_quote(dataset)} "
                                    f"AND source_row BETWEEN {int(first_row)} AND {int(last_row)})")
    ranged["linked_full_traces"] = LINKED_FULL_TRACES.format(min_by="arg_min", **ranged)
    return {name: view_templates()[name].format(**ranged) for name in FULL_RANGE_VIEW_NAMES}


def create_views(con: duckdb.DuckDBPyConnection, root: Path, files: dict[str, list[str]]) -> None:
    """CREATE OR REPLACE every base view over `files` ({'traces': ['traces/<slug>/<run_id>/<file>', ...],
    ...}: live_files) in the data directory `root`."""
    src = sources(root, files)
    src["linked_full_traces"] = LINKED_FULL_TRACES.format(min_by="arg_min", **src)
    for name, template in view_templates().items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {template.format(**src)}")


@dataclass
class IngestRun:
    """One row of ingest_runs (sql/schema.sql): an ingest run and its counters. Its fields are the
    table's columns by name, but run_seq, which insert_run numbers (the shard counters come after
    run_seq in the table: they were added later)."""

    run_id: str
    dataset: str
    source: str
    config: str  # 'default' | 'full' | 'all'
    started_at: datetime  # UTC, as every time in the catalog
    finished_at: datetime | None = None  # when the run was committed
    rows_read: int = 0  # default rows + full rows
    rows_ok: int = 0
    rows_flagged: int = 0
    rows_unsegmented: int = 0  # traces of reasoning without memento markup
    rows_rejected: int = 0  # source rows that became no trace
    rejected_reasons: str | None = None  # JSON: rejected rows per reason code
    default_rows: int = 0
    full_rows: int = 0
    input_bytes: int = 0  # UTF-8 bytes of response text read
    parser_version: str = ""
    token_encoding: str | None = None  # None: ingested with --no-tokens
    seconds: float = 0.0  # from started_at to finished_at
    full_refresh: bool = True  # every shard re-read and numbered from 0
    shards_added: int = 0
    shards_replaced: int = 0
    shards_removed: int = 0
    shards_unchanged: int = 0
    rows_added: int = 0  # rows of the added shards
    rows_replaced: int = 0  # rows the replaced shards hold now
    rows_removed: int = 0  # rows of the removed shards
    rows_unchanged: int = 0


RUN_COLUMNS = tuple(f.name for f in fields(IngestRun))  # the columns of ingest_runs a run writes
SHARD_COUNTERS = RUN_COLUMNS[RUN_COLUMNS.index("full_refresh"):]  # added after run_seq (ensure_ingest_runs)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The columns the catalog's `table` has: a reader takes an older catalog as it is (only a writer adds
    columns)."""
    return {name for (name,) in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ?", [table]).fetchall()}


def run_columns(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The RUN_COLUMNS a reader finds in ingest_runs: a warehouse written before the shard counters
    is read as it is (only a writer adds columns)."""
    present = _columns(con, "ingest_runs")
    return tuple(name for name in RUN_COLUMNS if name in present)


def insert_run(con: duckdb.DuckDBPyConnection, run: IngestRun) -> None:
    """Record `run` in ingest_runs, by column name, as the newest run of all: run_seq orders the runs,
    never a clock (a clock set back must not make this run older)."""
    con.execute(f"INSERT INTO ingest_runs BY NAME SELECT {', '.join(f'${name} AS {name}' for name in RUN_COLUMNS)}, "
                f"(SELECT coalesce(max(run_seq), 0) + 1 FROM ingest_runs) AS run_seq",
                {name: getattr(run, name) for name in RUN_COLUMNS})


def current_runs_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The one SELECT of the committed runs: every column of ingest_runs, one row per dataset, its last
    committed run (run_seq, never a clock: a clock set back must not make an older run current). A
    catalog written before runs were numbered, read by a reader, falls back to the order they finished
    in (as ensure_ingest_runs numbers them)."""
    order = "run_seq DESC" if "run_seq" in _columns(con, "ingest_runs") else "finished_at DESC, run_id DESC"
    return f"SELECT * FROM ingest_runs QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY {order}) = 1"


def current_runs(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The committed run of every dataset: dataset -> run_id (current_runs_sql)."""
    return dict(con.execute(f"SELECT dataset, run_id FROM ({current_runs_sql(con)})").fetchall())


def check_not_legacy(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """A warehouse written before the base tables became views holds them as tables: say what to do."""
    # all three, as that layout had them: a user's own database with a `traces` table is no warehouse
    [(found,)] = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_name IN "
        "('traces', 'segments', 'ingest_runs') AND table_schema = 'main' AND table_catalog = current_database()"
    ).fetchall()
    if found == 3:
        raise WarehouseError(
            f"{db} was written by an earlier mementos that kept the texts inside the DuckDB file; "
            f"ingest again into a new warehouse (e.g. `mementos ingest SOURCE --db new.duckdb`) and remove the old one")


# ---------------------------------------------------------------------------
# Shards: the source files a dataset was read from, and the Parquet files holding their rows


@dataclass
class Shard:
    """One row of ingest_shards but its run_id and dataset (sql/schema.sql)."""

    config: str  # 'default' | 'full'
    path: str
    size: int | None
    content_hash: str | None  # None: read only in part (--limit), never taken as unchanged
    rows: int
    first_row: int
    data_run_id: str
    files: list[str]  # relative to PATH.data: <table>/<slug>/<data_run_id>/<file>.parquet
    traces: int | None = None  # its rows that became traces (an adapted row gives any number); None: recorded before


SHARD_COLUMNS = tuple(f.name for f in fields(Shard))


def insert_shards(con: duckdb.DuckDBPyConnection, run_id: str, dataset: str, shards: list[Shard]) -> None:
    """Record `shards` as the state of `dataset` after the run `run_id`."""
    if shards:
        con.executemany(f"INSERT INTO ingest_shards (run_id, dataset, {', '.join(SHARD_COLUMNS)}) "
                        f"VALUES (?, ?, {', '.join('?' for _ in SHARD_COLUMNS)})",
                        [[run_id, dataset, *(getattr(s, c) for c in SHARD_COLUMNS)] for s in shards])


def shards_of_run(con: duckdb.DuckDBPyConnection, run_id: str) -> list[Shard]:
    """The shards the run `run_id` left its dataset with (none for a run written before shards were
    recorded), in the order they were numbered."""
    present = _columns(con, "ingest_shards")
    if not present:  # no such table
        return []
    columns = [c for c in SHARD_COLUMNS if c in present]  # a catalog from before `traces` lacks it
    rows = con.execute(f"SELECT {', '.join(columns)} FROM ingest_shards WHERE run_id = ? "
                       f"ORDER BY config, first_row, path", [run_id]).fetchall()
    shards = [Shard(**dict(zip(columns, r))) for r in rows]
    for shard in shards:
        shard.files = list(shard.files)
    return shards


def next_row(con: duckdb.DuckDBPyConnection, dataset: str, config: str) -> int:
    """The first source_row never used in `dataset`'s `config` since its last full refresh: new and
    changed shards are numbered from here, so a trace id is never given to other content."""
    [(row,)] = con.execute(
        "SELECT coalesce(max(s.first_row + s.rows), 0) FROM ingest_shards AS s JOIN ingest_runs AS r USING (run_id) "
        "WHERE s.dataset = $dataset AND s.config = $config AND r.run_seq >= (SELECT coalesce(max(run_seq), 0) "
        "FROM ingest_runs WHERE dataset = $dataset AND coalesce(full_refresh, true))",
        {"dataset": dataset, "config": config}).fetchall()
    return row


def live_files(con: duckdb.DuckDBPyConnection, root: Path) -> dict[str, list[str]]:
    """For each stored table, the Parquet files the base views read (relative to the data directory
    `root`): those of the committed runs' shards; for a run written before shards were recorded,
    every file in its run directory."""
    out: dict[str, list[str]] = {directory: [] for directory in STORES}
    for dataset, run_id in sorted(current_runs(con).items()):
        shards = shards_of_run(con, run_id)
        for directory in STORES:
            if shards:
                out[directory] += [f for s in shards for f in s.files if f.startswith(directory + "/")]
            else:
                out[directory] += [f"{directory}/{run_key(dataset, run_id)}/{f.name}"
                                   for f in sorted(run_dir(root, directory, dataset, run_id).glob("*.parquet"))]
    return out


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """Identity of the base tables' contents: the live shards of every dataset (config, path, content
    hash, first row and the run whose files hold them), or the committed run of a dataset written
    before shards were recorded. Re-ingesting unchanged shards leaves it as it was."""
    if not _has_table(con, "ingest_runs"):
        return "empty"
    state = []
    for dataset, run_id in sorted(current_runs(con).items()):
        shards = shards_of_run(con, run_id)
        state.append((dataset, [(s.config, s.path, s.content_hash, s.first_row, s.rows, s.data_run_id)
                                for s in shards] if shards else run_id))
    return hashlib.sha256(repr(state).encode()).hexdigest()[:16] if state else "empty"
