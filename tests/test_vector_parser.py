"""The fast path (ingest/vector_parser.py) against the reference parser (ingest/parser.py).

For every response the fast path takes, both must give the same segments: kind,
block index, character offsets, text and word count; and a response the
reference finds defective is never taken. Batches are Arrow arrays built from
generated texts, sliced so that they start at a non-zero offset as ingest's do.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mementos.foundation.catalog import store_schemas
from mementos.ingest.flatten import BatchOrigin, content_hashes, flatten_default
from mementos.ingest.parser import (
    BLOCK_END, BLOCK_START, MARKUP, SUMMARY_END, SUMMARY_START, THINK_CLOSE, THINK_OPEN, WHITESPACE, parse_response,
)
from mementos.ingest.vector_parser import _WIDE_SPACE_BELOW, _set_bits_in_ranges, _space_mask, parse_well_formed
from test_parser_fuzz import _answer, _content, _mixture, _text, _valid

KINDS = ("block", "summary", "answer")


def fast_segments(fast, i: int, response: str) -> list[tuple]:
    at = np.flatnonzero(fast.row == i)
    return [(KINDS[fast.kind[j]], None if fast.block_idx[j] < 0 else int(fast.block_idx[j]),
             int(fast.char_start[j]), int(fast.char_end[j]), int(fast.n_words[j])) for j in at]


def reference_segments(response: str) -> list[tuple]:
    return [(s.kind, s.block_idx, s.char_start, s.char_end, len(s.text.split()))
            for s in parse_response(response).segments]


def batch_of(responses: list[str | None]) -> pa.Array:
    """The responses as an Arrow string array that starts at offset 1 inside its buffers."""
    return pa.array(["<think>not in the batch"] + responses, pa.string()).slice(1)


def assert_agrees(responses: list[str | None]) -> np.ndarray:
    fast = parse_well_formed(batch_of(responses))
    assert fast.response_chars.tolist() == [len(r or "") for r in responses]
    texts = iter(fast.texts())
    for i, response in enumerate(responses):
        if not fast.ok[i]:
            assert not np.any(fast.row == i)
            continue
        assert parse_response(response).status == "ok", response
        assert fast_segments(fast, i, response) == reference_segments(response), response
        for seg in parse_response(response).segments:
            assert next(texts) == seg.text
    return fast.ok


# --- exact cases ---------------------------------------------------------------------------------

def test_a_batch_of_one_well_formed_one_flawed_one_null_one_empty_takes_only_the_first():
    good = "<think>\n<|block_start|>a b<|block_end|>\n<|summary_start|>s<|summary_end|>\n</think>\n42"
    flawed = "<think><|block_start|>a b<|summary_start|>s<|summary_end|></think>42"
    assert assert_agrees([good, flawed, None, ""]).tolist() == [True, False, False, False]


def test_offsets_count_code_points_not_bytes():
    response = "<think><|block_start|> é中😀 x <|block_end|><|summary_start|>ß<|summary_end|></think> ∑ "
    fast = parse_well_formed(batch_of([response]))
    assert fast_segments(fast, 0, response) == [("block", 0, 23, 28, 2), ("summary", 0, 59, 60, 1),
                                                 ("answer", None, 84, 85, 1)]
    assert fast_segments(fast, 0, response) == reference_segments(response)


def test_wide_spaces_split_words_as_str_split_does():
    block = "a\u3000b\u00a0c\u2028d\u0085e\x1cf"
    response = f"<think><|block_start|>{block}<|block_end|><|summary_start|>s<|summary_end|></think>"
    fast = parse_well_formed(batch_of([response]))
    assert fast.n_words.tolist() == [6, 1, 0]


def test_every_wide_space_of_unicode_is_known():
    assert all(not chr(c).isspace() for c in range(_WIDE_SPACE_BELOW, sys.maxunicode + 1))


def test_the_ascii_space_mask_is_str_isspace():
    assert _space_mask(np.arange(128, dtype=np.uint8)).tolist() == [chr(c).isspace() for c in range(128)]


def test_a_whitespace_gap_longer_than_the_fast_path_looks_is_left_to_the_reference():
    response = ("<think><|block_start|>a<|block_end|>" + "\n" * 40 +
                "<|summary_start|>s<|summary_end|></think>x")
    assert parse_response(response).status == "ok"
    assert assert_agrees([response]).tolist() == [False]


def test_a_token_cut_by_the_end_of_its_response_is_text():
    cut = "<think><|block_start|>a<|block_end|><|summary_start|>s<|summary_end|></think"
    whole = "<think><|block_start|>b<|block_end|><|summary_start|>t<|summary_end|></think>"
    assert assert_agrees([cut, ">" + whole[1:], whole]).tolist() == [False, False, True]


def test_flatten_mixes_both_paths_in_row_order():
    good = "<think><|block_start|>one two<|block_end|><|summary_start|>s<|summary_end|></think>ans"
    flawed = "<think><|block_start|>x<|block_end|></think>y"
    batch = pa.table({"problem": ["p1", "p2", "p3"], "response": [good, flawed, good]})
    flat = flatten_default(batch, BatchOrigin("d", "r", "f.parquet", 10), store_schemas(), with_tokens=False)
    rows = flat.tables["traces"].to_pylist()
    assert [r["status"] for r in rows] == ["ok", "flagged", "ok"]
    assert [[(s["kind"], s["block_idx"], s["char_start"], s["char_end"], s["n_words"]) for s in r["segments"]]
            for r in rows] == [
        [("block", 0, 22, 29, 2), ("summary", 0, 59, 60, 1), ("answer", None, 83, 86, 1)],
        [("block", 0, 22, 23, 1), ("answer", None, 44, 45, 1)],
        [("block", 0, 22, 29, 2), ("summary", 0, 59, 60, 1), ("answer", None, 83, 86, 1)],
    ]
    assert [i["code"] for i in rows[1]["issues"]] == ["block_without_summary"]
    assert (flat.ok, flat.flagged, flat.counts["segments"], flat.counts["blocks"]) == (2, 1, 8, 3)


def test_unsegmented_responses_are_left_to_the_reference_and_flattened_as_reasoning():
    raw = "<think> one two three </think> 42"
    plain = "no markup at all"
    good = "<think><|block_start|>b<|block_end|><|summary_start|>s<|summary_end|></think>a"
    assert assert_agrees([raw, plain, good]).tolist() == [False, False, True]
    batch = pa.table({"problem": ["p"] * 3, "response": [raw, good, plain]})
    flat = flatten_default(batch, BatchOrigin("d", "r", "f.parquet", 0), store_schemas(), with_tokens=False)
    rows = flat.tables["traces"].to_pylist()
    assert [r["status"] for r in rows] == ["unsegmented", "ok", "unsegmented"]
    assert [(s["kind"], s["char_start"], s["char_end"], s["n_words"]) for s in rows[0]["segments"]] == [
        ("reasoning", 8, 21, 3), ("answer", 31, 33, 1)]
    assert [(s["kind"], s["char_start"], s["char_end"]) for s in rows[2]["segments"]] == [("reasoning", 0, 16)]
    assert (flat.ok, flat.unsegmented, flat.flagged, rows[0]["issues"]) == (1, 2, 0, [])


def test_content_hash_tells_null_from_empty_and_reads_sliced_columns():
    problems = pa.array(["skip", None, "", "p", "p"], pa.string()).slice(1)
    responses = pa.array(["skip", "", None, "r", "r"], pa.string()).slice(1)
    h = content_hashes(problems, responses)
    assert len(set(h[:3])) == 3 and h[2] == h[3] and len(h[0]) == 32


# --- properties ----------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=80), st.lists(st.integers(0, 80), max_size=12))
def test_set_bits_in_ranges_counts_as_count_nonzero(bits, cuts):
    bits = np.array(bits, bool)
    cuts = sorted(min(c, len(bits)) for c in cuts)
    start, end = np.array(cuts[0::2][:len(cuts) // 2], np.int64), np.array(cuts[1::2], np.int64)
    want = [np.count_nonzero(bits[a:b]) for a, b in zip(start, end)]
    assert _set_bits_in_ranges(bits, start, end).tolist() == want


_sep = st.text(alphabet=WHITESPACE, max_size=3)
_pairs = st.lists(st.tuples(_content, _content), min_size=1, max_size=5)
_valid_trace = st.builds(lambda pairs, answer, sep: "".join(_valid(pairs, answer, sep)), _pairs, _answer, _sep)


@st.composite
def _damaged_trace(draw):
    parts = _valid(draw(_pairs), draw(_answer), draw(_sep))
    at = draw(st.integers(0, len(parts)))
    how = draw(st.sampled_from(["insert", "delete", "replace", "text", "whitespace"]))
    tokens = [i for i, p in enumerate(parts) if p in MARKUP]
    if how == "insert":
        parts.insert(at, draw(st.sampled_from(MARKUP)))
    elif how == "delete":
        del parts[draw(st.sampled_from(tokens))]
    elif how == "replace":  # the same number of tokens, one of them wrong
        i = draw(st.sampled_from(tokens))
        parts[i] = draw(st.sampled_from([m for m in MARKUP if m != parts[i]]))
    elif how == "text":
        parts.insert(at, draw(_text))
    else:
        parts.insert(at, draw(st.text(alphabet=WHITESPACE + "\x0b\x0c\u3000", min_size=10, max_size=40)))
    return "".join(parts)


_response = st.one_of(_valid_trace, _damaged_trace(), _mixture, st.none(),
                      st.sampled_from(["", " ", THINK_OPEN + THINK_CLOSE, THINK_OPEN + BLOCK_START + BLOCK_END +
                                       SUMMARY_START + SUMMARY_END + THINK_CLOSE]))
_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=300, **_SETTINGS)
@given(st.lists(_response, min_size=1, max_size=8))
def test_every_response_the_fast_path_takes_parses_the_same_by_the_reference(responses):
    assert_agrees(responses)


@settings(max_examples=150, **_SETTINGS)
@given(st.lists(_valid_trace, min_size=1, max_size=6))
def test_the_fast_path_takes_every_generated_well_formed_trace(responses):
    assert assert_agrees(responses).all()


@pytest.mark.slow
@settings(max_examples=2000, **_SETTINGS)
@given(st.lists(_response, min_size=1, max_size=8))
def test_every_response_the_fast_path_takes_parses_the_same_by_the_reference_slow(responses):
    assert_agrees(responses)
