"""Where a warehouse keeps its data: each text once, in Parquet beside the DuckDB file, and a
folder that can be moved, copied and read by plain DuckDB."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import memento, row, write_jsonl
from mementos.ingest.pipeline import run_ingest
from mementos.foundation import layout, storage
from mementos.warehouse.query import execute
from mementos.sample import write_sample
from warehouse_state import duckdb_file


def ingest(source, db, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return run_ingest(str(source), db, **kw)


def disk_bytes(db: Path) -> int:
    """The DuckDB file (and WAL) plus everything under its data directory, each file once as `du`
    counts it (the published catalog is a hard link to its snapshot in the data directory)."""
    files = [db, Path(str(db) + ".wal")] + [p for p in layout.data_dir(db).rglob("*") if p.is_file()]
    inodes = {(s.st_dev, s.st_ino): s.st_size for s in (p.stat() for p in files if p.exists())}
    return sum(inodes.values())


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "s"
    write_sample(out, 400, seed=3)
    return out


@pytest.fixture(scope="module")
def sample_db(sample, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("wh") / "w.duckdb"
    ingest(sample, db, config="all", name="sample", workers=2)
    return db


def test_warehouse_is_smaller_than_its_source(sample, sample_db):
    """Each text is stored once (segments and full blocks are views): at most 1.5x the source Parquet."""
    source = sum(p.stat().st_size for p in sample.rglob("*.parquet"))
    assert disk_bytes(sample_db) <= 1.5 * source


def test_segment_text_is_cut_from_the_stored_response(sample_db):
    rows = execute(sample_db, "SELECT count(*) FROM segments s JOIN traces t USING (trace_id) "
                              "WHERE s.text IS DISTINCT FROM t.response[s.char_start + 1:s.char_end]").rows
    assert rows == [(0,)]


DUCKDB_BLOCK = 262_144  # the DuckDB file alternates between two sizes a block apart as views are replaced


def test_reingesting_a_name_does_not_grow_the_warehouse(sample, tmp_path):
    db = tmp_path / "w.duckdb"
    ingest(sample, db, config="all", name="sample")
    once = disk_bytes(db)
    sizes = []
    for _ in range(3):  # re-read every shard: each run writes its own files and the last one's go
        ingest(sample, db, config="all", name="sample", full_refresh=True)
        sizes.append(disk_bytes(db))
    # each write copies the catalog and checkpoints the copy: DuckDB's free-block reuse makes the copy
    # alternate between two sizes a few blocks apart (one per catalog table it rewrites); it does not grow
    assert max(sizes) <= 1.05 * once + 3 * DUCKDB_BLOCK, (once, sizes)
    assert len(list((layout.data_dir(db) / "traces").glob("*/*"))) == 1  # the old run's directory is gone


def test_two_warehouses_in_one_folder_are_independent(tmp_path):
    a, b = tmp_path / "w.duckdb", tmp_path / "w.db"
    ingest(write_jsonl(tmp_path / "a.jsonl", [row(memento([("x", "y")]))] * 3), a, name="t")
    ingest(write_jsonl(tmp_path / "b.jsonl", [row(memento([("x", "y")]))] * 5), b, name="t")
    ingest(write_jsonl(tmp_path / "a2.jsonl", [row(memento([("x", "y")]))] * 2), a, name="t")
    assert layout.data_dir(a) != layout.data_dir(b)
    assert execute(a, "SELECT count(*) FROM segments").rows == [(6,)]
    assert execute(b, "SELECT count(*) FROM segments").rows == [(15,)]


def test_a_moved_folder_works_from_any_working_directory(tmp_path, monkeypatch):
    db = tmp_path / "here" / "w.duckdb"
    ingest(write_jsonl(tmp_path / "in.jsonl", [row(memento([("block text", "memo")]))]), db, name="t")
    shutil.move(tmp_path / "here", tmp_path / "there")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    moved = tmp_path / "there" / "w.duckdb"
    assert execute(moved, "SELECT kind, text FROM segments ORDER BY char_start").rows == [
        ("block", "block text"), ("summary", "memo"), ("answer", "The answer is 42.")]


def test_a_copied_folder_is_a_warehouse_of_its_own(tmp_path):
    db = tmp_path / "a" / "w.duckdb"
    ingest(write_jsonl(tmp_path / "in.jsonl", [row(memento([("x", "y")]))] * 2), db, name="t")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    ingest(write_jsonl(tmp_path / "more.jsonl", [row(memento([("x", "y")]))] * 4), db, name="t")
    assert execute(tmp_path / "b" / "w.duckdb", "SELECT count(*) FROM traces").rows == [(2,)]
    assert execute(db, "SELECT count(*) FROM traces").rows == [(4,)]


def test_plain_duckdb_reads_it_from_its_folder(tmp_path):
    """warehouse.md: open the file from the folder that holds it (or SET file_search_path to it)."""
    db = tmp_path / "w.duckdb"
    ingest(write_jsonl(tmp_path / "in.jsonl", [row(memento([("block text", "memo")]))]), db, name="t")
    code = ("import duckdb; con = duckdb.connect('w.duckdb', read_only=True); "
            "print(con.execute(\"SELECT text FROM segments WHERE kind = 'summary'\").fetchall())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ""}, check=True)
    assert out.stdout.strip() == "[('memo',)]"


def test_segment_text_in_either_half_of_ascii_and_multibyte_responses(tmp_path):
    """A segment in the response's second half is cut counting from its end: every segment,
    the last (the answer) too, is response[start:end], with multi-byte characters on both sides."""
    rows = [row(memento([("plain ascii block", "m1"), ("second block", "m2")], answer="ascii answer")),
            row(memento([("café au lait, 中文 and 😀 emoji", "mémento 😀"), ("ß then ü", "m ✓")],
                        answer="ünïcode 42 😀"))]
    db = tmp_path / "w.duckdb"
    ingest(write_jsonl(tmp_path / "in.jsonl", rows), db, name="t")
    got = execute(db, "SELECT trace_id, kind, text FROM segments ORDER BY trace_id, char_start").rows
    assert got == [("t:0", "block", "plain ascii block"), ("t:0", "summary", "m1"),
                   ("t:0", "block", "second block"), ("t:0", "summary", "m2"), ("t:0", "answer", "ascii answer"),
                   ("t:1", "block", "café au lait, 中文 and 😀 emoji"), ("t:1", "summary", "mémento 😀"),
                   ("t:1", "block", "ß then ü"), ("t:1", "summary", "m ✓"), ("t:1", "answer", "ünïcode 42 😀")]


def test_ingest_into_a_warehouse_of_the_old_layout_says_what_to_do(tmp_path):
    """Base tables stored inside the DuckDB file (before they were views): a clear error, file unchanged."""
    from mementos.foundation.errors import WarehouseError

    db = duckdb_file(tmp_path / "old.duckdb", "CREATE TABLE traces (trace_id VARCHAR)",
                     "CREATE TABLE segments (trace_id VARCHAR)", "CREATE TABLE ingest_runs (run_id VARCHAR)")
    before = db.read_bytes()
    with pytest.raises(WarehouseError, match="ingest again into a new warehouse"):
        ingest(write_jsonl(tmp_path / "in.jsonl", [row(memento([("x", "y")]))]), db, name="t")
    assert db.read_bytes() == before and not layout.data_dir(db).exists()


def test_connections_default_to_a_600_mb_buffer_pool(tmp_path):
    """The pool the full-scale build passes under (foundation/storage.py), when MEMENTOS_MEMORY_LIMIT is unset."""
    db = tmp_path / "w.duckdb"
    ingest(write_jsonl(tmp_path / "in.jsonl", [row(memento([("x", "y")]))]), db, name="t")
    code = ("import sys; from mementos.foundation import storage; "
            "print(storage.connect(sys.argv[1]).execute(\"SELECT current_setting('memory_limit')\").fetchone()[0])")
    env = {k: v for k, v in os.environ.items() if k != "MEMENTOS_MEMORY_LIMIT"}
    out = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "572.2 MiB"


def test_releasing_memory_leaves_the_pool_limit_as_it_was(monkeypatch):
    """release_memory lowers the limit to evict, then sets it again; the limit itself must not change."""
    monkeypatch.setattr(storage, "MEMORY_LIMIT", "64MB")
    con = duckdb.connect()
    con.execute("SET memory_limit = '64MB'")
    storage.release_memory(con)
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "61.0 MiB"


@pytest.mark.parametrize("evict_to", ["1MB", "1B"])
def test_releasing_memory_evicts_a_table_written_in_the_open_transaction(tmp_path, monkeypatch, evict_to):
    """The build's tables, written in its one transaction, leave the pool (spilled to PATH.tmp)
    and read back whole: 3,000,000 rows of 60 characters. Evicting down to 1 byte fails, as
    something is always pinned: it evicts all the same, and the transaction goes on."""
    monkeypatch.setattr(storage, "MEMORY_LIMIT", "400MB")
    monkeypatch.setattr(storage, "EVICT_TO", evict_to)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("SET memory_limit = '400MB'")
    con.execute("BEGIN TRANSACTION")
    con.execute("CREATE TEMP TABLE t AS SELECT range AS i, repeat('x', 50) || range AS s FROM range(3000000)")
    held = "SELECT sum(memory_usage_bytes) FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'"
    assert con.execute(held).fetchone()[0] > 100 * 2**20
    storage.release_memory(con)
    assert con.execute(held).fetchone()[0] <= 32 * 2**20
    assert con.execute("SELECT count(*), sum(length(s)) FROM t").fetchone() == (3000000, 3000000 * 50 + 19888890)
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "381.4 MiB"
    con.execute("COMMIT")
