"""Golden numbers of every model on the hand-written corpus of golden_models_data.py.

Every expected number below is worked out by hand from the word counts in that
file's table (n words = 2n - 1 chars = n tokens); fractions are left as
fractions so the arithmetic can be checked.
"""

from __future__ import annotations

import math

import duckdb
from warehouse import storage  # noqa: E402
import pytest

from golden_models_data import ingest_alignment, ingest_golden
from warehouse.engine import build

APPROX = dict(rel=1e-9, abs=1e-12)


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    db = ingest_golden(tmp_path_factory.mktemp("golden"))
    report = build(db)
    assert report.ok, report.format()
    con = storage.connect(db)
    yield con
    con.close()


def q(con, sql):
    return con.execute(sql).fetchall()


def by_key(con, sql):
    result = con.execute(sql)
    cols = [d[0] for d in result.description]
    return {row[0]: dict(zip(cols, row)) for row in result.fetchall()}


def test_flagged_traces_are_excluded_and_counted_apart(golden):
    assert q(golden, "SELECT count(*), count(*) FILTER (WHERE status = 'flagged') FROM all_traces") == [(11, 1)]
    assert q(golden, "SELECT count(*) FROM analysed_traces WHERE trace_id = 'golden:4'") == [(0,)]
    assert q(golden, "SELECT count(*) FROM block_pairs WHERE trace_id = 'golden:4'") == [(0,)]
    assert q(golden, "SELECT count(*) FROM trace_compression") == [(10,)]
    assert q(golden, "SELECT traces, flagged_traces FROM domain_compression WHERE domain = 'math'") == [(3, 1)]


def test_block_pairs(golden):
    assert q(golden, "SELECT count(*) FROM block_pairs") == [(3 + 2 + 1 + 2 + 1 + 2 + 1 + 2 + 3 + 12,)]
    got = q(golden, "SELECT block_idx, block_chars, block_words, block_tokens, memento_chars, memento_words, "
                    "memento_tokens, ratio_chars, ratio_tokens FROM block_pairs WHERE trace_id = 'golden:0' "
                    "ORDER BY block_idx")
    assert got == [
        (0, 199, 100, 100, 39, 20, 20, pytest.approx(39 / 199, **APPROX), pytest.approx(20 / 100, **APPROX)),
        (1, 399, 200, 200, 59, 30, 30, pytest.approx(59 / 399, **APPROX), pytest.approx(30 / 200, **APPROX)),
        (2, 99, 50, 50, 19, 10, 10, pytest.approx(19 / 99, **APPROX), pytest.approx(10 / 50, **APPROX)),
    ]
    # the block with a newline inside: same chars and words, one more token
    assert q(golden, "SELECT block_chars, block_words, block_tokens FROM block_pairs "
                     "WHERE trace_id = 'golden:8' AND block_idx = 0") == [(99, 50, 51)]
    assert q(golden, "SELECT domain, source, difficulty FROM block_pairs WHERE trace_id = 'golden:6' LIMIT 1") == [
        ("science", "gamma", "(unknown)")]


def test_trace_compression(golden):
    rows = by_key(golden, "SELECT * FROM trace_compression")
    t0 = rows["golden:0"]
    assert (t0["n_blocks"], t0["block_chars"], t0["memento_chars"], t0["answer_chars"], t0["answer_words"]) == (
        3, 199 + 399 + 99, 39 + 59 + 19, 59, 30)
    assert (t0["block_tokens"], t0["memento_tokens"], t0["answer_tokens"]) == (350, 60, 30)
    assert (t0["max_block_chars"], t0["max_block_tokens"], t0["mementos_longer_than_block"]) == (399, 200, 0)
    assert t0["compression_tokens"] == pytest.approx(350 / 60, **APPROX)
    assert t0["compression_chars"] == pytest.approx(697 / 117, **APPROX)
    assert t0["ratio_chars"] == pytest.approx(117 / 697, **APPROX)
    t1 = rows["golden:1"]
    assert (t1["answer_chars"], t1["answer_tokens"], t1["compression_tokens"]) == (2, 1, 100 / 16)
    t3 = rows["golden:3"]
    assert (t3["block_chars"], t3["memento_chars"], t3["mementos_longer_than_block"]) == (19 + 59, 23 + 5, 1)
    assert t3["compression_tokens"] == pytest.approx(40 / 15, **APPROX)
    assert rows["golden:10"]["n_blocks"] == 12 and rows["golden:10"]["compression_tokens"] == 5.0
    assert rows["golden:7"]["compression_tokens"] == 1500.0


