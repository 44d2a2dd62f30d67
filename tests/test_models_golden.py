"""Golden numbers of every model on the hand-written corpus of golden_models_data.py.

Every expected number below is worked out by hand from the word counts in that
file's table (n words = 2n - 1 chars = n tokens); fractions are left as
fractions so the arithmetic can be checked.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from pathlib import Path

import duckdb
from mementos.foundation import storage  # noqa: E402

import pytest

from golden_models_data import (CL100K_MARKUP, RETENTION_CASES, inference_settings_dir, ingest_alignment,
                                 ingest_golden, ingest_outliers, ingest_retention, words)
from mementos.warehouse.engine import build
from mementos.warehouse.models import MODELS_DIR

APPROX = dict(rel=1e-9, abs=1e-12)


def built_connection(tmp: Path, ingest_corpus, select: list[str] | None = None, models_dir=None):
    """A connection to the corpus `ingest_corpus` writes into `tmp`, with the `select`ed models built
    (every model without one, from `models_dir` when given); closed when the fixture that yields from it ends."""
    db = ingest_corpus(tmp)
    report = build(db, select=select, models_dir=models_dir)
    assert report.ok, report.format()
    con = storage.connect(db)
    yield con
    con.close()


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    yield from built_connection(tmp_path_factory.mktemp("golden"), ingest_golden)


@pytest.fixture(scope="module")
def golden_cl100k(tmp_path_factory):
    """The golden corpus with inference_simulation counting the markup as cl100k reads it as text
    (CL100K_MARKUP): the count before one token per marker, kept by replacing inference_settings."""
    tmp = tmp_path_factory.mktemp("golden_cl100k")
    models = [MODELS_DIR, inference_settings_dir(tmp / "models", CL100K_MARKUP)]
    yield from built_connection(tmp, ingest_golden, ["all_traces", "analysed_traces", "trace_compression", "block_pairs",
                                                     "inference_settings", "inference_simulation",
                                                     "inference_summary"], models)


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


def problem_tokens(con, trace_id):
    """The prompt the simulation counts: the problem's tokens ("problem N" is 3: "problem", " ", "N")."""
    [(p,)] = q(con, f"SELECT DISTINCT problem_tokens FROM inference_simulation WHERE trace_id = '{trace_id}'")
    assert p == 3
    return p


def test_inference_simulation_worked_example(golden_cl100k):
    """Trace 0 (blocks 100, 200, 50 tokens, mementos 20, 30, 10, answer 30, and P prompt tokens) with the markup
    counted as cl100k reads it as text (CL100K_MARKUP, the count before one token per marker; the bundled
    count is worked in test_inference_simulation.py). With markup each block costs b + 12 (<|block_start|>, <|block_end|>: 6 each),
    each memento m + 12, <think> and </think> 3 each: 6 + 24 * 3 = 78 markup tokens.

    plain chain of thought: P + 3 + 350 + 3 + 30 = P + 386;  no eviction: P + 386 + 60 + 72 = P + 518
    blocks with markup 112, 212, 62; mementos 32, 42, 22
    step j = P + 3 + mementos 0..j + blocks j-k+1..j;  answer = P + 3 + all mementos + blocks n-k+1..n-1 + 3 + 30
    k=1: 147, 3+74+212=289, 3+96+62=161, answer 3+96+33=132            -> P + 289 at step 1
    k=2: 147, 3+74+324=401, 3+96+274=373, answer 3+96+62+33=194        -> P + 401 at step 1
    k=4: 147, 401, 3+96+386=485, answer 3+96+386+33=518                 -> P + 518 at the answer
    """
    p = problem_tokens(golden_cl100k, "golden:0")
    got = q(golden_cl100k, "SELECT k, n_blocks, blocks_evicted, markup_tokens, peak_tokens_plain_cot, peak_tokens_no_eviction, "
                    "peak_tokens_with_eviction, saved_tokens_vs_no_eviction, saved_tokens_vs_plain_cot, peak_step, "
                    "peak_at_answer FROM inference_simulation WHERE trace_id = 'golden:0' ORDER BY k")
    assert got == [
        (1, 3, 3, 78, p + 386, p + 518, p + 289, 229, 97, 1, False),
        (2, 3, 2, 78, p + 386, p + 518, p + 401, 117, -15, 1, False),
        (4, 3, 0, 78, p + 386, p + 518, p + 518, 0, -132, 3, True),
        (8, 3, 0, 78, p + 386, p + 518, p + 518, 0, -132, 3, True),
    ]
    fractions = q(golden_cl100k, "SELECT saved_fraction_vs_no_eviction, saved_fraction_vs_plain_cot FROM inference_simulation "
                          "WHERE trace_id = 'golden:0' AND k = 1")
    assert fractions == [(pytest.approx(229 / (p + 518), **APPROX), pytest.approx(97 / (p + 386), **APPROX))]


