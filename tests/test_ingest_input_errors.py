"""#16 item 8: names and types. `--name` that is empty or only spaces is refused (it was silently
replaced by the default, or accepted), and a JSON Lines value of the wrong type is named by file, line,
column and the value's JSON type (it was `extension<arrow.json>` with no line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import memento, row


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