def test_inference_simulation_worked_example(golden):
    """Trace 0 is the worked example of warehouse.md (Models): blocks 100, 200, 50 tokens, mementos 20, 30, 10,
    answer 30. Without eviction the peak is everything: 350 + 60 + 30 = 440.

    step j (memento j just written) = mementos 0..j + blocks j-k+1..j;
    answer (step 3) = mementos 0..2 + blocks 3-k+1..2 + answer

    k=1: 20+100=120, 50+200=250, 60+50=110, answer 60+30=90           -> peak 250 at step 1
    k=2: 120, 50+300=350, 60+250=310, answer 60+50+30=140             -> peak 350 at step 1
    k=4: 120, 350, 60+350=410, answer 60+350+30=440                   -> peak 440 at the answer
    """
    got = q(golden, "SELECT k, n_blocks, blocks_evicted, peak_tokens_no_eviction, peak_tokens_with_eviction, "
                    "saved_tokens, saved_fraction, peak_step, peak_at_answer "
                    "FROM inference_simulation WHERE trace_id = 'golden:0' ORDER BY k")
    assert got == [
        (1, 3, 3, 440, 250, 190, pytest.approx(190 / 440, **APPROX), 1, False),
        (2, 3, 2, 440, 350, 90, pytest.approx(90 / 440, **APPROX), 1, False),
        (4, 3, 0, 440, 440, 0, 0.0, 3, True),
        (8, 3, 0, 440, 440, 0, 0.0, 3, True),
    ]


def test_inference_simulation_other_traces(golden):
    # trace 1: blocks 40, 60; mementos 10, 6; answer 1; without eviction 117.
    # k=1: 50, 16+60=76, answer 16+1=17; k=2: 50, 16+100=116, answer 16+60+1=77 (block 0 is gone);
    # k=4: the answer sees everything, 117
    assert q(golden, "SELECT k, blocks_evicted, peak_tokens_no_eviction, peak_tokens_with_eviction, peak_step "
                     "FROM inference_simulation WHERE trace_id = 'golden:1' ORDER BY k") == [
        (1, 2, 117, 76, 1), (2, 1, 117, 116, 1), (4, 0, 117, 117, 2), (8, 0, 117, 117, 2)]
    # trace 10: 12 blocks of 10 and mementos of 2, answer 4; the peak is at the last block step,
    # 24 + 10k (the answer step has one block less and the 4-token answer); without eviction 148
    assert q(golden, "SELECT k, blocks_evicted, peak_tokens_with_eviction, peak_step, peak_at_answer "
                     "FROM inference_simulation WHERE trace_id = 'golden:10' ORDER BY k") == [
        (1, 12, 34, 11, False), (2, 11, 44, 11, False), (4, 9, 64, 11, False), (8, 5, 104, 11, False)]
    assert q(golden, "SELECT count(*), count(DISTINCT trace_id) FROM inference_simulation") == [(40, 10)]


def test_domain_compression(golden):
    rows = by_key(golden, "SELECT * FROM domain_compression")
    assert set(rows) == {"math", "code", "science", "all"}
    counts = {d: (r["traces"], r["flagged_traces"], r["blocks"]) for d, r in rows.items()}
    assert counts == {"math": (3, 1, 6), "code": (3, 0, 4), "science": (4, 0, 19), "all": (10, 1, 29)}
    # math block ratios: 39/199, 59/399, 19/99 (trace 0), 19/79, 11/119 (trace 1), 3/5999 (trace 7):
    # the middle two of six are 59/399 and 19/99
    assert rows["math"]["median_ratio_chars"] == pytest.approx((59 / 399 + 19 / 99) / 2, **APPROX)
    # code: 31/159 (twice: traces 2 and 5), 23/19, 5/59 -> middle two are both 31/159
    assert rows["code"]["median_ratio_chars"] == pytest.approx(31 / 159, **APPROX)
    # math block tokens 100, 200, 50, 40, 60, 3000 -> median (60 + 100) / 2; p10 at 0.5 between 40 and 50
    assert rows["math"]["median_tokens_per_block"] == 80.0
    assert rows["math"]["p10_tokens_per_block"] == 45.0
    # blocks per trace: math 3, 2, 1 -> 2; science 2, 2, 3, 12 -> 2.5
    assert (rows["math"]["median_blocks_per_trace"], rows["science"]["median_blocks_per_trace"]) == (2.0, 2.5)
    # trace-level compression, math: 350/60, 100/16, 3000/2 -> median 6.25
    assert rows["math"]["median_compression_tokens"] == 6.25
    # all: 29 block ratios; the 15th smallest is 3/19 (trace 10's twelve blocks are all 3/19)
    assert rows["all"]["median_ratio_chars"] == pytest.approx(3 / 19, **APPROX)
    assert rows["all"]["median_memento_tokens_per_trace"] == 17.5  # 16, 16, 16, 15, 25, 2, 20, 19, 24, 60


