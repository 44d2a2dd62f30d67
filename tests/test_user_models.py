"""`--models DIR` / $MEMENTOS_MODELS: a user's model directory on top of the bundled models (a model of
the same name replaces the bundled one) or, with --no-bundled-models, instead of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mementos.cli import main
from golden_models_data import ingest_golden
from mementos.warehouse.query import execute

BLOCKS_PER_TRACE = """/*
name: blocks_per_trace
version: 1
kind: table
grain: [trace_id]
description: Blocks of each analysed trace, from the bundled block_pairs.
*/
SELECT trace_id, count(*) AS blocks FROM block_pairs GROUP BY trace_id
"""

# replaces the bundled compression_by_source (a view that nothing else reads)
MY_COMPRESSION_BY_SOURCE = """/*
name: compression_by_source
version: 1
kind: view
grain: [source]
description: Traces per source (mine).
*/
SELECT source, count(*) AS traces FROM traces GROUP BY source
"""


def _models(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "my_models"
    directory.mkdir()
    for name, text in files.items():
        (directory / f"{name}.sql").write_text(text)
    return directory


@pytest.fixture
def db(tmp_path) -> Path:
    return ingest_golden(tmp_path, with_tokens=False)


def _invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env={"MEMENTOS_DB": None, "MEMENTOS_MODELS": None, **(env or {})})


def test_a_user_model_reading_a_bundled_model_builds_and_is_queryable(db, tmp_path):
    mine = _models(tmp_path, blocks_per_trace=BLOCKS_PER_TRACE)
    result = _invoke("build", "--db", str(db), "--models", str(mine), "--json")
    assert result.exit_code == 0, result.output
    built = [r["model"] for r in json.loads(result.output)["results"] if r["status"] == "built"]
    assert built.index("block_pairs") < built.index("blocks_per_trace")  # after the bundled model it reads
    assert execute(db, "SELECT blocks FROM blocks_per_trace WHERE trace_id = 'golden:0'").rows == [(3,)]


def test_a_user_model_replaces_the_bundled_model_of_the_same_name(db, tmp_path):
    mine = _models(tmp_path, compression_by_source=MY_COMPRESSION_BY_SOURCE)
    result = _invoke("build", "--db", str(db), "--select", "compression_by_source", env={"MEMENTOS_MODELS": str(mine)})
    assert result.exit_code == 0, result.output
    assert execute(db, "SELECT * FROM compression_by_source ORDER BY source").columns == ["source", "traces"]


def test_no_bundled_models_builds_the_user_models_alone(db, tmp_path):
    mine = _models(tmp_path, compression_by_source=MY_COMPRESSION_BY_SOURCE)
    result = _invoke("build", "--db", str(db), "--models", str(mine), "--no-bundled-models", "--json")
    assert result.exit_code == 0, result.output
    assert [r["model"] for r in json.loads(result.output)["results"]] == ["compression_by_source"]


def test_a_missing_models_directory_is_a_one_line_error(db, tmp_path):
    result = _invoke("build", "--db", str(db), "--models", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert result.output == (f"Error: {tmp_path / 'nowhere'}: no such models directory (from --models or "
                             f"MEMENTOS_MODELS); give a directory of NAME.sql model files (README.md, "
                             f"\"Your own models\")\n")


def test_no_bundled_models_without_a_directory_is_a_one_line_error(db):
    result = _invoke("models", "--db", str(db), "--no-bundled-models")
    assert result.exit_code == 1
    assert result.output == ("Error: --no-bundled-models needs a models directory of your own: pass --models DIR "
                             "or set MEMENTOS_MODELS\n")