def test_inference_simulation_kv_area(golden_cl100k):
    """A segment of L tokens written on a context of C attends to C+1 .. C+L: L*C + L(L+1)/2.
    Trace 0 with P = 0; every generated token attends to P more, so the prompt adds P times the tokens generated.

    plain (386 generated): 386*387/2 = 74,691;  no eviction (518): 518*519/2 = 134,421
    k=1: <think> 3*0+6 = 6; block 0 (112 on 3) 336+6,328 = 6,664; memento 0 (32 on 115) 3,680+528 = 4,208;
         block 1 (212 on 3+32 = 35) 7,420+22,578 = 29,998; memento 1 (42 on 247) 10,374+903 = 11,277;
         block 2 (62 on 3+74 = 77) 4,774+1,953 = 6,727; memento 2 (22 on 139) 3,058+253 = 3,311;
         answer (33 on 3+96 = 99) 3,267+561 = 3,828                                   -> 66,019
    k=2: 6 + 6,664 + 4,208; block 1 (212 on 3+32+112 = 147) 53,742; memento 1 (42 on 359) 15,981;
         block 2 (62 on 3+74+212 = 289) 19,871; memento 2 (22 on 351) 7,975; answer (33 on 3+96+62 = 161) 5,874
                                                                                      -> 114,321
    """
    p = problem_tokens(golden_cl100k, "golden:0")
    got = q(golden_cl100k, "SELECT k, kv_area_plain_cot, kv_area_no_eviction, kv_area_with_eviction, "
                    "kv_saved_fraction_vs_plain_cot FROM inference_simulation WHERE trace_id = 'golden:0' ORDER BY k")
    plain, full = 74_691 + 386 * p, 134_421 + 518 * p
    assert got == [
        (1, plain, full, 66_019 + 518 * p, pytest.approx((plain - 66_019 - 518 * p) / plain, **APPROX)),
        (2, plain, full, 114_321 + 518 * p, pytest.approx((plain - 114_321 - 518 * p) / plain, **APPROX)),
        (4, plain, full, full, pytest.approx((plain - full) / plain, **APPROX)),
        (8, plain, full, full, pytest.approx((plain - full) / plain, **APPROX)),
    ]


def test_inference_simulation_other_traces(golden_cl100k):
    # trace 1: blocks 40, 60 (52, 72 with markup); mementos 10, 6 (22, 18); answer 1 (+3 for </think>).
    # plain 6+100+1 = 107; no eviction 107+16+48 = 171.
    # k=1: 3+22+52=77, 3+40+72=115, answer 3+40+4=47; k=2: 77, 3+40+124=167, answer 3+40+72+4=119; k=4: 171
    p = problem_tokens(golden_cl100k, "golden:1")
    assert q(golden_cl100k, "SELECT k, blocks_evicted, peak_tokens_plain_cot, peak_tokens_no_eviction, "
                     "peak_tokens_with_eviction, peak_step FROM inference_simulation "
                     "WHERE trace_id = 'golden:1' ORDER BY k") == [
        (1, 2, p + 107, p + 171, p + 115, 1), (2, 1, p + 107, p + 171, p + 167, 1),
        (4, 0, p + 107, p + 171, p + 171, 2), (8, 0, p + 107, p + 171, p + 171, 2)]
    # k=1 KV area: 6 + (52 on 3) 1,534 + (22 on 55) 1,463 + (72 on 25) 4,428 + (18 on 97) 1,917 + (4 on 43) 182
    assert q(golden_cl100k, "SELECT kv_area_with_eviction FROM inference_simulation WHERE trace_id = 'golden:1' AND k = 1") == [
        (9_530 + 171 * p,)]
    # trace 10: 12 blocks of 10 (22) and mementos of 2 (14), answer 4; the peak is at the last block step,
    # 3 + 12*14 + 22k = 171 + 22k (the answer step: 3 + 168 + 22(k-1) + 7 = 156 + 22k); no eviction 442
    p = problem_tokens(golden_cl100k, "golden:10")
    assert q(golden_cl100k, "SELECT k, blocks_evicted, peak_tokens_no_eviction, peak_tokens_with_eviction, peak_step, "
                     "peak_at_answer FROM inference_simulation WHERE trace_id = 'golden:10' ORDER BY k") == [
        (1, 12, p + 442, p + 193, 11, False), (2, 11, p + 442, p + 215, 11, False),
        (4, 9, p + 442, p + 259, 11, False), (8, 5, p + 442, p + 347, 11, False)]
    assert q(golden_cl100k, "SELECT count(*), count(DISTINCT trace_id) FROM inference_simulation") == [(40, 10)]


