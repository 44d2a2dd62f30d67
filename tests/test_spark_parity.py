"""The same models on Spark give the same rows as on DuckDB (issue 9; warehouse.md (Spark)).

One generated warehouse per module, on the session-wide Spark session (conftest `spark`): four
datasets (50 traces of both configs without token counts; 200 default traces with cl100k counts,
every kind of broken trace among them, so token columns are compared too; three hand-written
traces beyond ASCII, one of them a chain of thought without memento markup; and the alignment
corpus of golden_models_data.py, with Unicode spaces and links by problem), built on DuckDB, then
on Spark from the Parquet files ingest wrote. Every model's rows must match: exactly for ids,
labels and counts, within 1e-9 for ratios and quantiles, in any order. Models that cannot run on
Spark must fail naming the model and the function.
"""

from __future__ import annotations

import math
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install '.[spark]' (make test does)")
if shutil.which("java") is None:
    pytest.skip("Java 17+ is missing (make test installs openjdk-17-jre-headless)", allow_module_level=True)

import duckdb  # noqa: E402

from conftest import memento, row, write_hub_dir, write_parquet  # noqa: E402
from golden_models_data import alignment_corpus  # noqa: E402
from mementos.ingest.pipeline import run_ingest  # noqa: E402
from mementos.foundation import layout, snapshots, storage
from mementos.warehouse import engine, planner  # noqa: E402
from mementos.warehouse.executor import BuildReport, execute  # noqa: E402
from mementos.warehouse.project import load_project  # noqa: E402
from mementos.warehouse.spark import engine as spark_engine  # noqa: E402
from mementos.warehouse.models import load_model  # noqa: E402
from mementos.sample import write_sample  # noqa: E402

# Enough that every model has rows, outliers included (test_same_rows_as_duckdb asserts it): Spark's
# cost is mostly per model and per job, so more traces add time and little coverage.
TRACES = 50
TOKEN_TRACES = 200  # EVERY_KIND_MIN_TRACES: every kind of broken trace, with token counts
TOLERANCE = 1e-9
MODELS = load_project().order
TIMES: dict[str, float] = {}
# The samples are ASCII, which Spark's segments view cuts as bytes (sql/views.spark.sql): these responses
# have characters of two, three and four bytes before, inside and between their segments.
UNICODE_ROWS = [
    row(memento([("Café: x − 3 = 4, so x = 7. Ω ≈ 2.5 kΩ.", "x = 7 (−3 + 10), Ω ≈ 2.5"),
                 ("Then 𝑦 = ½ · 8 = 4 🙂 and z = −2.", "𝑦 = 4, z = −2")], answer="Réponse : 7 🙂"),
        problem="Résoudre x − 3 = 4 ?"),
    row("<think>\n前置き 🙂\n<|block_start|>\n日本語の推論: 3 × 4 = 12。\n<|block_end|>\n<|summary_start|>\n"
        "12 です\n<|summary_end|>\n</think>\n\n答え: 12", problem="3 × 4 は？"),
    # a chain of thought without memento markup: unsegmented_traces' one trace of this warehouse
    row("<think>\nÉtape 1 : 3 × 4 = 12 🙂.\n\nÉtape 2 : 12 − 5 = 7.\n</think>\n\nRéponse : 7", problem="3 × 4 − 5 ?"),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("spark_parity")
    write_sample(tmp / "sample", TRACES, seed=13)
    write_sample(tmp / "tokens", TOKEN_TRACES, seed=14)
    write_hub_dir(tmp / "unicode", UNICODE_ROWS)
    db = tmp / "w.duckdb"
    run_ingest(str(tmp / "sample"), db, config="all", name="sample", with_tokens=False, workers=0, progress=False)
    run_ingest(str(tmp / "tokens"), db, config="default", name="tokens", with_tokens=True, workers=0,
               progress=False)
    run_ingest(str(tmp / "unicode"), db, config="default", name="unicode", with_tokens=True, workers=0,
               progress=False)
    default, full = alignment_corpus()  # problem 9's full rows arrive later, in the last test of this file
    write_hub_dir(tmp / "align", default, full[:-2])
    run_ingest(str(tmp / "align"), db, config="all", name="align", with_tokens=False, workers=0, progress=False)
    t0 = time.monotonic()
    report = engine.build(db, select=MODELS)  # the models on request too
    TIMES["duckdb_build"] = time.monotonic() - t0
    assert report.ok, report.format()
    return db


@pytest.fixture(scope="module")
def spark_report(spark, warehouse):
    t0 = time.monotonic()
    report = spark_engine.build(warehouse, spark=spark, select=MODELS)
    TIMES["spark_build"] = time.monotonic() - t0
    return report


def test_segments_of_responses_beyond_ascii_are_cut_as_on_duckdb(spark, warehouse, spark_report):
    query = "SELECT trace_id, kind, block_idx, text, n_chars FROM segments WHERE dataset = 'unicode'"
    with storage.connect(warehouse) as con:
        on_duckdb = sorted(con.execute(query).fetchall())
    on_spark = sorted(tuple(r) for r in spark.sql(query).collect())
    assert len(on_duckdb) == 10 and on_spark == on_duckdb
    assert ("unicode:0", "block", 1, "Then 𝑦 = ½ · 8 = 4 🙂 and z = −2.", 32) in on_spark


def test_every_model_builds_on_spark(spark_report):
    assert spark_report.ok, spark_report.format()
    assert [r.name for r in spark_report.results if r.status == "built"] == MODELS
    print("\nbuild times: " + ", ".join(f"{k} {v:.1f} s" for k, v in TIMES.items()))


# ---------------------------------------------------------------------------
# Same rows


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (bool, str, Decimal)) or isinstance(b, (bool, str, Decimal)):
            return False
        return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b  # ids, labels, counts, flags: exact, same kind of value


