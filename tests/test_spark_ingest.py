"""`ingest --engine spark` stores what the local ingest stores (issue 34; docs/spark-ingest.md).

The session-wide local Spark session (conftest `spark`, two cores). Every stored table and view is compared by
row hashes, run ids, times and file names left out: a generated sample of both configs with token
counts (three shards per config), and the hostile responses the parser tests use. A Spark task
killed midway leaves the warehouse as it was, and the rerun reads only the shards not finished.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install '.[spark]' (make test does)")
if shutil.which("java") is None:
    pytest.skip("Java 17+ is missing (make test installs openjdk-17-jre-headless)", allow_module_level=True)

from conftest import full_row, memento, write_hub_dir  # noqa: E402
from report_fixtures import hostile_rows  # noqa: E402
from test_parser import ISSUES_ONLY  # noqa: E402
from warehouse_state import snapshot  # noqa: E402

from mementos.foundation import layout, snapshots, storage  # noqa: E402
from mementos.foundation.errors import WarehouseError  # noqa: E402
from mementos.ingest.pipeline import run_ingest  # noqa: E402
from mementos.sample import write_sample  # noqa: E402

# Columns that differ between any two runs of one ingest: its id, its times, its files' names.
RUN_COLUMNS = ("run_id", "data_run_id", "started_at", "finished_at", "seconds", "files")
SAMPLE_SHARDS = 3


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("spark_ingest")
    sample = tmp / "sample"
    write_sample(sample, 300, seed=11, shard_rows=100)
    return {"sample": sample, "hostile": write_hub_dir(tmp / "hostile", _hostile_default(), _hostile_full())}


def _hostile_default() -> list[dict]:
    """The parser tests' defects, the report's script-injection traces, and the edge cases of the fast path."""
    responses = [response for _, response, _ in ISSUES_ONLY] + [
        None, "", "  just some reasoning\n", memento([("a\u3000b\u2003c", "m")]),
        memento([("x" + " " * 300 + "y", "gap")]), "<think><|block_start|>cut at the end<|block_en",
        "<|block_start|>a<|block_end|><|summary_start|>s<|summary_end|></think>ans",
    ]
    plain = [{"problem": f"hostile {i}", "response": r, "domain": "math", "source": "unit", "difficulty": str(i)}
             for i, r in enumerate(responses)]
    injected = [{k: v for k, v in r.items() if not k.startswith("_")} for r in hostile_rows(3)]
    return plain + injected


def _hostile_full() -> list[dict]:
    good = full_row([["One step.", "Two steps."], ["Three."]], ["first <b>memo</b>", "second"])
    out_of_range = {**good, "blocks": [[0, 1], [2, 9]]}
    return [good, out_of_range, {**good, "sentences": None}]


def _tables(db: Path) -> dict[str, Counter]:
    """Every table and view of the warehouse as a multiset of row hashes (RUN_COLUMNS left out), and the
    stored Parquet files' rows the same way."""
    root = layout.data_dir(db)
    with storage.connect(db, read_only=True) as con:
        names = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_name <> 'snapshot_info' ORDER BY 1").fetchall()]
        sources = {t: t for t in names}
        for table in ("traces", "full_traces"):
            if any(root.glob(f"{table}/*/*/*.parquet")):
                sources[f"stored {table}"] = f"read_parquet('{root}/{table}/*/*/*.parquet')"
        out = {}
        for name, source in sources.items():
            columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
            dropped = ", ".join(c for c in RUN_COLUMNS if c in columns)
            select = f"SELECT * EXCLUDE ({dropped}) FROM {source}" if dropped else f"SELECT * FROM {source}"
            out[name] = Counter(h for (h,) in con.execute(f"SELECT md5(CAST(t AS VARCHAR)) FROM ({select}) t")
                                .fetchall())
    return out


def assert_same_rows(local_db: Path, spark_db: Path) -> None:
    local, spark = _tables(local_db), _tables(spark_db)
    assert local.keys() == spark.keys()
    differing = {name: (sum((local[name] - spark[name]).values()), sum((spark[name] - local[name]).values()))
                 for name in local if local[name] != spark[name]}
    assert differing == {}, "rows only in the local ingest, only in the Spark ingest"
    assert sum(local["segments"].values()) > 0


