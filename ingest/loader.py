"""Commit a finished run: point the base views at its Parquet files and record it, in one transaction.

Nothing is copied into DuckDB: the run's files are the storage. The connection is
the writer's staged snapshot (foundation/snapshots.py), which readers see only once
it is published; if anything fails (a reconciliation mismatch, a kill), the
transaction never commits, nothing is published, and the run's directory is a
leftover that the next write removes.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from mementos.foundation import catalog, storage
from mementos.foundation.catalog import IngestRun
from mementos.foundation.errors import ReconciliationError
from mementos.foundation.faults import checkpoint
from mementos.foundation.layout import run_dir


def publish_views(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """(Re)create the base views over the committed runs, inside the caller's transaction."""
    catalog.create_views(con, root, catalog.committed_run_dirs(root, catalog.current_runs(con)))


def load_run(con: duckdb.DuckDBPyConnection, root: Path, run: IngestRun, counts: Counter) -> None:
    """Make the run `run.dataset`'s committed run, atomically; `counts` are the rows the workers wrote.
    Stamps the run's finished_at and seconds with the moment it is recorded."""
    with storage.transaction(con, before_commit="ingest.before_commit"):
        run.finished_at = datetime.now(timezone.utc).replace(tzinfo=None)  # UTC, as started_at
        run.seconds = (run.finished_at - run.started_at).total_seconds()
        catalog.insert_run(con, run)
        catalog.insert_rejections(con, run, getattr(run, "rejected", []))
        publish_views(con, root)
        checkpoint("ingest.publish.views")
        _reconcile(con, root, run, counts)


def _reconcile(con: duckdb.DuckDBPyConnection, root: Path, run: IngestRun, counts: Counter) -> None:
    """Every row the workers wrote must be visible through the views, and every segment's
    offsets must lie inside its response. Only counts and offsets are read, never text."""
    by_run, by_dataset = {"run": run.run_id}, {"dataset": run.dataset}
    [traces] = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM traces WHERE run_id = $run",
                           by_run).fetchall()
    [full] = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM full_traces "
                         "WHERE run_id = $run", by_run).fetchall()
    [segs] = con.execute("SELECT count(*), count(*) FILTER (WHERE kind = 'block'), "
                         "count(*) FILTER (WHERE kind = 'summary') FROM segments WHERE dataset = $dataset",
                         by_dataset).fetchall()
    [issues] = con.execute("SELECT count(*) FILTER (WHERE config = 'default'), count(*) FILTER (WHERE config = 'full') "
                           "FROM parse_issues WHERE dataset = $dataset", by_dataset).fetchall()
    [(sentences,)] = con.execute("SELECT count(*) FROM sentences WHERE dataset = $dataset", by_dataset).fetchall()
    [(blocks,)] = con.execute("SELECT count(*) FROM full_blocks WHERE dataset = $dataset", by_dataset).fetchall()
    checks = (
        ("default rows", run.default_rows, traces[0]), ("full rows", run.full_rows, full[0]),
        ("segments", counts["segments"], segs[0]), ("block segments", counts["blocks"], segs[1]),
        ("summary segments", counts["summaries"], segs[2]),
        ("default parse issues", counts["default_issues"], issues[0]),
        ("full parse issues", counts["full_issues"], issues[1]),
        ("sentences", counts["sentences"], sentences), ("full blocks", counts["full_blocks"], blocks),
        ("ok rows", run.rows_ok, traces[1] + full[1]),
    )
    for name, want, got in checks:
        if want != got:
            raise ReconciliationError(
                f"ingest of {run.dataset!r} wrote {want} {name} but {got} are visible in the warehouse; "
                f"nothing was changed. This is a bug: please report it")
    files = sorted(str(p) for p in run_dir(root, "traces", run.dataset, run.run_id).glob("*.parquet"))
    if not files:
        return
    bad = con.execute(
        """
        SELECT trace_id, s.kind, s.block_idx
        FROM (SELECT trace_id, response_chars, unnest(segments) AS s FROM read_parquet(?))
        WHERE NOT (0 <= s.char_start AND s.char_start <= s.char_end AND s.char_end <= response_chars)
        LIMIT 5
        """,
        [files],
    ).fetchall()
    if bad:
        listed = ", ".join(f"{t} {k} {b}" for t, k, b in bad)
        raise ReconciliationError(
            f"segment offsets fall outside their responses for {listed}; nothing was changed. "
            f"This is a bug: please report it with the trace ids"
        )
