"""The two generated references, written by `make docs` and checked by tests/test_docs.py:

* docs/models.md from the bundled models' headers (models/*.sql) and the dependencies the engine
  finds in their SQL with sqlglot;
* docs/cli.md from each command's --help.

cog (cogapp) runs the block at the top of each file, which calls one function here and writes
its output below the block, as sqlite-utils does for its CLI reference.
"""

from __future__ import annotations

from click.testing import CliRunner

from mementos.cli import main
from mementos.warehouse.audits import unique
from mementos.warehouse.project import load_project

HELP_WIDTH = 100  # the width --help is wrapped at, so the reference does not depend on the terminal


def commands() -> list[str]:
    """Every command of `mementos`, in the order `mementos --help` lists them."""
    return main.list_commands(None)


def command_help(command: str | None = None) -> str:
    args = ([command] if command else []) + ["--help"]
    result = CliRunner().invoke(main, args, prog_name="mementos", terminal_width=HELP_WIDTH, env={"MEMENTOS_DB": None})
    assert result.exit_code == 0, result.output
    return result.output.rstrip() + "\n"


def cli_markdown() -> str:
    parts = ["## mementos\n\n```\n" + command_help() + "```\n"]
    parts += [f"## mementos {name}\n\n```\n{command_help(name)}```\n" for name in commands()]
    return "\n".join(parts)


def _code_list(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def models_markdown() -> str:
    """One section per bundled model, in build order (parents first)."""
    project = load_project()
    parts = []
    for name in project.order:
        model = project.models[name]
        batch = f" · built {model.batch_traces:,} traces at a time" if model.batch_traces else ""
        batch += " · built on request (`build --select NAME+`), then kept up to date" if model.on_request else ""
        lines = [
            f"## `{name}`",
            "",
            f"{model.kind} · version {model.version} · grain {_code_list(model.grain)}{batch}",
            "",
            model.description,
            "",
            "Reads: " + "; ".join(f"{what} {_code_list(names)}" for what, names in
                                  (("models", project.parents[name]), ("tables", project.base_refs[name])) if names) + ".",
            "",
            "Audits: " + _code_list([a.name for a in [unique(model.grain), *model.audits]]) + ".",
            "",
            "| column | meaning |",
            "|---|---|",
            *(f"| `{column}` | {meaning.replace('|', chr(92) + '|')} |" for column, meaning in model.columns.items()),
        ]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