def test_inference_simulation_counts_the_prompt(golden_cl100k):
    # "problem 0" is 3 cl100k tokens ("problem", " ", "0")
    assert q(golden_cl100k, "SELECT DISTINCT problem_tokens, peak_tokens_plain_cot FROM inference_simulation "
                     "WHERE trace_id = 'golden:0'") == [(3, 389)]


def test_inference_summary(golden_cl100k):
    rows = {(r[0], r[1]): r[2:] for r in q(golden_cl100k, """
        SELECT domain, k, traces, median_peak_plain_cot, median_peak_no_eviction, median_peak_with_eviction,
               p90_peak_with_eviction, median_saved_fraction_vs_no_eviction, share_fits_8k_with_eviction
        FROM inference_summary""")}
    # math, k=1: traces 0, 1, 7, each with its prompt P (the same for all three: "problem N"). plain 386, 107,
    # 6+3000+5 = 3011; no eviction 518, 171, 3011+2+24 = 3037; with eviction 289, 115, and trace 7:
    # step 0 = 3+14+3012 = 3029 (answer 3+14+8 = 25). p90 of 115, 289, 3029: 289 + 0.8 * (3029 - 289);
    # saved against no eviction 229/518, 56/171, 8/3037 (each + P below the line): the median is trace 1's
    [p] = {problem_tokens(golden_cl100k, t) for t in ("golden:0", "golden:1", "golden:7")}
    assert rows[("math", 1)] == (3, p + 386.0, p + 518.0, p + 289.0, pytest.approx(p + 289 + 0.8 * 2740, **APPROX),
                                 pytest.approx(56 / (p + 171), **APPROX), 1.0)
    assert [rows[("all", k)][0] for k in (1, 2, 4, 8)] == [10] * 4


def test_inference_summary_context_budgets(tmp_path):
    """Two traces: A has blocks of 5,000 and 5,000 tokens (5,002 with their markers), mementos of 100 (102), an
    answer of 10; B is tiny. A's plain chain of thought is 2 + 10,000 + 10 = 10,012 and without eviction
    10,012 + 200 + 16 = 10,228: over 8k (8,192), within 16k. With k = 1 its peak is 1 + 204 + 5,002 + 2 = 5,209
    (+ the prompt), within 8k; with k = 2 it is 1 + 204 + 10,004 = 10,209, over. B fits everywhere."""
    from golden_models_data import _trace
    from conftest import write_hub_dir
    from mementos.ingest.pipeline import run_ingest

    a, _ = _trace(0, "math", "alpha", 1, [5000, 5000], [100, 100], words(10, "c"))
    b, _ = _trace(1, "math", "alpha", 1, [10], [2], words(2, "c"))
    db = tmp_path / "budget.duckdb"
    run_ingest(str(write_hub_dir(tmp_path / "src", [a, b])), db, config="default", name="budget", workers=0,
               progress=False)
    assert build(db).ok
    with storage.connect(db) as con:
        got = q(con, "SELECT k, share_fits_8k_plain_cot, share_fits_8k_no_eviction, share_fits_8k_with_eviction, "
                     "share_fits_16k_plain_cot, share_fits_16k_no_eviction, share_fits_16k_with_eviction "
                     "FROM inference_summary WHERE domain = 'all' ORDER BY k")
    assert got == [(1, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0), (2, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0),
                   (4, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0), (8, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0)]


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


