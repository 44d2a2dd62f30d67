"""`sql`: read-only unless asked, formats, one-line errors; every saved query runs; CLI wiring."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
from warehouse import storage  # noqa: E402
import pytest
from click.testing import CliRunner

from cli import main
from golden_models_data import ingest_golden
from warehouse.engine import build, load_project
from warehouse.query import execute, run_sql
from warehouse.storage import WarehouseError

QUERIES = sorted((Path(__file__).resolve().parent.parent / "sql" / "queries").glob("*.sql"))


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    db = ingest_golden(tmp_path_factory.mktemp("query"), with_tokens=False)
    assert build(db).ok
    return db


def test_read_only_by_default(db):
    for statement in ("DELETE FROM model_builds", "CREATE TABLE scratch AS SELECT 1 AS x",
                      "INSERT INTO ingest_runs SELECT * FROM ingest_runs", "DROP TABLE block_pairs"):
        with pytest.raises(WarehouseError, match="opens read-only; pass --write"):
            run_sql(db, statement)
    assert run_sql(db, "SELECT count(*) AS n FROM traces", fmt="csv") == "n\n11"


def test_base_tables_cannot_be_changed_even_with_write(db):
    with pytest.raises(WarehouseError, match="base tables are views over the Parquet files"):
        run_sql(db, "DELETE FROM traces", write=True)


def test_write_when_asked(db):
    run_sql(db, "CREATE TABLE scratch AS SELECT 42 AS answer", write=True)
    assert execute(db, "SELECT answer FROM scratch").rows == [(42,)]
    run_sql(db, "DROP TABLE scratch", write=True)


def test_duckdb_errors_become_one_line(db):
    with pytest.raises(WarehouseError) as info:
        run_sql(db, "SELEC 1")
    assert str(info.value).startswith("the query failed: Parser Error") and "\n" not in str(info.value)
    with pytest.raises(WarehouseError, match=r"Table with name nonexistent does not exist") as info:
        run_sql(db, "SELECT * FROM nonexistent")
    assert "\n" not in str(info.value)
    with pytest.raises(WarehouseError, match="no warehouse at"):
        run_sql(db.parent / "missing.duckdb", "SELECT 1")
    with pytest.raises(WarehouseError, match="no query given"):
        run_sql(db, "  ")


def test_formats(db):
    query = ("SELECT domain, traces, round(median_ratio_chars, 4) AS ratio, NULL AS nothing "
             "FROM domain_compression ORDER BY domain")
    table = run_sql(db, query).splitlines()
    assert table[0].split() == ["domain", "traces", "ratio", "nothing"]
    assert table[2].split() == ["all", "10", "0.1579", "NULL"] and table[-1] == "(4 rows)"
    rows = list(csv.reader(io.StringIO(run_sql(db, query, fmt="csv"))))
    assert rows[0] == ["domain", "traces", "ratio", "nothing"] and rows[1] == ["all", "10", "0.1579", ""]
    parsed = json.loads(run_sql(db, query, fmt="json"))
    assert parsed[0] == {"domain": "all", "traces": 10, "ratio": 0.1579, "nothing": None}


def test_query_from_a_file(db, tmp_path):
    path = tmp_path / "q.sql"
    path.write_text("-- a saved query\nSELECT count(*) AS outliers FROM outlier_traces;\n")
    assert run_sql(db, file=path, fmt="csv") == "outliers\n6"
    with pytest.raises(WarehouseError, match="not both"):
        run_sql(db, "SELECT 1", file=path)


@pytest.mark.parametrize("path", QUERIES, ids=[p.stem for p in QUERIES])
def test_every_saved_query_runs(db, path):
    result = execute(db, path.read_text())
    assert result.columns and result.rows, f"{path.name} returned nothing on the golden corpus"


def test_saved_queries_exist():
    assert {p.stem for p in QUERIES} >= {"card_comparison", "flagged_by_issue", "outliers_by_reason",
                                        "inference_savings", "alignment_report", "recent_builds"}


def test_cli_wiring(db):
    runner = CliRunner()
    result = runner.invoke(main, ["build", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert f"{len(load_project().models)} fresh" in result.output  # every model, export views included
    result = runner.invoke(main, ["build", "--db", str(db), "--select", "trace_compression+", "--full-refresh"])
    assert result.exit_code == 0 and "built    trace_compression" in result.output
    result = runner.invoke(main, ["models", "--db", str(db)])
    assert result.exit_code == 0 and "inference_simulation" in result.output and "trace_id, k" in result.output
    result = runner.invoke(main, ["sql", "SELECT count(*) AS n FROM block_pairs", "--db", str(db), "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.output) == [{"n": 29}]
    result = runner.invoke(main, ["sql", "DELETE FROM model_builds", "--db", str(db)])
    assert result.exit_code == 1 and "pass --write" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["build", "--db", str(db), "--select", "nope"])
    assert result.exit_code == 1 and "no model named 'nope'" in result.output
    with storage.connect(db) as con:
        assert con.execute("SELECT count(*) FROM traces").fetchall() == [(11,)]
    for command in ("build", "models", "sql"):
        assert runner.invoke(main, [command, "--help"]).exit_code == 0
