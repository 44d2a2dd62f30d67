"""What a second adversarial pass broke (issue 27, points 8-11), each case once: memory caps and
MEMENTOS_MEMORY_LIMIT, odd inputs and arguments, a warehouse with nothing to analyse, one huge response."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import REPO, memento, row, write_hub_dir


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def run_cli(*args, env: dict | None = None, ulimit_kib: int | None = None, timeout: float = 120):
    """`python cli.py ARGS` in a process of its own (under `ulimit -v`, when given): what a user runs.
    `env`: variables to set, or with None to unset."""
    command = [sys.executable, str(REPO / "cli.py"), *map(str, args)]
    if ulimit_kib is not None:
        command = ["bash", "-c", f'ulimit -v {ulimit_kib} && exec "$@"', "bash", *command]
    environment = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=environment)


def ingest(tmp_path: Path, rows: list[dict], name: str = "a") -> Path:
    from mementos.ingest.pipeline import run_ingest

    src = write_hub_dir(tmp_path / f"src-{name}", rows)
    db = tmp_path / "w.duckdb"
    run_ingest(str(src), db, config="default", name=name, with_tokens=False, workers=0, progress=False)
    return db


def rows_of(domains=("math", "code", "math")) -> list[dict]:
    return [row(memento([("a b c d e f g h", "a b"), ("c d e f g h i j k l", "c d e")]), domain=d,
                problem=f"What is {i} x 7?") for i, d in enumerate(domains)]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    from mementos.warehouse.engine import build

    db = ingest(tmp_path_factory.mktemp("built"), rows_of())
    assert build(db).ok
    return db


# ---------------------------------------------------------------------------
# 8. Memory


def test_export_under_ulimit_v_ends_in_one_line_naming_the_cap(built, tmp_path):
    """Under a 1.2 GB address-space cap OpenBLAS (scipy's, through datasketch) could not start its threads and
    spun in blas_thread_init forever. Now the export ends, and says the cap is what to raise. Run without
    OPENBLAS_NUM_THREADS, as a user's shell would (foundation sets it for the process)."""
    result = run_cli("export", "memento", "--db", built, "--out", tmp_path / "sets", "-q",
                     env={"OPENBLAS_NUM_THREADS": None}, ulimit_kib=1_200_000, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "(`ulimit -v` or `ulimit -d`)" in result.stderr and "raise or remove that limit" in result.stderr


@pytest.mark.parametrize("command", ["ingest", "build", "export"])
def test_a_memory_error_is_one_line(tmp_path, monkeypatch, command):
    """Python's MemoryError (an allocation Arrow, NumPy or Python itself could not make) is one line saying what
    to change, in the three commands that handle the most data."""
    def no_memory(*args, **kwargs):
        raise MemoryError()

    if command == "ingest":
        monkeypatch.setattr("mementos.ingest.worker.process", no_memory)
        src = write_hub_dir(tmp_path / "src", rows_of())
        args = ["ingest", src, "--db", tmp_path / "w.duckdb", "--workers", "0", "--no-tokens", "-q"]
    else:
        db = ingest(tmp_path, rows_of())
        if command == "build":
            monkeypatch.setattr("mementos.warehouse.engine._create", no_memory)
            args = ["build", "--db", db]
        else:
            monkeypatch.setattr("mementos.warehouse.export.near_duplicate_groups", no_memory)
            args = ["export", "memento", "--db", db, "--out", tmp_path / "sets", "-q"]
    result = invoke(*args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: out of memory; the machine has no memory to spare: free some")
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("value, why", [("abc", "is not a size DuckDB accepts (Memory must have a number (e.g. 1GB))"),
                                        ("0", "is not a size DuckDB accepts (Unknown unit for memory: ''"),
                                        ("0MB", "is too small for DuckDB to run any query")])
def test_a_bad_mementos_memory_limit_is_one_line_in_every_command(built, tmp_path, value, why):
    commands = [["sql", "SELECT 1", "--db", built], ["models", "--db", built], ["show", "a:0", "--db", built],
                ["build", "--db", built], ["report", "--db", built, "--out", tmp_path / "r.html"],
                ["export", "plain", "--db", built, "--out", tmp_path / "sets"],
                ["ingest", tmp_path / "none", "--db", tmp_path / "new.duckdb"],
                ["sample", "--out", tmp_path / "sample", "--traces", "3"]]
    for args in commands:
        result = run_cli(*args, env={"MEMENTOS_MEMORY_LIMIT": value})
        assert result.returncode == 1 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert result.stderr.startswith(f"Error: MEMENTOS_MEMORY_LIMIT={value!r} {why}"), (args, result.stderr)
    assert not (tmp_path / "new.duckdb").exists() and not (tmp_path / "sample").exists()


# ---------------------------------------------------------------------------
# 9. Inputs


def _model(directory: Path, name: str, select: str, grain: str = "trace_id") -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.sql").write_text(f"/*\nname: {name}\nversion: 1\nkind: table\ngrain: [{grain}]\n"
                                           f"description: A planted model.\n*/\n{select}\n")


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
    responses = [memento([("a b c d", "a b")]), "no markup at all"]
    pq.write_table(pa.table({"problem": pa.array(["p0", "p1"], pa.string_view()),
                             "response": pa.array(responses, pa.string_view())}), src)
    result = invoke("ingest", src, "--db", tmp_path / "w.duckdb", "--workers", "1", "--no-tokens", "-q")
    assert result.exit_code == 0, result.output
    assert _statuses(tmp_path / "w.duckdb") == [("views:0", "ok", None),
                                               ("views:1", "flagged", ["no_blocks", "no_think"])]


def test_ingest_refuses_a_db_that_is_its_own_source_before_writing(tmp_path):
    """`ingest X.parquet --db X.parquet`: DuckDB opened the Parquet file as a database and ingest failed with a
    Catalog traceback, leaving X.parquet.lock and X.parquet.data/ behind. Now one line, and nothing is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(rows_of()), src)
    before = src.read_bytes()
    result = invoke("ingest", src, "--db", src, "--no-tokens", "-q")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output == (f"Error: --db {src} is one of the files ingest reads (default config); the warehouse "
                             f"is a DuckDB file of its own: give a new name, e.g. --db {tmp_path / 'x.duckdb'}\n")
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]


def test_sql_update_extensions_is_refused_in_one_line(built):
    """UPDATE EXTENSIONS has a statement type (29) DuckDB's Python enum does not name: reading `.type` raised
    ValueError. It is refused like any statement that is not known to be read-only."""
    result = invoke("sql", "UPDATE EXTENSIONS", "--db", built)
    assert result.exit_code == 1
    assert result.output == ("Error: runs a kind of statement DuckDB's Python API cannot name (such as UPDATE "
                             "EXTENSIONS), and `sql` without --write changes nothing on disk; pass --write to run it "
                             "(it then takes the writer lock)\n")


def test_a_model_named_with_the_engine_prefix_is_refused(built, tmp_path):
    """__build_zz beside zz: the engine builds zz as __build_zz, so one would drop or replace the other."""
    mine = tmp_path / "mine"
    _model(mine, "zz", "SELECT trace_id FROM traces")
    _model(mine, "__build_zz", "SELECT trace_id FROM traces")
    before = built.read_bytes()
    result = invoke("build", "--db", built, "--models", mine)
    assert result.exit_code == 1
    assert result.output == (f"Error: {mine / '__build_zz.sql'}: model name '__build_zz' starts with __, which is "
                             f"reserved for the engine's working tables (it builds NAME as __build_NAME); rename "
                             f"the file and its name\n")
    assert built.read_bytes() == before


def test_a_user_outlier_traces_without_the_report_columns_is_named_before_the_report(tmp_path):
    """A model of yours replacing outlier_traces with only trace_id and reasons built, then the report failed with
    a Binder traceback; now one line names the file and every column the report reads that it lacks."""
    db = ingest(tmp_path, rows_of())
    mine = tmp_path / "mine"
    _model(mine, "outlier_traces", "SELECT trace_id, 'mine' AS reasons, 1 AS n_reasons, status, dataset, domain "
                                   "FROM traces WHERE status = 'flagged'")
    out = tmp_path / "r.html"
    result = invoke("report", "--db", db, "--models", mine, "--out", out, "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == (f"Error: {mine / 'outlier_traces.sql'}: the report reads the columns issue_codes, "
                             f"duplicate_of, n_blocks, ratio_chars, domain_median_ratio_chars, ratio_z, blocks_z, "
                             f"max_block_chars, max_block_z, answer_chars of outlier_traces, which this model does not "
                             f"have; add them to its SELECT (warehouse.md, \"Your own models\"), or leave the model "
                             f"out of --models\n")
    assert not out.exists()


def test_the_report_reads_no_column_beyond_report_columns(built, tmp_path):
    """REPORT_COLUMNS is complete: with every model it names cut down to exactly those columns, gather runs."""
    import shutil

    from mementos.foundation import layout, storage
    from mementos.warehouse.engine import existing_objects
    from mementos.warehouse.report import REPORT_COLUMNS, gather

    db = tmp_path / built.name  # the base views name their Parquet directory by the file's name
    shutil.copy(built, db)
    shutil.copytree(layout.data_dir(built), layout.data_dir(db))
    with storage.connect(db, read_only=False) as con:
        objects = existing_objects(con)
        for model, columns in REPORT_COLUMNS.items():
            con.execute(f"CREATE TABLE cut AS SELECT {', '.join(columns)} FROM {model}")
            con.execute(f"DROP {objects[model].upper()} {model}")
            con.execute(f"ALTER TABLE cut RENAME TO {model}")
        data = gather(con, str(db), ["a:0"])
    assert data.totals["traces"] == 3 and "a:0" in [v.trace_id for v in data.views]


# ---------------------------------------------------------------------------
# 10. Nothing to analyse


def _full_only(tmp_path: Path) -> Path:
    from conftest import full_row
    from mementos.ingest.pipeline import run_ingest

    rows = [full_row([["One step.", "Two steps."], ["Three."]], ["a", "b"], problem=f"Q{i}?") for i in range(3)]
    src = write_hub_dir(tmp_path / "src", rows, full_rows=rows)
    db = tmp_path / "w.duckdb"
    run_ingest(str(src), db, config="full", name="f", with_tokens=False, workers=0, progress=False)
    return db


# An ingest that wrote nothing left an empty warehouse once; now a failed first ingest publishes
# none (tests/test_snapshots.py: test_a_failed_first_ingest_leaves_nothing_behind), and a source
# without rows is refused, so a full-config-only warehouse is the one left to test.
@pytest.mark.parametrize("make, how", [(_full_only, "its ingest runs read the full config only")])
def test_a_warehouse_without_default_traces_builds_and_reports_nothing_to_analyse(tmp_path, make, how):
    """compression_breakdown's total row summed no trace to NULL, failing its not_null audit, so build and
    report failed. Now every model builds empty (the total row counts 0 traces) and the report says why."""
    from mementos.warehouse.engine import build
    from mementos.warehouse.query import execute

    db = make(tmp_path)
    result = build(db)
    assert result.ok and not result.by_status("failed"), result.format()
    assert execute(db, "SELECT dimension, traces, flagged_traces, blocks FROM compression_breakdown").rows == \
        [("all", 0, 0, 0)]
    out = tmp_path / "r.html"
    result = invoke("report", "--db", db, "--out", out)
    assert result.exit_code == 0, result.output
    reason = (f"This warehouse holds no traces of the default config ({how}); ingest the responses with "
              f"`mementos ingest SOURCE --config default` (or --config all).")
    assert result.output.startswith(f"report: nothing to analyse: {reason}\nwrote {out} ")
    assert (f'<p class="nothing" id="nothing-to-analyse"><strong>Nothing to analyse.</strong> {reason} The figures, '
            f'plots and tables below are empty.</p>') in out.read_text()


# ---------------------------------------------------------------------------
# 11. One 50 MB response

# VmHWM, not ru_maxrss: Linux carries the forking process's peak (pytest's, here) over into ru_maxrss
PEAK_RSS = """import re, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    kib = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
    print(f"peak rss {int(kib) * 1024}", file=sys.stderr)
"""


def run_measured(*args) -> tuple[subprocess.CompletedProcess, int]:
    """`python cli.py ARGS` with DuckDB's default pools (MEMENTOS_MEMORY_LIMIT unset), and its peak RSS in bytes."""
    env = {k: v for k, v in os.environ.items() if k != "MEMENTOS_MEMORY_LIMIT"}
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, str(REPO / "cli.py"), *map(str, args)],
                            capture_output=True, text=True, timeout=300, env=env)
    peak = int(result.stderr.rsplit("peak rss ", 1)[1])
    return result, peak


@pytest.fixture(scope="module")
def huge(tmp_path_factory) -> tuple[Path, str]:
    """A warehouse (with tokens, all models built) holding one trace with a 50 MB block, and three small ones."""
    from mementos.ingest.pipeline import run_ingest
    from mementos.warehouse.engine import build

    tmp = tmp_path_factory.mktemp("huge")
    block = "".join(f"step {i}: x = {i * 7 % 1000}, so y = {i % 97}\n" for i in range(1_700_000))[:50_000_000]
    assert len(block) == 50_000_000 and block == block.strip()  # 49,990,000 characters between head and tail
    response = memento([(block, "x and y, step by step")])
    src = write_hub_dir(tmp / "src", [row(response, problem="The long one?")] + rows_of())
    db = tmp / "w.duckdb"
    run_ingest(str(src), db, config="default", name="big", with_tokens=True, workers=0, progress=False)
    assert build(db).ok
    return db, response


def test_export_of_a_50_mb_response_fits_the_default_pool_and_1_gib(huge, tmp_path):
    """DuckDB's to_json asked for 512 MiB to encode the 50 MB row (six bytes a character, rounded up to a power of
    two), more than the 600 MB pool; such rows are now encoded by export_json, the same bytes."""
    import json

    db, response = huge
    result, peak = run_measured("export", "memento", "--db", db, "--out", tmp_path / "sets", "--split", "train=1", "-q")
    assert result.returncode == 0, result.stderr
    assert peak < 2**30, peak
    records = [json.loads(line) for line in (tmp_path / "sets" / "train.jsonl").read_text().splitlines()]
    [record] = [r for r in records if r["trace_id"] == "big:0"]
    assert record["messages"] == [{"role": "user", "content": "The long one?"},
                                  {"role": "assistant", "content": response}]


def test_summarize_export_of_a_50_mb_block_fits_1_gib(huge, tmp_path):
    """Whether a memento copies its block split the 50 MB block into 8 million words: 1.3 GB. A memento shorter
    than the block's non-whitespace characters cannot hold it, and is now told so without the split."""
    db, _ = huge
    result, peak = run_measured("export", "summarize", "--db", db, "--out", tmp_path / "sets", "--split", "train=1",
                                "-q")
    assert result.returncode == 0, result.stderr
    assert peak < 2**30, peak


def test_report_showing_a_50_mb_trace_fits_its_pool_and_1_gib(huge, tmp_path):
    """The report read the whole response into its 64 MB pool (DuckDB asked for 64 MiB at once) and would have
    written all 50 MB into the page; now the pool holds the longest shown response while it is read, and the
    block is shown as `show` shows it: head, tail, and the query that prints the rest."""
    db, _ = huge
    out = tmp_path / "r.html"
    result, peak = run_measured("report", "--db", db, "--out", out, "--trace", "big:0", "-q")
    assert result.returncode == 0, result.stderr
    assert peak < 2**30, peak
    page = out.read_text()
    assert out.stat().st_size < 2_000_000
    assert ('<span class="gap">⟦… 49,990,000 characters not shown; <code>mementos sql --format csv</code> prints '
            'them: <code>SELECT text FROM segments WHERE trace_id = &#39;big:0&#39; AND kind = &#39;block&#39; AND '
            'block_idx = 0</code> …⟧</span>') in page


def test_export_json_writes_what_duckdb_to_json_writes():
    """export_json's lines equal DuckDB's to_json over the export's schemas: every character that is escaped,
    non-ASCII text, NULLs in every position, empty lists and numbers."""
    import duckdb
    import pyarrow as pa

    from mementos.warehouse import export_json
    from mementos.warehouse.export_records import output_schema

    every = "".join(chr(c) for c in range(0x250)) + "\u2028\u2029\ufeff\U0001f600\U0010ffff \\\" \\u0041 /"
    spans = [{"kind": "block", "block_idx": 0, "start": 0, "end": 5}, {"kind": "answer", "block_idx": None,
                                                                        "start": 6, "end": 2**40}]
    con = duckdb.connect()
    for kind in ("memento", "summarize"):
        schema = output_schema(kind)
        rows = []
        for i, text in enumerate([every, "", None, "plain"]):
            record = {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": every}],
                      "trace_id": f"t:{i}", "block_idx": i if i % 2 else None, "n_tokens": None if i == 1 else 7,
                      "spans": spans if i == 0 else [] if i == 1 else None}
            rows.append({f.name: record.get(f.name, text) for f in schema})
        table = pa.Table.from_pylist(rows, schema)
        con.register("rows", table)
        fields = ", ".join(f"'{f.name}': \"{f.name}\"" for f in schema)
        expected = "".join(line + "\n" for (line,) in con.execute(f"SELECT to_json({{{fields}}}) FROM rows").fetchall())
        assert b"".join(export_json.lines(table)).decode("utf-8") == expected, kind
