"""warehouse.md cannot drift from the code (as sqlite-utils' tests/test_docs.py keeps its docs honest):

* every column it lists for a table or model (the `| column | ... |` tables and the `Columns: ...`
  sentences under a `### \\`name\\`` or `#### \\`name\\`` heading) exists with that name in the
  warehouse built from the golden corpus, and every model in "The models at a glance" exists;
* every benchmark figure it quotes (in the Performance section, and in any paragraph that points
  at bench/RESULTS.md) is written in bench/RESULTS.md exactly so: figures are quoted from the
  benchmark's output and notes, never copied by hand and left behind when a run changes them;
* the OpenMementos card's figures it quotes are those of models/card_figures.sql.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from golden_models_data import ingest_golden
from mementos.foundation import storage
from mementos.warehouse import card
from mementos.warehouse.engine import build
from mementos.warehouse.project import load_project

REPO = Path(__file__).resolve().parent.parent
DOC = (REPO / "warehouse.md").read_text(encoding="utf-8")
RESULTS = (REPO / "bench" / "RESULTS.md").read_text(encoding="utf-8")


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
    """table or model name -> the columns warehouse.md lists for it under its own heading."""
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


def glance_models(text: str = DOC) -> list[str]:
    [body] = [b for h, b in sections(text) if h == "### The models at a glance"]
    return re.findall(r"^\| `(\w+)` \| (?:table|view) \|", body, flags=re.M)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    db = ingest_golden(tmp_path_factory.mktemp("docs"), with_tokens=False)
    assert build(db).ok
    with storage.connect(db) as con:
        yield con


def test_the_parser_finds_the_documented_tables():
    documented = documented_columns()
    assert {"traces", "segments", "parse_issues", "full_traces", "sentences", "full_blocks", "ingest_runs",
            "model_builds", "all_traces", "analysed_traces", "block_pairs", "trace_compression", "card_figures",
            "compression_by_position"} <= set(documented)
    assert {"issue_codes", "content_hash"} <= documented["all_traces"]  # table rows with several names
    assert {"sentence_idx", "text"} <= documented["sentences"]  # a Columns: sentence
    assert "cl100k_base" not in documented["ingest_runs"]  # ... without its parenthesised remarks


def test_every_documented_column_exists(warehouse):
    missing = {}
    for table, columns in sorted(documented_columns().items()):
        actual = {row[0] for row in warehouse.execute(f"DESCRIBE {table}").fetchall()}
        if columns - actual:
            missing[table] = sorted(columns - actual)
    assert missing == {}


def test_every_model_at_a_glance_exists():
    models = glance_models()
    assert len(models) >= 15 and sorted(set(models) - set(load_project().models)) == []


def test_every_bundled_model_is_documented():
    assert sorted(m for m in load_project().models if f"`{m}`" not in DOC) == []


FIGURE = re.compile(r"~?\d[\d,]*(?:\.\d+)?(?:-\d[\d,]*(?:\.\d+)?)?\s?(?:µs|ms|MB/s|GB|MB|s|×|%)(?![\w/])")


def benchmark_passages(text: str = DOC) -> list[str]:
    """The Performance section, and every paragraph elsewhere that points at bench/RESULTS.md."""
    out = [body for heading, body in sections(text) if heading == "## Performance"]
    for heading, body in sections(text):
        if heading != "## Performance":
            out += [p for p in re.split(r"\n\s*\n", body) if "bench/RESULTS.md" in p]
    return out


def test_benchmark_figures_are_quoted_from_results():
    passages = benchmark_passages()
    assert any("Performance" not in p and "RESULTS.md" in p for p in passages)
    figures = [f for passage in passages for f in FIGURE.findall(" ".join(passage.split()))]
    assert len(figures) >= 10
    assert sorted({f for f in figures if not _in_results(f)}) == []


def _in_results(figure: str) -> bool:
    """Written so in RESULTS.md's text, or its number is a cell of one of its tables (whose headers give units)."""
    number = re.match(r"~?([\d,.-]+)", figure).group(1)
    return figure.lstrip("~") in RESULTS or re.search(rf"\| {re.escape(number)} \|", RESULTS) is not None


def test_the_cards_figures_are_those_of_card_figures():
    ratios = card.median_ratio_chars()
    quoted = re.findall(r"\b(math|code|science) (0\.\d+)", DOC)
    assert len(quoted) >= 6 and sorted({(d, v) for d, v in quoted if float(v) != ratios[d]}) == []
    overall = {f"~{card.overall(m):,.0f}" for m in (card.TOKENS_PER_BLOCK, card.TOKENS_PER_MEMENTO,
                                                     card.BLOCK_TOKENS_PER_TRACE, card.MEMENTO_TOKENS_PER_TRACE)}
    overall.add(f"~{card.overall(card.TRACE_COMPRESSION):g}×")
    card_lines = [line for line in DOC.splitlines() if "card" in line]
    quoted = [q for line in card_lines for q in re.findall(r"~\d[\d,]*×?", line)]
    assert len(quoted) >= 10 and sorted(set(quoted) - overall) == []


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
    assert {name for name, _ in said} == {"README.md", "warehouse.md", "report --help"}
    assert sorted({word.lower() for _, word in said}) == [NUMBERS[len(PLOTS)]] == ["six"]
