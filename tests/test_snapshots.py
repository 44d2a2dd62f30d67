"""Snapshots and the safety of the storage layer (foundation/snapshots.py; warehouse.md, "Snapshots").

Each test plants one case an adversarial pass found (issue: a live warehouse) and checks the
one-line message, the intact files, or both.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import mementos
from mementos.cli import main
from conftest import memento, row, write_jsonl
from mementos.foundation import layout, snapshots
from mementos.foundation.errors import WarehouseError
from mementos.ingest.pipeline import run_ingest
from warehouse_state import committed_dirs, duckdb_file, run_dirs, snapshot


def ingest(source: Path, db: Path, name: str = "t") -> None:
    run_ingest(str(source), db, name=name, workers=0, progress=False, with_tokens=False)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def src(tmp_path) -> Path:
    return write_jsonl(tmp_path / "src.jsonl", [row(memento([(f"b{i}", "s")]), problem=f"p{i}") for i in range(3)])


@pytest.fixture
def wh(tmp_path, src) -> Path:
    db = tmp_path / "wh" / "w.duckdb"
    ingest(src, db)
    ingest(write_jsonl(tmp_path / "other.jsonl", [row(memento([("x", "y")]))]), db, name="other")
    return db


# ---------------------------------------------------------------------------
# Reclamation deletes only what this warehouse wrote


def test_ingest_beside_a_users_folder_of_the_same_name_refuses_and_deletes_nothing(tmp_path, src):
    user = tmp_path / "results.data" / "experiments" / "2024" / "run-a"
    user.mkdir(parents=True)
    (user / "data.csv").write_text("a,b\n1,2\n")
    message = one_line(cli("ingest", src, "--db", tmp_path / "results", "--workers", 0, "--no-progress"))
    assert message.startswith(f"Error: {tmp_path / 'results.data'} exists and was not made by mementos")
    assert (user / "data.csv").read_text() == "a,b\n1,2\n"
    assert not (tmp_path / "results").exists()


def test_a_data_folder_linked_to_another_warehouses_is_refused(wh, tmp_path, src):
    w2 = wh.with_name("w2.duckdb")
    layout.data_dir(w2).symlink_to(layout.data_dir(wh))
    before = tree(layout.data_dir(wh))
    message = one_line(cli("ingest", src, "--db", w2, "--workers", 0, "--no-progress"))
    assert message.startswith(f"Error: {layout.data_dir(w2)} is a symbolic link; nothing was written")
    assert tree(layout.data_dir(wh)) == before and not w2.exists()


def test_a_new_warehouse_where_a_moved_ones_folder_stayed_is_refused(wh, src):
    old = wh.with_name("old.duckdb")
    wh.rename(old)
    before = tree(layout.data_dir(wh))
    message = one_line(cli("ingest", src, "--db", wh, "--workers", 0, "--no-progress"))
    assert message.startswith(f"Error: {layout.data_dir(wh)} holds a warehouse whose file w.duckdb is gone")
    assert tree(layout.data_dir(wh)) == before
    # and the moved file says how to make it whole again
    assert f"rename {layout.data_dir(wh)} to {layout.data_dir(old)} too" in one_line(cli("sql", "SELECT 1", "--db", old))


def test_leftovers_without_this_warehouses_marker_are_kept(wh, src):
    stranger = layout.data_dir(wh) / "traces" / "t-00000000" / "not-a-run"
    stranger.mkdir(parents=True)
    (stranger / "notes.txt").write_text("mine")
    ingest(src, wh)
    assert (stranger / "notes.txt").read_text() == "mine"
    assert run_dirs(wh) - {("t-00000000", "not-a-run")} == committed_dirs(wh)


# ---------------------------------------------------------------------------
# Links and renames


def test_ingest_through_a_symlinked_file_writes_beside_the_real_file(wh, tmp_path, src):
    link = tmp_path / "link.duckdb"
    link.symlink_to(wh)
    ingest(src, link, name="third")
    assert not (tmp_path / "link.duckdb.data").exists()
    assert sorted(cli("sql", "SELECT DISTINCT dataset FROM traces ORDER BY 1", "--db", link, "--format", "csv")
                  .output.split()) == ["dataset", "other", "t", "third"]
    assert snapshot(wh)["traces"] == 3 + 1 + 3


def test_a_renamed_warehouse_says_how_and_one_write_points_it_at_its_folder(wh):
    new = wh.with_name("renamed.duckdb")
    wh.rename(new)
    layout.data_dir(wh).rename(layout.data_dir(new))
    assert one_line(cli("sql", "SELECT count(*) FROM traces", "--db", new)) == (
        f"Error: {new} was renamed from w.duckdb; run one write to point it at renamed.duckdb.data/, "
        f"e.g. `mementos build --db {new}`, then read it again")
    assert cli("build", "--db", new).exit_code == 0
    assert cli("sql", "SELECT count(*) AS n FROM traces", "--db", new, "--format", "csv").output.split() == ["n", "4"]


# ---------------------------------------------------------------------------
# A damaged snapshot: every command checks names and sizes


def test_a_deleted_parquet_file_is_named_and_nothing_builds_on_it(wh, src):
    [victim] = (layout.data_dir(wh) / "traces").glob("t-*/*/part-*.parquet")
    victim.unlink()
    rel = victim.relative_to(layout.data_dir(wh))
    expected = (f"Error: {wh} is damaged: w.duckdb.data/{rel} is missing; nothing was read. Repair it by "
                f"ingesting dataset 't' again: `mementos ingest SOURCE --db {wh} --name t`")
    for args in (["sql", "SELECT count(*) FROM traces"], ["models"], ["show", "t:0"], ["build"]):
        assert one_line(cli(*args, "--db", wh)) == expected, args
    with pytest.raises(WarehouseError, match="is damaged"):
        mementos.connect(wh)
    other = write_jsonl(src.with_name("x.jsonl"), [row(memento([("x", "y")]))])
    assert one_line(cli("ingest", other, "--db", wh, "--name", "x", "--workers", 0, "--no-progress")) == expected
    ingest(src, wh)  # the repair: the damaged dataset ingested again
    assert snapshot(wh)["traces"] == 4


def test_a_truncated_parquet_file_is_named(wh):
    [victim] = (layout.data_dir(wh) / "traces").glob("other-*/*/part-*.parquet")
    size = victim.stat().st_size
    os.truncate(victim, size // 2)
    message = one_line(cli("export", "memento", "--db", wh, "--out", wh.parent / "x"))
    assert f"is {size // 2:,} bytes where {size:,} were written; nothing was read" in message
    assert "ingesting dataset 'other' again" in message


def test_a_deleted_run_folder_stops_the_next_ingest_of_another_dataset(wh, tmp_path):
    [run] = (layout.data_dir(wh) / "traces").glob("other-*/*")
    shutil.rmtree(run)
    published = wh.read_bytes()
    third = write_jsonl(tmp_path / "third.jsonl", [row(memento([("x", "y")]))])
    message = one_line(cli("ingest", third, "--db", wh, "--name", "third", "--workers", 0, "--no-progress"))
    assert "is damaged" in message and "ingesting dataset 'other' again" in message
    assert wh.read_bytes() == published  # 'other' did not vanish from the views


def test_the_duckdb_file_copied_without_its_folder_says_so(wh, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(wh, alone / "w.duckdb")
    message = one_line(cli("report", "--db", alone / "w.duckdb", "--out", tmp_path / "r.html"))
    assert message.startswith(f"Error: {alone / 'w.duckdb'} has no data folder w.duckdb.data/ beside it")


# ---------------------------------------------------------------------------
# Order of runs, foreign files


def test_a_reingest_from_a_clock_behind_the_last_run_makes_the_new_run_current(wh, src):
    with duckdb.connect(str(wh)) as con:  # the last run was recorded by a clock a day ahead
        con.execute("UPDATE ingest_runs SET finished_at = finished_at + INTERVAL 1 DAY")
    ingest(write_jsonl(src.with_name("five.jsonl"), [row(memento([("x", "y")]), problem=f"q{i}") for i in range(5)]), wh)
    assert snapshot(wh)["traces"] == 5 + 1
    with mementos.connect(wh) as con:
        [(seqs,)] = con.execute("SELECT list(run_seq ORDER BY run_seq) FROM ingest_runs").fetchall()
    assert seqs == [1, 2, 3]


def test_ingest_into_a_users_duckdb_file_is_refused_before_anything_is_written(tmp_path, src):
    db = duckdb_file(tmp_path / "mine.duckdb", "CREATE TABLE traces (id INTEGER)",
                     "CREATE VIEW segments AS SELECT 1 AS x", "CREATE TABLE ingest_runs (note VARCHAR)")
    before = db.read_bytes()
    message = one_line(cli("ingest", src, "--db", db, "--workers", 0, "--no-progress"))
    assert message == (f"Error: {db} is not a mementos warehouse (a DuckDB file without the tables parse_issues, "
                       f"full_traces, sentences and 1 more; it has its own traces, segments, ingest_runs); nothing "
                       f"was written: ingest into a new file, e.g. --db {db.with_name('warehouse.duckdb')}")
    assert "remove" not in message
    assert db.read_bytes() == before and not layout.data_dir(db).exists()


def test_a_failed_first_ingest_leaves_nothing_behind(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"problem": "p", "nothing": 1}])
    db = tmp_path / "new" / "w.duckdb"
    result = cli("ingest", bad, "--db", db, "--workers", 0, "--no-progress")
    assert result.exit_code == 1
    assert not db.exists() and not layout.data_dir(db).exists()


def test_a_planted_symlink_as_the_lock_is_refused_and_its_target_untouched(wh, tmp_path, src):
    victim = tmp_path / "victim2.txt"
    victim.write_text("precious")
    layout.lock_path(wh).unlink()
    layout.lock_path(wh).symlink_to(victim)
    message = one_line(cli("ingest", src, "--db", wh, "--workers", 0, "--no-progress"))
    assert message.startswith(f"Error: {layout.lock_path(wh)} is a symbolic link")
    assert victim.read_text() == "precious"


# ---------------------------------------------------------------------------
# Reclamation


def test_ingesting_the_same_name_three_times_keeps_one_run_and_one_snapshot(wh, src):
    for _ in range(3):
        ingest(src, wh)
    assert run_dirs(wh) == committed_dirs(wh)
    assert [p.name for p in sorted(layout.snapshot_dir(wh).iterdir())] == ["00000005.duckdb", "00000005.json"]
    assert os.path.samefile(wh, layout.snapshot_file(wh, 5))


def test_within_the_grace_period_a_superseded_snapshot_is_kept(wh, src, monkeypatch):
    """A reader between opening PATH and locking it is invisible to the probe: the grace period covers it."""
    monkeypatch.setenv(snapshots.GRACE_ENV, "3600")
    run_ingest(str(src), wh, name="t", workers=0, progress=False, with_tokens=False, full_refresh=True)
    assert len(run_dirs(wh)) > len(committed_dirs(wh))
    assert sorted(p.name for p in layout.snapshot_dir(wh).glob("*.duckdb")) == ["00000002.duckdb", "00000003.duckdb"]
    monkeypatch.setenv(snapshots.GRACE_ENV, "0")
    ingest(src, wh)
    assert run_dirs(wh) == committed_dirs(wh)


def test_an_unreadable_grace_setting_is_one_line(wh, src, monkeypatch):
    monkeypatch.setenv(snapshots.GRACE_ENV, "soon")
    assert one_line(cli("ingest", src, "--db", wh, "--workers", 0, "--no-progress")) == (
        "Error: MEMENTOS_RECLAIM_GRACE='soon' is not a number of seconds; unset it or give e.g. "
        "MEMENTOS_RECLAIM_GRACE=10")


def test_each_snapshot_names_its_files_with_their_sizes(wh):
    manifest = json.loads(layout.snapshot_manifest(wh, 2).read_text())
    root = layout.data_dir(wh)
    assert manifest["seq"] == 2 and len(manifest["runs"]) == 2
    assert manifest["files"] == {str(p.relative_to(root)): p.stat().st_size
                                 for p in sorted(root.glob("*traces/*/*/*.parquet"))}


def test_a_killed_build_leaves_no_spill_files_after_the_next_write(wh, src):
    spill = layout.temp_dir(wh)
    spill.mkdir()
    (spill / "duckdb_temp_storage-0.tmp").write_bytes(b"x" * 1000)
    ingest(src, wh)
    assert not spill.exists()


@pytest.mark.parametrize("name", ["w[1].duckdb", "it's *.duckdb"])
def test_glob_and_quote_characters_in_the_path_are_plain_characters(tmp_path, src, name):
    db = tmp_path / name
    ingest(src, db)
    result = cli("sql", "SELECT count(*) AS n FROM segments", "--db", db, "--format", "csv")
    assert result.output.split() == ["n", "9"], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, name + ".data", "src.jsonl"])  # no stray lock


def test_a_backslash_in_the_path_is_refused_before_anything_is_written(tmp_path, src):
    db = tmp_path / "w\\b.duckdb"
    assert one_line(cli("ingest", src, "--db", db, "--workers", 0, "--no-progress")) == (
        f"Error: {db}: DuckDB reads the backslash in this path as a folder separator; choose a path without one")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.jsonl"]
