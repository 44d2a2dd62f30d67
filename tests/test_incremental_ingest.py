"""Incremental ingest (issue #29): re-ingesting a dataset reads only its new and changed shards.

A corpus here is a hub-layout folder of several shards (data/train-<tag>.parquet, and the same
rows in full/ for the full config). Each test ingests it, changes the folder (a shard added,
changed or removed) and ingests again, then checks what was read, the trace ids, the files on
disk, and that the base tables equal a from-scratch ingest of the same shards.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from conftest import CARD, full_row, write_parquet
from mementos.foundation import catalog, layout, storage
from mementos.ingest.pipeline import run_ingest
from mementos.warehouse.engine import build
from test_crash_safety import cli_ingest
from test_engine import TOY, write_models
from warehouse_state import snapshot

ROWS_PER_SHARD = 4


def write_shard(source: Path, tag: str, rows: int = ROWS_PER_SHARD) -> None:
    """Shard `tag`: `rows` rows in data/ and the same rows in full/, each with its own content; the
    first is flagged in both configs (no blocks in its response, which its full row's blocks then
    contradict)."""
    full = [full_row([[f"{tag} sentence {i}.", "And another."], ["Last one."]], [f"m{tag}{i}", "end"],
                     problem=f"problem {tag} {i}") for i in range(rows)]
    full[0]["response"] = f"<think>raw thoughts of {tag}</think>42"
    default = [{k: v for k, v in r.items() if k in ("problem", "response", "domain", "source", "difficulty")}
               for r in full]
    write_parquet(source / "data" / f"train-{tag}.parquet", default)
    write_parquet(source / "full" / f"train-{tag}.parquet", full)


def corpus(source: Path, tags: tuple[str, ...] = ("a", "b", "c")) -> Path:
    source.mkdir(parents=True, exist_ok=True)
    (source / "README.md").write_text(CARD)
    for tag in tags:
        write_shard(source, tag)
    return source


def remove_shard(source: Path, tag: str) -> None:
    for config_dir in ("data", "full"):
        (source / config_dir / f"train-{tag}.parquet").unlink()


def ingest(source: Path, db: Path, config: str = "default", **kw):
    return run_ingest(str(source), db, config=config, name="t", workers=0, progress=False, with_tokens=False, **kw)


def rows(db: Path, sql: str, params=None) -> list[tuple]:
    with storage.connect(db, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def id_ranges(db: Path) -> dict[str, tuple[int, int]]:
    """The source_row range of each shard's default traces, by shard tag."""
    found = rows(db, "SELECT regexp_extract(source_file, 'train-(\\w+)\\.parquet', 1), min(source_row), "
                     "max(source_row) FROM traces GROUP BY 1")
    return {tag: (low, high) for tag, low, high in found}


def parquet_files(db: Path) -> set[Path]:
    return set(layout.data_dir(db).rglob("*.parquet"))


def data_version(db: Path) -> str:
    with storage.connect(db, read_only=True) as con:
        return catalog.data_version(con)


def test_appending_a_shard_reads_only_it_and_numbers_its_traces_after_the_others(tmp_path):
    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    first = ingest(source, db)
    assert (first.shards_added, first.rows_added, first.full_refresh) == (3, 12, True)
    assert id_ranges(db) == {"a": (0, 3), "b": (4, 7), "c": (8, 11)}  # a first ingest numbers as ever
    before = set(rows(db, "SELECT trace_id, run_id FROM traces"))
    write_shard(source, "d")
    summary = ingest(source, db)
    assert (summary.shards_unchanged, summary.shards_added, summary.shards_replaced, summary.shards_removed) == (3, 1, 0, 0)
    assert (summary.rows_read, summary.rows_added, summary.rows_unchanged, summary.full_refresh) == (4, 4, 12, False)
    assert id_ranges(db) == {"a": (0, 3), "b": (4, 7), "c": (8, 11), "d": (12, 15)}
    assert before <= set(rows(db, "SELECT trace_id, run_id FROM traces"))  # unchanged traces keep id and run
    assert rows(db, "SELECT DISTINCT run_id FROM traces WHERE source_row >= 12") == [(summary.run_id,)]


def test_a_changed_shard_replaces_exactly_its_traces_with_new_ids_and_its_old_files_go(tmp_path):
    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    first = ingest(source, db)
    old_b = {Path(layout.data_dir(db)) / f for s in _shards(db) if s.path.endswith("train-b.parquet") for f in s.files}
    write_parquet(source / "data" / "train-b.parquet",
                  [{"problem": "new b", "response": "<think>changed</think>7"}] * 2)
    summary = ingest(source, db)
    assert (summary.shards_unchanged, summary.shards_replaced, summary.rows_replaced, summary.rows_read) == (2, 1, 2, 2)
    assert id_ranges(db) == {"a": (0, 3), "b": (12, 13), "c": (8, 11)}
    assert rows(db, "SELECT count(*) FROM traces WHERE problem = 'problem b 0'") == [(0,)]
    # the replaced shard's files are reclaimed (no snapshot names them), the others in their folder stay
    assert old_b and not any(f.exists() for f in old_b)
    assert all((layout.data_dir(db) / f).exists() for s in _shards(db) for f in s.files)
    assert rows(db, "SELECT DISTINCT run_id FROM traces WHERE source_row < 12") == [(first.run_id,)]