def _sort_key(grain_positions):
    return lambda row: tuple((row[i] is None, str(row[i])) for i in grain_positions)


@pytest.mark.parametrize("model", MODELS)
def test_same_rows_as_duckdb(model, warehouse, spark_report):
    result = {r.name: r for r in spark_report.results}[model]
    assert result.status == "built", f"{model} was not built on Spark: {result.error or result.reason}"
    grain = load_project().models[model].grain
    parts = layout.data_dir(warehouse) / spark_engine.MODELS_SUBDIR / model
    with storage.connect(warehouse) as con:
        on_duckdb = con.execute(f'SELECT * FROM "{model}"')
        duck_columns = [d[0] for d in on_duckdb.description]
        duck_rows = on_duckdb.fetchall()
        on_spark = con.execute("SELECT * FROM read_parquet(?)", [str(parts / "*.parquet")])
        spark_columns = [d[0] for d in on_spark.description]
        spark_rows = on_spark.fetchall()
    assert spark_columns == duck_columns
    assert len(spark_rows) == len(duck_rows) == result.rows > 0  # an empty model would compare nothing
    key = _sort_key([duck_columns.index(g) for g in grain])
    duck_rows.sort(key=key)
    spark_rows.sort(key=key)
    differences = []
    for d_row, s_row in zip(duck_rows, spark_rows):
        for column, d, s in zip(duck_columns, d_row, s_row):
            if not _same(d, s):
                differences.append(f"{column} at {[d_row[duck_columns.index(g)] for g in grain]}: "
                                   f"duckdb {d!r:.80} spark {s!r:.80}")
    assert not differences, f"{model}: {len(differences)} values differ, e.g.\n  " + "\n  ".join(differences[:5])


# ---------------------------------------------------------------------------
# Models that cannot run on Spark, variants, audits