def test_compression_by_position(golden):
    rows = {(r[0], r[1]): r[2:] for r in q(golden, "SELECT CASE WHEN is_total THEN 'all' ELSE domain END, position, "
                                                   "blocks, traces, median_ratio_chars FROM compression_by_position")}
    # math: first blocks of traces 0 and 1 (39/199, 19/79), last blocks (19/99, 11/119); trace 0's block 1 of
    # 0..2 sits at 1/2, in the decile (40%, 50%]; trace 7 has one block: 'only'
    assert rows[("math", "first")] == (2, 2, pytest.approx((39 / 199 + 19 / 79) / 2, **APPROX))
    assert rows[("math", "last")] == (2, 2, pytest.approx((19 / 99 + 11 / 119) / 2, **APPROX))
    assert rows[("math", "middle 40-50%")] == (1, 1, pytest.approx(59 / 399, **APPROX))
    assert rows[("math", "only")] == (1, 1, pytest.approx(3 / 5999, **APPROX))
    # science: trace 10's blocks 1..10 of 0..11 fall one in each decile (ceil(10j / 11) = j); trace 9's block 1
    # joins block 5 of trace 10 in (40%, 50%]: 15/79 and 3/19
    assert [rows[("science", f"middle {10 * d}-{10 * d + 10}%")][0] for d in range(10)] == [1, 1, 1, 1, 2, 1, 1, 1, 1, 1]
    assert rows[("science", "middle 40-50%")][2] == pytest.approx((15 / 79 + 3 / 19) / 2, **APPROX)
    assert sum(r[0] for (d, _), r in rows.items() if d == "all") == 29


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
    # the golden blocks are runs of "a": blocks of the same length in a trace are the same text
    assert {t: r["reasons"] for t, r in rows.items()} == {
        "golden:3": "memento_longer_than_block",
        "golden:4": "flagged",
        "golden:5": "duplicate",
        "golden:6": "repeated_blocks",
        "golden:7": "ratio_low",
        "golden:8": "repeated_blocks",  # block 0 has a newline where block 1 has a space
        "golden:10": "too_many_blocks,repeated_blocks",
    }
    assert rows["golden:4"]["issue_codes"] == "block_without_summary,unclosed_block"
    assert rows["golden:5"]["duplicate_of"] == "golden:2"
    assert (rows["golden:10"]["repeated_blocks"], rows["golden:6"]["repeated_blocks"]) == (11, 1)
    # math trace ratios (chars) 117/697, 30/198, 3/5999: on the log scale the median is log(30/198), the MAD
    # log((117/697) / (30/198)) = 0.1025, and 1.4826 * MAD = 0.152 is below the floor ln(2) / 3.5 = 0.198
    assert rows["golden:7"]["ratio_z"] == pytest.approx(math.log((3 / 5999) / (30 / 198)) / (math.log(2) / 3.5),
                                                        rel=1e-9)
    assert rows["golden:7"]["domain_median_ratio_chars"] == pytest.approx(30 / 198, **APPROX)
    # the flagged math trace 4 has no ratio of its own, but its group's median is known: the same
    assert rows["golden:4"]["ratio_chars"] is None
    assert rows["golden:4"]["domain_median_ratio_chars"] == pytest.approx(30 / 198, **APPROX)
    # trace 7's longest block (5,999 chars) against the longest blocks of math traces 0, 1, 7 (399, 119, 5,999):
    # median log 399, MAD log(399 / 119): z = log(5999 / 399) / (1.4826 * log(399 / 119)) = 1.51, not far
    assert rows["golden:7"]["max_block_z"] == pytest.approx(
        math.log(5999 / 399) / (1.4826 * math.log(399 / 119)), rel=1e-9)
    # science blocks per trace 2, 2, 3, 12: median log = (log 2 + log 3) / 2, MAD = (log 3 - log 2) / 2
    med, mad = (math.log(2) + math.log(3)) / 2, (math.log(3) - math.log(2)) / 2
    assert rows["golden:10"]["blocks_z"] == pytest.approx((math.log(12) - med) / (1.4826 * mad), rel=1e-9)
    # code ratios 31/159, 28/78, 31/159: the MAD is 0, so the scale is the IQR / 1.349, with the IQR
    # (log(28/78) - log(31/159)) / 2: trace 3's z is 2 * 1.349 exactly
    assert rows["golden:3"]["ratio_z"] == pytest.approx(2 * 1.349, rel=1e-9)
    # trace 1's answer "42" is an answer
    assert "golden:1" not in rows


