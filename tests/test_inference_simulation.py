"""inference_simulation as bundled: every marker one token, as a Memento model's vocabulary holds it, and
the released vLLM overlay's settings (keep_last_n_blocks, keep_last_block_for_answer, mask_delimiters) from
inference_settings. The count of the markup as cl100k text is golden-tested in test_models_golden.py."""

from __future__ import annotations

import re

import pytest

from golden_models_data import inference_settings_dir, ingest_golden
from mementos.foundation import storage
from mementos.ingest.pipeline import run_ingest
from mementos.sample.generator import write_sample
from mementos.warehouse.engine import build
from mementos.warehouse.models import MODELS_DIR

APPROX = dict(rel=1e-9, abs=1e-12)
SIMULATION = ["all_traces", "analysed_traces", "trace_compression", "block_pairs", "inference_settings",
              "inference_simulation", "inference_summary"]
THINK_TAG = re.compile(r"</?think>")
MEMENTO_MARKER = re.compile(r"<\|(?:block|summary)_(?:start|end)\|>")


def q(con, sql):
    return con.execute(sql).fetchall()


def simulated(tmp, settings=None):
    """The golden corpus with the simulation built, with `settings` rows replacing the bundled ones."""
    db = ingest_golden(tmp)
    models = [MODELS_DIR, inference_settings_dir(tmp / "models", settings)] if settings else None
    assert build(db, select=SIMULATION, models_dir=models).ok
    return db


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    with storage.connect(simulated(tmp_path_factory.mktemp("bundled"))) as con:
        yield con


def test_one_token_per_marker(golden):
    """Trace 0: blocks 100, 200, 50 tokens, mementos 20, 30, 10, answer 30, prompt P = 3. Every marker is one
    token: block j weighs b + 2 (its delimiters), memento j m + 2, <think> and </think> 1 each: 2 + 4 * 3 = 14
    markup tokens. An evicted block leaves its two delimiters (mask_delimiters false).

    plain chain of thought: P + 1 + 350 + 1 + 30 = P + 382;  no eviction: P + 382 + 60 + 12 = P + 454
    blocks with markers 102, 202, 52; mementos 22, 32, 12
    step j = P + 1 + mementos 0..j + blocks j-k+1..j + 2 per evicted block;  answer adds 1 + 30
    k=1: 1+22+102=125, 1+54+202+2=259, 1+66+52+4=123, answer 1+66+6+31=104        -> P + 259 at step 1
    k=2: 125, 1+54+304=359, 1+66+254+2=323, answer 1+66+52+4+31=154                -> P + 359 at step 1
    k=4: 125, 359, 1+66+356=423, answer 1+66+356+31=454                            -> P + 454 at the answer
    """
    got = q(golden, "SELECT k, keep_last_n_blocks, blocks_evicted, markup_tokens, peak_tokens_plain_cot, "
                    "peak_tokens_no_eviction, peak_tokens_with_eviction, peak_step FROM inference_simulation "
                    "WHERE trace_id = 'golden:0' ORDER BY k")
    assert got == [(1, 0, 3, 14, 385, 457, 262, 1), (2, 1, 2, 14, 385, 457, 362, 1),
                   (4, 3, 0, 14, 385, 457, 457, 3), (8, 7, 0, 14, 385, 457, 457, 3)]


def test_the_papers_two_measures_per_trace(golden):
    """Trace 0 at k = 1 with P = 0 (the prompt adds P per generated token: 382 plain, 454 with mementos).
    A segment of L tokens on a context of C costs L*C + L(L+1)/2.
    <think> 1; block 0 (102 on 1) 102+5,253; memento 0 (22 on 103) 2,266+253; block 1 (202 on 1+22+2 = 25)
    5,050+20,503; memento 1 (32 on 227) 7,264+528; block 2 (52 on 1+54+4 = 59) 3,068+1,378;
    memento 2 (12 on 111) 1,332+78; answer (31 on 1+66+6 = 73) 2,263+496                   -> 49,835
    plain: 382*383/2 = 73,153"""
    [(peak_ratio, area, area_plain, area_ratio)] = q(golden, """
        SELECT peak_ratio_vs_plain_cot, kv_area_with_eviction, kv_area_plain_cot, kv_area_ratio_vs_plain_cot
        FROM inference_simulation WHERE trace_id = 'golden:0' AND k = 1""")
    assert (area, area_plain) == (49_835 + 454 * 3, 73_153 + 382 * 3)
    assert peak_ratio == pytest.approx(262 / 385, **APPROX)
    assert area_ratio == pytest.approx((49_835 + 454 * 3) / (73_153 + 382 * 3), **APPROX)