def _write_model(directory: Path, name: str, sql: str, audits: str = "", grain: str = "[trace_id]",
                 kind: str = "table") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.sql"
    path.write_text(f"/*\nname: {name}\nversion: 1\nkind: {kind}\ngrain: {grain}\n"
                    f"description: a test model\n{audits}*/\n{sql}\n")
    return path


AUDITED_SQL = "SELECT trace_id, n_blocks FROM traces"
CUSTOM_MODELS = {  # name: (sql, audits)
    "duckdb_only": ("SELECT trace_id, regexp_full_match(response, '.*think.*') AS has_think FROM traces", ""),
    "downstream": ("SELECT trace_id FROM duckdb_only", ""),
    "think_flags": ("SELECT trace_id, regexp_full_match(problem, '.*[0-9].*') AS has_digit FROM traces\n"
                    "/* spark:\nSELECT trace_id, problem RLIKE '^.*[0-9].*$' AS has_digit FROM traces\n*/", ""),
    # sqlglot alone writes list(x ORDER BY k) as COLLECT_LIST(x): no order, NULLs dropped, [] for no rows
    "lists": ("SELECT trace_id,\n"
              "  list(block_idx ORDER BY block_idx DESC) FILTER (WHERE kind = 'block') AS blocks_desc,\n"
              "  list(CASE WHEN n_chars % 2 = 0 THEN n_chars END ORDER BY kind, block_idx NULLS FIRST) AS even,\n"
              "  list(block_idx ORDER BY block_idx) FILTER (WHERE kind = 'none') AS nothing\n"
              "FROM segments GROUP BY trace_id", ""),
    "audited": (AUDITED_SQL, "audits:\n  - accepted_range: {column: n_blocks, min: 0}\n"),
    "fresh_parent": ("SELECT trace_id, n_blocks FROM traces", ""),
    "fresh_child": ("SELECT trace_id, n_blocks * 2 AS doubled FROM fresh_parent", ""),
}


@dataclass
class CustomBuilds:
    models: Path
    listing: str  # `models --engine spark` before the first build
    first: BuildReport  # every model as CUSTOM_MODELS has it
    second: BuildReport  # after `audited`'s audit was made to fail
    third: BuildReport  # after `fresh_child` changed
    audited_parts: tuple[list[str], list[str]]  # the files of `audited` after the first and the second build
    aside_after_second: list[str]  # what the second build left beside the models' directories

    def result(self, build: str, model: str):
        return {r.name: r for r in getattr(self, build).results}[model]


@pytest.fixture(scope="module")
def custom(tmp_path_factory, spark, warehouse) -> CustomBuilds:
    """CUSTOM_MODELS built together on Spark three times (each Spark build has a fixed cost of its own,
    so the cases below share them): as written, after a failing audit, after a definition changed."""
    models = tmp_path_factory.mktemp("custom") / "models"
    for name, (sql, audits) in CUSTOM_MODELS.items():
        _write_model(models, name, sql, audits)
    listing = spark_engine.transpile_report(warehouse, models_dir=models)
    first = spark_engine.build(warehouse, spark=spark, models_dir=models)
    out = layout.data_dir(warehouse) / "models" / "audited"
    before = sorted(p.name for p in out.iterdir())

    _write_model(models, "audited", AUDITED_SQL, "audits:\n  - accepted_range: {column: n_blocks, max: 3}\n")
    second = spark_engine.build(warehouse, spark=spark, models_dir=models)
    after = sorted(p.name for p in out.iterdir())
    aside = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]

    _write_model(models, "fresh_child", "SELECT trace_id, n_blocks * 3 AS tripled FROM fresh_parent")
    third = spark_engine.build(warehouse, spark=spark, models_dir=models)
    return CustomBuilds(models, listing, first, second, third, (before, after), aside)


