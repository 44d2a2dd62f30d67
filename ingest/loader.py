"""Load a finished run's Parquet files into DuckDB and swap them in, in one transaction.

Until COMMIT, readers see the warehouse as it was; if anything fails (a
reconciliation mismatch, a kill), the transaction never commits and the run's
Parquet directories are leftovers that the next write removes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from ingest.parquet_writer import run_dir
from warehouse.faults import checkpoint
from warehouse.storage import BASE_TABLES, WarehouseError

DATASET_TABLES = tuple(t for t in BASE_TABLES if t != "ingest_runs")
RECONCILE_SAMPLE = 200  # traces whose segment offsets are re-checked in SQL after loading


class ReconciliationError(WarehouseError):
    pass


@dataclass
class RunRecord:
    run_id: str
    dataset: str
    source: str
    config: str
    started_at: datetime
    rows_read: int
    rows_ok: int
    rows_flagged: int
    default_rows: int
    full_rows: int
    input_bytes: int
    parser_version: str
    token_encoding: str | None


def current_runs(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The committed run of every dataset: the latest run recorded for it."""
    rows = con.execute(
        "SELECT dataset, arg_max(run_id, finished_at) FROM ingest_runs GROUP BY dataset"
    ).fetchall()
    return dict(rows)


def load_run(con: duckdb.DuckDBPyConnection, root: Path, run: RunRecord) -> None:
    """Replace `run.dataset` with the run's files and record the run, atomically."""
    con.execute("BEGIN TRANSACTION")
    try:
        for table in DATASET_TABLES:
            con.execute(f"DELETE FROM {table} WHERE dataset = ?", [run.dataset])
            files = sorted(run_dir(root, table, run.dataset, run.run_id).glob("*.parquet"))
            if files:
                checkpoint(f"ingest.load.{table}")
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM read_parquet(?)", [[str(f) for f in files]])
        _reconcile(con, run)
        finished = datetime.now()
        con.execute(
            "INSERT INTO ingest_runs BY NAME SELECT ? AS run_id, ? AS dataset, ? AS source, ? AS config, "
            "? AS started_at, ? AS finished_at, ? AS rows_read, ? AS rows_ok, ? AS rows_flagged, "
            "? AS default_rows, ? AS full_rows, ? AS input_bytes, ? AS parser_version, "
            "? AS token_encoding, ? AS seconds",
            [run.run_id, run.dataset, run.source, run.config, run.started_at, finished, run.rows_read,
             run.rows_ok, run.rows_flagged, run.default_rows, run.full_rows, run.input_bytes,
             run.parser_version, run.token_encoding, (finished - run.started_at).total_seconds()],
        )
        checkpoint("ingest.before_commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _reconcile(con: duckdb.DuckDBPyConnection, run: RunRecord) -> None:
    """Rows read must all be in the warehouse, and stored offsets must reproduce stored texts."""
    # fetchall, not fetchone: DuckDB refuses new work on a connection with an unfinished result.
    [(traces,)] = con.execute("SELECT count(*) FROM traces WHERE run_id = ?", [run.run_id]).fetchall()
    [(full,)] = con.execute("SELECT count(*) FROM full_traces WHERE run_id = ?", [run.run_id]).fetchall()
    if (traces, full) != (run.default_rows, run.full_rows):
        raise ReconciliationError(
            f"ingest of {run.dataset!r} read {run.default_rows} default and {run.full_rows} full rows "
            f"but {traces} and {full} reached the warehouse; nothing was changed. This is a bug: please report it"
        )
    # Child tables against the counts their parents recorded: a lost or doubled Parquet part shows here.
    [counts] = con.execute(
        """
        SELECT
            (SELECT coalesce(sum(n_blocks), 0) FROM traces WHERE run_id = $run),
            (SELECT count(*) FROM segments WHERE dataset = $dataset AND kind = 'block'),
            (SELECT coalesce(sum(n_summaries), 0) FROM traces WHERE run_id = $run),
            (SELECT count(*) FROM segments WHERE dataset = $dataset AND kind = 'summary'),
            (SELECT coalesce(sum(n_issues), 0) FROM traces WHERE run_id = $run),
            (SELECT count(*) FROM parse_issues WHERE dataset = $dataset AND config = 'default'),
            (SELECT coalesce(sum(n_sentences), 0) FROM full_traces WHERE run_id = $run),
            (SELECT count(*) FROM sentences WHERE dataset = $dataset),
            (SELECT coalesce(sum(n_blocks), 0) FROM full_traces WHERE run_id = $run),
            (SELECT count(*) FROM full_blocks WHERE dataset = $dataset),
            (SELECT count(*) FILTER (WHERE status = 'ok') FROM traces WHERE run_id = $run)
              + (SELECT count(*) FILTER (WHERE status = 'ok') FROM full_traces WHERE run_id = $run)
        """,
        {"run": run.run_id, "dataset": run.dataset},
    ).fetchall()
    names = ("block segments", "summary segments", "default parse issues", "sentences", "full blocks")
    for name, (want, got) in zip(names, zip(counts[0:10:2], counts[1:10:2])):
        if want != got:
            raise ReconciliationError(
                f"ingest of {run.dataset!r}: the traces record {want} {name} but {got} reached the warehouse; "
                f"nothing was changed. This is a bug: please report it"
            )
    if counts[10] != run.rows_ok:
        raise ReconciliationError(
            f"ingest of {run.dataset!r} parsed {run.rows_ok} rows as ok but {counts[10]} ok rows reached the "
            f"warehouse; nothing was changed. This is a bug: please report it"
        )
    bad = con.execute(
        """
        WITH sampled AS (
            SELECT trace_id, response FROM traces WHERE run_id = ?
            ORDER BY hash(trace_id) LIMIT ?
        )
        SELECT s.trace_id, s.kind, s.block_idx
        FROM segments s JOIN sampled t USING (trace_id)
        WHERE substring(t.response, s.char_start + 1, s.char_end - s.char_start) IS DISTINCT FROM s.text
           OR s.n_chars <> length(s.text)
        LIMIT 5
        """,
        [run.run_id, RECONCILE_SAMPLE],
    ).fetchall()
    if bad:
        listed = ", ".join(f"{t} {k} {b}" for t, k, b in bad)
        raise ReconciliationError(
            f"segment offsets do not reproduce their texts for {listed}; nothing was changed. "
            f"This is a bug: please report it with the trace ids"
        )