@pytest.mark.parametrize("which, config", [("sample", "all"), ("hostile", "all")])
def test_spark_ingest_stores_the_local_ingests_rows(spark, sources, tmp_path, which, config):
    local = run_ingest(str(sources[which]), tmp_path / "local.duckdb", config=config, name=which, workers=2,
                       progress=False)
    on_spark = run_ingest(str(sources[which]), tmp_path / "spark.duckdb", config=config, name=which,
                          progress=False, engine="spark")
    assert_same_rows(tmp_path / "local.duckdb", tmp_path / "spark.duckdb")
    assert (on_spark.engine, on_spark.shards_resumed, on_spark.rows_read) == ("spark", 0, local.rows_read)
    assert on_spark.worker_peak_bytes > 0
    assert not (layout.data_dir(tmp_path / "spark.duckdb") / layout.SPARK_STATE).exists()  # markers forgotten


def _killed_part(source: Path) -> str:
    """The last shard's files' names: killed while the others are finished or running."""
    assert len(list(source.glob("full/*.parquet"))) == SAMPLE_SHARDS
    return f"full-{SAMPLE_SHARDS - 1:05d}-train-{SAMPLE_SHARDS - 1:05d}-of-{SAMPLE_SHARDS:05d}"


def test_a_killed_task_leaves_the_warehouse_and_the_rerun_reads_only_unfinished_shards(spark, sources, tmp_path):
    db = tmp_path / "w.duckdb"
    run_ingest(str(sources["hostile"]), db, config="default", name="before", workers=0, progress=False)
    before = snapshot(db)
    environment = spark.sparkContext.environment
    environment["MEMENTOS_KILL_AT"] = f"ingest.spark_shard.{_killed_part(sources['sample'])}"
    try:
        with pytest.raises(WarehouseError, match=r"\(Python worker exited unexpectedly \(crashed\)\).*"
                                                 r"Run the same command again"):
            run_ingest(str(sources["sample"]), db, config="all", name="sample", progress=False, engine="spark")
    finally:
        del environment["MEMENTOS_KILL_AT"]
    assert snapshot(db) == before
    [state] = (layout.data_dir(db) / layout.SPARK_STATE).glob("*/*")
    finished = sorted(p.stem for p in state.glob("*.json") if p.name != "plan.json")
    assert finished and _killed_part(sources["sample"]) not in finished

    rerun = run_ingest(str(sources["sample"]), db, config="all", name="sample", progress=False, engine="spark")
    assert (rerun.run_id, rerun.shards_resumed) == (state.name, len(finished))
    run_ingest(str(sources["hostile"]), tmp_path / "local.duckdb", config="default", name="before", workers=0,
               progress=False)
    run_ingest(str(sources["sample"]), tmp_path / "local.duckdb", config="all", name="sample", workers=0,
               progress=False)
    assert_same_rows(tmp_path / "local.duckdb", db)


def test_a_local_ingest_removes_an_unfinished_spark_run_of_its_dataset(sources, tmp_path):
    db = tmp_path / "w.duckdb"
    run_ingest(str(sources["hostile"]), db, config="default", name="h", workers=0, progress=False)
    root = layout.data_dir(db)
    state = root / layout.SPARK_STATE / layout.dataset_slug("h") / "20260101T000000-0000dead"
    state.mkdir(parents=True)
    (state / "plan.json").write_text("{}")
    unfinished = layout.run_dir(root, "traces", "h", state.name)
    unfinished.mkdir(parents=True)
    (unfinished / "part-default-00000-train-0.parquet").write_bytes(b"partial")
    run_ingest(str(sources["hostile"]), db, config="default", name="h", workers=0, progress=False,
               full_refresh=True)
    assert (state.exists(), unfinished.exists()) == (False, False)


def test_a_first_write_that_fails_keeps_the_folder_of_an_unfinished_spark_ingest(tmp_path):
    db = tmp_path / "new.duckdb"
    with pytest.raises(RuntimeError, match="executor lost"):
        with snapshots.writing(db, "ingest --engine spark") as writer:
            (writer.root / layout.SPARK_STATE / "slug" / "run").mkdir(parents=True)
            raise RuntimeError("executor lost")
    assert (db.exists(), (layout.data_dir(db) / layout.SPARK_STATE / "slug" / "run").is_dir()) == (False, True)
    with snapshots.writing(db, "the rerun") as writer:  # the folder is taken up again
        assert writer.seq == 0
