"""Shared test helpers: small hand-written corpora written as real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

# Tests never reach the hub; local directories go through the same `datasets` code.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# A superseded snapshot is reclaimed at the next write once no reader holds it; the grace period
# that covers a reader between opening the catalog and locking it is tested on its own.
os.environ.setdefault("MEMENTOS_RECLAIM_GRACE", "0")

# after the settings above, which must be in place before the package is imported
from mementos.cli import main  # noqa: E402
from mementos.sample.generator import README_FRONT_MATTER  # noqa: E402
from mementos.warehouse.project import load_project  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_EXAMPLES = REPO.parent / "shared" / "fixtures" / "memento-examples"

CARD = README_FRONT_MATTER + "# test corpus\n"  # the hub layout the sample writes
# Every bundled model, the ones built on request too (a plain build leaves those out): for build(select=...)
EVERY_MODEL = load_project().order


def memento(pairs, answer="The answer is 42.", sep="\n") -> str:
    """A well-formed response from (block, summary) pairs."""
    body = "".join(
        f"<|block_start|>{sep}{b}{sep}<|block_end|>{sep}<|summary_start|>{sep}{s}{sep}<|summary_end|>{sep}"
        for b, s in pairs
    )
    return f"<think>{sep}{body}</think>{sep}{sep}{answer}"


def row(response, problem="What is 6 x 7?", domain="math", source="unit", difficulty=3):
    return {"problem": problem, "response": response, "domain": domain, "source": source, "difficulty": difficulty}


def small_rows(domains=("math", "code", "math")) -> list[dict]:
    """One two-block trace per domain, problems 'What is I x 7?'."""
    pairs = [("a b c d e f g h", "a b"), ("c d e f g h i j k l", "c d e")]
    return [row(memento(pairs), domain=d, problem=f"What is {i} x 7?") for i, d in enumerate(domains)]


def invoke(*args):
    """The CLI in this process, arguments given as anything printable."""
    return CliRunner().invoke(main, [str(a) for a in args])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_hub_dir(root: Path, rows: list[dict], full_rows: list[dict] | None = None) -> Path:
    """A dataset directory in the hub layout: README card + data/ (+ full/)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(CARD)
    write_parquet(root / "data" / "train-00000-of-00001.parquet", rows)
    if full_rows is not None:
        write_parquet(root / "full" / "train-00000-of-00001.parquet", full_rows)
    return root


def full_row(pairs_sentences, summaries, **kw) -> dict:
    """A full-config row whose response markup agrees with its sentences and ranges."""
    sentences, blocks, start = [], [], 0
    for block_sentences in pairs_sentences:
        sentences += block_sentences
        blocks.append([start, start + len(block_sentences) - 1])
        start += len(block_sentences)
    response = memento([(" ".join(bs), s) for bs, s in zip(pairs_sentences, summaries)])
    return {**row(response, **kw), "sentences": sentences, "blocks": blocks, "block_summaries": summaries}


# The JVM of a test's SparkSession: a short-lived driver over small data spends most of its CPU compiling
# (the JIT) and collecting, which the other xdist worker needs; the quick compiler alone (with room for
# its code) and the serial collector leave it more; so do interpreted plans and expressions, which spare it
# generating and compiling Java for every stage that then runs over a few hundred rows.
# bench/RESULTS.md ("The Spark tests' JVM") has the measurements.
SPARK_TEST_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m -XX:+UseSerialGC",
    # one partition and no adaptive execution: at the tests' size each partition and each re-planned stage
    # is a fixed cost, not parallel work (the Spark ingest sets its own partitions: a task per shard)
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "1",
    "spark.sql.adaptive.enabled": "false",
}
# The files that start a SparkSession: one JVM serves them all (the `spark` fixture), so they run on one
# xdist worker, one after the other (pytest_xdist_make_scheduler): a JVM started and warmed up once.
SPARK_FILES = ("test_spark_parity.py", "test_spark_ingest.py")


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession (two cores, SPARK_TEST_CONF) for every Spark test of the process."""
    import sys

    from mementos.foundation.spark_session import spark_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the ingest's executors import this checkout
    session = spark_session("local[2]", SPARK_TEST_CONF, app_name="mementos tests")
    yield session
    session.stop()


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: pytest without it runs the files in one process
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the SPARK_FILES one unit of work: they share the worker's JVM."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SparkTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "spark" if Path(scope).name in SPARK_FILES else scope

    return SparkTogether(config, log)


# The test files by how long they take (make test, 2026-12-07), the longest first: with `-n 2 --dist loadfile`
# each file runs on one worker, and a long file handed out last would leave the other worker idle at the end
# (it did: 13 s). Files not listed (each under 2.5 s) come after, in their own order. The Makefile passes
# --no-loadscope-reorder, or xdist would hand the files out by their number of tests instead.
LONGEST_FIRST = ("test_spark_parity.py", "test_spark_ingest.py", "test_export.py", "test_memory.py",
                 "test_incremental_models.py", "test_report_browser.py", "test_concurrency.py", "test_engine.py",
                 "test_serve.py", "test_input_shapes.py", "test_incremental_ingest.py", "test_snapshot_crashes.py",
                 "test_serve_browser.py", "test_report.py", "test_batches.py", "test_snapshots.py",
                 "test_storage.py", "test_wheel.py", "test_sample.py", "test_disk.py", "test_crash_safety.py",
                 "test_ingest.py", "test_cli.py", "test_models_golden.py", "test_crash_build_export.py",
                 "test_query.py", "test_parser_fuzz.py", "test_vector_parser.py", "test_guard.py",
                 "test_corrupt_input.py", "test_loader.py", "test_total_rows.py", "test_inference_simulation.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files keep their own order


@pytest.fixture
def shared_examples() -> Path:
    if not SHARED_EXAMPLES.is_dir():
        pytest.skip("../shared/fixtures/memento-examples is not present (only CI has it)")
    return SHARED_EXAMPLES


def built_old_and_new(d: Path) -> Path:
    """`d/wh/w.duckdb`: dataset 't' from old.jsonl (3 one-block traces) with every model built, and
    new.jsonl (5 traces, the same 3 first) beside it to ingest next; returns `d`."""
    from mementos.ingest.pipeline import run_ingest
    from mementos.warehouse.engine import build

    write_jsonl(d / "old.jsonl", [row(memento([(f"b{i}", "s")]), problem=f"p{i}") for i in range(3)])
    write_jsonl(d / "new.jsonl", [row(memento([(f"b{i}", "s")]), problem=f"p{i}") for i in range(5)])
    run_ingest(str(d / "old.jsonl"), d / "wh" / "w.duckdb", name="t", workers=0, progress=False, with_tokens=False)
    assert build(d / "wh" / "w.duckdb").ok
    return d


def ingest_hub(tmp_path: Path, rows: list[dict], name: str = "a", with_tokens: bool = False) -> Path:
    """`tmp_path/w.duckdb`: `rows` ingested (default config) as dataset `name` from a hub directory."""
    from mementos.ingest.pipeline import run_ingest

    src = write_hub_dir(tmp_path / f"src-{name}", rows)
    db = tmp_path / "w.duckdb"
    run_ingest(str(src), db, config="default", name=name, with_tokens=with_tokens, workers=0, progress=False)
    return db


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """Dataset 'a' of small_rows() (traces a:0 to a:2) with every model built, made once a session.
    Tests only read it; one that writes works on a copy (warehouse_state.copy_warehouse)."""
    from mementos.warehouse.engine import build

    db = ingest_hub(tmp_path_factory.mktemp("built"), small_rows())
    assert build(db).ok
    return db