@pytest.fixture(scope="module")
def outliers(tmp_path_factory):
    yield from built_connection(tmp_path_factory.mktemp("outl"), ingest_outliers, select=["all_traces+"])


def test_outlier_reasons_on_the_outlier_corpus(outliers):
    rows = by_key(outliers, "SELECT trace_id, reasons, blocks_z, repeated_blocks, mementos_copying_block "
                            "FROM outlier_traces")
    # the short answers "42" and "\boxed{7}" (traces 0, 1) are not empty
    assert {t: r["reasons"] for t, r in rows.items()} == {
        "outl:5": "too_many_blocks", "outl:6": "repeated_blocks", "outl:7": "memento_copies_block",
        "outl:8": "empty_answer", "outl:9": "memento_copies_block", "outl:10": "memento_copies_block"}
    # blocks per trace: eight 3s and a 150: MAD and IQR are 0, so the scale is the floor ln(2) / 3.5
    assert rows["outl:5"]["blocks_z"] == pytest.approx(math.log(150 / 3) * 3.5 / math.log(2), rel=1e-9)
    # block 1 (upper case, double spaces) and block 2 repeat block 0
    assert rows["outl:6"]["repeated_blocks"] == 2
    # 7: the block itself; 9: 80% of it, verbatim; 10: all of it, in lower case (export_summarize's definition)
    assert [rows[f"outl:{i}"]["mementos_copying_block"] for i in (7, 9, 10)] == [1, 1, 1]


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
    # full_alignment and the models it is built from
    yield from built_connection(tmp_path_factory.mktemp("align"), ingest_alignment,
                                select=["segment_digests+", "full_block_digests+"])


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
        (11, 11)]


def test_same_text_collapses_every_unicode_space_as_ingest_does(alignment):
    # NBSP, U+2009, U+3000, tabs and CRLF in the markup's blocks, spaces in the sentences: ingest's own
    # check (str.split) calls the pair equal, and so does the block comparison, block by block
    assert q(alignment, "SELECT link, full_status, blocks_compared, blocks_agreeing, aligned, disagreement "
                        "FROM full_alignment WHERE trace_id = 'align:8'") == [("hash", "ok", 5, 5, True, None)]
    # each block's digest on either side is the md5 of "a a a"
    assert q(alignment, "SELECT DISTINCT text_md5 FROM segment_digests WHERE trace_id = 'align:8' AND kind = 'block' "
                        "UNION SELECT DISTINCT block_md5 FROM full_block_digests WHERE full_trace_id = 'align:full:6'"
             ) == [(hashlib.md5(b"a a a").hexdigest(),)]


WHITESPACE_CLASS = re.compile(r"\[(\\t\\n[^\]']*)\]")  # a character class a model collapses or matches


def test_the_chain_collapses_exactly_what_str_split_splits_on():
    """Every model that collapses whitespace writes out the whitespace class (SQL has no shared function both
    engines read; the class shorthand `\\s` and trim() differ between DuckDB and Spark, so no model uses the
    shorthand, and trim() strips the space alone): every copy is one of two (with the space, and without it
    for the test whether a text needs collapsing), and the one with the space matches exactly the characters
    str.isspace() accepts."""
    texts = {path.stem: path.read_text() for path in MODELS_DIR.glob("*.sql")}
    assert not [name for name, text in texts.items() if "\\s" in text]
    found = {name: WHITESPACE_CLASS.findall(text) for name, text in texts.items()}
    assert sorted(name for name, copies in found.items() if copies) == [
        "full_block_digests", "full_links", "memento_copies", "segment_digests", "trace_text_checks",
        "unsegmented_traces"]
    classes = {c for copies in found.values() for c in copies}
    with_space = [c for c in classes if " " in c]
    assert len(classes) == 2 and len(with_space) == 1 and set(classes) - set(with_space) == {
        with_space[0].replace(" ", "")}
    con = duckdb.connect()
    matched = con.execute(f"SELECT list(c ORDER BY c) FROM range(1, {sys.maxunicode + 1}) AS r(c) "
                          f"WHERE (c < 55296 OR c > 57343) AND regexp_matches(chr(c::INTEGER), '[{with_space[0]}]')"
                          ).fetchone()[0]
    assert matched == [c for c in range(1, sys.maxunicode + 1) if chr(c).isspace()]


