"""Commit a finished run: point the base views at its Parquet files and record it, in one transaction.

Nothing is copied into DuckDB: the run's files are the storage. Until COMMIT,
readers see the views over the previous runs; if anything fails (a
reconciliation mismatch, a kill), the transaction never commits and the run's
directory is a leftover that the next write removes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from ingest.parquet_writer import dataset_slug, run_dir
from warehouse import catalog
from warehouse.faults import checkpoint
from warehouse.storage import WarehouseError

RECONCILE_SAMPLE = 200  # traces whose segment offsets are re-checked in SQL before committing


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


def committed_run_dirs(root: Path, runs: dict[str, str]) -> dict[str, list[str]]:
    """For each stored table, '<slug>/<run_id>' of the committed runs that have files for it."""
    out: dict[str, list[str]] = {}
    for directory in catalog.STORES:
        out[directory] = [f"{dataset_slug(d)}/{r}" for d, r in sorted(runs.items())
                          if any(run_dir(root, directory, d, r).glob("*.parquet"))]
    return out


def publish_views(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """(Re)create the base views over the committed runs, inside the caller's transaction."""
    catalog.create_views(con, root.name, committed_run_dirs(root, current_runs(con)))


def load_run(con: duckdb.DuckDBPyConnection, root: Path, run: RunRecord, counts: Counter) -> None:
    """Make the run `run.dataset`'s committed run, atomically; `counts` are the rows the workers wrote."""
    con.execute("BEGIN TRANSACTION")
    try:
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
        publish_views(con, root)
        checkpoint("ingest.publish.views")
        _reconcile(con, run, counts)
        checkpoint("ingest.before_commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _reconcile(con: duckdb.DuckDBPyConnection, run: RunRecord, counts: Counter) -> None:
    """Every row the workers wrote must be visible through the views, and offsets must be sane."""
    [got] = con.execute(
        """
        SELECT
            (SELECT count(*) FROM traces WHERE run_id = $run),
            (SELECT count(*) FROM full_traces WHERE run_id = $run),
            (SELECT count(*) FROM segments WHERE dataset = $dataset),
            (SELECT count(*) FROM segments WHERE dataset = $dataset AND kind = 'block'),
            (SELECT count(*) FROM segments WHERE dataset = $dataset AND kind = 'summary'),
            (SELECT count(*) FROM parse_issues WHERE dataset = $dataset AND config = 'default'),
            (SELECT count(*) FROM parse_issues WHERE dataset = $dataset AND config = 'full'),
            (SELECT count(*) FROM sentences WHERE dataset = $dataset),
            (SELECT count(*) FROM full_blocks WHERE dataset = $dataset),
            (SELECT count(*) FILTER (WHERE status = 'ok') FROM traces WHERE run_id = $run)
              + (SELECT count(*) FILTER (WHERE status = 'ok') FROM full_traces WHERE run_id = $run)
        """,
        {"run": run.run_id, "dataset": run.dataset},
    ).fetchall()
    want = (run.default_rows, run.full_rows, counts["segments"], counts["blocks"], counts["summaries"],
            counts["default_issues"], counts["full_issues"], counts["sentences"], counts["full_blocks"],
            run.rows_ok)
    names = ("default rows", "full rows", "segments", "block segments", "summary segments",
             "default parse issues", "full parse issues", "sentences", "full blocks", "ok rows")
    for name, w, g in zip(names, want, got):
        if w != g:
            raise ReconciliationError(
                f"ingest of {run.dataset!r} wrote {w} {name} but {g} are visible in the warehouse; "
                f"nothing was changed. This is a bug: please report it")
    bad = con.execute(
        """
        WITH sampled AS (
            SELECT trace_id, response_chars FROM traces WHERE run_id = ? ORDER BY hash(trace_id) LIMIT ?
        )
        SELECT s.trace_id, s.kind, s.block_idx
        FROM segments s JOIN sampled t USING (trace_id)
        WHERE NOT (0 <= s.char_start AND s.char_start <= s.char_end AND s.char_end <= t.response_chars)
           OR s.n_chars <> length(s.text)
        LIMIT 5
        """,
        [run.run_id, RECONCILE_SAMPLE],
    ).fetchall()
    if bad:
        listed = ", ".join(f"{t} {k} {b}" for t, k, b in bad)
        raise ReconciliationError(
            f"segment offsets fall outside their responses for {listed}; nothing was changed. "
            f"This is a bug: please report it with the trace ids"
        )
