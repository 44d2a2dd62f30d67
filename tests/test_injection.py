"""Injection: names and values from the command line or the data reach SQL only as bound values.

A dataset called `x'; DROP TABLE traces; --` is a name like any other: its trace
ids hold it verbatim, re-ingesting it replaces only it, and nothing is dropped.
Names cannot steer files outside the warehouse's Parquet directory either.
(`sql` being read-only without --write is tested in test_query.py.)
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import memento, row, write_jsonl
from mementos.foundation import layout, storage
from warehouse_state import committed_dirs, run_dirs, snapshot

EVIL = "x'; DROP TABLE traces; --"
HOSTILE_VALUES = ["'); DROP TABLE segments; --", 'a"b', "back\\slash", "$1 ? :name %s {x}", "\x00nul", "名前 ☃"]


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def rows(db, sql, params=None):
    with storage.connect(db) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    d = tmp_path_factory.mktemp("inj")
    db = d / "w.duckdb"
    good = write_jsonl(d / "good.jsonl", [row(memento([("b", "s")]), problem=f"p{i}") for i in range(3)])
    hostile = write_jsonl(d / "hostile.jsonl", [
        row(memento([(v, v)], answer=v), problem=v, domain=v, source=v, difficulty=v) for v in HOSTILE_VALUES])
    for source, name in ((good, "good"), (hostile, EVIL)):
        result = cli("ingest", source, "--db", db, "--name", name, "--workers", 0, "--no-progress", "--no-tokens")
        assert result.exit_code == 0, result.output
    return d, db, hostile


def test_dataset_name_is_data(wh):
    _, db, _ = wh
    assert rows(db, "SELECT dataset, count(*) FROM traces GROUP BY ALL ORDER BY ALL") == [
        ("good", 3), (EVIL, len(HOSTILE_VALUES))]
    assert rows(db, "SELECT trace_id FROM traces WHERE dataset = ? ORDER BY source_row LIMIT 2", [EVIL]) == [
        (f"{EVIL}:0",), (f"{EVIL}:1",)]
    assert rows(db, "SELECT DISTINCT dataset FROM ingest_runs ORDER BY 1") == [("good",), (EVIL,)]
    assert {t for (t,) in rows(db, "SELECT table_name FROM information_schema.tables")} >= set(storage.BASE_TABLES)


def test_hostile_values_are_stored_verbatim(wh):
    _, db, _ = wh
    got = rows(db, "SELECT problem, domain, source, difficulty FROM traces WHERE dataset = ? ORDER BY source_row",
               [EVIL])
    assert got == [(v, v, v, v) for v in HOSTILE_VALUES]
    texts = rows(db, "SELECT text FROM segments WHERE dataset = ? AND kind = 'block' ORDER BY trace_id", [EVIL])
    assert sorted(t for (t,) in texts) == sorted(v.strip() for v in HOSTILE_VALUES)


def test_reingesting_the_hostile_name_replaces_only_it(wh, tmp_path):
    d, db, hostile = wh
    before = snapshot(db)
    result = cli("ingest", hostile, "--db", db, "--name", EVIL, "--workers", 0, "--no-progress", "--no-tokens")
    assert result.exit_code == 0, result.output
    after = snapshot(db)
    run_records = ("ingest_runs", "ingest_shards", "_runs")  # the new run and the shard set it keeps
    assert {k: v for k, v in after.items() if k not in run_records} == \
           {k: v for k, v in before.items() if k not in run_records}
    assert rows(db, "SELECT count(*) FROM traces WHERE dataset = 'good'") == [(3,)]
    assert run_dirs(db) == committed_dirs(db)


@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", ".."] + [
    pytest.param(n, marks=pytest.mark.slow) for n in ("a/b/../c", ".", "con:nul?*")])
def test_dataset_names_cannot_steer_files_outside_the_warehouse(tmp_path, name):
    db = tmp_path / "wh" / "w.duckdb"
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([("b", "s")]))])
    result = cli("ingest", src, "--db", db, "--name", name, "--workers", 0, "--no-progress", "--no-tokens")
    assert result.exit_code == 0, result.output
    assert rows(db, "SELECT DISTINCT dataset FROM traces") == [(name,)]
    data = layout.data_dir(db).resolve()
    written = [p.resolve() for p in tmp_path.rglob("*.parquet")]
    assert written and all(data in p.parents for p in written), written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "wh"]


def test_command_line_values_in_show_report_and_export(wh, tmp_path):
    d, db, _ = wh
    before = snapshot(db)
    result = cli("show", EVIL, "--db", db)
    assert result.exit_code == 1 and "no trace" in result.output and "Traceback" not in result.output
    result = cli("show", f"{EVIL}:0", "--db", db)  # a real trace whose id is hostile
    assert result.exit_code == 0, result.output
    out = tmp_path / "it's a dir; DROP TABLE traces; --"  # quotes in --out once broke SET temp_directory
    result = cli("export", "memento", "--db", db, "--out", out, "--domain", EVIL, "--split", "train=1")
    assert result.exit_code == 1 and f"--domain {EVIL}: no trace has this domain" in result.output
    assert "Traceback" not in result.output
    result = cli("export", "memento", "--db", db, "--out", out, "--domain", HOSTILE_VALUES[0], "--split", "train=1",
                 "--include-flagged")
    assert result.exit_code == 0, result.output
    assert (out / "train.jsonl").read_text().count(HOSTILE_VALUES[0]) >= 1
    result = cli("sql", "SELECT 1; DROP TABLE traces", "--db", db)
    assert result.exit_code == 1 and "read-only" in result.output
    after = snapshot(db)  # export may have built its models; the base tables are untouched
    assert [after[t] for t in storage.BASE_TABLES] == [before[t] for t in storage.BASE_TABLES]
    assert after["_digest"] == before["_digest"]
