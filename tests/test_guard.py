"""What an adversarial pass broke (issue 16), each case once: outputs never land on the warehouse,
a file that is not a warehouse is refused and left byte-identical, bad output paths are one line,
labels that look like the total row, and a full disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import REPO, memento, row, write_hub_dir, write_jsonl
from mementos.foundation import layout, storage
from mementos.sample import write_sample
from mementos.warehouse.guard import NOT_A_WAREHOUSE


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def ingest(tmp_path: Path, rows: list[dict], with_tokens: bool = False, name: str = "h") -> Path:
    from mementos.ingest.pipeline import run_ingest

    src = write_hub_dir(tmp_path / "src", rows)
    db = tmp_path / "w.duckdb"
    run_ingest(str(src), db, config="default", name=name, with_tokens=with_tokens, workers=0, progress=False)
    return db


def rows_of(domains=("math", "code")) -> list[dict]:
    return [row(memento([("a b c d e f g h", "a b"), ("c d e f g h i j k l", "c d e")]), domain=d, difficulty=str(i))
            for i, d in enumerate(domains)]


def fingerprint(db: Path) -> dict:
    """Bytes of the DuckDB file, and which files sit beside it and in its Parquet directory."""
    beside = sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name))
    data = layout.data_dir(db)
    tree = sorted((str(p.relative_to(data)), p.stat().st_size) for p in data.rglob("*")) if data.exists() else None
    return {"sha256": hashlib.sha256(db.read_bytes()).hexdigest(), "beside": beside, "data": tree}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A small warehouse with every model built (so commands have no build to do first)."""
    from mementos.warehouse.engine import build

    db = ingest(tmp_path_factory.mktemp("built"), rows_of())
    assert build(db).ok
    return db


# ---------------------------------------------------------------------------
# 1. No output over the warehouse


@pytest.mark.parametrize("target", ["db", "wal", "lock", "data_dir_file", "tmp_dir_file"])
def test_report_out_on_a_part_of_the_warehouse_is_refused(built, target):
    out = {"db": built, "wal": Path(str(built) + ".wal"), "lock": layout.lock_path(built),
           "data_dir_file": layout.data_dir(built) / "traces" / "r.html",
           "tmp_dir_file": layout.temp_dir(built) / "r.html"}[target]
    before = fingerprint(built)
    result = invoke("report", "--db", built, "--out", out)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: --out {out} would write ") and result.output.count("\n") == 1
    assert "choose a path outside the warehouse" in result.output
    assert fingerprint(built) == before


def test_report_out_through_a_symlink_to_the_warehouse_is_refused(built, tmp_path):
    link = tmp_path / "innocent.html"
    link.symlink_to(built)
    before = fingerprint(built)
    result = invoke("report", "--db", built, "--out", link)
    assert result.exit_code == 1 and f"the warehouse's DuckDB file {built}" in result.output
    assert fingerprint(built) == before


@pytest.mark.parametrize("target", ["data_dir", "inside_data_dir", "tmp_dir"])
def test_export_out_in_the_warehouse_is_refused(built, target):
    out = {"data_dir": layout.data_dir(built), "inside_data_dir": layout.data_dir(built) / "exports",
           "tmp_dir": layout.temp_dir(built)}[target]
    before = fingerprint(built)
    result = invoke("export", "memento", "--db", built, "--out", out)
    assert result.exit_code == 1 and result.output.startswith(f"Error: --out {out} would write ")
    assert fingerprint(built) == before


@pytest.mark.parametrize("out_is", ["its_folder", "an_ancestor"])
def test_export_out_that_holds_the_warehouse_is_refused_even_with_overwrite(built, tmp_path, out_is):
    """`--out .` from the warehouse's folder, or any folder above it (`--out $HOME`), with --overwrite: the
    export would replace that folder whole. In its folder a manifest.json names the warehouse's files too."""
    (tmp_path / "work" / "om").mkdir(parents=True)
    db = _copy_warehouse(built, tmp_path / "work" / "om")
    out = {"its_folder": db.parent, "an_ancestor": tmp_path}[out_is]
    (db.parent / "manifest.json").write_text(json.dumps({"splits": {"a": {"file": db.name},
                                                                    "b": {"file": layout.data_dir(db).name}}}))
    before = fingerprint(db)
    result = invoke("export", "memento", "--db", db, "--out", out, "--overwrite")
    assert result.exit_code == 1
    assert result.output == (f"Error: --out {out} holds the warehouse's DuckDB file {db}; export into a directory "
                             f"that does not hold the warehouse (the export replaces the directory whole)\n")
    assert fingerprint(db) == before