def test_keeping_the_last_block_for_the_answer(tmp_path):
    """Trace 0 (P = 3). At k = 1 the answer is written on block 2 in full: 1 + 66 + 52 + 4 = 123 tokens before
    it (73 without), one block fewer evicted, and the answer's KV area 31 * 123 + 496 where it was
    31 * 73 + 496 = 2,759. At k = 2 the option changes nothing: the overlay reads it with keep_last_n_blocks 0
    only, and block 2 is kept anyway."""
    db = simulated(tmp_path, [(0, True, False, 1, 1), (1, True, False, 1, 1)])
    with storage.connect(db) as con:
        got = q(con, "SELECT k, blocks_evicted, peak_tokens_with_eviction, kv_area_with_eviction "
                     "FROM inference_simulation WHERE trace_id = 'golden:0' ORDER BY k")
    assert got[0] == (1, 2, 262, 49_835 - 2_759 + 31 * 123 + 496 + 454 * 3)
    assert got[1][:3] == (2, 2, 362)


def test_masking_the_delimiters_evicts_them_with_their_block(tmp_path):
    """Trace 0 (P = 3), k = 1, mask_delimiters true: an evicted block leaves nothing. Steps 1+22+102 = 125,
    1+54+202 = 257, 1+66+52 = 119, answer 1+66+31 = 98: peak P + 257. KV area with P = 0: 1 + 5,355 + 2,519
    + (202 on 23) 25,149 + (32 on 225) 7,728 + (52 on 55) 4,238 + (12 on 107) 1,362 + (31 on 67) 2,573."""
    db = simulated(tmp_path, [(0, False, True, 1, 1)])
    with storage.connect(db) as con:
        got = q(con, "SELECT blocks_evicted, peak_tokens_with_eviction, kv_area_with_eviction "
                     "FROM inference_simulation WHERE trace_id = 'golden:0'")
    assert got == [(3, 260, 48_925 + 454 * 3)]


@pytest.mark.parametrize("traces", [300, pytest.param(3000, marks=pytest.mark.slow)])
def test_the_equation_holds_on_every_trace_of_the_demo_sample(tmp_path, traces):
    """docs/inference_simulation.md: without eviction the context is P + Σb + Σm + a + the markup, with the
    markup the markers the response holds, one token each; the plain chain of thought drops the mementos
    and their markers. The markers are counted here in the response text, apart from the parser. The demo
    sample is `make demo`'s (seed 7; 3,000 traces in the slow run)."""
    write_sample(tmp_path / "sample", traces, seed=7)
    db = tmp_path / "w.duckdb"
    run_ingest(str(tmp_path / "sample"), db, config="default", name="sample", workers=0, progress=False)
    assert build(db, select=SIMULATION).ok
    with storage.connect(db) as con:
        rows = q(con, """
            SELECT t.response, s.problem_tokens, s.markup_tokens, s.peak_tokens_no_eviction, s.peak_tokens_plain_cot,
                   (SELECT sum(n_tokens) FROM segments AS g WHERE g.trace_id = s.trace_id) AS segment_tokens,
                   (SELECT sum(n_tokens) FROM segments AS g
                    WHERE g.trace_id = s.trace_id AND g.kind IN ('block', 'answer')) AS plain_tokens
            FROM inference_simulation AS s JOIN traces AS t ON t.trace_id = s.trace_id""")
        [(analysed,)] = q(con, "SELECT count(*) FROM trace_compression")
    assert len(rows) == 4 * analysed
    for response, prompt, markup, no_eviction, plain, segment_tokens, plain_tokens in rows:
        think_tags, markers = len(THINK_TAG.findall(response)), len(MEMENTO_MARKER.findall(response))
        assert markup == think_tags + markers
        assert no_eviction == prompt + segment_tokens + markup
        assert plain == prompt + plain_tokens + think_tags

