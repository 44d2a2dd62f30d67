"""The documents cannot drift from the code (as sqlite-utils' tests/test_docs.py keeps its docs honest):

* docs/models.md and docs/cli.md are what docs/reference.py generates now (else: run `make docs`);
* every bundled model documents every output column of the built relation in its header's `columns:`,
  and nothing else, and docs/models.md has a section for each model and no other; docs/cli.md has the
  --help of every command and of no other;
* every column warehouse.md lists for a base table (the `Columns: ...` sentences and `| column |` tables
  under a `### ``name``` heading) exists with that name in the warehouse built from the golden corpus;
* warehouse.md quotes no measurement: figures live in bench/RESULTS.md;
* the README asks for the Python pyproject.toml requires and shows examples that work.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from golden_models_data import ingest_golden
from mementos.foundation import storage
from mementos.warehouse.engine import build
from mementos.warehouse.project import load_project

REPO = Path(__file__).resolve().parent.parent
DOC = (REPO / "warehouse.md").read_text(encoding="utf-8")
REFERENCES = ["docs/cli.md", "docs/models.md"]


def sections(text: str = DOC) -> list[tuple[str, str]]:
    """(heading, body) of every heading of the document, code blocks left out of both."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    parts = re.split(r"^(#{1,6} .*)$", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def _names(cell: str) -> list[str]:
    """Column names in a table cell or a backticked list: `a`, `b` / a, b / `a, b`."""
    names = [n.strip().strip("`").strip() for n in cell.replace("`", ",").split(",")]
    return [n for n in names if n and "…" not in n]


def documented_columns(text: str = DOC) -> dict[str, set[str]]:
    """base table name -> the columns warehouse.md lists for it under its own heading."""
    out: dict[str, set[str]] = {}
    for heading, body in sections(text):
        named = re.match(r"#{3,4} `(\w+)`(?![`,])", heading)
        if not named:
            continue
        columns: set[str] = set()
        in_table = False
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
            if cells and cells[0] == "column":
                in_table = True
            elif not cells:
                in_table = False
            elif in_table and not set(cells[0]) <= set("-: "):
                columns.update(_names(cells[0]))
        prose = re.sub(r"\([^()]*\)", "", " ".join(body.split()))  # parenthesised remarks are not columns
        for listed in re.findall(r"Columns: (`[^`]+`(?:\s*,?\s*(?:and\s+)?`[^`]+`)*)", prose):
            columns.update(_names(listed))
        if columns:
            out[named.group(1)] = columns
    return out


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    db = ingest_golden(tmp_path_factory.mktemp("docs"), with_tokens=False)
    assert build(db).ok
    on_request = [name for name, model in load_project().models.items() if model.on_request]
    assert build(db, select=[f"{name}+" for name in on_request]).ok
    with storage.connect(db) as con:
        yield con


def test_the_generated_references_are_up_to_date():
    checked = subprocess.run([sys.executable, "-m", "cogapp", "--check", "-I", "docs", *REFERENCES],
                             cwd=REPO, capture_output=True, text=True)
    assert checked.returncode == 0, f"{checked.stdout}{checked.stderr}\nthe references are stale: run `make docs`"


def test_a_changed_help_text_makes_the_check_fail(tmp_path):
    stale = tmp_path / "cli.md"
    stale.write_text((REPO / "docs/cli.md").read_text().replace("Usage: mementos build", "Usage: mementos bild"))
    checked = subprocess.run([sys.executable, "-m", "cogapp", "--check", "-I", str(REPO / "docs"), str(stale)],
                             cwd=REPO, capture_output=True, text=True)
    assert checked.returncode != 0 and "changed" in checked.stdout + checked.stderr


def headings(path: str, level: str = "##") -> list[str]:
    return re.findall(rf"^{level} `?([\w ]+?)`?$", (REPO / path).read_text(encoding="utf-8"), flags=re.M)


def test_every_model_has_a_section_in_the_model_reference_and_every_section_is_a_model():
    project = load_project()
    assert headings("docs/models.md") == project.order
    assert len(project.order) == 32


def test_every_command_is_in_the_cli_reference_and_every_entry_is_a_command():
    from mementos.cli import main

    assert headings("docs/cli.md") == ["mementos"] + [f"mementos {c}" for c in main.list_commands(None)]
    assert "mementos build" in headings("docs/cli.md")


def test_every_output_column_of_every_model_is_documented_and_every_documented_column_exists(warehouse):
    undocumented, not_columns = {}, {}
    for name, model in sorted(load_project().models.items()):
        actual = [row[0] for row in warehouse.execute(f"DESCRIBE {name}").fetchall()]
        if set(actual) - set(model.columns):
            undocumented[name] = sorted(set(actual) - set(model.columns))
        if set(model.columns) - set(actual):
            not_columns[name] = sorted(set(model.columns) - set(actual))
    assert (undocumented, not_columns) == ({}, {})


def test_the_parser_finds_the_documented_base_tables():
    documented = documented_columns()
    assert set(documented) == {"traces", "segments", "parse_issues", "full_traces", "sentences", "full_blocks",
                               "ingest_runs", "ingest_shards", "rejected_rows", "snapshot_info", "model_builds"}
    assert {"sentence_idx", "text"} <= documented["sentences"]  # a Columns: sentence
    assert "cl100k_base" not in documented["ingest_runs"]  # ... without its parenthesised remarks


def test_every_documented_base_table_column_exists(warehouse):
    missing = {}
    for table, columns in sorted(documented_columns().items()):
        actual = {row[0] for row in warehouse.execute(f"DESCRIBE {table}").fetchall()}
        if columns - actual:
            missing[table] = sorted(columns - actual)
    assert missing == {}


FIGURE = re.compile(r"~?\d[\d,]*(?:\.\d+)?(?:-\d[\d,]*(?:\.\d+)?)?\s?(?:µs|ms|MB/s|GB|MB|MiB|GiB|s|×|%)(?![\w/])")


def test_the_design_document_quotes_no_measurement():
    """Measurements live in bench/RESULTS.md, where the benchmark writes them; a figure copied here goes stale."""
    prose = re.sub(r"^```.*?^```", "", DOC, flags=re.M | re.S)
    assert FIGURE.findall(" ".join(prose.split())) == []
    assert FIGURE.findall("a build of 4.2 s at 20,000 traces, 1.3 GB") == ["4.2 s", "1.3 GB"]


def test_the_design_document_is_short():
    assert len(DOC.splitlines()) <= 400


# ---------------------------------------------------------------------------
# The README and the --help texts agree with the code (issue 27, item 17)

README = (REPO / "README.md").read_text(encoding="utf-8")
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def test_the_readme_asks_for_the_python_pyproject_requires():
    import tomllib

    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.11"
    assert re.findall(r"Python (3\.\d+)\+", README) == ["3.11"]


def test_every_show_example_in_the_readme_names_a_dataset_its_example_ingests():
    """`show OpenMementos:17` failed on the demo, whose dataset is `sample` (the Makefile's --name)."""
    demo = re.search(r"ingest \S+ --db \$\(DEMO_DIR\)/warehouse\.duckdb .*--name (\w+)",
                     (REPO / "Makefile").read_text()).group(1)
    ingested = {demo} | {source.rsplit("/", 1)[-1] for source in re.findall(r"mementos ingest (\S+)", README)}
    shown = re.findall(r"mementos show (\S+):\d+", README)
    assert demo == "sample" and "sample" in shown
    assert sorted(set(shown) - ingested) == []


def test_the_readme_has_an_export_example():
    assert re.findall(r"^\.venv/bin/mementos export (\w+) --out \S+", README, flags=re.M) == ["memento"]


def test_the_number_of_plots_is_said_as_there_are():
    """README, warehouse.md and `report --help` said "five plots" where the report draws six."""
    from click.testing import CliRunner

    from mementos.cli import main
    from mementos.warehouse.plots import PLOTS

    report_help = CliRunner().invoke(main, ["report", "--help"]).output
    said = [(name, word) for name, text in (("README.md", README), ("warehouse.md", DOC), ("report --help", report_help))
            for word in re.findall(rf"\b({'|'.join(NUMBERS)}) (?:plots|images)\b", " ".join(text.split()), flags=re.I)]
    assert {"README.md", "report --help"} <= {name for name, _ in said}
    assert sorted({word.lower() for _, word in said}) == [NUMBERS[len(PLOTS)]] == ["six"]
