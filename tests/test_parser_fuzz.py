"""Fuzzing the parser and the full-config checks: they never raise, and their output is self-consistent.

Every property runs twice: a few hundred examples in `make test`, and thousands
in `make test-slow` (marked `slow`). tests/test_parser.py has the exact cases and
the round-trip property for valid traces; this file throws everything else at it.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mementos.ingest.full_config import FULL_ISSUE_CODES, check_full_row, collapse
from mementos.ingest.parser import (
    BLOCK_END, BLOCK_START, ISSUE_CODES, MARKUP, MARKUP_IN_ANSWER, SUMMARY_END, SUMMARY_START, THINK_CLOSE,
    THINK_OPEN, WHITESPACE, parse_response,
)

FAST = 300  # the never-raises properties
FAST_BUILT = 150  # properties over built traces (slower to generate; test_parser.py has 300 more)
SLOW = 6000

_SLOW_SETTINGS = settings(max_examples=SLOW, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fuzz(fast_examples=FAST, **strategies):
    """Turn a property into (fast test, slow test) with the same strategies."""
    def wrap(fn):
        fast = settings(max_examples=fast_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])(
            given(**strategies)(fn))
        slow = pytest.mark.slow(_SLOW_SETTINGS(given(**strategies)(fn)))
        return fast, slow
    return wrap


# --- strategies --------------------------------------------------------------------------------

_no_surrogates = st.characters(blacklist_categories=("Cs",))
# Characters that are easy to get wrong: NUL, BOM, separators that are whitespace to
# str.split() but not to the parser, combining marks, RTL marks, the last code point
# of every interesting plane, and pieces of the markup itself.
_tricky = st.sampled_from([
    "\x00", "\ufeff", "\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\xa0", "\u3000", "\u200b", "\u0301",
    "\u202e", "\U0001F600", "\U0001F469\u200d\U0001F4BB", "\U00020000", "\U000E0001", "\U000F0000",
    "\U0010FFFF", "\uFFFD", "<", ">", "|", "/", "<|", "|>", "</", "<think", "think>", "<|block_start",
    "block_end|>", "<|summary", "<|im_start|>", "<thinking>", "</thinking>",
])
_planes = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, blacklist_categories=("Cs",))
_char = st.one_of(_no_surrogates, _planes)
_text = st.one_of(st.text(_char, max_size=30), _tricky)
_ws = st.text(alphabet=WHITESPACE, min_size=1, max_size=4)
_markup = st.sampled_from(MARKUP)
# Arbitrary mixtures: markup strings, text and whitespace in any order and number.
_mixture = st.lists(st.one_of(_markup, _markup, _text, _ws), max_size=40).map("".join)
# Fully arbitrary text of every plane, including lone surrogates (Arrow never gives
# those, but the parser is plain Python and must not care).
_anything = st.one_of(st.text(max_size=200), st.text(_char, max_size=200), _mixture,
                      st.text(st.characters(), max_size=50))


def check_invariants(response: str | None) -> None:
    parsed = parse_response(response)
    n = len(response or "")
    assert parsed.status in ("ok", "flagged", "unsegmented")
    assert (parsed.status == "flagged") == bool(parsed.issues)
    has_markup = any(m in (response or "") for m in MARKUP)
    if response is not None and response.strip(WHITESPACE) and not has_markup:
        assert parsed.status == "unsegmented"  # no markup at all: reasoning, never flagged
    if parsed.status == "unsegmented":
        assert not any(m in response for m in MARKUP[2:])  # no block or summary markup
        assert [s.kind for s in parsed.segments] in (["reasoning"], ["reasoning", "answer"])
        assert parsed.segments[0].text
    for issue in parsed.issues:
        assert issue.code in ISSUE_CODES
        assert 0 <= issue.char_offset <= n
        assert isinstance(issue.detail, str) and issue.detail
    assert [i.char_offset for i in parsed.issues] == sorted(i.char_offset for i in parsed.issues)
    kinds = [s.kind for s in parsed.segments]
    assert kinds.count("answer") <= 1 and ("answer" not in kinds or kinds[-1] == "answer")
    previous_end = 0
    for seg in parsed.segments:
        assert 0 <= seg.char_start <= seg.char_end <= n
        assert seg.char_start >= previous_end  # segments are in order and never overlap
        previous_end = seg.char_end
        assert response[seg.char_start:seg.char_end] == seg.text
        assert seg.text == seg.text.strip(WHITESPACE)
        assert (seg.block_idx is None) == (seg.kind in ("answer", "reasoning"))
        if seg.kind != "answer" or not any(i.code == MARKUP_IN_ANSWER for i in parsed.issues):
            assert not any(m in seg.text for m in MARKUP), seg
    blocks = [s.block_idx for s in parsed.segments if s.kind == "block"]
    assert blocks == sorted(set(blocks))  # each block index once, ascending
    assert parsed.n_blocks == len(blocks)


# --- properties --------------------------------------------------------------------------------

@fuzz(response=_anything)
def _never_raises_and_offsets_hold(response):
    check_invariants(response)


test_arbitrary_text_never_raises, test_arbitrary_text_never_raises_slow = _never_raises_and_offsets_hold


@fuzz(parts=st.lists(st.one_of(_markup, _text, _ws), max_size=60), prefix_think=st.booleans())
def _mixtures(parts, prefix_think):
    response = (THINK_OPEN if prefix_think else "") + "".join(parts)
    check_invariants(response)


test_markup_mixtures_hold_invariants, test_markup_mixtures_hold_invariants_slow = _mixtures


@fuzz(reasoning=st.text(_char, max_size=200), answer=st.text(_char, max_size=50), lead=_ws)
def _think_without_pairs(reasoning, answer, lead):
    """A think section with no block or summary markup: unsegmented, its reasoning and answer cut out exactly."""
    assume(not any(m in reasoning + answer for m in MARKUP) and reasoning.strip(WHITESPACE))
    response = f"{lead}{THINK_OPEN}{reasoning}{THINK_CLOSE}{answer}"
    parsed = parse_response(response)
    assert parsed.status == "unsegmented" and not parsed.issues
    assert [(s.kind, s.text) for s in parsed.segments] == [("reasoning", reasoning.strip(WHITESPACE)),
                                                          ("answer", answer.strip(WHITESPACE))]
    check_invariants(response)


test_a_think_section_without_pairs_is_unsegmented, test_a_think_section_without_pairs_is_unsegmented_slow = \
    _think_without_pairs


# Valid traces (as in test_parser.py) but with contents of every plane and tricky
# characters, then one markup token deleted or one extra token inserted: always flagged.
_content = st.lists(st.one_of(st.text(_char, min_size=1, max_size=20), _tricky), min_size=1, max_size=4).map(
    "".join).map(lambda s: s.strip(WHITESPACE)).filter(lambda s: s and not any(m in s for m in MARKUP))
_answer = st.text(_char, max_size=30).filter(lambda s: not any(m in s for m in MARKUP))


def _valid(pairs, answer, sep):
    parts = [THINK_OPEN]
    for block, summary in pairs:
        parts += [sep, BLOCK_START, sep, block, sep, BLOCK_END, sep, SUMMARY_START, sep, summary, sep, SUMMARY_END]
    parts += [sep, THINK_CLOSE, sep, answer]
    return parts


@fuzz(FAST_BUILT, pairs=st.lists(st.tuples(_content, _content), min_size=1, max_size=5), answer=_answer,
      sep=st.text(alphabet=WHITESPACE, max_size=2))
def _valid_pairs_every_plane(pairs, answer, sep):
    response = "".join(_valid(pairs, answer, sep))
    parsed = parse_response(response)
    assert parsed.status == "ok", parsed.issues
    want = [x for i, (b, s) in enumerate(pairs) for x in (("block", i, b), ("summary", i, s))]
    want.append(("answer", None, answer.strip(WHITESPACE)))
    assert [(s.kind, s.block_idx, s.text) for s in parsed.segments] == want
    check_invariants(response)


test_valid_pairs_of_every_plane_parse_ok, test_valid_pairs_of_every_plane_parse_ok_slow = _valid_pairs_every_plane


@fuzz(FAST_BUILT, pairs=st.lists(st.tuples(_content, _content), min_size=1, max_size=4), answer=_answer,
      sep=st.text(alphabet=WHITESPACE, max_size=2), data=st.data())
def _one_token_deleted(pairs, answer, sep, data):
    parts = _valid(pairs, answer, sep)
    token_at = [i for i, p in enumerate(parts) if p in MARKUP]
    drop = data.draw(st.sampled_from(token_at))
    response = "".join(parts[:drop] + parts[drop + 1:])
    parsed = parse_response(response)
    assert parsed.status == "flagged", (response, parsed)
    check_invariants(response)


test_deleting_any_token_flags, test_deleting_any_token_flags_slow = _one_token_deleted


@fuzz(FAST_BUILT, pairs=st.lists(st.tuples(_content, _content), min_size=1, max_size=4), answer=_answer,
      sep=st.text(alphabet=WHITESPACE, max_size=2), token=_markup, data=st.data())
def _one_token_inserted(pairs, answer, sep, token, data):
    parts = _valid(pairs, answer, sep)
    at = data.draw(st.integers(0, len(parts)))
    response = "".join(parts[:at] + [token] + parts[at:])
    parsed = parse_response(response)
    assert parsed.status == "flagged", (response, parsed)
    check_invariants(response)


test_inserting_any_token_flags, test_inserting_any_token_flags_slow = _one_token_inserted


# --- huge and odd inputs -----------------------------------------------------------------------

def test_none_and_whitespace_only_are_flagged():
    for response in (None, "", " ", "\t\r\n", WHITESPACE * 1000):
        check_invariants(response)
        assert parse_response(response).issues[0].code == "empty_response"


def test_nul_bytes_are_text():
    response = _valid([("a\x00b", "\x00")], "\x00", "\n")
    parsed = parse_response("".join(response))
    assert parsed.status == "ok"
    assert [s.text for s in parsed.segments] == ["a\x00b", "\x00", "\x00"]


def test_lone_surrogates_are_text():
    # Arrow never hands these over (ingest rejects invalid UTF-8 first), but the parser must not care.
    response = "".join(_valid([("\ud800 a", "\udfff")], "\udbff\udc00", " "))
    parsed = parse_response(response)
    assert parsed.status == "ok" and [s.text for s in parsed.segments] == ["\ud800 a", "\udfff", "\udbff\udc00"]
    check_invariants(response)
    check_invariants("\ud800" * 1000 + THINK_OPEN)


def test_huge_inputs_parse_fast():
    # ~5 MB each: long valid trace, dense markup soup, and a sea of '<' that never forms a token.
    pair = ("x\x00\U0001F600 " * 300, "memo " * 50)
    valid = "".join(_valid([pair] * 3400, "42", "\n"))
    assert len(valid) > 5_000_000
    parsed = parse_response(valid)
    assert parsed.status == "ok" and parsed.n_blocks == 3400
    check_invariants(valid)
    soup = ("".join(MARKUP) + " é ") * (5_000_000 // 80)
    check_invariants(soup)
    check_invariants("<" * 5_000_000)
    check_invariants(THINK_OPEN + BLOCK_START + "y" * 5_000_000)


# --- full config -------------------------------------------------------------------------------

_sentence = st.one_of(st.none(), _text, _ws)
_range = st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(-3, 12)), max_size=3),
                   st.tuples(st.integers(-(2 ** 63), 2 ** 63 - 1), st.integers(-(2 ** 63), 2 ** 63 - 1)).map(list))
_response = st.one_of(st.none(), _mixture, st.text(_char, max_size=100))


@fuzz(response=_response, sentences=st.one_of(st.none(), st.lists(_sentence, max_size=10)),
      blocks=st.one_of(st.none(), st.lists(_range, max_size=6)),
      summaries=st.one_of(st.none(), st.lists(st.one_of(st.none(), _text), max_size=6)))
def _full_row_never_raises(response, sentences, blocks, summaries):
    checked = check_full_row(response, sentences, blocks, summaries)
    assert checked.status in ("ok", "flagged")
    assert (checked.status == "flagged") == bool(checked.issues)
    assert all(i.code in FULL_ISSUE_CODES and i.detail for i in checked.issues)
    assert [b.block_idx for b in checked.blocks] == list(range(len(blocks or [])))
    for b in checked.blocks:
        if b.text is not None:
            assert 0 <= b.sentence_start <= b.sentence_end < len(sentences)
            assert b.text == " ".join(s or "" for s in sentences[b.sentence_start:b.sentence_end + 1])


test_full_row_checks_never_raise, test_full_row_checks_never_raise_slow = _full_row_never_raises


_sentence_text = _content.map(lambda s: " ".join(s.split())).filter(bool)


@fuzz(FAST_BUILT, blocks=st.lists(st.tuples(st.lists(_sentence_text, min_size=1, max_size=3), _sentence_text),
                      min_size=1, max_size=4))
def _consistent_full_rows_are_ok(blocks):
    sentences, ranges, summaries, pairs = [], [], [], []
    for block_sentences, summary in blocks:
        ranges.append([len(sentences), len(sentences) + len(block_sentences) - 1])
        sentences += block_sentences
        summaries.append(summary)
        pairs.append((" ".join(block_sentences), summary))
    response = "".join(_valid(pairs, "done", "\n"))
    assume(parse_response(response).status == "ok")
    checked = check_full_row(response, sentences, ranges, summaries)
    assert checked.status == "ok", checked.issues
    assert [collapse(b.text) for b in checked.blocks] == [collapse(p[0]) for p in pairs]


test_consistent_full_rows_are_ok, test_consistent_full_rows_are_ok_slow = _consistent_full_rows_are_ok
