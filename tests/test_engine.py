"""The model engine on a toy project: headers, dependencies, fingerprints, incremental builds,
audits that keep the old table, cycles, unknown tables, crash safety."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from mementos.foundation import catalog, storage
from mementos.foundation.errors import CycleError, ModelError
from mementos.warehouse.engine import build
from mementos.warehouse.materializations import ASIDE_PREFIX
from mementos.warehouse.model_list import list_models, models_report
from mementos.warehouse.project import load_project
from mementos.warehouse.models import fingerprint, load_model
from mementos.foundation.errors import WarehouseError

REPO = Path(__file__).resolve().parent.parent


def header(name, grain, kind="table", audits="", version=1):
    return f"/*\nname: {name}\nversion: {version}\nkind: {kind}\ngrain: [{grain}]\ndescription: test model {name}\n{audits}*/\n"


TOY = {
    "a": header("a", "trace_id") + "SELECT trace_id, n_blocks FROM traces\n",
    "b": header("b", "trace_id") + "WITH doubled AS (SELECT trace_id, n_blocks * 2 AS x FROM a)\nSELECT * FROM doubled\n",
    "c": header("c", "n", kind="view") + "SELECT count(*) AS n FROM b\n",
    "d": header("d", "trace_id") + "SELECT trace_id FROM traces WHERE n_blocks > 0\n",
}


def write_models(directory: Path, models: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in models.items():
        (directory / f"{name}.sql").write_text(text)
    return directory


def add_run(con, run_id: str) -> None:
    now = datetime.now()
    catalog.insert_run(con, catalog.IngestRun(run_id, "toy", "toy.jsonl", "default", now, finished_at=now, rows_read=3,
                                              rows_ok=3, default_rows=3, parser_version="1", seconds=0.1))


@pytest.fixture
def toy_db(tmp_path) -> Path:
    """Three ok traces with 1, 2 and 3 blocks: toy:0, toy:1, toy:2."""
    from conftest import memento, row, write_jsonl
    from mementos.ingest.pipeline import run_ingest

    source = write_jsonl(tmp_path / "toy.jsonl", [row(memento([(f"block {j}", f"memento {j}") for j in range(n)]))
                                                  for n in (1, 2, 3)])
    db = tmp_path / "toy.duckdb"
    run_ingest(str(source), db, name="toy", workers=0, progress=False, with_tokens=False)
    return db


@pytest.fixture
def toy_models(tmp_path) -> Path:
    return write_models(tmp_path / "models", TOY)


def rows(db, sql):
    with storage.connect(db) as con:
        return con.execute(sql).fetchall()


def test_first_build_builds_all_in_dependency_order_then_nothing(toy_db, toy_models):
    report = build(toy_db, models_dir=toy_models)
    assert report.ok
    assert report.by_status("built") == ["a", "b", "c", "d"]
    assert rows(toy_db, "SELECT * FROM c") == [(3,)]
    assert rows(toy_db, "SELECT x FROM b ORDER BY trace_id") == [(2,), (4,), (6,)]
    again = build(toy_db, models_dir=toy_models)
    assert again.by_status("built") == [] and again.by_status("fresh") == ["a", "b", "c", "d"]
    recorded = rows(toy_db, "SELECT model, version, rows, status FROM model_builds ORDER BY built_at")
    assert recorded == [("a", "1", 3, "ok"), ("b", "1", 3, "ok"), ("c", "1", 1, "ok"), ("d", "1", 3, "ok")]


def test_a_reader_reads_the_snapshot_its_build_published_through_a_new_connection(toy_db, toy_models):
    """build_for_reader: nothing to build leaves the reader's connection; a build closes it (it would go on
    reading the snapshot from before the build) and hands back one that sees the new table."""
    from mementos.warehouse import guard
    from mementos.warehouse.engine import build_for_reader

    before = guard.open_warehouse(toy_db)
    first = build_for_reader(toy_db, ["b"], "test", toy_models, con=before)
    assert first.report.ok and first.con is not before
    with pytest.raises(duckdb.ConnectionException):
        before.execute("SELECT 1")
    assert first.con.execute("SELECT count(*) FROM b").fetchall() == [(3,)]
    second = build_for_reader(toy_db, ["b"], "test", toy_models, con=first.con)
    assert (second.report, second.con) == (None, first.con)
    second.con.close()


def test_dependencies_come_from_the_sql_and_ctes_are_not_tables(toy_models):
    project = load_project(toy_models)
    assert project.parents == {"a": [], "b": ["a"], "c": ["b"], "d": []}
    assert project.base_refs["a"] == ["traces"] and project.base_refs["b"] == []
    assert project.dag.descendants("a") == {"b", "c"}


def test_fingerprint_ignores_layout_comments_and_keyword_case(toy_models):
    before = load_project(toy_models).fingerprints
    (toy_models / "a.sql").write_text(
        header("a", "trace_id") + "-- a comment\nselect\n    trace_id,   /* inline */ n_blocks\nfrom   TRACES ;\n\n")
    (toy_models / "b.sql").write_text(
        header("b", "trace_id") + "with doubled as (select trace_id, n_blocks*2 as x from a) select * from doubled")
    assert load_project(toy_models).fingerprints == before


def test_fingerprint_changes_with_a_real_edit_and_reaches_descendants(toy_models):
    before = load_project(toy_models).fingerprints
    (toy_models / "b.sql").write_text(TOY["b"].replace("n_blocks * 2", "n_blocks * 3"))
    after = load_project(toy_models).fingerprints
    assert after["a"] == before["a"] and after["d"] == before["d"]
    assert after["b"] != before["b"] and after["c"] != before["c"]  # c's SQL is unchanged: its parent changed


def test_only_the_edited_model_and_its_descendants_rebuild(toy_db, toy_models):
    build(toy_db, models_dir=toy_models)
    (toy_models / "a.sql").write_text(TOY["a"].replace("SELECT", "\n\nselect  "))  # layout only
    (toy_models / "b.sql").write_text(TOY["b"].replace("n_blocks * 2", "n_blocks * 3"))
    report = build(toy_db, models_dir=toy_models)
    assert report.by_status("built") == ["b", "c"]
    assert report.by_status("fresh") == ["a", "d"]
    assert rows(toy_db, "SELECT x FROM b ORDER BY trace_id") == [(3,), (6,), (9,)]


def test_an_edited_audit_rebuilds_the_model_and_runs(toy_db, toy_models):
    build(toy_db, models_dir=toy_models)
    audit = "audits:\n  - accepted_values: {column: trace_id, values: ['toy:0']}\n"
    (toy_models / "d.sql").write_text(TOY["d"].replace("description: test model d\n", "description: test model d\n" + audit))
    report = build(toy_db, models_dir=toy_models)
    assert report.by_status("failed") == ["d"]
    assert rows(toy_db, "SELECT count(*) FROM d") == [(3,)]  # the previous table is kept


def test_version_bump_rebuilds(toy_db, toy_models):
    build(toy_db, models_dir=toy_models)
    (toy_models / "d.sql").write_text(TOY["d"].replace("version: 1", "version: 2"))
    report = build(toy_db, models_dir=toy_models)
    assert report.by_status("built") == ["d"]
    assert "version 1 -> 2" in report.results[-1].reason


def test_new_ingest_makes_tables_over_base_tables_stale(toy_db, toy_models):
    build(toy_db, models_dir=toy_models)
    with duckdb.connect(str(toy_db)) as con:
        add_run(con, "r2")
    states = {m.name: (m.state, m.reason) for m in list_models(toy_db, toy_models)}
    assert states["a"] == ("stale", "new data ingested since")
    assert states["c"] == ("stale", "upstream b is stale")
    report = build(toy_db, models_dir=toy_models)
    assert report.by_status("built") == ["a", "b", "c", "d"]


def test_failing_audit_keeps_the_previous_table_and_names_the_audit(toy_db, toy_models):
    build(toy_db, models_dir=toy_models)
    # b now has two rows per trace: its grain (trace_id) is no longer unique
    (toy_models / "b.sql").write_text(
        header("b", "trace_id", audits="audits:\n  - accepted_range: {column: x, max: 4}\n")
        + "SELECT trace_id, n_blocks * 2 AS x FROM a UNION ALL SELECT trace_id, 0 FROM a\n")
    report = build(toy_db, models_dir=toy_models)
    assert not report.ok
    failed = report.results[[r.name for r in report.results].index("b")]
    assert failed.status == "failed"
    assert [f.audit for f in failed.failures] == ["unique(trace_id)", "accepted_range(x in [, 4])"]
    assert failed.failures[0].offending == 3 and failed.failures[1].rows == [("toy:2", 6)]
    text = report.format()
    assert "audit unique(trace_id) failed: 3 offending rows" in text and "toy:2 | 6" in text
    assert "skipped  c" in text and "upstream b failed" in text
    # the old b is still there, untouched; the failure is recorded
    assert rows(toy_db, "SELECT x FROM b ORDER BY trace_id") == [(2,), (4,), (6,)]
    assert rows(toy_db, "SELECT status FROM model_builds WHERE model = 'b' ORDER BY built_at") == [
        ("ok",), ("audit_failed",)]
    assert {m.name: m.state for m in list_models(toy_db, toy_models)}["b"] == "stale"


def test_builtin_and_custom_audits(toy_db, toy_models):
    audits = ("audits:\n"
              "  - not_null: [trace_id, x]\n"
              "  - accepted_values: {column: x, values: [1, 2]}\n"
              "  - custom:\n      name: no_big_x\n      sql: SELECT * FROM {this} WHERE x > 2\n")
    write_models(toy_models, {"e": header("e", "trace_id", audits=audits)
                              + "SELECT trace_id, CASE WHEN n_blocks = 1 THEN NULL ELSE n_blocks END AS x FROM traces"})
    report = build(toy_db, models_dir=toy_models)
    failed = [r for r in report.results if r.name == "e"][0]
    assert [(f.audit, f.offending) for f in failed.failures] == [
        ("not_null(trace_id, x)", 1), ("accepted_values(x)", 1), ("no_big_x", 1)]
    assert rows(toy_db, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'e'") == [(0,)]


def test_sql_error_in_a_model_names_the_file_and_rolls_back_the_whole_build(toy_db, toy_models):
    (toy_models / "d.sql").write_text(header("d", "trace_id") + "SELECT trace_id, no_such_column FROM traces")
    report = build(toy_db, models_dir=toy_models)
    failed = [r for r in report.results if r.name == "d"][0]
    assert failed.status == "failed" and "d.sql" in failed.error and "no_such_column" in failed.error
    assert report.by_status("built") == [] and report.by_status("rolled back") == ["a", "b", "c"]
    assert not report.ok
    assert "rolled back: a, b, c (build is atomic; fix d and build again)" in report.format()
    # a, b and c were built in the build's transaction, then rolled back with it: none exists
    assert rows(toy_db, "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('a', 'b', 'c')") == [(0,)]
    assert rows(toy_db, "SELECT model, status FROM model_builds") == [("d", "error")]
    (toy_models / "d.sql").write_text(TOY["d"])
    assert build(toy_db, models_dir=toy_models).by_status("built") == ["a", "b", "c", "d"]


def test_a_failure_stops_the_build_downstream_and_after_it(toy_db, toy_models):
    build(toy_db, models_dir=toy_models)
    (toy_models / "b.sql").write_text(header("b", "x") + "SELECT trace_id, 1 AS x FROM a")  # x is not unique
    report = build(toy_db, full_refresh=True, models_dir=toy_models)
    assert [(r.name, r.status, r.reason) for r in report.results if r.status != "failed"] == [
        ("a", "rolled back", "--full-refresh"),
        ("c", "skipped", "upstream b failed"),
        ("d", "skipped", "not built: the build stopped at b"),
    ]
    text = report.format()
    assert "FAILED   b" in text and "audit unique(x) failed: 1 offending row" in text
    assert "rolled back: a (build is atomic; fix b and build again)" in text
    assert text.splitlines()[-1].startswith(f"build {toy_db}: 1 failed, 1 rolled back, 2 skipped in ")
    assert rows(toy_db, "SELECT x FROM b ORDER BY trace_id") == [(2,), (4,), (6,)]
    assert rows(toy_db, "SELECT model, status FROM model_builds WHERE build_id = (SELECT max(build_id) FROM "
                        "model_builds)") == [("b", "audit_failed")]
    assert {m.name: m.state for m in list_models(toy_db, toy_models)} == {
        "a": "fresh", "b": "stale", "c": "stale", "d": "fresh"}


# The bug that made builds atomic: a parent rebuilt with a renamed column and committed on its own,
# then its child (a view) failing its audit, left the child's old view reading a column that was gone.
RENAME = {
    "p": header("p", "trace_id") + "SELECT trace_id, n_blocks AS x FROM traces\n",
    "v": header("v", "trace_id", kind="view", audits="audits:\n  - accepted_range: {column: x, max: 3}\n")
    + "SELECT trace_id, x FROM p\n",
}
RENAMED = {
    "p": RENAME["p"].replace("n_blocks AS x", "n_blocks * 10 AS y"),
    "v": RENAME["v"].replace("column: x", "column: y").replace("trace_id, x", "trace_id, y"),  # 10, 20, 30 > 3
}


def assert_rename_not_applied(db):
    assert rows(db, "SELECT x FROM v ORDER BY trace_id") == [(1,), (2,), (3,)]  # the old view still binds
    assert rows(db, "SELECT column_name FROM information_schema.columns WHERE table_name = 'p' "
                    "ORDER BY ordinal_position") == [("trace_id",), ("x",)]
    assert rows(db, f"SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '{ASIDE_PREFIX}%'") \
        == [(0,)]


def test_child_failing_after_its_parent_renamed_a_column_keeps_both_old(toy_db, tmp_path):
    models = write_models(tmp_path / "rename", RENAME)
    assert build(toy_db, models_dir=models).ok
    write_models(models, RENAMED)
    report = build(toy_db, models_dir=models)
    assert [(r.name, r.status) for r in report.results] == [("p", "rolled back"), ("v", "failed")]
    assert "rolled back: p (build is atomic; fix v and build again)" in report.format()
    assert_rename_not_applied(toy_db)
    assert rows(toy_db, "SELECT model, status FROM model_builds ORDER BY built_at") == [
        ("p", "ok"), ("v", "ok"), ("v", "audit_failed")]
    assert {m.name: m.state for m in list_models(toy_db, models)} == {"p": "stale", "v": "stale"}
    # fixed: both go in together
    (models / "v.sql").write_text(RENAMED["v"].replace("max: 3", "max: 30"))
    assert build(toy_db, models_dir=models).by_status("built") == ["p", "v"]
    assert rows(toy_db, "SELECT y FROM v ORDER BY trace_id") == [(10,), (20,), (30,)]


@pytest.mark.parametrize("point", ["build.after_create@2", "build.before_swap@2", "build.before_commit"])
def test_build_killed_after_the_parent_swapped_in_keeps_both_old(toy_db, tmp_path, point):
    """Killed while the child builds on the renamed parent (or just before the commit): nothing changes."""
    models = write_models(tmp_path / "rename", RENAME)
    assert build(toy_db, models_dir=models).ok
    write_models(models, {**RENAMED, "v": RENAMED["v"].replace("max: 3", "max: 30")})
    code = "import sys; from mementos.warehouse.engine import build; build(sys.argv[1], models_dir=sys.argv[2])"
    proc = subprocess.run([sys.executable, "-c", code, str(toy_db), str(models)], cwd=REPO,
                          env={**os.environ, "MEMENTOS_KILL_AT": point}, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert_rename_not_applied(toy_db)
    assert rows(toy_db, "SELECT model, status FROM model_builds ORDER BY built_at") == [("p", "ok"), ("v", "ok")]


def test_cycle_is_an_error_that_prints_the_cycle(toy_db, toy_models):
    (toy_models / "a.sql").write_text(header("a", "trace_id") + "SELECT trace_id, n_blocks FROM c")
    (toy_models / "c.sql").write_text(header("c", "trace_id") + "SELECT b.trace_id, b.x AS n_blocks FROM b")
    with pytest.raises(CycleError, match=r"cycle: a -> c -> b -> a"):
        load_project(toy_models)
    with pytest.raises(CycleError):
        build(toy_db, models_dir=toy_models)


def test_self_reference_is_a_cycle(toy_models):
    (toy_models / "d.sql").write_text(header("d", "trace_id") + "SELECT trace_id FROM d")
    with pytest.raises(CycleError, match="d -> d"):
        load_project(toy_models)


def test_unknown_table_names_the_file(toy_db, toy_models):
    (toy_models / "b.sql").write_text(header("b", "trace_id") + "SELECT t.trace_id FROM a JOIN tracez AS t USING (trace_id)")
    with pytest.raises(ModelError, match=r"b\.sql: reads `tracez`, which is neither a model nor a table"):
        build(toy_db, models_dir=toy_models)


@pytest.mark.parametrize("text, message", [
    ("SELECT 1", "starts with a header comment"),
    ("/* name: x\nversion: 1\nkind: table\ngrain: [a]\ndescription: d */ SELECT 1 AS a", "differs from the file name"),
    ("/* name: m\nkind: table\ngrain: [a]\ndescription: d */ SELECT 1 AS a", "missing version"),
    ("/* name: m\nversion: 1\nkind: tabel\ngrain: [a]\ndescription: d */ SELECT 1 AS a", "kind must be table, view or incremental, not .tabel."),
    ("/* name: m\nversion: 1\nkind: table\ngrain: [a]\ndescription: d\naudit: [] */ SELECT 1 AS a", "unknown header key"),
    ("/* name: m\nversion: 1\nkind: table\ngrain: [a]\ndescription: d */ DELETE FROM traces", "must be a SELECT"),
    ("/* name: m\nversion: 1\nkind: table\ngrain: [a]\ndescription: d */ SELECT 1; SELECT 2", "exactly one SELECT"),
    ("/* name: m\nversion: 1\nkind: table\ngrain: [a]\ndescription: d */ SELECT FROM WHERE (", "does not parse"),
    ("/* name: m\nversion: 1\nkind: table\ngrain: [a]\ndescription: d\naudits:\n  - unique_ish: [a]\n*/ SELECT 1 AS a",
     "unknown audit kind"),
    ("/* name: m\nversion: 1\nkind: table\ngrain: [a]\ndescription: d\ncolumns: [a] */ SELECT 1 AS a",
     "`columns` must map each output column to its meaning"),
    ("/* name: m\nversion: 1\nkind: table\ngrain: [a]\ndescription: d\ncolumns:\n  a:\n*/ SELECT 1 AS a",
     "`columns`: a needs its meaning as text"),
    ("/* name: m\nversion: 1\nkind: table\ngrain: [a, b]\ndescription: d\ncolumns:\n  a: the key\n*/ SELECT 1 AS a, 2 AS b",
     "`columns` lacks the grain column\\(s\\) b"),
    ("/* name: m\nversion: 1\nkind: table\ngrain: [a]\non_request: sometimes\ndescription: d */ SELECT 1 AS a",
     "on_request must be true or false, not 'sometimes'"),
])
def test_header_and_body_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "m.sql"
    path.write_text(text)
    with pytest.raises(ModelError if "audit" not in message else WarehouseError, match=message) as info:
        load_model(path)
    assert "m.sql" in str(info.value)


def test_header_as_dash_dash_lines(tmp_path):
    path = tmp_path / "m.sql"
    path.write_text("-- name: m\n-- version: 2\n-- kind: view\n-- grain: a, b\n-- description: dashes\n"
                    "SELECT 1 AS a, 2 AS b")
    model = load_model(path)
    assert (model.version, model.kind, model.grain, model.refs) == ("2", "view", ["a", "b"], set())


def test_columns_are_read_in_order_with_their_meanings_and_are_not_in_the_fingerprint(tmp_path):
    path = tmp_path / "m.sql"
    path.write_text("/*\nname: m\nversion: 1\nkind: view\ngrain: [a]\ndescription: d\n"
                    "columns:\n  A: the key\n  b: \"two: a value\"\n*/\nSELECT 1 AS a, 2 AS b")
    documented = load_model(path)
    path.write_text("/*\nname: m\nversion: 1\nkind: view\ngrain: [a]\ndescription: d\n*/\nSELECT 1 AS a, 2 AS b")
    undocumented = load_model(path)
    assert documented.columns == {"a": "the key", "b": "two: a value"} and undocumented.columns == {}
    assert fingerprint(documented, {}) == fingerprint(undocumented, {})


def test_a_model_file_is_parsed_once_per_text_and_again_once_edited(tmp_path):
    path = tmp_path / "m.sql"
    path.write_text("-- name: m\n-- version: 1\n-- kind: view\n-- grain: a\n-- description: d\nSELECT 1 AS a")
    first = load_model(path)
    assert load_model(path) is first
    path.write_text("-- name: m\n-- version: 2\n-- kind: view\n-- grain: a\n-- description: d\nSELECT 1 AS a")
    assert load_model(path).version == "2"


def test_select_one_model_or_it_and_its_descendants(toy_db, toy_models):
    assert build(toy_db, select=["d"], models_dir=toy_models).by_status("built") == ["d"]
    report = build(toy_db, select=["b"], models_dir=toy_models)
    assert report.by_status("skipped") == ["b"] and "upstream a was never built" in report.results[0].reason
    assert build(toy_db, select=["a+"], models_dir=toy_models).by_status("built") == ["a", "b", "c"]
    assert build(toy_db, select=["b+"], full_refresh=True, models_dir=toy_models).by_status("built") == ["b", "c"]
    assert build(toy_db, full_refresh=True, models_dir=toy_models).by_status("built") == ["a", "b", "c", "d"]
    with pytest.raises(WarehouseError, match="no model named 'nope'"):
        build(toy_db, select=["nope+"], models_dir=toy_models)


def test_selecting_a_parent_alone_leaves_its_children_stale(toy_db, toy_models):
    build(toy_db, models_dir=toy_models)
    build(toy_db, select=["a"], full_refresh=True, models_dir=toy_models)
    states = {m.name: (m.state, m.reason) for m in list_models(toy_db, toy_models)}
    assert states["b"] == ("stale", "upstream a was rebuilt since")
    assert states["c"] == ("stale", "upstream b is stale")
    assert build(toy_db, models_dir=toy_models).by_status("built") == ["b", "c"]


def test_models_listing(toy_db, toy_models):
    assert {m.name: m.state for m in list_models(toy_db, toy_models)} == dict.fromkeys("abcd", "never built")
    build(toy_db, models_dir=toy_models)
    text = models_report(toy_db, toy_models)
    assert text.splitlines()[0].split() == ["model", "kind", "version", "grain", "state", "rows", "last", "built"]
    assert "c      view   1        n         fresh" in text


def test_kind_change_replaces_a_table_with_a_view(toy_db, toy_models):
    build(toy_db, models_dir=toy_models)
    (toy_models / "d.sql").write_text(TOY["d"].replace("kind: table", "kind: view"))
    assert build(toy_db, models_dir=toy_models).by_status("built") == ["d"]
    assert rows(toy_db, "SELECT table_type FROM information_schema.tables WHERE table_name = 'd'") == [("VIEW",)]


def test_a_model_cannot_take_a_base_table_name(toy_db, toy_models):
    write_models(toy_models, {"traces": header("traces", "trace_id") + "SELECT 1 AS trace_id"})
    with pytest.raises(ModelError, match="cannot be named 'traces'"):
        build(toy_db, models_dir=toy_models)


def test_build_without_a_warehouse_says_so(tmp_path, toy_models):
    with pytest.raises(WarehouseError, match="no warehouse at"):
        build(tmp_path / "nothing.duckdb", models_dir=toy_models)


def test_build_waits_for_no_one_while_another_writer_holds_the_lock(toy_db, toy_models):
    with storage.write_lock(toy_db, "ingest something"):
        with pytest.raises(storage.WarehouseBusy, match="ingest something"):
            build(toy_db, models_dir=toy_models)


@pytest.mark.parametrize("point", ["build.after_create", "build.before_swap", "build.before_commit"])
def test_killed_build_leaves_the_previous_table(toy_db, toy_models, point):
    build(toy_db, models_dir=toy_models)
    (toy_models / "b.sql").write_text(TOY["b"].replace("n_blocks * 2", "n_blocks * 3"))
    code = ("import sys; from mementos.warehouse.engine import build; "
            f"build(sys.argv[1], models_dir=sys.argv[2])")
    proc = subprocess.run([sys.executable, "-c", code, str(toy_db), str(toy_models)], cwd=REPO,
                          env={**os.environ, "MEMENTOS_KILL_AT": point}, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert rows(toy_db, "SELECT x FROM b ORDER BY trace_id") == [(2,), (4,), (6,)]
    assert rows(toy_db, "SELECT count(*) FROM model_builds WHERE model = 'b'") == [(1,)]
    assert rows(toy_db, f"SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '{ASIDE_PREFIX}%'") \
        == [(0,)]
    assert build(toy_db, models_dir=toy_models).by_status("built") == ["b", "c"]  # the lock was released
    assert rows(toy_db, "SELECT x FROM b ORDER BY trace_id") == [(3,), (6,), (9,)]


def test_the_real_models_load_and_transpile_to_spark():
    """Every model in models/ parses, documents itself, and sqlglot can write it as Spark SQL."""
    import sqlglot

    project = load_project()
    assert len(project.models) >= 12
    for name, model in project.models.items():
        assert model.description and model.grain, name
        assert sqlglot.transpile(model.sql, read="duckdb", write="spark"), name
    for required in ("block_pairs", "trace_compression", "inference_simulation", "domain_compression",
                     "compression_by_source", "compression_by_difficulty", "outlier_traces", "full_alignment"):
        assert required in project.models