# ---------------------------------------------------------------------------
# 7. Output paths below a file, or of the wrong kind


def test_report_out_below_a_file_is_one_line(built, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "notes.txt" / "sub" / "r.html"
    result = invoke("report", "--db", built, "--out", out)
    assert result.exit_code == 1
    assert result.output == (f"Error: --out {out}: {tmp_path / 'notes.txt'} is a file, not a directory; "
                             f"choose a path whose parents are directories\n")


def test_export_out_below_a_file_is_one_line(built, tmp_path):
    (tmp_path / "out").write_text("x")
    result = invoke("export", "memento", "--db", built, "--out", tmp_path / "out" / "sets")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: --out {tmp_path / 'out' / 'sets'}: {tmp_path / 'out'} is a file, ")


def test_report_out_to_a_named_pipe_writes_into_it(built, tmp_path):
    """A FIFO (as /dev/stdout is, piped) is written to, not replaced by a regular file."""
    fifo = tmp_path / "r.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    result = invoke("report", "--db", built, "--out", fifo)
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert got and got[0].startswith(b"<!DOCTYPE html>") and got[0].rstrip().endswith(b"</html>")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["r.fifo"]


def test_report_out_dev_null_stays_a_character_device(built):
    before = os.stat("/dev/null")
    assert stat.S_ISCHR(before.st_mode)
    result = invoke("report", "--db", built, "--out", "/dev/null")
    assert result.exit_code == 0, result.output
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_report_never_writes_through_a_planted_temp_name(built, tmp_path):
    """`r.html.tmp -> victim.txt` (the temp name the report used): the temp file has a random name and is
    created exclusively, so the victim is untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("r.html.tmp", ".r.html.tmp"):
        (tmp_path / name).symlink_to(victim)
    result = invoke("report", "--db", built, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious"
    assert (tmp_path / "r.html").read_bytes().startswith(b"<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.html.tmp", "r.html", "r.html.tmp", "victim.txt"]


def test_report_out_that_is_a_symlink_is_refused(built, tmp_path):
    """Replacing the link would leave its target stale; writing through it would write wherever it points."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "r.html").symlink_to(victim)
    result = invoke("report", "--db", built, "--out", tmp_path / "r.html")
    assert result.exit_code == 1
    assert result.output == (f"Error: --out {tmp_path / 'r.html'} is a symbolic link to {victim}; give the path "
                             f"of the file itself\n")
    assert victim.read_text() == "precious" and (tmp_path / "r.html").is_symlink()


# ---------------------------------------------------------------------------
# 6. A file that is not a warehouse


def _unrelated(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE invoices (id INTEGER, total DECIMAL(10, 2))")
    con.execute("INSERT INTO invoices VALUES (1, 9.99), (2, 20.00)")
    con.close()
    return path


def _empty_database(path: Path) -> Path:
    duckdb.connect(str(path)).close()
    return path


NOT_WAREHOUSES = {
    "unrelated_table": (_unrelated, "a DuckDB file without the tables traces, segments, parse_issues and 4 more"),
    "empty_database": (_empty_database, "a DuckDB file without the tables traces, segments, parse_issues and 4 more"),
    "empty_file": (lambda p: (p.write_bytes(b""), p)[1], "an empty file"),
    "text_file": (lambda p: (p.write_text("id,total\n1,9.99\n"), p)[1], "not a DuckDB file"),
}
COMMANDS = {
    "build": lambda db, tmp: ["build", "--db", db],
    "models": lambda db, tmp: ["models", "--db", db],
    "sql": lambda db, tmp: ["sql", "SELECT 1", "--db", db],
    "sql_write": lambda db, tmp: ["sql", "CREATE TABLE x (a INT)", "--write", "--db", db],
    "report": lambda db, tmp: ["report", "--db", db, "--out", tmp / "r.html"],
    "show": lambda db, tmp: ["show", "h:0", "--db", db],
    "export": lambda db, tmp: ["export", "memento", "--db", db, "--out", tmp / "sets"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_but_ingest_refuses_a_duckdb_file_with_an_unrelated_table(tmp_path, command):
    db = _unrelated(tmp_path / "books.duckdb")
    before = fingerprint(db)
    result = invoke(*COMMANDS[command](db, tmp_path))
    assert result.exit_code == 1
    assert result.output == (f"Error: {db}: {NOT_A_WAREHOUSE} "
                             f"(a DuckDB file without the tables traces, segments, parse_issues and 4 more)\n")
    assert fingerprint(db) == before  # no table created, no WAL, no lock file beside it
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "sets").exists()


@pytest.mark.parametrize("kind", [k for k in NOT_WAREHOUSES if k != "unrelated_table"])
def test_report_refuses_other_files_that_are_not_warehouses(tmp_path, kind):
    make, why = NOT_WAREHOUSES[kind]
    db = make(tmp_path / "x.duckdb")
    before = fingerprint(db)
    result = invoke("report", "--db", db, "--out", tmp_path / "r.html")
    assert result.output == f"Error: {db}: {NOT_A_WAREHOUSE} ({why})\n"
    assert fingerprint(db) == before


def test_the_check_passes_a_warehouse_and_changes_nothing(built):
    from mementos.warehouse.guard import require_warehouse

    before = fingerprint(built)
    require_warehouse(built)
    assert fingerprint(built) == before


# ---------------------------------------------------------------------------
# 2. Labels that read like the total row


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """A domain, a source and a difficulty literally called 'all', one literally '(unknown)', one missing."""
    from mementos.warehouse.engine import build

    pairs = [("a b c d e f g h", "a b"), ("c d e f g h i j k l", "c d e")]
    long_pairs = [(" ".join(["reasoning"] * 40), "short")]  # so the label 'all' has other figures than the total
    rows = [row(memento(long_pairs), domain="all", source="all", difficulty="all"),
            row(memento(pairs), domain="(unknown)", source="(unknown)", difficulty="(unknown)"),
            row(memento(pairs), domain=None, source=None, difficulty=None),
            row(memento(pairs), domain="math", source="unit", difficulty="3")]
    db = ingest(tmp_path_factory.mktemp("labels"), rows, with_tokens=True)
    result = build(db)
    assert result.ok, result.format()
    return db


def q(db: Path, sql: str) -> list[tuple]:
    with storage.connect(db) as con:
        return con.execute(sql).fetchall()


def test_a_label_called_all_is_a_value_and_the_total_row_is_flagged(labelled):
    assert q(labelled, "SELECT dimension, value, is_total, traces FROM compression_breakdown "
                       "WHERE value = 'all' ORDER BY ALL") == [
        ("all", "all", True, 4), ("difficulty", "all", False, 1), ("domain", "all", False, 1),
        ("source", "all", False, 1)]
    assert q(labelled, "SELECT domain, is_total, traces FROM domain_compression ORDER BY ALL") == [
        ("(unknown)", False, 2), ("all", False, 1), ("all", True, 4), ("math", False, 1)]
    assert q(labelled, "SELECT source, is_total, traces FROM compression_by_source WHERE source = 'all' "
                       "ORDER BY ALL") == [("all", False, 1), ("all", True, 4)]
    assert q(labelled, "SELECT difficulty, is_total, traces FROM compression_by_difficulty WHERE difficulty = 'all' "
                       "ORDER BY ALL") == [("all", False, 1), ("all", True, 4)]
    assert q(labelled, "SELECT domain, is_total, traces FROM inference_summary WHERE k = 1 ORDER BY ALL") == [
        ("(unknown)", False, 2), ("all", False, 1), ("all", True, 4), ("math", False, 1)]


def test_the_report_reads_the_total_row_not_the_domain_called_all(labelled, tmp_path):
    from mementos.warehouse import report

    report.write_report(labelled, tmp_path / "r.html", echo=lambda _: None)
    with storage.connect(labelled) as con:
        data = report.gather(con, str(labelled))
    [(total_median,)] = q(labelled, "SELECT median_tokens_per_block FROM domain_compression WHERE is_total")
    [(domain_median,)] = q(labelled, "SELECT median_tokens_per_block FROM domain_compression "
                                     "WHERE domain = 'all' AND NOT is_total")
    assert total_median != domain_median
    [block_length] = [c for c in data.card if c.measure == "block length (tokens)"]
    assert block_length.ours_note == f"median {total_median:,.0f}"
    [(total_peak,)] = q(labelled, "SELECT median_peak_no_eviction FROM inference_summary WHERE is_total AND k = 1")
    [(domain_peak,)] = q(labelled, "SELECT median_peak_no_eviction FROM inference_summary "
                                   "WHERE domain = 'all' AND NOT is_total AND k = 1")
    assert total_peak != domain_peak
    assert data.inference_total[1][0] == total_peak and data.inference["all"][1][0] == domain_peak


# ---------------------------------------------------------------------------
# 5. A full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MB tmpfs (root only; skipped elsewhere), and a way to fill it up to `leave` bytes."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")

    def fill(leave: int) -> None:
        with open(mnt / "filler", "ab") as f:
            f.write(b"\0" * max(0, shutil.disk_usage(mnt).free - leave))
        assert shutil.disk_usage(mnt).free <= leave

    yield mnt, fill
    subprocess.run(["umount", str(mnt)], check=True)


def _copy_warehouse(db: Path, to: Path) -> Path:
    shutil.copy2(db, to / db.name)
    shutil.copytree(layout.data_dir(db), layout.data_dir(to / db.name))  # with the writer lock in it
    return to / db.name


def test_build_on_a_full_disk_is_one_line_and_leaves_the_file_byte_identical(tmp_path, small_disk):
    from mementos.warehouse.engine import build

    mnt, fill = small_disk
    db = _copy_warehouse(ingest(tmp_path, rows_of()), mnt)  # never built: the first build
    before = fingerprint(db)
    fill(leave=8192)
    result = invoke("build", "--db", db)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    # the staged copy of the catalog does not fit (foundation/snapshots.py): nothing was published
    assert result.output.startswith(f"Error: disk full writing {db}")
    assert "; the build was rolled back, the warehouse is as it was" in result.output
    assert fingerprint(db) == before  # same bytes, no WAL beside it, no staged snapshot left
    (mnt / "filler").unlink()
    assert build(db).ok  # and the warehouse works


@pytest.mark.parametrize("workers", ["0", "2"])  # 0: Parquet written in the process; 2: batches spooled to workers
def test_ingest_on_a_full_disk_is_one_line_and_leaves_the_warehouse_as_it_was(tmp_path, small_disk, workers):
    mnt, fill = small_disk
    src = tmp_path / "src"
    write_sample(src, traces=60, seed=3)  # ~2.5 MB of responses: more than is left
    db = mnt / "w.duckdb"
    assert invoke("ingest", src, "--db", db, "--no-tokens", "-q").exit_code == 0
    before = fingerprint(db)
    fill(leave=300_000)
    result = invoke("ingest", src, "--db", db, "--no-tokens", "-q", "--workers", workers)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: disk full writing {layout.data_dir(db)}: needs more than the ")
    assert "the warehouse is unchanged (this run's files were removed); free some space" in result.output
    (mnt / "filler").unlink()
    assert fingerprint(db) == before  # no run directory, no spool directory, the same DuckDB file


def test_report_on_a_full_disk_is_one_line_and_keeps_the_old_report(built, small_disk):
    mnt, fill = small_disk
    out = mnt / "r.html"
    out.write_text("the previous report")
    before = fingerprint(built)
    fill(leave=0)
    result = invoke("report", "--db", built, "--out", out)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert re.fullmatch(rf"Error: disk full writing {re.escape(str(out))}: needs \d+ KB \(0 KB free now\); "
                        rf"{re.escape(str(out))} is unchanged; free some space and run the command again\n",
                        result.output)
    assert out.read_text() == "the previous report"
    assert sorted(p.name for p in mnt.iterdir()) == ["filler", "r.html"]  # no r.html.tmp
    assert fingerprint(built) == before


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_on_a_full_disk_is_one_line_and_replaces_nothing(built, small_disk, fmt):
    mnt, fill = small_disk
    out = mnt / "sets"
    assert invoke("export", "memento", "--db", built, "--out", out, "--format", fmt).exit_code == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    before = fingerprint(built)
    fill(leave=0)
    result = invoke("export", "memento", "--db", built, "--out", out, "--format", fmt, "--seed", "7")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: disk full writing {out}")
    assert "(0 KB free now); nothing was replaced and no temporary file is left; " in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files  # the old export, and nothing else
    assert sorted(p.name for p in mnt.iterdir()) == ["filler", "sets"]  # no stage left beside it
    assert fingerprint(built) == before


def test_out_of_memory_says_which_setting_to_raise(tmp_path, monkeypatch):
    db = ingest(tmp_path, rows_of())
    monkeypatch.setattr(storage, "MEMORY_LIMIT", "2MB")  # what MEMENTOS_MEMORY_LIMIT=2MB sets
    result = invoke("build", "--db", db)
    assert result.exit_code == 1
    [failed] = [line for line in result.output.splitlines() if "Out of Memory Error" in line]
    assert failed.endswith("; DuckDB may use 2MB here (MEMENTOS_MEMORY_LIMIT): set it higher, "
                           "e.g. MEMENTOS_MEMORY_LIMIT=2GB, and run the command again")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("room", ["none", "the_copy"])  # the staged catalog does not fit / it fits, its commit does not
def test_disk_full_at_the_ingests_commit_is_one_line_and_publishes_nothing(tmp_path, small_disk, room):
    """The ingest is held once its Parquet is written (MEMENTOS_STOP_AT), the disk filled, then resumed."""
    import os
    import signal

    mnt, fill = small_disk
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([(f"b{i}", "s")]), problem=f"p{i}") for i in range(40)])
    db = mnt / "w.duckdb"
    assert invoke("ingest", src, "--db", db, "--no-tokens", "-q", "--name", "t").exit_code == 0
    before = fingerprint(db)
    env = {**os.environ, "MEMENTOS_STOP_AT": "ingest.before_load@1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "ingest", str(src), "--db", str(db), "--name", "u",
                             "--workers", "0", "--no-progress", "--no-tokens"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    fill(leave=8192 if room == "none" else db.stat().st_size + 64 * 1024)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    (mnt / "filler").unlink()
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("Error: disk full writing ") and "the warehouse is unchanged" in err
    assert fingerprint(db) == before


def test_a_read_only_file_system_is_one_line_for_every_writer_and_readers_still_read(tmp_path, small_disk):
    mnt, _ = small_disk
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([("b", "s")]))])
    db = mnt / "w.duckdb"
    assert invoke("ingest", src, "--db", db, "--no-tokens", "-q", "--name", "t").exit_code == 0
    assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True).returncode == 0
    try:
        before = fingerprint(db)
        for args in (["ingest", src, "--db", db, "--no-tokens", "-q"], ["build", "--db", db],
                     ["sql", "CREATE TABLE x AS SELECT 1", "--db", db, "--write"],
                     ["report", "--db", db, "--out", mnt / "r.html"],
                     ["export", "memento", "--db", db, "--out", mnt / "x"],
                     ["sample", "--traces", 3, "--out", mnt / "s"]):
            result = invoke(*args)
            assert result.exit_code == 1 and result.output.count("\n") == 1, (args, result.output)
            assert result.output.startswith("Error: ") and "ead-only file system" in result.output, (args, result.output)
        result = invoke("sql", "SELECT count(*) AS n FROM traces", "--db", db, "--format", "csv")
        assert result.output.split() == ["n", "1"], result.output
        assert fingerprint(db) == before
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)


def test_sample_on_a_full_disk_is_one_line_and_leaves_nothing(small_disk):
    mnt, fill = small_disk
    fill(leave=0)
    result = invoke("sample", "--traces", 50, "--out", mnt / "s")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: disk full writing {mnt}/")
    assert f"nothing was written to {mnt / 's'}; free some space" in result.output
    assert sorted(p.name for p in mnt.iterdir()) == ["filler"]