def _on_both(warehouse: Path, custom: CustomBuilds, name: str) -> tuple[list, list]:
    """(the model's SQL run on DuckDB, the rows Spark wrote), each sorted."""
    model = load_model(custom.models / f"{name}.sql")
    parts = layout.data_dir(warehouse) / "models" / name / "*.parquet"
    with storage.connect(warehouse) as con:
        on_duckdb = sorted(con.execute(model.sql).fetchall())  # DuckDB ignores a spark variant: it is a comment
        on_spark = sorted(con.execute("SELECT * FROM read_parquet(?)", [str(parts)]).fetchall())
    return on_duckdb, on_spark


def test_duckdb_only_function_fails_naming_model_and_function(custom, warehouse):
    with pytest.raises(spark_engine.TranspileError) as caught:
        spark_engine.transpile_model(load_model(custom.models / "duckdb_only.sql"))
    assert caught.value.model == "duckdb_only" and caught.value.function == "regexp_full_match"
    n = len(CUSTOM_MODELS)
    assert "NO: regexp_full_match" in custom.listing and f"{n - 1} of {n} models transpile" in custom.listing

    failed, downstream = custom.result("first", "duckdb_only"), custom.result("first", "downstream")
    assert not custom.first.ok
    assert failed.status == "failed"
    assert "duckdb_only" in failed.error and "regexp_full_match" in failed.error
    assert downstream.status == "skipped" and "duckdb_only" in downstream.reason
    assert "regexp_full_match" in custom.first.format()


def test_spark_variant_in_the_same_file_is_used_and_agrees(custom, warehouse):
    assert "spark variant" in custom.listing
    assert custom.result("first", "think_flags").status == "built"
    on_duckdb, on_spark = _on_both(warehouse, custom, "think_flags")
    assert on_spark == on_duckdb and any(flag for _, flag in on_duckdb) and not all(flag for _, flag in on_duckdb)


def test_lists_keep_their_order_nulls_and_null_when_empty(custom, warehouse):
    assert custom.result("first", "lists").status == "built"
    on_duckdb, on_spark = _on_both(warehouse, custom, "lists")
    assert on_spark == on_duckdb
    assert any(None in even for _, _, even, _ in on_duckdb) and all(nothing is None for *_, nothing in on_duckdb)


def test_failing_audit_keeps_the_previous_parquet(custom):
    assert custom.result("first", "audited").status == "built"
    result = custom.result("second", "audited")
    assert result.status == "failed" and result.failures
    assert result.failures[0].audit == "accepted_range(n_blocks in [, 3])" and result.failures[0].offending > 0
    assert "offending row" in custom.second.format()
    before, after = custom.audited_parts
    assert after == before  # the old parts and manifest, untouched
    assert custom.aside_after_second == []  # nothing left aside


def test_second_build_skips_fresh_models_and_rebuilds_what_changed(custom, warehouse):
    def statuses(build: str) -> list[tuple[str, str, str]]:
        return [(r.name, r.status, r.reason) for r in getattr(custom, build).results if r.name.startswith("fresh_")]

    assert statuses("first") == [("fresh_parent", "built", "never built"), ("fresh_child", "built", "never built")]
    assert [(name, status) for name, status, _ in statuses("second")] == [
        ("fresh_parent", "fresh"), ("fresh_child", "fresh")]
    assert statuses("third") == [("fresh_parent", "fresh", ""), ("fresh_child", "built", "definition changed")]
    parts = storage.data_dir(warehouse) / "models" / "fresh_child" / "*.parquet"
    with storage.connect(warehouse) as con:
        [(tripled,)] = con.execute("SELECT sum(tripled) FROM read_parquet(?)", [str(parts)]).fetchall()
        [(blocks,)] = con.execute("SELECT sum(n_blocks) FROM traces").fetchall()
    assert tripled == 3 * blocks


