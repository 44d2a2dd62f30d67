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
from mementos.foundation.catalog import IngestRun, Shard
from mementos.foundation.errors import ReconciliationError
from mementos.foundation.faults import checkpoint


def publish_views(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """(Re)create the base views over the live shards' files, inside the caller's transaction."""
    catalog.create_views(con, root, catalog.live_files(con, root))


def load_run(con: duckdb.DuckDBPyConnection, root: Path, run: IngestRun, counts: Counter,
             shards: list[Shard]) -> None:
    """Make the run `run.dataset`'s committed run, its dataset holding `shards`, atomically; `counts`
    are the rows the workers wrote. Stamps the run's finished_at and seconds with the moment it is recorded."""
    with storage.transaction(con, before_commit="ingest.before_commit"):
        run.finished_at = datetime.now(timezone.utc).replace(tzinfo=None)  # UTC, as started_at
        run.seconds = (run.finished_at - run.started_at).total_seconds()
        catalog.insert_run(con, run)
        catalog.insert_shards(con, run.run_id, run.dataset, shards)
        catalog.insert_rejections(con, run, getattr(run, "rejected", []))
        publish_views(con, root)
        checkpoint("ingest.publish.views")
        _reconcile(con, root, run, counts, shards)


def _reconcile(con: duckdb.DuckDBPyConnection, root: Path, run: IngestRun, counts: Counter,
               shards: list[Shard]) -> None:
    """The rows this run wrote (its run_id: the views span the runs that wrote the dataset's live shards)
    must all be visible through the views, the dataset must hold exactly its live shards' rows, and every
    segment's offsets must lie inside its response. Only counts and offsets are read, never text."""
    src = catalog.committed_sources(con, root)
    by_run, by_dataset = {"run": run.run_id}, {"dataset": run.dataset}
    [traces] = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM traces WHERE run_id = $run",
                           by_run).fetchall()
    [full] = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM full_traces "
                         "WHERE run_id = $run", by_run).fetchall()
    [derived] = con.execute(
        "SELECT coalesce(sum(len(segments)), 0), coalesce(sum(len(list_filter(segments, lambda s: s.kind = 'block'))), 0), "
        "coalesce(sum(len(list_filter(segments, lambda s: s.kind = 'summary'))), 0), coalesce(sum(len(issues)), 0) "
        f"FROM {src['stored_traces']} WHERE run_id = $run", by_run).fetchall()
    [full_derived] = con.execute(
        "SELECT coalesce(sum(len(issues)), 0), coalesce(sum(len(sentences)), 0), coalesce(sum(len(blocks)), 0) "
        f"FROM {src['stored_full_traces']} WHERE run_id = $run", by_run).fetchall()
    [held] = con.execute("SELECT (SELECT count(*) FROM traces WHERE dataset = $dataset), "
                         "(SELECT count(*) FROM full_traces WHERE dataset = $dataset)", by_dataset).fetchall()
    live = tuple(sum(s.rows if s.traces is None else s.traces for s in shards if s.config == cfg)
                 for cfg in ("default", "full"))
    checks = (
        ("default rows", run.default_rows, traces[0]), ("full rows", run.full_rows, full[0]),
        ("segments", counts["segments"], derived[0]), ("block segments", counts["blocks"], derived[1]),
        ("summary segments", counts["summaries"], derived[2]),
        ("default parse issues", counts["default_issues"], derived[3]),
        ("full parse issues", counts["full_issues"], full_derived[0]),
        ("sentences", counts["sentences"], full_derived[1]), ("full blocks", counts["full_blocks"], full_derived[2]),
        ("ok rows", run.rows_ok, traces[1] + full[1]),
        ("default rows of live shards", live[0], held[0]), ("full rows of live shards", live[1], held[1]),
    )
    for name, want, got in checks:
        if want != got:
            raise ReconciliationError(
                f"ingest of {run.dataset!r} wrote {want} {name} but {got} are visible in the warehouse; "
                f"nothing was changed. This is a bug: please report it")
    files = sorted(str(root / f) for s in shards if s.data_run_id == run.run_id for f in s.files
                   if f.startswith("traces/"))
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
