"""Corrupt and wrong input: one clear error naming the file (and line or row) and what to do.

Each case runs `mementos ingest` through click's CliRunner against a warehouse
that already holds the dataset, and checks that the command fails with one
`Error:` line, no traceback, and leaves the warehouse and its Parquet tree as
they were. (Missing `response` and a mistyped `response` are in test_ingest.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import CARD, REPO, memento, row, write_hub_dir, write_jsonl, write_parquet
from mementos.ingest.pipeline import run_ingest
from warehouse_state import committed_dirs, run_dirs, snapshot

GOOD = [row(memento([(f"block {i}", f"memo {i}")]), problem=f"p{i}") for i in range(40)]


def truncated_parquet(d: Path) -> Path:
    p = write_parquet(d / "trunc.parquet", GOOD)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def random_bytes_parquet(d: Path) -> Path:
    p = d / "random.parquet"
    p.write_bytes(bytes(range(256)) * 20)
    return p


def corrupt_pages_parquet(d: Path) -> Path:
    """Footer intact, the `response` chunk of the third row group overwritten: fails mid-file."""
    p = d / "pages.parquet"
    pq.write_table(pa.Table.from_pylist([row(memento([(f"block {i} " * 40, "s")])) for i in range(3000)]), p,
                   compression="zstd", row_group_size=1000)
    chunk = pq.ParquetFile(p).metadata.row_group(2).column(1)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(p.read_bytes())
    data[start + 40:start + chunk.total_compressed_size - 40] = b"\x5a" * (chunk.total_compressed_size - 80)
    p.write_bytes(bytes(data))
    return p


def invalid_utf8_parquet(d: Path) -> Path:
    values = [memento([("b", "s")]).encode(), b"<think>\xff\xfe</think>", b"fine"]
    raw = pa.array(values, pa.binary())
    response = pa.Array.from_buffers(pa.string(), len(values), raw.buffers())  # skips Arrow's UTF-8 check
    p = d / "latin1.parquet"
    pq.write_table(pa.table({"problem": ["a", "b", "c"], "response": response}), p)
    return p


def zero_row_parquet(d: Path) -> Path:
    p = d / "zero.parquet"
    pq.write_table(pa.Table.from_pylist(GOOD).slice(0, 0), p)
    return p


def _jsonl_lines(d: Path, name: str, bad_line: int, bad: bytes) -> Path:
    lines = [json.dumps(r).encode() for r in GOOD]
    lines[bad_line - 1] = bad
    p = d / name
    p.write_bytes(b"\n".join(lines) + b"\n")
    return p


def jsonl_invalid_line(d: Path) -> Path:
    return _jsonl_lines(d, "badline.jsonl", 3, b'{"problem": "x", "response": ')


def jsonl_invalid_utf8(d: Path) -> Path:
    return _jsonl_lines(d, "badutf8.jsonl", 5, b'{"problem": "x", "response": "caf\xe9"}')


def jsonl_not_an_object(d: Path) -> Path:
    return _jsonl_lines(d, "array.jsonl", 7, b"[1, 2, 3]")


def jsonl_lone_surrogate(d: Path) -> Path:
    return _jsonl_lines(d, "surrogate.jsonl", 2, b'{"problem": "x", "response": "a \\ud800 b"}')


def empty_jsonl(d: Path) -> Path:
    p = d / "empty.jsonl"
    p.write_bytes(b"")
    return p


def empty_parquet(d: Path) -> Path:
    p = d / "empty.parquet"
    p.write_bytes(b"")
    return p


def blank_jsonl(d: Path) -> Path:
    p = d / "blank.jsonl"
    p.write_text("\n \n\n")
    return p


def directory_without_data(d: Path) -> Path:
    (d / "nothing").mkdir()
    return d / "nothing"


def card_without_data(d: Path) -> Path:
    (d / "cardonly").mkdir()
    (d / "cardonly" / "README.md").write_text(CARD)
    return d / "cardonly"


def card_pointing_nowhere(d: Path) -> Path:
    hub = write_hub_dir(d / "nowhere", GOOD)
    (hub / "README.md").write_text(CARD.replace("data/train-*", "parquet/train-*"))
    return hub


def card_with_broken_yaml(d: Path) -> Path:
    hub = write_hub_dir(d / "brokenyaml", GOOD)
    (hub / "README.md").write_text("---\nconfigs: [\n  - config_name: default\n---\n")
    return hub


def glob_matching_nothing(d: Path) -> str:
    return str(d / "missing-*.parquet")


def csv_file(d: Path) -> Path:
    p = d / "data.csv"
    p.write_text("problem,response\na,b\n")
    return p


CASES = {
    # id: (make source, config, substrings the message must contain besides the path)
    "truncated-parquet": (truncated_parquet, "default", ["cannot be read as Parquet", "check that the file is complete"]),
    "not-parquet": (random_bytes_parquet, "default", ["cannot be read as Parquet", "really Parquet"]),
    "corrupt-pages": (corrupt_pages_parquet, "default", ["cannot be read as Parquet after", "rows"]),
    "invalid-utf8-parquet": (invalid_utf8_parquet, "default", ["row 1 ", "'response'", "not valid UTF-8", "re-encode"]),
    "zero-row-parquet": (zero_row_parquet, "default", ["has no rows", "remove it"]),
    "jsonl-invalid-line": (jsonl_invalid_line, "default", ["line 3:", "invalid JSON", "fix or remove that line"]),
    "jsonl-invalid-utf8": (jsonl_invalid_utf8, "default", ["line 5:", "invalid UTF-8", "fix or remove that line"]),
    "jsonl-not-an-object": (jsonl_not_an_object, "default", ["line 7:", "JSON object per line"]),
    "jsonl-lone-surrogate": (jsonl_lone_surrogate, "default", ["line 2:", "surrogate"]),
    "empty-jsonl": (empty_jsonl, "default", ["empty (0 bytes)", "remove it"]),
    "empty-parquet": (empty_parquet, "default", ["empty (0 bytes)", "remove it"]),
    "blank-jsonl": (blank_jsonl, "default", ["has no rows"]),
    "dir-without-data": (directory_without_data, "default", ["data files", "README.md card"]),
    "card-without-data": (card_without_data, "default", ["data/train-*", "'default'", "fix the paths"]),
    "card-pointing-nowhere": (card_pointing_nowhere, "default", ["parquet/train-*", "'default'", "fix the paths"]),
    "card-pointing-nowhere-full": (lambda d: write_hub_dir(d / "nofull", GOOD), "all",
                                   ["full/train-*", "'full'", "fix the paths"]),
    "card-broken-yaml": (card_with_broken_yaml, "default", ["README.md", "check the YAML"]),
    "glob-matching-nothing": (glob_matching_nothing, "default", ["matches no files"]),
    "csv-file": (csv_file, "default", ["unsupported file type .csv", ".parquet, .jsonl"]),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("base")
    run_ingest(str(write_jsonl(d / "good.jsonl", GOOD)), d / "wh" / "w.duckdb", name="t", workers=0,
               progress=False, with_tokens=False)
    return d


@pytest.fixture
def db(base, tmp_path) -> Path:
    shutil.copytree(base / "wh", tmp_path / "wh")
    return tmp_path / "wh" / "w.duckdb"


def cli(*args) -> "click.testing.Result":
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=True)


@pytest.mark.parametrize("case", list(CASES))
def test_corrupt_input_gets_one_clear_error_and_changes_nothing(case, db, tmp_path):
    make, config, wanted = CASES[case]
    (tmp_path / "src").mkdir()
    source = make(tmp_path / "src")
    before, dirs = snapshot(db), run_dirs(db)
    result = cli("ingest", source, "--db", db, "--name", "t", "--config", config, "--workers", 0, "--no-progress")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a ClickException, not a crash
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    message = lines[0]
    named = str(source) if case != "card-pointing-nowhere-full" else str(tmp_path / "src" / "nofull")
    assert named in message or str(Path(str(source)).parent) in message, message
    for piece in wanted:
        assert piece in message, (piece, message)
    assert snapshot(db) == before
    assert run_dirs(db) == dirs


def test_terminal_sees_one_line_without_datasets_log_noise(db, tmp_path):
    bad = truncated_parquet(tmp_path)
    proc = subprocess.run([sys.executable, str(REPO / "cli.py"), "ingest", str(bad), "--db", str(db), "--name", "t",
                           "--workers", "0", "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if line.strip() and "Warning" not in line
            and "warnings.warn" not in line] == [proc.stderr.strip().splitlines()[-1]]
    assert proc.stderr.strip().splitlines()[-1].startswith(f"Error: {bad}: cannot be read as Parquet")


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_failure_in_the_last_file_leaves_nothing_behind(db, tmp_path, workers):
    """Files 1 and 2 are read and written to Parquet before file 3 fails: all of it goes."""
    src = tmp_path / "three"
    many = [row(memento([(f"b{i}", "s")]), problem=f"q{i}") for i in range(1500)]
    write_parquet(src / "a.parquet", many)
    write_parquet(src / "b.parquet", many)
    truncated = write_parquet(src / "c.parquet", many)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    before, dirs = snapshot(db), run_dirs(db)
    result = cli("ingest", f"{src}/*.parquet", "--db", db, "--name", "t", "--workers", workers, "--no-progress",
                 "--no-tokens")
    assert result.exit_code == 1 and f"Error: {truncated}: cannot be read as Parquet" in result.output
    assert snapshot(db) == before
    assert run_dirs(db) == dirs == committed_dirs(db)


def test_bad_line_deep_in_a_jsonl_file_names_its_line(db, tmp_path):
    """The bad line comes after two full batches have been parsed and written."""
    lines = [json.dumps(row(memento([(f"b{i}", "s")]), problem=f"q{i}")) for i in range(2600)]
    lines[2499] = '{"problem": "x", "response": "unterminated}'
    bad = tmp_path / "deep.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    before, dirs = snapshot(db), run_dirs(db)
    result = cli("ingest", bad, "--db", db, "--name", "t", "--workers", 0, "--no-progress", "--no-tokens")
    assert result.exit_code == 1
    assert f"Error: {bad}, line 2500: invalid JSON" in result.output
    assert snapshot(db) == before and run_dirs(db) == dirs
