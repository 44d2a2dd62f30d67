"""The memento parser: one case per defect, with exact segments, issues and offsets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mementos.ingest.parser import (
    BLOCK_END, BLOCK_START, MARKUP, SUMMARY_END, SUMMARY_START, THINK_CLOSE, THINK_OPEN, Issue, Segment,
    parse_response,
)

B, BE, S, SE = BLOCK_START, BLOCK_END, SUMMARY_START, SUMMARY_END


def codes(response):
    return [(i.code, i.char_offset) for i in parse_response(response).issues]


def test_well_formed_two_pairs_exact_segments_and_offsets():
    r = f"<think>\n{B}\n first  block\n{BE}\n{S} memo one {SE}\n{B}b2{BE}{S}m2{SE}\n</think>\n\nThe answer is 4."
    parsed = parse_response(r)
    assert parsed.status == "ok"
    assert parsed.issues == []
    assert parsed.segments == [
        Segment("block", 0, 25, 37, "first  block"),
        Segment("summary", 0, 70, 78, "memo one"),
        Segment("block", 1, 110, 112, "b2"),
        Segment("summary", 1, 142, 144, "m2"),
        Segment("answer", None, 170, 186, "The answer is 4."),
    ]
    for seg in parsed.segments:
        assert r[seg.char_start:seg.char_end] == seg.text


def test_null_response_is_flagged_empty_response():
    assert parse_response(None) == ("flagged", [], [Issue("empty_response", 0, "response is null")])


def test_whitespace_response_is_flagged_empty_response():
    assert codes(" \n\t") == [("empty_response", 0)]


def test_text_without_any_markup_is_unsegmented_reasoning():
    assert parse_response("  just some reasoning\n") == (
        "unsegmented", [Segment("reasoning", None, 2, 21, "just some reasoning")], [])


def test_no_think_but_pairs_and_close():
    r = f"{B}a{BE}{S}s{SE}</think>ans"
    parsed = parse_response(r)
    assert [(s.kind, s.text) for s in parsed.segments] == [("block", "a"), ("summary", "s"), ("answer", "ans")]
    assert codes(r) == [("no_think", 0)]


def test_unclosed_think_has_no_answer():
    r = f"<think>{B}a{BE}{S}s{SE}"
    parsed = parse_response(r)
    assert [s.kind for s in parsed.segments] == ["block", "summary"]
    assert codes(r) == [("unclosed_think", len(r))]


def test_raw_chain_of_thought_is_unsegmented_with_its_reasoning_and_answer():
    r = "<think> Okay, so I think step by step.\n</think>\nx = 2"
    assert parse_response(r) == ("unsegmented", [Segment("reasoning", None, 8, 38, "Okay, so I think step by step."),
                                                 Segment("answer", None, 48, 53, "x = 2")], [])


def test_an_empty_think_section_is_still_flagged_no_blocks():
    assert codes("<think> \n</think>42") == [("no_blocks", 0)]


def test_text_before_think_or_a_missing_opener_stays_flagged():
    assert codes("note <think>raw</think>42") == [("no_blocks", 0)]
    assert codes("raw</think>42") == [("no_think", 0), ("no_blocks", 0)]
    assert codes("<think>raw") == [("no_blocks", 0), ("unclosed_think", 10)]


def test_markup_in_an_unsegmented_answer_is_flagged():
    assert codes("<think>raw</think>42 <think>") == [("no_blocks", 0), ("markup_in_answer", 21)]


def test_block_never_closed_before_its_summary():
    r = f"<think>{B}a{S}s{SE}</think>x"
    parsed = parse_response(r)
    assert [(s.kind, s.block_idx, s.text) for s in parsed.segments] == [
        ("block", 0, "a"), ("summary", 0, "s"), ("answer", None, "x")]
    assert codes(r) == [("unclosed_block", 7)]


def test_truncated_stream_in_a_block():
    r = f"<think>{B}a{BE}{S}s{SE}{B}cut mid"
    parsed = parse_response(r)
    assert parsed.segments[-1] == Segment("block", 1, 84, 91, "cut mid")
    assert codes(r) == [("unclosed_block", 69), ("block_without_summary", 69), ("unclosed_think", 91)]


def test_block_without_summary_before_next_block():
    r = f"<think>{B}a{BE}{B}b{BE}{S}s{SE}</think>x"
    parsed = parse_response(r)
    assert [(s.kind, s.block_idx) for s in parsed.segments] == [
        ("block", 0), ("block", 1), ("summary", 1), ("answer", None)]
    assert codes(r) == [("block_without_summary", 7)]


def test_summary_without_block_gets_its_own_block_idx():
    r = f"<think>{S}s{SE}{B}a{BE}{S}t{SE}</think>x"
    parsed = parse_response(r)
    assert [(s.kind, s.block_idx, s.text) for s in parsed.segments] == [
        ("summary", 0, "s"), ("block", 1, "a"), ("summary", 1, "t"), ("answer", None, "x")]
    assert codes(r) == [("summary_without_block", 7)]


def test_out_of_order_summary_end_inside_block():
    r = f"<think>{B}a{SE}{S}s{SE}</think>x"
    parsed = parse_response(r)
    assert parsed.segments[0] == Segment("block", 0, 22, 23, "a")
    assert codes(r) == [("out_of_order_token", 23)]


def test_empty_block_and_empty_summary():
    r = f"<think>{B} \n {BE}{S}{SE}</think>x"
    parsed = parse_response(r)
    assert parsed.segments[0] == Segment("block", 0, 22, 22, "")
    assert codes(r) == [("empty_block", 7), ("empty_summary", 38)]


def test_markup_in_answer():
    r = f"<think>{B}a{BE}{S}s{SE}</think>x {SE} y"
    parsed = parse_response(r)
    assert parsed.segments[-1].text == f"x {SE} y"
    assert codes(r) == [("markup_in_answer", 79)]


def test_token_lookalikes_are_text():
    r = f"<think>{B}uses <|im_start|> and <thinking>{BE}{S}s{SE}</think><|endoftext|>"
    parsed = parse_response(r)
    assert parsed.status == "ok"
    assert parsed.segments[0].text == "uses <|im_start|> and <thinking>"
    assert parsed.segments[-1].text == "<|endoftext|>"


def test_empty_answer_is_a_segment_and_not_a_defect():
    r = f"<think>{B}a{BE}{S}s{SE}</think>\n"
    parsed = parse_response(r)
    assert parsed.status == "ok"
    assert parsed.segments[-1] == Segment("answer", None, len(r) - 1, len(r) - 1, "")


# Defects whose issue codes and offsets say it all (the segments are those of the cases above).
ISSUES_ONLY = [
    ("whitespace_response_is_flagged_empty_response", " \n\t", [("empty_response", 0)]),
    ("block_without_summary_before_think_close", f"<think>{B}a{BE}</think>x", [("block_without_summary", 7)]),
    ("nested_block_start_inside_block", f"<think>{B}a{B}b{BE}{S}s{SE}</think>x",
     [("block_without_summary", 7), ("nested_token", 23)]),
    ("nested_think_inside_think", f"<think>{B}a{BE}{S}s{SE}<think></think>x", [("nested_token", 69)]),
    ("stray_block_end_between_pairs", f"<think>{B}a{BE}{S}s{SE}{BE}</think>x", [("out_of_order_token", 69)]),
    ("unclosed_summary_before_next_block", f"<think>{B}a{BE}{S}s{B}b{BE}{S}t{SE}</think>x",
     [("unclosed_summary", 36)]),
    ("text_outside_pairs", f"<think>{B}a{BE} stray {S}s{SE}</think>x", [("text_outside_pairs", 37)]),
    ("text_before_think_is_outside_pairs", f"Sure! <think>{B}a{BE}{S}s{SE}</think>x", [("text_outside_pairs", 0)]),
]


@pytest.mark.parametrize("response, expected", [case[1:] for case in ISSUES_ONLY],
                         ids=[case[0] for case in ISSUES_ONLY])
def test_issue_codes_and_offsets(response, expected):
    assert codes(response) == expected


# Property: valid traces built from parts parse back to exactly those parts.
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)
_ws = st.text(alphabet=" \t\r\n", max_size=3)


def _no_markup(s: str) -> bool:
    # Every markup string starts with '<' and ends with '>' and has neither inside,
    # so text free of markup cannot form markup with its neighbouring tokens.
    return not any(m in s for m in MARKUP)


_content = _text.map(lambda s: s.strip(" \t\r\n")).filter(lambda s: s and _no_markup(s))


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(_content, _content), min_size=1, max_size=6), answer=_text.filter(_no_markup),
       pads=st.lists(_ws, min_size=37, max_size=37))
def test_valid_traces_parse_back_to_their_parts(pairs, answer, pads):
    pad = iter(pads)
    parts = [THINK_OPEN]
    for block, summary in pairs:
        parts += [next(pad), B, next(pad), block, next(pad), BE, next(pad), S, next(pad), summary, next(pad), SE]
    parts += [next(pad), THINK_CLOSE, answer]
    response = "".join(parts)
    parsed = parse_response(response)
    assert parsed.status == "ok", parsed.issues
    got = [(s.kind, s.block_idx, s.text) for s in parsed.segments]
    want = [x for i, (b, s) in enumerate(pairs) for x in (("block", i, b), ("summary", i, s))]
    want.append(("answer", None, answer.strip(" \t\r\n")))
    assert got == want
    for seg in parsed.segments:
        assert response[seg.char_start:seg.char_end] == seg.text
