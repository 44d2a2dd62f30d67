"""What ingest makes of odd input: `--name` that is empty or only spaces is refused (it was silently
replaced by the default, or accepted); a JSON Lines value of the wrong type is named by file, line,
column and the value's JSON type (it was `extension<arrow.json>` with no line); Parquet response columns
of Arrow type null or string_view are read; a --db that is one of the inputs is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import invoke, memento, row, small_rows


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


def error_lines(result) -> list[str]:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    return [line for line in result.output.splitlines() if line.strip()]


def jsonl(path: Path, n: int, line: int | None = None, column: str = "", value=None) -> Path:
    rows = [row(memento([(f"block {i}", f"memo {i}")]), problem=f"p{i}") for i in range(n)]
    if line is not None:
        rows[line - 1][column] = value
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", ["", "   "])
def test_a_blank_name_is_refused_with_what_a_name_may_be(tmp_path, name):
    src = jsonl(tmp_path / "good.jsonl", 3)
    db = tmp_path / "w.duckdb"
    result = cli("ingest", src, "--db", db, "--name", name, "--workers", 0, "--no-progress", "--no-tokens")
    assert error_lines(result) == [
        f"Error: --name {name!r} is not a dataset name: a name is text with at least one character that is not "
        f"a space, and no control characters such as newlines or tabs; leave out --name to use 'good' "
        f"(the last part of SOURCE)"]
    assert not db.exists()


@pytest.mark.parametrize("column,value,expected", [
    ("response", 42, "column 'response' holds an integer; expected string"),
    ("difficulty", [1, 2], "column 'difficulty' holds an array; expected integer or string"),
    ("domain", {"a": 1}, "column 'domain' holds an object; expected string"),
    ("difficulty", "hard", "column 'difficulty' holds a string where line 1 holds an integer; "
                           "use one type for the column in every line"),
])
def test_a_wrong_type_in_a_jsonl_column_names_the_line_column_and_type(tmp_path, column, value, expected):
    src = jsonl(tmp_path / "typed.jsonl", 6, line=4, column=column, value=value)
    result = cli("ingest", src, "--db", tmp_path / "w.duckdb", "--name", "t", "--workers", 0, "--no-progress",
                 "--no-tokens")
    assert error_lines(result) == [f"Error: {src}, line 4: {expected}; fix or remove that line and ingest again"]


def test_a_wrong_type_deep_in_a_large_jsonl_file_names_its_line(tmp_path):
    src = jsonl(tmp_path / "deep.jsonl", 3000, line=2800, column="response", value=7.5)
    result = cli("ingest", src, "--db", tmp_path / "w.duckdb", "--name", "t", "--workers", 0, "--no-progress",
                 "--no-tokens")
    assert error_lines(result) == [
        f"Error: {src}, line 2800: column 'response' holds a number; expected string; "
        f"fix or remove that line and ingest again"]


def _statuses(db: Path) -> list[tuple]:
    from mementos.warehouse.query import execute

    return execute(db, "SELECT t.trace_id, status, list(code ORDER BY code) FILTER (WHERE code IS NOT NULL) "
                       "FROM traces t LEFT JOIN parse_issues USING (trace_id) GROUP BY ALL ORDER BY ALL").rows


def test_an_all_null_response_column_flags_its_rows(tmp_path):
    """A file whose responses are all missing has a `response` column of Arrow type null: each row is flagged
    empty_response, as a single missing response is, and the ingest goes on."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"problem": ["p0", "p1"], "response": pa.nulls(2)}), src)
    assert pa.types.is_null(pq.read_schema(src).field("response").type)
    result = invoke("ingest", src, "--db", tmp_path / "w.duckdb", "--workers", "0", "--no-tokens", "-q")
    assert result.exit_code == 0, result.output
    assert _statuses(tmp_path / "w.duckdb") == [("nulls:0", "flagged", ["empty_response"]),
                                               ("nulls:1", "flagged", ["empty_response"])]


def test_a_string_view_response_column_is_read_as_text(tmp_path):
    """Polars and DuckDB write Arrow's string_view; pyarrow's binary_length has no kernel for it. The rows are
    parsed as if the column were plain strings: one well-formed trace (through worker processes), one flagged."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "views.parquet"
    responses = [memento([("a b c d", "a b")]), "<think></think>no reasoning"]
    pq.write_table(pa.table({"problem": pa.array(["p0", "p1"], pa.string_view()),
                             "response": pa.array(responses, pa.string_view())}), src)
    result = invoke("ingest", src, "--db", tmp_path / "w.duckdb", "--workers", "1", "--no-tokens", "-q")
    assert result.exit_code == 0, result.output
    assert _statuses(tmp_path / "w.duckdb") == [("views:0", "ok", None),
                                               ("views:1", "flagged", ["no_blocks"])]


def test_ingest_refuses_a_db_that_is_its_own_source_before_writing(tmp_path):
    """`ingest X.parquet --db X.parquet`: DuckDB opened the Parquet file as a database and ingest failed with a
    Catalog traceback, leaving X.parquet.lock and X.parquet.data/ behind. Now one line, and nothing is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(small_rows()), src)
    before = src.read_bytes()
    result = invoke("ingest", src, "--db", src, "--no-tokens", "-q")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output == (f"Error: --db {src} is one of the files ingest reads (default config); the warehouse "
                             f"is a DuckDB file of its own: give a new name, e.g. --db {tmp_path / 'x.duckdb'}\n")
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]