def test_repeats_copies_and_empty_answers_count_every_unicode_space(tmp_path):
    """The blocks of UNICODE_SPACE_BLOCKS are one text, "a a a", as ingest splits words: four repeat the
    first; a memento that is its block with other spaces copies it; an answer of U+3000 alone is empty."""
    from conftest import ingest_hub, memento, row
    from golden_models_data import UNICODE_SPACE_BLOCKS

    blocks = [markup for markup, _ in UNICODE_SPACE_BLOCKS]
    db = ingest_hub(tmp_path, [row(memento([(b, f"memento {i}") for i, b in enumerate(blocks)])),
                               row(memento([("x\u00a0y\u2009z", "X y\u3000z")], answer="\u3000"))])
    assert build(db, select=["+trace_text_checks"]).ok
    with storage.connect(db, read_only=True) as con:
        assert q(con, "SELECT trace_id, repeated_blocks, mementos_copying_block, answer_empty FROM trace_text_checks "
                      "ORDER BY trace_id") == [("a:0", 4, 0, False), ("a:1", 0, 1, True)]


def test_full_alignment_links_by_problem(alignment):
    got = q(alignment, f"SELECT {ALIGN_COLUMNS}, blocks_agreeing FROM full_alignment "
                       "WHERE link <> 'hash' ORDER BY trace_id NULLS LAST, full_trace_id")
    assert got == [
        # memento 1 edited in the full response, problem spaced differently: linked by problem, caught at block 1
        ("problem", "align:1", "align:full:1", False, 1, "summary_text", 1),
        # full rows 9 and 10 of problem 9 hold defaults 10's and 9's blocks: linked by the blocks that agree,
        # not by the nearer row (each default's nearest full row is the one at its own source row, the wrong one)
        ("problem", "align:10", "align:full:9", False, None, "response_differs", 3),
        # only a trailing newline differs: every block agrees, the hashes do not
        ("problem", "align:2", "align:full:2", False, None, "response_differs", 1),
        ("unlinked", "align:3", None, None, None, None, None),
        ("unlinked", "align:5", None, None, None, None, None),
        # full row 5 is nearest to default 6 (rows 5 and 6) and default 6 to it; default 7 is left over
        ("problem", "align:6", "align:full:5", False, 0, "block_text", 0),
        ("unlinked", "align:7", None, None, None, None, None),
        ("problem", "align:9", "align:full:10", False, None, "response_differs", 2),
        ("unlinked", None, "align:full:4", None, None, None, None),
        ("unlinked", None, "align:full:7", None, None, None, None),
        ("unlinked", None, "align:full:8", None, None, None, None),
    ]


def test_compression_breakdown_rows(golden):
    assert q(golden, "SELECT count(*) FROM compression_breakdown") == [(3 + 4 + 4 + 1,)]


@pytest.fixture(scope="module")
def retention(tmp_path_factory):
    yield from built_connection(tmp_path_factory.mktemp("ret"), ingest_retention, select=["all_traces+"])


def test_memento_retention(retention):
    """The pairs of golden_models_data.RETENTION_PAIRS, by hand (docs/analyses.md has the definitions).

    pair 0: numbers 120, 4.5, 360 (3; the 3 of `x = 3` is a single digit, counted once); the memento
            keeps 360 (1/3) and the 3 (1/1). Content words counting, apples, basket, holds, grams,
            baskets, total (7); kept total, apples (2/7)
    pair 1: numbers 0.5 (\\frac{1}{2}, one number), 360, 180, 20, 200 (5); kept 360, 180, 20, 200 (4/5).
            Words fraction, adding, remaining (3: "then", "when" are function words, \\frac a command);
            the memento's half, plus: 0/3
    pair 2: no numbers (fractions NULL); words double, check, reasoning, carefully (4); kept reasoning (1/4)
    trace 1 (code): 10 and 81 kept; loop, range, print, squares all kept ("over" is a function word)
    """
    got = q(retention, "SELECT trace_id, block_idx, block_numbers, numbers_kept, numbers_kept_fraction, "
                       "block_single_digits, single_digits_kept, single_digits_kept_fraction, "
                       "block_content_words, content_words_kept, word_recall FROM memento_retention "
                       "WHERE trace_id <> 'ret:2' ORDER BY ALL")
    assert got == [
        ("ret:0", 0, 3, 1, pytest.approx(1 / 3, **APPROX), 1, 1, 1.0, 7, 2, pytest.approx(2 / 7, **APPROX)),
        ("ret:0", 1, 5, 4, 0.8, 0, 0, None, 3, 0, 0.0),
        ("ret:0", 2, 0, 0, None, 0, 0, None, 4, 1, 0.25),
        ("ret:1", 0, 2, 2, 1.0, 0, 0, None, 4, 4, 1.0),
    ]