def test_bare_parquet_root_reads_the_one_run_of_each_dataset(tmp_path, spark, warehouse):
    models = tmp_path / "models"
    _write_model(models, "per_dataset", "SELECT dataset, count(*) AS traces FROM traces GROUP BY dataset",
                 grain="[dataset]")
    root = layout.data_dir(warehouse)
    report = spark_engine.build(root, spark=spark, models_dir=models)  # no DuckDB file: the directory itself
    assert report.ok, report.format()
    with storage.connect(warehouse) as con:
        expected = sorted(con.execute("SELECT dataset, count(*) FROM traces GROUP BY dataset").fetchall())
        got = sorted(con.execute("SELECT * FROM read_parquet(?)", [str(root / "models/per_dataset/*.parquet")]).fetchall())
    assert got == expected == [("align", 11), ("sample", TRACES), ("tokens", TOKEN_TRACES),
                               ("unicode", len(UNICODE_ROWS))]

    [slug] = [d for d in (root / "traces").iterdir() if d.name.startswith("tokens-")]
    [run] = list(slug.iterdir())
    leftover = slug / "20000101T000000-leftover"
    shutil.copytree(run, leftover)  # what an interrupted ingest leaves until the next write
    try:
        with pytest.raises(storage.WarehouseError, match="interrupted ingest"):
            spark_engine.build(root, spark=spark, models_dir=models)
        assert spark_engine.build(warehouse, spark=spark, models_dir=models).ok  # the DuckDB file knows which
    finally:
        shutil.rmtree(leftover)


# ---------------------------------------------------------------------------
# One plan, the same statuses on both engines (warehouse/executor.py)

PARITY_MODELS = {
    "parity_parent": ("table", "SELECT trace_id, n_blocks FROM traces", ""),
    "parity_child": ("view", "SELECT trace_id, n_blocks * 2 AS doubled FROM parity_parent", ""),
    "parity_orphan_parent": ("table", "SELECT trace_id FROM traces", ""),  # never selected
    "parity_orphan_child": ("table", "SELECT trace_id FROM parity_orphan_parent", ""),
}
PARITY_FAILING = {
    "parity_bad": ("table", "SELECT trace_id, n_blocks FROM parity_parent",
                   "audits:\n  - accepted_range: {column: n_blocks, max: -1}\n"),
    "parity_after_bad": ("table", "SELECT trace_id FROM parity_bad", ""),
}


def _parity_selection(project) -> set[str]:
    return set(project.models) - {"parity_orphan_parent"}


def _plan_and_execute_on_duckdb(db: Path, project):
    """(the plan DuckDB's state gives, that plan executed on DuckDB)."""
    with snapshots.writing(db, "build (parity test)") as writer, writer.stage() as stage:
        storage.ensure_schema(stage.con, db)
        with engine.open_engine(stage.con, db, project) as duck:
            plan = planner.plan(project, duck.state, _parity_selection(project))
            return plan, execute(project, plan, duck)


def _execute_on_spark(db: Path, project, plan, spark):
    """(the steps Spark's own state gives, `plan` executed on Spark)."""
    with ExitStack() as stack:
        on_spark = spark_engine.open_engine(stack, spark_engine.layout_for(db), project, spark=spark)
        own = planner.plan(project, on_spark.state, _parity_selection(project)).steps
        return own, execute(project, plan, on_spark)


def test_one_plan_ends_in_the_same_statuses_on_duckdb_and_spark(tmp_path, spark, warehouse):
    models = tmp_path / "models"
    for batch, expected in [
        (PARITY_MODELS, {"parity_child": "built", "parity_orphan_child": "skipped", "parity_parent": "built"}),
        (PARITY_FAILING, {"parity_after_bad": "skipped", "parity_bad": "failed", "parity_child": "fresh",
                          "parity_orphan_child": "skipped", "parity_parent": "fresh"}),
    ]:
        for name, (kind, sql, audits) in batch.items():
            _write_model(models, name, sql, audits, kind=kind)
        project = load_project(models)
        plan, on_duckdb = _plan_and_execute_on_duckdb(warehouse, project)
        own, on_spark = _execute_on_spark(warehouse, project, plan, spark)
        assert [(s.model, s.action) for s in own] == [(s.model, s.action) for s in plan.steps]
        assert {r.name: r.status for r in on_duckdb} == {r.name: r.status for r in on_spark} == expected