def test_a_vanished_shard_removes_its_traces(tmp_path):
    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    ingest(source, db)
    remove_shard(source, "a")
    summary = ingest(source, db)
    assert (summary.shards_unchanged, summary.shards_removed, summary.rows_removed, summary.rows_read) == (2, 1, 4, 0)
    assert id_ranges(db) == {"b": (4, 7), "c": (8, 11)}
    write_shard(source, "a")  # back again: a shard never seen numbers after every row ever used
    ingest(source, db)
    assert id_ranges(db) == {"a": (12, 15), "b": (4, 7), "c": (8, 11)}


def test_re_ingesting_unchanged_shards_reads_nothing_writes_no_file_and_keeps_models_fresh(tmp_path):
    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    ingest(source, db, config="all")
    models = write_models(tmp_path / "models", TOY)
    assert build(db, models_dir=models).by_status("built") == ["a", "b", "c", "d"]
    files, version = parquet_files(db), data_version(db)
    summary = ingest(source, db, config="all")
    assert (summary.rows_read, summary.shards_unchanged, summary.shards_added, summary.rows_unchanged) == (0, 6, 0, 24)
    assert parquet_files(db) == files
    assert data_version(db) == version
    assert rows(db, "SELECT count(*) FROM ingest_runs") == [(2,)]  # the no-op is recorded, with its counts
    assert build(db, models_dir=models).by_status("fresh") == ["a", "b", "c", "d"]


def test_full_refresh_reads_every_shard_and_numbers_from_zero(tmp_path):
    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    ingest(source, db)
    remove_shard(source, "a")
    ingest(source, db)
    summary = ingest(source, db, full_refresh=True)
    assert (summary.rows_read, summary.shards_replaced, summary.full_refresh) == (8, 2, True)
    assert id_ranges(db) == {"b": (0, 3), "c": (4, 7)}
    write_shard(source, "d")  # after a refresh, rows are numbered on from the refreshed ones
    ingest(source, db)
    assert id_ranges(db)["d"] == (8, 11)


def test_the_full_config_is_appended_and_linked_to_its_default_traces(tmp_path):
    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    ingest(source, db, config="all")
    write_shard(source, "d")
    summary = ingest(source, db, config="all")
    assert (summary.default_rows, summary.full_rows, summary.shards_added, summary.shards_unchanged) == (4, 4, 2, 6)
    assert rows(db, "SELECT min(source_row), max(source_row), count(trace_id) FROM full_traces "
                    "WHERE run_id = ?", [summary.run_id]) == [(12, 15, 4)]
    assert rows(db, "SELECT count(*) FROM full_traces f JOIN traces t USING (trace_id) "
                    "WHERE f.problem = t.problem") == [(16,)]


@pytest.mark.parametrize("change", ["append", "replace", "remove"])
def test_after_a_change_the_base_tables_equal_a_from_scratch_ingest(tmp_path, change):
    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    ingest(source, db, config="all")
    if change == "append":
        write_shard(source, "d")
    elif change == "replace":
        write_shard(source, "b", rows=6)
    else:
        remove_shard(source, "b")
    ingest(source, db, config="all")
    scratch = tmp_path / "scratch.duckdb"
    ingest(source, scratch, config="all")
    with storage.connect(db, read_only=True) as con:
        con.execute(f"ATTACH '{scratch}' AS scratch (READ_ONLY)")
        for view, select in COMPARABLE.items():
            here, there = select.format(db=""), select.format(db="scratch.")
            assert con.execute(f"SELECT count(*) FROM ({here})").fetchall()[0][0] > 0, view
            for a, b in ((here, there), (there, here)):
                assert con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchall() == [(0,)], view


# Every base view without the columns that legitimately differ between an incremental and a
# from-scratch ingest (run_id, trace_id, full_trace_id, source_row), a row named by its content hash.
COMPARABLE = {
    "traces": "SELECT * EXCLUDE (run_id, trace_id, source_row) FROM {db}traces",
    "segments": "SELECT t.content_hash, s.* EXCLUDE (trace_id) FROM {db}segments s JOIN {db}traces t USING (trace_id)",
    "parse_issues": "SELECT coalesce(t.content_hash, f.content_hash), i.* EXCLUDE (trace_id) FROM {db}parse_issues i "
                    "LEFT JOIN {db}traces t ON i.config = 'default' AND t.trace_id = i.trace_id "
                    "LEFT JOIN {db}full_traces f ON i.config = 'full' AND f.full_trace_id = i.trace_id",
    "full_traces": "SELECT * EXCLUDE (run_id, trace_id, full_trace_id, source_row) FROM {db}full_traces",
    "sentences": "SELECT f.content_hash, s.* EXCLUDE (trace_id, full_trace_id) FROM {db}sentences s "
                 "JOIN {db}full_traces f USING (full_trace_id)",
    "full_blocks": "SELECT f.content_hash, b.* EXCLUDE (trace_id, full_trace_id) FROM {db}full_blocks b "
                   "JOIN {db}full_traces f USING (full_trace_id)",
}