def test_compression_by_source_and_difficulty(golden):
    by_source = {r[0]: r[1:] for r in q(golden, "SELECT source, traces, flagged_traces, blocks FROM compression_by_source")}
    assert by_source == {"alpha": (3, 1, 6), "beta": (3, 0, 4), "gamma": (3, 0, 7), "delta": (1, 0, 12),
                         "all": (10, 1, 29)}
    by_diff = {r[0]: r[1:] for r in q(golden, "SELECT difficulty, traces, flagged_traces, median_ratio_chars "
                                              "FROM compression_by_difficulty")}
    assert set(by_diff) == {"1", "2", "3", "(unknown)", "all"}
    assert by_diff["1"][:2] == (3, 1) and by_diff["(unknown)"] == (1, 0, pytest.approx(24 / 99, **APPROX))
    # difficulty 3: trace 3 (23/19, 5/59) and trace 10 (twelve times 3/19): median 3/19
    assert by_diff["3"] == (2, 0, pytest.approx(3 / 19, **APPROX))


def test_outlier_traces(golden):
    rows = by_key(golden, "SELECT * FROM outlier_traces")
    assert {t: r["reasons"] for t, r in rows.items()} == {
        "golden:1": "empty_answer",
        "golden:3": "memento_longer_than_block",
        "golden:4": "flagged",
        "golden:5": "duplicate",
        "golden:7": "ratio_low,very_long_block",
        "golden:10": "too_many_blocks",
    }
    assert rows["golden:4"]["issue_codes"] == "block_without_summary,unclosed_block"
    assert rows["golden:5"]["duplicate_of"] == "golden:2"
    assert rows["golden:7"]["n_reasons"] == 2
    # math trace ratios (chars) 117/697, 30/198, 3/5999: on the log scale the median is log(30/198)
    # and the MAD is log((117/697) / (30/198)), so trace 7's robust z is:
    mad = math.log((117 / 697) / (30 / 198))
    assert rows["golden:7"]["ratio_z"] == pytest.approx(math.log((3 / 5999) / (30 / 198)) / (1.4826 * mad), rel=1e-9)
    assert rows["golden:7"]["domain_median_ratio_chars"] == pytest.approx(30 / 198, **APPROX)
    # science blocks per trace 2, 2, 3, 12: median log = (log 2 + log 3) / 2, MAD = (log 3 - log 2) / 2
    med, mad = (math.log(2) + math.log(3)) / 2, (math.log(3) - math.log(2)) / 2
    assert rows["golden:10"]["blocks_z"] == pytest.approx((math.log(12) - med) / (1.4826 * mad), rel=1e-9)
    # code: two of three traces share a ratio, so the MAD is 0 and no z is given
    assert rows["golden:3"]["ratio_z"] is None