# (block_numbers, numbers_kept, block_single_digits, single_digits_kept, block_content_words, content_words_kept)
# of each pair of golden_models_data.RETENTION_CASES, by hand
RETENTION_CASE_COUNTS = {
    "sign": (0, 0, 1, 0, 2, 0),  # -7 is not the memento's 7; words subtracting, step
    "thousands": (1, 1, 0, 0, 2, 1),  # 1,000 is 1000; population kept, people not
    "trailing_zero": (1, 1, 0, 0, 2, 1),  # 2.50 is 2.5; price kept, dollars not
    "result_once": (0, 0, 1, 1, 1, 0),  # x = 3 holds one number, 3, not two items
    "fraction_is_decimal": (2, 2, 0, 0, 2, 0),  # \frac{1}{2} is 0.5 and 1/4 is 0.25; half, quarter
    "latex_commands": (0, 0, 0, 0, 1, 1),  # \approx, \alpha, \lambda are no words: only stays
    "single_digits_apart": (1, 0, 1, 1, 3, 2),  # 15 lost, 2 kept apart; take, steps, meters
    "subtraction": (1, 1, 2, 1, 0, 0),  # 12-5 reads 12 and 5 (not -5), then 7; the memento has 12 and 5
}


@pytest.mark.parametrize("idx, case", list(enumerate(RETENTION_CASE_COUNTS)))
def test_memento_retention_case(retention, idx, case):
    assert RETENTION_CASES[idx][0] == case
    got = q(retention, "SELECT block_numbers, numbers_kept, block_single_digits, single_digits_kept, "
                       "block_content_words, content_words_kept FROM memento_retention "
                       f"WHERE trace_id = 'ret:2' AND block_idx = {idx}")
    assert got == [RETENTION_CASE_COUNTS[case]]


def test_retention_summary(retention):
    rows = {r[0]: r[1:] for r in q(retention, "SELECT CASE WHEN is_total THEN 'all' ELSE domain END, pairs, "
                                              "pairs_with_numbers, median_numbers_kept_fraction, "
                                              "share_keeping_every_number, median_single_digits_kept_fraction, "
                                              "median_word_recall FROM retention_summary")}
    # math: fractions 1/3 and 4/5 -> median their mean; single digits 1 (pair 0 only);
    # recalls 2/7, 0, 1/4 -> 1/4; no pair keeps every number
    assert rows["math"] == (3, 2, pytest.approx((1 / 3 + 4 / 5) / 2, **APPROX), 0.0, 1.0, 0.25)
    # all: fractions 1/3, 4/5, 1 (code), and the cases' 1, 1, 1, 0, 1 -> 1; five of eight keep every number;
    # single digits 1 (pair 0), 0, 1, 1, 1/2 (cases) -> 1; recalls 2/7, 0, 1/4, 1 (code), and the cases'
    # 0, 1/2, 1/2, 0, 0, 1, 2/3 -> the 6th of 11, 2/7
    assert rows["all"] == (12, 8, 1.0, pytest.approx(5 / 8, **APPROX), 1.0, pytest.approx(2 / 7, **APPROX))


def test_without_tokens_the_token_measures_are_null(tmp_path):
    db = ingest_golden(tmp_path, with_tokens=False)
    assert build(db).ok
    with storage.connect(db) as con:
        assert q(con, "SELECT count(*), count(ratio_tokens), count(ratio_chars) FROM block_pairs") == [(29, 0, 29)]
        assert q(con, "SELECT count(peak_tokens_with_eviction), count(peak_step) FROM inference_simulation") == [(0, 0)]
        assert q(con, "SELECT median_ratio_tokens IS NULL, median_ratio_chars > 0 FROM domain_compression "
                      "WHERE domain = 'all'") == [(True, True)]
