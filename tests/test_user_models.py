"""`--models DIR` / $MEMENTOS_MODELS: a user's model directory on top of the bundled models (a model of
the same name replaces the bundled one) or, with --no-bundled-models, instead of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import ingest_hub, invoke, small_rows
from golden_models_data import ingest_golden
from mementos.warehouse.query import execute
from warehouse_state import copy_warehouse

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


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Path:
    return ingest_golden(tmp_path_factory.mktemp("golden"), with_tokens=False)


@pytest.fixture
def db(golden, tmp_path) -> Path:
    """The golden corpus, ingested once a module, copied for each test (which builds into it)."""
    return copy_warehouse(golden, tmp_path)


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


def _model(directory: Path, name: str, select: str, grain: str = "trace_id") -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.sql").write_text(f"/*\nname: {name}\nversion: 1\nkind: table\ngrain: [{grain}]\n"
                                           f"description: A planted model.\n*/\n{select}\n")


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
    db = ingest_hub(tmp_path, small_rows())
    mine = tmp_path / "mine"
    _model(mine, "outlier_traces", "SELECT trace_id, 'mine' AS reasons, 1 AS n_reasons, status, dataset, domain "
                                   "FROM traces WHERE status = 'flagged'")
    out = tmp_path / "r.html"
    result = invoke("report", "--db", db, "--models", mine, "--out", out, "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == (f"Error: {mine / 'outlier_traces.sql'}: the report reads the columns issue_codes, "
                             f"duplicate_of, n_blocks, ratio_chars, domain_median_ratio_chars, ratio_z, blocks_z, "
                             f"max_block_chars, max_block_z, answer_chars of outlier_traces, which this model does not "
                             f"have; add them to its SELECT (README.md, \"Your own models\"), or leave the model "
                             f"out of --models\n")
    assert not out.exists()


def test_the_report_reads_no_column_beyond_report_columns(built, tmp_path):
    """REPORT_COLUMNS is complete: with every model it names cut down to exactly those columns, gather runs."""
    from mementos.foundation import storage
    from mementos.warehouse.engine import existing_objects
    from mementos.warehouse.report import REPORT_COLUMNS, gather

    db = copy_warehouse(built, tmp_path)
    with storage.connect(db, read_only=False) as con:
        objects = existing_objects(con)
        for model, columns in REPORT_COLUMNS.items():
            con.execute(f"CREATE TABLE cut AS SELECT {', '.join(columns)} FROM {model}")
            con.execute(f"DROP {objects[model].upper()} {model}")
            con.execute(f"ALTER TABLE cut RENAME TO {model}")
        data = gather(con, str(db), ["a:0"])
    assert data.overview.totals["traces"] == 3 and "a:0" in [v.trace_id for v in data.views]
