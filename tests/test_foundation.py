"""The small shared pieces of foundation/: the ingest_runs row, number formatting, durable files, the
warehouse's own parts."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from mementos.foundation import catalog, durable, formatting, layout


def test_the_run_dataclass_has_the_columns_of_ingest_runs_by_name_and_in_order():
    con = duckdb.connect()
    catalog.ensure_ingest_runs(con)
    columns = [name for name, *_ in con.execute("DESCRIBE ingest_runs").fetchall()]
    counters = len(catalog.SHARD_COUNTERS)  # added after run_seq, as a migration adds them
    assert columns == [*catalog.RUN_COLUMNS[:-counters], "run_seq", *catalog.SHARD_COUNTERS]


def _run(run_id: str, dataset: str, finished: str) -> catalog.IngestRun:
    at = datetime.fromisoformat(finished)
    return catalog.IngestRun(run_id, dataset, "src", "default", at, finished_at=at, rows_read=3, rows_ok=2,
                             rows_flagged=1, default_rows=3, parser_version="1")


def test_the_current_run_of_a_dataset_is_the_last_inserted_even_when_it_finished_earlier():
    con = duckdb.connect()
    catalog.ensure_ingest_runs(con)
    for run in (_run("r1", "a", "2026-01-02"), _run("r2", "a", "2026-01-01"), _run("r3", "b", "2026-01-01")):
        catalog.insert_run(con, run)
    assert catalog.current_runs(con) == {"a": "r2", "b": "r3"}
    rows = con.execute(f"SELECT run_id, rows_flagged, run_seq FROM ({catalog.current_runs_sql(con)}) "
                       f"ORDER BY run_id").fetchall()
    assert rows == [("r2", 1, 2), ("r3", 1, 3)]


def test_a_catalog_without_run_seq_takes_the_run_that_finished_last():
    con = duckdb.connect()
    con.execute("CREATE TABLE ingest_runs (run_id VARCHAR, dataset VARCHAR, finished_at TIMESTAMP)")
    con.execute("INSERT INTO ingest_runs VALUES ('r1', 'a', '2026-01-02'), ('r2', 'a', '2026-01-01')")
    assert catalog.current_runs(con) == {"a": "r1"}


@pytest.mark.parametrize(("value", "digits", "text"), [
    (1234567, 0, "1,234,567"), (1234.56, 1, "1,234.6"), (0.5, 3, "0.500"), (None, 0, "–")])
def test_number(value, digits, text):
    assert formatting.number(value, digits) == text


@pytest.mark.parametrize(("value", "text"), [(1234.4, "+1,234"), (-3, "-3"), (-0.4, "0"), (None, "–")])
def test_signed_never_shows_a_sign_on_zero(value, text):
    assert formatting.signed(value) == text


def test_sizes_in_decimal_megabytes_and_kilobytes_below_one_megabyte():
    assert formatting.megabytes(1_234_560_000) == "1,234.6 MB"
    assert formatting.megabytes(None) == "–"
    assert formatting.size(2_500_000) == "2.5 MB"
    assert formatting.size(999_400) == "999 KB"


def test_write_whole_replaces_the_file_or_leaves_it_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    durable.write_whole(path, b"old")
    assert path.read_bytes() == b"old"

    def no_fsync(fd):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError):
        durable.write_whole(path, b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.json"]


def test_create_exclusive_refuses_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    (tmp_path / "out.tmp").symlink_to(victim)
    with pytest.raises(FileExistsError):
        durable.create_exclusive(tmp_path / "out.tmp")
    assert victim.read_text() == "mine"


def test_the_warehouse_owns_its_file_wal_and_data_folder_with_the_lock_and_spill_folder_inside():
    db = Path("/w/om.duckdb")
    parts = {str(p.path): (p.what, p.tree) for p in layout.own_parts(db)}
    assert parts == {"/w/om.duckdb": ("DuckDB file", False), "/w/om.duckdb.wal": ("write-ahead log", False),
                     "/w/om.duckdb.data/_writer.lock": ("writer lock", False),
                     "/w/om.duckdb.data/_tmp": ("DuckDB temp directory", True),
                     "/w/om.duckdb.data": ("Parquet directory", True)}
