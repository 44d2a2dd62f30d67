"""What every command checks before it touches anything (warehouse/guard.py), and how it writes its
output (warehouse/output.py): an output never lands on the warehouse or writes through a link or a planted
temp name, a path below a file is one line, and a file that is not a warehouse is refused and left
byte-identical."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from conftest import invoke
from mementos.foundation import layout
from warehouse_state import copy_warehouse, duckdb_file, fingerprint


# ---------------------------------------------------------------------------
# No output over the warehouse


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
    db = copy_warehouse(built, tmp_path / "work" / "om")
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
# Output paths below a file, or of the wrong kind


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
# A file that is not a warehouse


def _unrelated(path: Path) -> Path:
    return duckdb_file(path, "CREATE TABLE invoices (id INTEGER, total DECIMAL(10, 2))",
                       "INSERT INTO invoices VALUES (1, 9.99), (2, 20.00)")


NOT_WAREHOUSES = {
    "unrelated_table": (_unrelated, "a DuckDB file without the tables traces, segments, parse_issues and 4 more"),
    "empty_database": (duckdb_file, "a DuckDB file without the tables traces, segments, parse_issues and 4 more"),
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
    assert result.output == (f"Error: {db} is not a mementos warehouse (a DuckDB file without the tables traces, "
                             f"segments, parse_issues and 4 more); run `mementos ingest` first\n")
    assert fingerprint(db) == before  # no table created, no WAL, no lock file beside it
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "sets").exists()


@pytest.mark.parametrize("kind", [k for k in NOT_WAREHOUSES if k != "unrelated_table"])
def test_report_refuses_other_files_that_are_not_warehouses(tmp_path, kind):
    make, why = NOT_WAREHOUSES[kind]
    db = make(tmp_path / "x.duckdb")
    before = fingerprint(db)
    result = invoke("report", "--db", db, "--out", tmp_path / "r.html")
    assert result.output == f"Error: {db} is not a mementos warehouse ({why}); run `mementos ingest` first\n"
    assert fingerprint(db) == before


def test_the_check_passes_a_warehouse_and_changes_nothing(built):
    from mementos.warehouse.guard import require_warehouse

    before = fingerprint(built)
    require_warehouse(built)
    assert fingerprint(built) == before