def test_models_command_lists_spark_status(warehouse, spark_report):
    from click.testing import CliRunner

    from mementos.cli import main

    result = CliRunner().invoke(main, ["models", "--engine", "spark", "--db", str(warehouse)])
    assert result.exit_code == 0, result.output
    assert f"{len(MODELS)} of {len(MODELS)} models transpile" in result.output
    for model in MODELS:
        assert model in result.output


def test_an_incremental_model_adds_and_removes_traces_on_spark_as_on_duckdb(tmp_path, spark):
    """On a warehouse of its own: dataset a built, then b added and a re-ingested with fewer traces."""
    models = tmp_path / "models"
    _write_model(models, "per_trace", "SELECT trace_id, dataset, n_blocks FROM traces", kind="incremental",
                 grain="[trace_id]\nbatch_traces: 7")
    for name, traces, seed in [("a", 30, 21), ("b", 20, 22), ("a_fewer", 12, 23)]:
        write_sample(tmp_path / name, traces, seed=seed, progress=False)
    db, reasons = tmp_path / "inc" / "w.duckdb", []
    for source, name in [("a", "a"), ("b", "b"), ("a_fewer", "a")]:
        run_ingest(str(tmp_path / source), db, config="default", name=name, with_tokens=False, workers=0,
                   progress=False)
        report = spark_engine.build(db, spark=spark, models_dir=models)
        assert report.ok, report.format()
        reasons.append(report.results[0].reason)
    assert reasons == ["never built", "incremental: 20 new traces, 0 removed",
                       "incremental: 12 new traces, 30 removed"]
    assert engine.build(db, models_dir=models).ok
    with storage.connect(db, read_only=True) as con:
        on_duckdb = sorted(con.execute("SELECT * FROM per_trace").fetchall())
        on_spark = sorted(con.execute("SELECT * FROM read_parquet(?)", [
            str(layout.data_dir(db) / "models" / "per_trace" / "*.parquet")]).fetchall())
    assert (len(on_spark), on_spark) == (32, on_duckdb)


def test_the_full_config_chain_is_kept_up_to_date_on_spark_as_on_duckdb(spark, warehouse, spark_report):
    """Last in this file: it changes the module's warehouse. The alignment corpus went in without the full
    rows of problem 9, and both engines built every model; now their shard arrives: full_block_digests adds
    the two full rows and block_agreement recompares the two traces they link to, on both engines alike,
    and each engine's tables equal the other's."""
    _, full = alignment_corpus()
    src = warehouse.parent / "align"
    write_parquet(src / "full" / "train-late.parquet", full[-2:])
    run_ingest(str(src), warehouse, config="all", name="align", with_tokens=False, workers=0, progress=False)
    chain, increments = ["segment_digests+", "full_block_digests+"], {}
    for name, build in (("spark", lambda: spark_engine.build(warehouse, spark=spark, select=chain)),
                        ("duckdb", lambda: engine.build(warehouse, select=chain))):
        report = build()
        assert report.ok, report.format()
        increments[name] = {r.name: (r.traces_added, r.traces_removed) for r in report.results
                            if r.name in ("full_block_digests", "block_agreement")}
    assert increments["spark"] == increments["duckdb"] == {"full_block_digests": (2, 0), "block_agreement": (2, 2)}
    with storage.connect(warehouse, read_only=True) as con:
        for model in ("full_block_digests", "block_agreement", "full_alignment"):
            parts = str(layout.data_dir(warehouse) / spark_engine.MODELS_SUBDIR / model / "*.parquet")
            on_duckdb = con.execute(f"SELECT * FROM {model}").fetchall()
            on_spark = con.execute("SELECT * FROM read_parquet(?)", [parts]).fetchall()
            assert sorted(on_spark, key=repr) == sorted(on_duckdb, key=repr), model
