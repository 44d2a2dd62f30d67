"""`sql`: read-only unless asked, formats, one-line errors; every saved query runs; CLI wiring."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
from mementos.foundation import storage  # noqa: E402
import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import invoke
from golden_models_data import ingest_golden
from mementos.warehouse.engine import build
from mementos.warehouse.project import load_project
from mementos.warehouse.query import execute, run_sql
from mementos.foundation.errors import WarehouseError

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
    assert run_sql(db, file=path, fmt="csv") == "outliers\n7"
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
    # every model, export views included, but the two of the search index, built on request
    assert f"{len(load_project().models) - 2} fresh" in result.output
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


# ---------------------------------------------------------------------------
# Read-only means nothing on disk changes (issue 16, item 4)


def _disk_state(db: Path) -> dict:
    """Every file of the warehouse (the DuckDB file, its data directory) and beside it: path -> (size, mtime, bytes)."""
    files = [p for p in db.parent.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes()[:4096]) for p in files}


@pytest.mark.parametrize("statement", [
    "COPY traces TO '{data}/traces/evil.parquet'",
    "COPY (SELECT 1 AS x) TO '{db}'",
    "EXPORT DATABASE '{data}/exported'",
    "ATTACH '{db}' AS again (READ_WRITE)",
    "EXPLAIN ANALYZE COPY traces TO '{data}/x.csv'",
    "/* first */ SELECT 1; COPY traces TO '{data}/x.csv'",
    "PREPARE p AS COPY traces TO '{data}/x.csv'",
    "INSTALL httpfs",
], ids=["copy-over-own-parquet", "copy-over-the-db", "export-database", "attach-read-write",
        "explain-analyze-copy", "copy-as-second-statement", "prepare-copy", "install"])
def test_read_only_refuses_statements_that_write_files(db, statement):
    from mementos.foundation.layout import data_dir

    before = _disk_state(db)
    query = statement.format(data=data_dir(db), db=db)
    with pytest.raises(WarehouseError, match=r"`sql` without --write changes nothing on disk; pass --write"):
        run_sql(db, query)
    assert _disk_state(db) == before


def test_read_only_connection_is_locked(db, tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    with pytest.raises(WarehouseError, match="the configuration has been locked"):
        run_sql(db, "SET enable_external_access = true")
    with pytest.raises(WarehouseError, match="reads only the warehouse's own files; pass --write"):
        run_sql(db, f"SELECT * FROM read_csv('{outside}')")
    assert run_sql(db, f"SELECT * FROM read_csv('{outside}')", fmt="csv", write=True) == "a\n1"


def test_write_may_copy(db, tmp_path):
    out = tmp_path / "traces.csv"
    run_sql(db, f"COPY (SELECT trace_id FROM traces ORDER BY trace_id LIMIT 2) TO '{out}'", write=True)
    assert out.read_text().splitlines()[0] == "trace_id"


# ---------------------------------------------------------------------------
# Like the DuckDB CLI (issue 17)


def test_table_shows_the_first_40_rows_and_counts_the_rest(db):
    lines = run_sql(db, "SELECT range AS i FROM range(100) ORDER BY i").splitlines()
    assert lines[2:4] == [" 0", " 1"] and lines[41] == "39"
    assert lines[-1] == "(100 rows, first 40 shown; --max-rows N shows more, --max-rows 0 all)"


def test_max_rows(db):
    five = run_sql(db, "SELECT range AS i FROM range(100) ORDER BY i", max_rows=5).splitlines()
    assert len(five) == 2 + 5 + 1 and five[-1].startswith("(100 rows, first 5 shown")
    everything = run_sql(db, "SELECT range AS i FROM range(100) ORDER BY i", max_rows=0).splitlines()
    assert len(everything) == 2 + 100 + 1 and everything[-1] == "(100 rows)"
    assert run_sql(db, "SELECT range AS i FROM range(100)", fmt="csv", max_rows=3) == "i\n0\n1\n2"


def test_csv_and_json_write_every_row_by_default(db):
    n = 3 * 2048 + 5  # several fetch batches
    assert len(run_sql(db, f"SELECT range AS i FROM range({n})", fmt="csv").splitlines()) == n + 1
    assert len(json.loads(run_sql(db, f"SELECT range AS i FROM range({n})", fmt="json"))) == n


def test_several_statements_each_print_their_result(db):
    out = run_sql(db, "SELECT 1 AS one; SET VARIABLE x = 2; SELECT getvariable('x') AS two")
    assert out == "one\n---\n  1\n(1 row)\n\ntwo\n---\n  2\n(1 row)"


def test_several_results_in_csv_are_refused(db):
    with pytest.raises(WarehouseError, match=r"--format csv writes one result, and statements 1, 2 of this query"):
        run_sql(db, "SELECT 1 AS one; SELECT 2 AS two", fmt="csv")


def test_numbers_print_as_duckdb_prints_them(db):
    query = ("SELECT 438.00000000000006::DOUBLE AS d, 0.1::FLOAT AS f, 1.50::DECIMAL(4, 2) AS dec, "
             "true AS b, [0.5, 2]::DOUBLE[] AS l")
    assert run_sql(db, query).splitlines()[2].split("  ") == ["438.00000000000006", "0.1", "1.50", "true",
                                                               "[0.5, 2.0]"]
    assert run_sql(db, query, fmt="csv").splitlines()[1] == '438.00000000000006,0.1,1.50,true,"[0.5, 2.0]"'


def test_a_model_not_built_yet_names_mementos_build(tmp_path):
    unbuilt = ingest_golden(tmp_path, with_tokens=False)
    with pytest.raises(WarehouseError) as info:
        run_sql(unbuilt, "SELECT * FROM domain_compression")
    assert str(info.value) == (f"the model domain_compression is not built in this warehouse yet: run "
                               f"`mementos build --db {unbuilt}` (or `mementos build --db {unbuilt} --select "
                               f"domain_compression`), then query it")


def test_cli_reads_the_warehouse_from_mementos_db(db):
    result = CliRunner().invoke(main, ["sql", "SELECT count(*) AS n FROM traces", "--format", "csv"],
                                env={"MEMENTOS_DB": str(db)})
    assert result.exit_code == 0, result.output
    assert result.output == "n\n11\n"


def test_cli_max_rows(db):
    result = CliRunner().invoke(main, ["sql", "SELECT range AS i FROM range(10)", "--db", str(db), "--max-rows", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "(10 rows, first 2 shown; --max-rows N shows more, --max-rows 0 all)"


# ---------------------------------------------------------------------------
# Terminal escapes in the data (issue 27, item 12): shown in the table format, kept in csv/json to a pipe

# A value that would write "pwned" to the reader's clipboard (OSC 52), a column name that would set the
# window title (OSC 0), and a C1 CSI (U+009B) that would clear the screen; the tab stays data.
PLANTED = "SELECT 'copy\x1b]52;c;cHduZWQ=\x07me' AS \"title\x1b]0;pwned\x07\", 'a\tb\x9b2J' AS t"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_table_format_shows_terminal_escapes_instead_of_sending_them(db):
    assert run_sql(db, PLANTED) == ("title\\x1b]0;pwned\\x07         t\n"
                                    "----------------------------  ----------\n"
                                    "copy\\x1b]52;c;cHduZWQ=\\x07me  a\\tb\\x9b2J\n"
                                    "(1 row)")


def test_csv_and_json_to_a_pipe_keep_the_data_byte_for_byte(db):
    assert run_sql(db, PLANTED, fmt="csv") == "title\x1b]0;pwned\x07,t\ncopy\x1b]52;c;cHduZWQ=\x07me,a\tb\x9b2J"
    assert json.loads(run_sql(db, PLANTED, fmt="json")) == [
        {"title\x1b]0;pwned\x07": "copy\x1b]52;c;cHduZWQ=\x07me", "t": "a\tb\x9b2J"}]


@pytest.mark.parametrize("fmt, expected", [
    ("csv", "title\\x1b]0;pwned\\x07,t\ncopy\\x1b]52;c;cHduZWQ=\\x07me,a\tb\\x9b2J\n"),
    ("json", '[\n{"title\\u001b]0;pwned\\u0007": "copy\\u001b]52;c;cHduZWQ=\\u0007me", "t": "a\\tb\\u009b2J"}\n]\n'),
])
def test_csv_and_json_on_a_terminal_escape_control_characters(db, fmt, expected):
    from mementos.warehouse.query import write_sql

    out = _Terminal()
    write_sql(db, PLANTED, out, fmt=fmt)
    assert out.getvalue() == expected


def test_an_error_quoting_a_value_escapes_it(db):
    result = CliRunner().invoke(main, ["sql", "SELECT CAST('\x1b]0;pwned\x07' AS INTEGER)", "--db", str(db)])
    assert (result.exit_code, result.output) == (
        1, "Error: the query failed: Conversion Error: Could not convert string '\\x1b]0;pwned\\x07' to INT32\n")


# ---------------------------------------------------------------------------
# The query from stdin (issue 27, item 18)


@pytest.mark.parametrize("args", [[], ["--file", "-"]], ids=["piped", "file-dash"])
def test_cli_reads_the_query_from_stdin(db, args):
    result = CliRunner().invoke(main, ["sql", "--db", str(db), "--format", "csv", *args],
                                input="SELECT count(*) AS n FROM traces;\n")
    assert (result.exit_code, result.output) == (0, "n\n11\n")


def test_cli_with_nothing_on_stdin_says_how_to_give_a_query(db):
    result = CliRunner().invoke(main, ["sql", "--db", str(db)], input="")
    assert (result.exit_code, result.output) == (
        1, "Error: no query given: pass QUERY, --file q.sql, or the query on stdin (echo 'SELECT 1' | mementos sql)\n")


def test_cli_query_and_file_dash_are_not_both_given(db):
    result = CliRunner().invoke(main, ["sql", "SELECT 1", "--db", str(db), "--file", "-"], input="SELECT 2")
    assert (result.exit_code, result.output) == (1, "Error: give QUERY or --file, not both\n")


def test_sql_update_extensions_is_refused_in_one_line(db):
    """UPDATE EXTENSIONS has a statement type (29) DuckDB's Python enum does not name: reading `.type` raised
    ValueError. It is refused like any statement that is not known to be read-only."""
    result = invoke("sql", "UPDATE EXTENSIONS", "--db", db)
    assert result.exit_code == 1
    assert result.output == ("Error: runs a kind of statement DuckDB's Python API cannot name (such as UPDATE "
                             "EXTENSIONS), and `sql` without --write changes nothing on disk; pass --write to run it "
                             "(it then takes the writer lock)\n")
