"""CLI wiring for ingest and sample: options reach the library, errors are one line."""

from __future__ import annotations

from click.testing import CliRunner

from cli import main
from conftest import memento, row, write_jsonl


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_ingest_prints_the_closing_summary(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([("b", "s")])), row(None)])
    result = invoke("ingest", src, "--db", tmp_path / "w.duckdb", "--name", "t", "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "rows read            2" in result.output
    assert "empty_response                    1" in result.output


def test_limit_zero_is_refused_before_anything_is_replaced(tmp_path):
    result = invoke("ingest", tmp_path / "x.jsonl", "--db", tmp_path / "w.duckdb", "--limit", "0")
    assert result.exit_code == 2
    assert "0 is not in the range x>=1" in result.output
    assert not (tmp_path / "w.duckdb").exists()


def test_missing_source_is_one_line_without_traceback(tmp_path):
    result = invoke("ingest", tmp_path / "nope.jsonl", "--db", tmp_path / "w.duckdb")
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'nope.jsonl'}: no such file or directory\n"


def test_ingest_help_explains_sources():
    result = invoke("ingest", "--help")
    assert "hub id" in result.output and "Parquet/JSONL" in result.output
