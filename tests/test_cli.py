"""CLI wiring: every command has help and, when it reads a warehouse, --db or $MEMENTOS_DB; for ingest
and sample, options reach the library and errors are one line."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import invoke, memento, row, write_jsonl

# The commands that make something other than a warehouse (a sample corpus) take no --db.
WITHOUT_A_WAREHOUSE = {"sample"}


def every_command(group: click.Group = main, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    """Each command by its words on the command line (`("export",)`), a group's subcommands included."""
    commands = {}
    for name, command in group.commands.items():
        commands[path + (name,)] = command
        if isinstance(command, click.Group):
            commands.update(every_command(command, path + (name,)))
    return commands


COMMANDS = every_command()
LEAVES = {path: command for path, command in COMMANDS.items() if not isinstance(command, click.Group)}


def placeholders(command: click.Command) -> list[str]:
    """Values for the command's required arguments and options other than --db: enough to parse, not to run."""
    args = []
    for param in command.params:
        if not param.required or param.name == "db":
            continue
        value = param.type.choices[0] if isinstance(param.type, click.Choice) else "x"
        args += [value] if isinstance(param, click.Argument) else [param.opts[0], value]
    return args


def test_the_cli_has_the_commands_of_the_guide():
    assert {" ".join(path) for path in LEAVES} >= {"ingest", "sample", "build", "models", "sql", "report", "show",
                                                    "export"}


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main {' '.join(path)} ")
    summary = COMMANDS[path].get_short_help_str(limit=200)
    assert summary and summary in " ".join(result.output.split())


@pytest.mark.parametrize("path", [p for p in LEAVES if p[-1] not in WITHOUT_A_WAREHOUSE], ids=" ".join)
def test_every_command_on_a_warehouse_takes_db_or_mementos_db(path, monkeypatch):
    command = LEAVES[path]
    [db] = [param for param in command.params if param.name == "db"]
    assert db.opts == ["--db"] and db.envvar == "MEMENTOS_DB" and db.show_envvar
    assert "env var: MEMENTOS_DB" in " ".join(CliRunner().invoke(main, [*path, "--help"]).output.split())
    monkeypatch.setenv("MEMENTOS_DB", "from-the-environment.duckdb")
    with command.make_context(" ".join(path), placeholders(command)) as ctx:
        assert ctx.params["db"] == "from-the-environment.duckdb"
    with command.make_context(" ".join(path), [*placeholders(command), "--db", "given.duckdb"]) as ctx:
        assert ctx.params["db"] == "given.duckdb"


@pytest.mark.parametrize("path", [p for p in LEAVES if p[-1] in WITHOUT_A_WAREHOUSE], ids=" ".join)
def test_a_command_that_reads_no_warehouse_has_no_db(path):
    assert "db" not in {param.name for param in LEAVES[path].params}


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


# ---------------------------------------------------------------------------
# Conventions (issue 17): --version, MEMENTOS_DB, progress only on a terminal, --quiet, --json, colour


def test_version():
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output == f"mementos {version('mementos-warehouse')} (duckdb {version('duckdb')})\n"


def test_every_command_with_a_warehouse_reads_mementos_db():
    for command in ("ingest", "build", "models", "sql", "report", "show", "export"):
        result = invoke(command, "--help")
        assert "[env var: MEMENTOS_DB; required]" in " ".join(result.output.split()), command


def _ingested(tmp_path, *extra):
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([("b", "s")])), row(None)])
    return CliRunner().invoke(main, ["ingest", str(src), "--name", "t", "--workers", "0", *extra],
                              env={"MEMENTOS_DB": str(tmp_path / "w.duckdb")})