@pytest.mark.parametrize("point, workers", [("ingest.mid_write", 0), ("ingest.worker_write", 2),
                                           ("ingest.publish.views", 0), ("ingest.before_commit", 0)])
def test_an_append_killed_at_any_point_leaves_the_previous_state(tmp_path, point, workers):
    source, db = corpus(tmp_path / "src"), tmp_path / "wh" / "w.duckdb"
    ingest(source, db, config="all")
    before, files, version = snapshot(db), parquet_files(db), data_version(db)
    write_shard(source, "d")
    killed = cli_ingest(source, db, kill_at=point, workers=workers)
    assert killed.returncode != 0, killed.stderr
    assert snapshot(db) == before and data_version(db) == version
    assert files <= parquet_files(db)  # the earlier shards' files are all there, untouched
    summary = ingest(source, db, config="all")  # the next ingest reads the new shard and cleans up
    assert (summary.shards_added, summary.rows_read) == (2, 8)
    assert id_ranges(db)["d"] == (12, 15)
    assert parquet_files(db) == files | {layout.data_dir(db) / f for s in _shards(db) for f in s.files}


def test_a_limited_ingest_re_reads_from_the_first_row_and_the_next_one_reads_every_shard(tmp_path):
    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    limited = ingest(source, db, limit=6)
    assert (limited.rows_read, limited.full_refresh) == (6, True)
    assert id_ranges(db) == {"a": (0, 3), "b": (4, 5)}
    summary = ingest(source, db)
    assert (summary.shards_replaced, summary.shards_added, summary.rows_read) == (2, 1, 12)
    assert sorted(id_ranges(db).values()) == [(6, 9), (10, 13), (14, 17)]


def _shards(db: Path) -> list[catalog.Shard]:
    with storage.connect(db, read_only=True) as con:
        return catalog.shards_of_run(con, catalog.current_runs(con)["t"])


def test_a_shard_whose_files_are_damaged_is_read_again(tmp_path):
    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    ingest(source, db)
    [damaged] = [layout.data_dir(db) / f for s in _shards(db) if s.path.endswith("train-a.parquet") for f in s.files]
    os.truncate(damaged, 10)
    summary = ingest(source, db)
    assert (summary.shards_replaced, summary.shards_unchanged, summary.rows_read) == (1, 2, 4)
    assert rows(db, "SELECT count(*) FROM traces") == [(12,)]


def _plan_reading(*rows: int | None):
    from mementos.ingest.shards import ShardPlan, ToRead
    from mementos.ingest.sources import SourceFile

    return ShardPlan(False, read=[ToRead(SourceFile("default", f"/s/{i}.parquet", "parquet", n), f"/s/{i}.parquet",
                                         i, "added", 1, "h") for i, n in enumerate(rows)])


def test_a_small_read_runs_in_the_ingest_process_unless_workers_are_given():
    """2,000 rows (both configs) are parsed in the ingest process; one more, or a file of unknown rows (JSON
    lines), starts one worker per core; --workers is always obeyed."""
    from mementos.ingest.pipeline import IN_PROCESS_ROWS, _workers_for

    per_core = os.cpu_count() or 1
    assert IN_PROCESS_ROWS == 2_000
    assert [_workers_for(_plan_reading(1_500, 500), None), _workers_for(_plan_reading(1_500, 501), None),
            _workers_for(_plan_reading(10, None), None), _workers_for(_plan_reading(10), 2)] == [0, per_core,
                                                                                              per_core, 2]


def test_a_trace_lookup_reads_only_the_files_of_its_shard(tmp_path):
    """sources_by_rows names the files of the shards holding the rows, and the trace's view read through
    them is the one read through every file."""
    from mementos.warehouse.trace_view import trace_views

    def named(src: dict[str, str]) -> list[str]:
        return sorted(f.split("/")[-1] for f in src["stored_traces"].split("'") if f.endswith(".parquet"))

    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    ingest(source, db)
    with storage.connect(db) as con:
        shards = sorted((s for s in catalog.shards_of_run(con, catalog.current_runs(con)["t"])
                         if s.config == "default"), key=lambda s: s.first_row)
        files = [sorted(f.split("/")[-1] for f in s.files) for s in shards]
        of_rows = catalog.sources_by_rows(con, layout.data_dir(db))
        assert named(of_rows("t", ROWS_PER_SHARD + 1, ROWS_PER_SHARD + 1)) == files[1]
        # from inside the second shard to inside the third: both, not the first
        assert named(of_rows("t", ROWS_PER_SHARD + 1, 2 * ROWS_PER_SHARD + 1)) == sorted(files[1] + files[2])
        trace_id = f"t:{ROWS_PER_SHARD + 1}"
        [(response,)] = con.execute("SELECT response FROM traces WHERE trace_id = ?", [trace_id]).fetchall()
        view = trace_views(con, [trace_id])[trace_id]
        assert view.pairs and view.answer is not None
        assert all(p.block in response and p.memento in response for p in view.pairs)
