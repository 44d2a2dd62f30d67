"""The saved queries ship with mementos and run by name: `mementos sql --query NAME` from any directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mementos.cli import main
from mementos.foundation.errors import WarehouseError
from mementos.warehouse.saved_queries import queries_listing, saved_queries, saved_query
from conftest import built_old_and_new

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built_warehouse(tmp_path_factory) -> Path:
    return built_old_and_new(tmp_path_factory.mktemp("saved")) / "wh" / "w.duckdb"


def test_every_file_of_sql_queries_is_a_saved_query_by_its_stem():
    assert list(saved_queries()) == sorted(p.stem for p in (REPO / "sql" / "queries").glob("*.sql"))


def test_a_saved_querys_description_is_the_first_sentence_of_its_leading_comment():
    assert saved_query("card_comparison").description == (
        "The warehouse's compression figures beside the OpenMementos card's.")


def test_every_saved_query_says_what_it_shows_in_one_sentence():
    assert all(q.description.endswith((".", "?")) and len(q.description) < 160 for q in saved_queries().values())


def test_an_unknown_name_names_the_saved_queries():
    with pytest.raises(WarehouseError, match=r"no saved query is called 'card': the saved queries are "
                                             r"alignment_report, card_comparison, .*--list-queries"):
        saved_query("card")


def test_list_queries_needs_no_warehouse():
    result = CliRunner().invoke(main, ["sql", "--list-queries"], env={"MEMENTOS_DB": None})
    assert result.exit_code == 0 and result.output == queries_listing() + "\n"


def test_query_runs_the_saved_query_from_any_directory(built_warehouse, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sql", "--query", "recent_builds", "--db", str(built_warehouse),
                                       "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "model,version,status,rows,seconds,built_at,detail"


def test_query_with_a_query_text_too_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["sql", "SELECT 1", "--query", "recent_builds", "--db", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 2 and "give one of QUERY, --file and --query" in result.output