def test_ingest_off_a_terminal_shows_no_progress_bar(tmp_path):
    result = _ingested(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.startswith("ingested 't' into")


def test_ingest_json_is_one_object(tmp_path):
    result = _ingested(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["dataset"], summary["rows_read"], summary["rows_flagged"]) == ("t", 2, 1)
    assert summary["issue_counts"] == {"empty_response": 1}


def test_build_and_models_json_and_colour(tmp_path):
    assert _ingested(tmp_path).exit_code == 0
    env = {"MEMENTOS_DB": str(tmp_path / "w.duckdb")}
    runner = CliRunner()
    built = runner.invoke(main, ["build", "--select", "all_traces", "--json"], env=env)
    assert built.exit_code == 0, built.output
    assert [(r["model"], r["status"]) for r in json.loads(built.stdout)["results"]] == [("all_traces", "built")]
    listed = runner.invoke(main, ["models", "--json"], env=env)
    states = {m["model"]: m["state"] for m in json.loads(listed.stdout)["models"]}
    assert states["all_traces"] == "fresh" and states["block_pairs"] == "never built"
    plain = runner.invoke(main, ["models"], env=env)
    assert "\x1b[" not in plain.stdout  # not a terminal: no escape codes
    coloured = runner.invoke(main, ["build", "--select", "all_traces"], env={**env, "FORCE_COLOR": "1"})
    assert "\x1b[32mfresh\x1b[0m" in coloured.stdout
    listed = runner.invoke(main, ["models"], env={**env, "FORCE_COLOR": "1"}).stdout.splitlines()
    assert "  \x1b[32mfresh\x1b[0m  " in next(line for line in listed if line.startswith("all_traces "))
    assert "  \x1b[2mnever built\x1b[0m  " in next(line for line in listed if line.startswith("block_pairs "))


@pytest.mark.parametrize("command", [
    ["ingest", "{src}", "--name", "t", "--workers", "0"],
    ["sample", "--traces", "3", "--out", "{tmp}/sample"],
    ["build", "--select", "all_traces+"],
    ["report", "--out", "{tmp}/r.html"],
    ["export", "plain", "--out", "{tmp}/export", "--include-flagged"],
], ids=lambda c: c[0])
def test_quiet_prints_nothing_but_errors(tmp_path, command):
    """-q printed build's model list (25 lines), and the summary of every command."""
    assert _ingested(tmp_path).exit_code == 0
    src = tmp_path / "in.jsonl"
    args = [a.format(src=src, tmp=tmp_path) for a in command] + ["-q"]
    result = CliRunner().invoke(main, args, env={"MEMENTOS_DB": str(tmp_path / "w.duckdb")})
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_quiet_build_that_fails_prints_the_failure_on_stderr(tmp_path):
    assert _ingested(tmp_path).exit_code == 0
    models = tmp_path / "my_models"
    models.mkdir()
    (models / "twice.sql").write_text("/*\nname: twice\nversion: 1\nkind: table\ngrain: [trace_id]\n"
                                      "description: every trace twice, so its grain is not unique\n*/\n"
                                      "SELECT trace_id FROM traces UNION ALL SELECT trace_id FROM traces\n")
    result = CliRunner().invoke(main, ["build", "--models", str(models), "--no-bundled-models", "-q"],
                                env={"MEMENTOS_DB": str(tmp_path / "w.duckdb")})
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[0] == "  FAILED   twice  the previous table is kept"


def test_ingest_summary_says_flagged_per_config(tmp_path):
    from conftest import full_row, write_hub_dir

    src = write_hub_dir(tmp_path / "hub", [row(memento([("b", "s")])), row(None)],
                        full_rows=[full_row([["b."]], ["s"]), full_row([["b."]], [])])
    result = invoke("ingest", src, "--db", tmp_path / "w.duckdb", "--config", "all", "--workers", "0")
    assert result.exit_code == 0, result.output
    flagged = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("flagged"))
    assert flagged.split() == ["flagged", "2", "(1", "default", "traces,", "1", "full", "rows)"]


def test_build_and_models_output_escapes_control_characters():
    """An audit failure prints the offending rows: data, which must not drive the terminal."""
    import io

    from mementos.warehouse.console import print_styled
    from mementos.warehouse.executor import BuildReport, ModelResult, Status

    out = io.StringIO()
    report = BuildReport("w.duckdb", [ModelResult("m", Status.FAILED, error="audit: 'x\x1b]52;c;cHduZWQ=\x07'")])
    print_styled(report.pieces(), file=out)
    assert out.getvalue().splitlines()[:2] == ["  FAILED   m  the previous table is kept",
                                               "      audit: 'x\\x1b]52;c;cHduZWQ=\\x07'"]


def test_a_summary_that_names_the_warehouse_escapes_control_characters(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([("b", "s")]))])
    db = tmp_path / "w\x1b]0;pwned\x07.duckdb"  # a file name may hold any character but / and NUL
    result = invoke("ingest", src, "--db", db, "--name", "t", "--workers", "0", "--no-tokens")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"ingested 't' into {tmp_path}/w\\x1b]0;pwned\\x07.duckdb (run ")
