"""Ingest end to end: real files through `datasets` into Parquet and DuckDB."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
from mementos.foundation import storage  # noqa: E402
import pytest

from conftest import REPO, full_row, memento, row, write_hub_dir, write_jsonl, write_parquet
from mementos.ingest.pipeline import run_ingest
from mementos.foundation.errors import SourceError
from mementos.foundation.layout import data_dir

TABLES = ("traces", "segments", "parse_issues", "full_traces", "sentences", "full_blocks", "ingest_runs")


def counts(db) -> dict[str, int]:
    with storage.connect(db) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}


def query(db, sql, params=None):
    with storage.connect(db) as con:
        return con.execute(sql, params or []).fetchall()


def ingest(source, db, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return run_ingest(str(source), db, **kw)


def test_jsonl_ok_and_flagged_rows_all_kept(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        row(memento([("first block", "m1"), ("second block here", "m2")])),
        row("<think>raw thoughts only</think>42"),
        row(None),
    ])
    summary = ingest(src, tmp_path / "w.duckdb", name="t")
    assert (summary.rows_read, summary.rows_ok, summary.rows_unsegmented, summary.rows_flagged) == (3, 1, 1, 1)
    assert query(tmp_path / "w.duckdb", "SELECT trace_id, source_row, status, n_blocks FROM traces ORDER BY source_row") == [
        ("t:0", 0, "ok", 2), ("t:1", 1, "unsegmented", 0), ("t:2", 2, "flagged", 0)]
    assert query(tmp_path / "w.duckdb", "SELECT trace_id, code FROM parse_issues ORDER BY trace_id") == [
        ("t:2", "empty_response")]


def test_segments_have_exact_text_offsets_and_token_counts(tmp_path):
    response = memento([("Two plus two is four.", "2+2=4")], answer="4")
    ingest(write_jsonl(tmp_path / "in.jsonl", [row(response)]), tmp_path / "w.duckdb", name="t")
    rows = query(tmp_path / "w.duckdb", "SELECT kind, block_idx, text, char_start, char_end, n_chars, n_words, n_tokens "
                                        "FROM segments ORDER BY char_start")
    assert rows == [
        ("block", 0, "Two plus two is four.", 24, 45, 21, 5, 6),
        ("summary", 0, "2+2=4", 78, 83, 5, 1, 5),
        ("answer", None, "4", 110, 111, 1, 1, 1),
    ]
    for _, _, text, start, end, *_ in rows:
        assert response[start:end] == text


def test_no_tokens_leaves_n_tokens_null_and_records_it(tmp_path):
    db = tmp_path / "w.duckdb"
    ingest(write_jsonl(tmp_path / "in.jsonl", [row(memento([("b", "s")]))]), db, name="t", with_tokens=False)
    assert query(db, "SELECT count(*) FROM segments WHERE n_tokens IS NOT NULL") == [(0,)]
    assert query(db, "SELECT token_encoding FROM ingest_runs") == [(None,)]


def test_metadata_is_kept_as_it_comes_and_never_flags(tmp_path):
    db = tmp_path / "w.duckdb"
    good = memento([("b", "s")])
    ingest(write_jsonl(tmp_path / "in.jsonl", [
        row(good, domain=None, difficulty=None, source="weird \u2603 source"),
        row(good, domain="biology"),
        row(good, domain="biology"),  # exact duplicate of the row above
    ]), db, name="t")
    assert query(db, "SELECT domain, difficulty, source, status FROM traces ORDER BY source_row") == [
        (None, None, "weird \u2603 source", "ok"), ("biology", "3", "unit", "ok"), ("biology", "3", "unit", "ok")]
    assert query(db, "SELECT count(DISTINCT content_hash) FROM traces") == [(1,)]


def test_hub_layout_directory_with_both_configs(tmp_path):
    pairs = [["Let x be 2.", "Then x squared is 4."], ["So the answer is 4."]]
    full = [full_row(pairs, ["x=2, x^2=4", "answer 4"]), full_row([["Only one."]], ["one"], problem="p2")]
    hub = write_hub_dir(tmp_path / "hub", [{k: v for k, v in r.items() if k in ("problem", "response", "domain",
                                                                                   "source", "difficulty")}
                                           for r in full], full)
    db = tmp_path / "w.duckdb"
    summary = ingest(hub, db, config="all")
    assert (summary.default_rows, summary.full_rows, summary.rows_flagged) == (2, 2, 0)
    assert query(db, "SELECT full_trace_id, trace_id, status, n_sentences, n_blocks FROM full_traces ORDER BY source_row") == [
        ("hub:full:0", "hub:0", "ok", 3, 2), ("hub:full:1", "hub:1", "ok", 1, 1)]
    assert query(db, "SELECT block_idx, sentence_start, sentence_end, text, summary FROM full_blocks "
                     "WHERE full_trace_id = 'hub:full:0' ORDER BY block_idx") == [
        (0, 0, 1, "Let x be 2. Then x squared is 4.", "x=2, x^2=4"), (1, 2, 2, "So the answer is 4.", "answer 4")]


def test_full_row_disagreeing_with_its_markup_is_flagged(tmp_path):
    good = full_row([["A b.", "C d."]], ["s"])
    overlapping = {**full_row([["A."], ["B."]], ["s1", "s2"], problem="p2"), "blocks": [[0, 1], [1, 1]]}
    missing_summary = {**full_row([["A."], ["B."]], ["s1", "s2"], problem="p3"), "block_summaries": ["s1"]}
    src = write_parquet(tmp_path / "full.parquet", [good, overlapping, missing_summary])
    db = tmp_path / "w.duckdb"
    ingest(src, db, config="full", name="f")
    assert query(db, "SELECT trace_id, code FROM parse_issues ORDER BY trace_id, code") == [
        ("f:full:1", "block_ranges_overlap"), ("f:full:1", "markup_mismatch"),
        ("f:full:2", "markup_mismatch"), ("f:full:2", "summary_count_mismatch")]
    assert query(db, "SELECT status FROM full_traces ORDER BY source_row") == [("ok",), ("flagged",), ("flagged",)]


def test_limit_reads_first_rows_in_order(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([(f"b{i}", "s")]), problem=f"p{i}") for i in range(5)])
    ingest(src, tmp_path / "w.duckdb", name="t", limit=2)
    assert query(tmp_path / "w.duckdb", "SELECT problem FROM traces ORDER BY source_row") == [("p0",), ("p1",)]


def test_reingest_replaces_the_dataset_and_keeps_others(tmp_path):
    db = tmp_path / "w.duckdb"
    a = write_jsonl(tmp_path / "a.jsonl", [row(memento([("b", "s")]))] * 3)
    b = write_jsonl(tmp_path / "b.jsonl", [row(memento([("b", "s")]))] * 2)
    ingest(a, db, name="a")
    ingest(b, db, name="b")
    before = query(db, "SELECT trace_id, content_hash FROM traces ORDER BY trace_id")
    ingest(a, db, name="a")
    assert query(db, "SELECT trace_id, content_hash FROM traces ORDER BY trace_id") == before
    assert counts(db)["segments"] == 5 * 3
    assert query(db, "SELECT dataset, count(*) FROM ingest_runs GROUP BY dataset ORDER BY dataset") == [("a", 2), ("b", 1)]
    # Only the committed run of each dataset has Parquet files.
    run_dirs = sorted(p.parent.name for p in (data_dir(db) / "traces").glob("*/*/*.parquet"))
    assert len(run_dirs) == 2


def test_parquet_layout_matches_duckdb(tmp_path):
    """The stored files are plain Parquet: 4 traces, each with its 3 segments nested."""
    db = tmp_path / "w.duckdb"
    ingest(write_jsonl(tmp_path / "in.jsonl", [row(memento([("b", "s")]))] * 4), db, name="t")
    root = data_dir(db)
    with duckdb.connect() as con:
        sql = f"SELECT count(*), sum(len(segments)) FROM read_parquet('{root}/traces/*/*/*.parquet')"
        assert con.execute(sql).fetchall() == [(4, 12)]


def test_worker_processes_give_the_same_rows_as_in_process(tmp_path):
    rows = [row(memento([(f"block {i} " * 20, f"memo {i}")] * (i % 4 + 1)), problem=f"p{i}") for i in range(30)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    ingest(src, tmp_path / "a.duckdb", name="t", workers=0)
    ingest(src, tmp_path / "b.duckdb", name="t", workers=2)
    sql = "SELECT trace_id, kind, block_idx, text, char_start, n_tokens FROM segments ORDER BY ALL"
    assert query(tmp_path / "a.duckdb", sql) == query(tmp_path / "b.duckdb", sql)


@pytest.mark.parametrize("bad_rows, message", [
    ([{"problem": "p", "domain": "math"}], "missing column 'response'"),
    ([{"problem": "p", "response": 12}], "column 'response' has type int64; expected string"),
])
def test_wrong_columns_name_the_file_and_write_nothing(tmp_path, bad_rows, message):
    db = tmp_path / "w.duckdb"
    ingest(write_jsonl(tmp_path / "good.jsonl", [row(memento([("b", "s")]))]), db, name="t")
    before = counts(db)
    bad = write_parquet(tmp_path / "bad.parquet", bad_rows)
    with pytest.raises(SourceError) as err:
        ingest(bad, db, name="t")
    assert str(bad) in str(err.value) and message in str(err.value)
    assert counts(db) == before


def test_interrupted_ingest_leaves_previous_warehouse_intact(tmp_path):
    db = tmp_path / "w.duckdb"
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([("b", "s")]))] * 3)
    ingest(src, db, name="t")
    before = counts(db)
    bigger = write_jsonl(tmp_path / "more.jsonl", [row(memento([("b", "s")]))] * 7)
    env = {**os.environ, "MEMENTOS_KILL_AT": "ingest.before_commit"}
    proc = subprocess.run([sys.executable, str(REPO / "cli.py"), "ingest", str(bigger), "--db", str(db),
                           "--name", "t", "--workers", "0", "--no-progress"], env=env, cwd=REPO, capture_output=True)
    assert proc.returncode == -9
    assert counts(db) == before
    ingest(bigger, db, name="t")  # the next run cleans up and succeeds
    assert counts(db)["traces"] == 7
    assert len(list((data_dir(db) / "traces").glob("*/*"))) == 1


def test_shared_memento_examples(tmp_path, shared_examples):
    db = tmp_path / "w.duckdb"
    summary = ingest(shared_examples, db, config="all")
    assert (summary.default_rows, summary.full_rows) == (4, 3)
    assert query(db, "SELECT status, n_blocks FROM traces ORDER BY source_row") == [
        ("ok", 5), ("ok", 4), ("ok", 4), ("unsegmented", 0)]
    assert query(db, "SELECT code FROM parse_issues WHERE config = 'default'") == []
    assert query(db, "SELECT status, trace_id IS NOT NULL FROM full_traces ORDER BY source_row") == [
        ("ok", True)] * 3


def test_duplicate_full_rows_link_to_the_first_default_trace(tmp_path):
    # Rows 9 and 10 are identical; as text 'd:10' < 'd:9', so order must come from source_row.
    rows = [full_row([[f"Sentence {i}."]], [f"s{i}"], problem=f"p{i}") for i in range(10)]
    rows.append(dict(rows[9]))
    default = [{k: r[k] for k in ("problem", "response", "domain", "source", "difficulty")} for r in rows]
    hub = write_hub_dir(tmp_path / "d", default, rows)
    db = tmp_path / "w.duckdb"
    ingest(hub, db, config="all")
    assert query(db, "SELECT source_row, trace_id FROM full_traces WHERE source_row >= 9 ORDER BY source_row") == [
        (9, "d:9"), (10, "d:9")]


def test_a_block_of_over_a_million_characters_is_counted_not_fatal(tmp_path):
    """The tokenizer refuses such texts; ingest counts them in parts (issue: one segment aborted the run)."""
    from mementos.foundation.tokens import count_tokens

    block = "the same reasoning again\n" * 48_000  # 1,200,000 characters
    db = tmp_path / "w.duckdb"
    summary = ingest(write_jsonl(tmp_path / "in.jsonl", [row(memento([(block, "short memento")]))]), db, name="t")
    assert summary.rows_ok == 1
    assert query(db, "SELECT n_chars, n_tokens FROM segments WHERE kind = 'block'") == [
        (len(block.strip()), count_tokens([block.strip()])[0])]