def test_full_alignment(golden):
    rows = by_key(golden, "SELECT * FROM full_alignment")
    # every default trace has its full row, linked by hash: the duplicates 2 and 5 pair copy by copy
    assert len(rows) == 11 and {r["link"] for r in rows.values()} == {"hash"}
    assert (rows["golden:2"]["full_trace_id"], rows["golden:5"]["full_trace_id"]) == ("golden:full:2", "golden:full:5")
    assert {t for t, r in rows.items() if r["aligned"]} == {f"golden:{i}" for i in (0, 1, 2, 5, 6, 7, 8, 9, 10)}
    t3 = rows["golden:3"]
    assert (t3["first_disagreeing_block"], t3["disagreement"], t3["full_status"], t3["blocks_agreeing"]) == (
        1, "summary_text", "flagged", 1)
    t4 = rows["golden:4"]
    assert (t4["default_status"], t4["default_blocks"], t4["full_blocks"], t4["first_disagreeing_block"],
            t4["disagreement"]) == ("flagged", 2, 1, 1, "missing_in_full")
    # trace 8's block 0 has a newline where the sentences have a space: whitespace does not count
    assert rows["golden:8"]["aligned"] is True


ALIGN_COLUMNS = "link, trace_id, full_trace_id, aligned, first_disagreeing_block, disagreement"


@pytest.fixture(scope="module")
def alignment(tmp_path_factory):
    db = ingest_alignment(tmp_path_factory.mktemp("align"))
    report = build(db, select=["full_alignment"])
    assert report.ok, report.format()
    con = duckdb.connect(str(db), read_only=True)
    yield con
    con.close()


def test_full_alignment_hash_links_and_unlinked_rows(alignment):
    rows = {(r[1], r[2]): r for r in q(alignment, f"SELECT {ALIGN_COLUMNS} FROM full_alignment")}
    assert rows[("align:0", "align:full:0")] == ("hash", "align:0", "align:full:0", True, None, None)
    # the full row has 3 summaries for 2 block ranges: the first extra one is block 2
    assert rows[("align:4", "align:full:3")] == ("hash", "align:4", "align:full:3", False, 2, "extra_summary")
    # no full row; an exact duplicate of default 0 whose one full copy is taken; a full row of its own
    assert rows[("align:3", None)][0] == rows[("align:5", None)][0] == rows[(None, "align:full:4")][0] == "unlinked"
    assert rows[("align:3", None)][3:] == (None, None, None)
    # every default trace and every full row has exactly one row
    assert q(alignment, "SELECT count(DISTINCT trace_id), count(DISTINCT full_trace_id) FROM full_alignment") == [
        (8, 6)]


@pytest.mark.xfail(strict=True, reason="needs full_traces.problem (the full row's problem as read), not stored at "
                                       "ingest yet; models/full_alignment.sql reads NULL until then")
def test_full_alignment_links_by_problem(alignment):
    got = q(alignment, f"SELECT {ALIGN_COLUMNS}, blocks_agreeing FROM full_alignment "
                       "WHERE link <> 'hash' ORDER BY trace_id NULLS LAST, full_trace_id")
    assert got == [
        # memento 1 edited in the full response, problem spaced differently: linked by problem, caught at block 1
        ("problem", "align:1", "align:full:1", False, 1, "summary_text", 1),
        # only a trailing newline differs: every block agrees, the hashes do not
        ("problem", "align:2", "align:full:2", False, None, "response_differs", 1),
        ("unlinked", "align:3", None, None, None, None, None),
        ("unlinked", "align:5", None, None, None, None, None),
        # full row 5 is nearest to default 6 (rows 5 and 6) and default 6 to it; default 7 is left over
        ("problem", "align:6", "align:full:5", False, 0, "block_text", 0),
        ("unlinked", "align:7", None, None, None, None, None),
        ("unlinked", None, "align:full:4", None, None, None, None),
    ]


def test_inference_summary_and_breakdown_are_consistent(golden):
    assert q(golden, "SELECT traces FROM inference_summary WHERE domain = 'all' ORDER BY k") == [(10,)] * 4
    assert q(golden, "SELECT count(*) FROM compression_breakdown") == [(3 + 4 + 4 + 1,)]


def test_without_tokens_the_token_measures_are_null(tmp_path):
    db = ingest_golden(tmp_path, with_tokens=False)
    assert build(db).ok
    with storage.connect(db) as con:
        assert q(con, "SELECT count(*), count(ratio_tokens), count(ratio_chars) FROM block_pairs") == [(29, 0, 29)]
        assert q(con, "SELECT count(peak_tokens_with_eviction), count(peak_step) FROM inference_simulation") == [(0, 0)]
        assert q(con, "SELECT median_ratio_tokens IS NULL, median_ratio_chars > 0 FROM domain_compression "
                      "WHERE domain = 'all'") == [(True, True)]
