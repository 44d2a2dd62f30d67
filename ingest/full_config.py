"""Checks for a row of the `full` config: sentence-level blocks against its own markup.

A full row is well-formed when its `blocks` are valid, ascending,
non-overlapping inclusive sentence ranges, there is one summary per block, and
the blocks (sentences joined by one space) and summaries equal the blocks and
summaries that `parse_response` finds in the row's `response`, once runs of
whitespace are collapsed to one space.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from mementos.ingest.parser import parse_response

BLOCK_RANGE_INVALID = "block_range_invalid"
BLOCK_RANGES_OVERLAP = "block_ranges_overlap"
BLOCK_RANGES_OUT_OF_ORDER = "block_ranges_out_of_order"
SUMMARY_COUNT_MISMATCH = "summary_count_mismatch"
MARKUP_MISMATCH = "markup_mismatch"
FULL_ISSUE_CODES = (BLOCK_RANGE_INVALID, BLOCK_RANGES_OVERLAP, BLOCK_RANGES_OUT_OF_ORDER,
                    SUMMARY_COUNT_MISMATCH, MARKUP_MISMATCH)


class FullBlock(NamedTuple):
    block_idx: int
    sentence_start: int | None
    sentence_end: int | None
    text: str | None  # None when the range is invalid
    summary: str | None


class FullIssue(NamedTuple):
    code: str
    detail: str


class CheckedFullRow(NamedTuple):
    status: str
    blocks: list[FullBlock]
    issues: list[FullIssue]


def collapse(text: str | None) -> str:
    return " ".join((text or "").split())


def check_full_row(
    response: str | None,
    sentences: Sequence[str | None] | None,
    blocks: Sequence[Sequence[int] | None] | None,
    summaries: Sequence[str | None] | None,
) -> CheckedFullRow:
    sentences = [s or "" for s in (sentences or [])]
    ranges = list(blocks or [])
    summaries = list(summaries or [])
    issues: list[FullIssue] = []
    out: list[FullBlock] = []
    previous: tuple[int, int] | None = None
    for idx, pair in enumerate(ranges):
        summary = summaries[idx] if idx < len(summaries) else None
        if pair is None or len(pair) != 2 or pair[0] is None or pair[1] is None:
            issues.append(FullIssue(BLOCK_RANGE_INVALID, f"block {idx}: range {pair!r} is not a [start, end] pair"))
            out.append(FullBlock(idx, None, None, None, summary))
            continue
        start, end = int(pair[0]), int(pair[1])
        if not 0 <= start <= end < len(sentences):
            issues.append(FullIssue(
                BLOCK_RANGE_INVALID,
                f"block {idx}: range [{start}, {end}] is outside 0..{len(sentences) - 1} or reversed",
            ))
            out.append(FullBlock(idx, start, end, None, summary))
            continue
        if previous is not None:
            if start < previous[0]:
                issues.append(FullIssue(BLOCK_RANGES_OUT_OF_ORDER,
                                        f"block {idx}: range [{start}, {end}] starts before block {idx - 1}'s"))
            elif start <= previous[1]:
                issues.append(FullIssue(BLOCK_RANGES_OVERLAP,
                                        f"block {idx}: range [{start}, {end}] overlaps block {idx - 1}'s"))
        previous = (start, end)
        out.append(FullBlock(idx, start, end, " ".join(sentences[start:end + 1]), summary))
    if len(summaries) != len(ranges):
        issues.append(FullIssue(SUMMARY_COUNT_MISMATCH, f"{len(ranges)} blocks but {len(summaries)} summaries"))
    mismatch = _markup_mismatch(response, out, summaries)
    if mismatch:
        issues.append(FullIssue(MARKUP_MISMATCH, mismatch))
    return CheckedFullRow("flagged" if issues else "ok", out, issues)


def _markup_mismatch(response: str | None, blocks: list[FullBlock], summaries: list[str | None]) -> str | None:
    parsed = parse_response(response)
    markup_blocks = [s.text for s in parsed.segments if s.kind == "block"]
    markup_summaries = [s.text for s in parsed.segments if s.kind == "summary"]
    for idx in range(max(len(blocks), len(markup_blocks), len(summaries), len(markup_summaries))):
        full_block = (blocks[idx].text or "") if idx < len(blocks) else None
        markup_block = markup_blocks[idx] if idx < len(markup_blocks) else None
        if _differs(full_block, markup_block):
            return f"block {idx} differs from the response markup" if None not in (full_block, markup_block) \
                else f"block {idx} is missing from the {'sentences' if full_block is None else 'response markup'}"
        full_summary = (summaries[idx] or "") if idx < len(summaries) else None
        markup_summary = markup_summaries[idx] if idx < len(markup_summaries) else None
        if _differs(full_summary, markup_summary):
            return f"summary {idx} differs from the response markup" if None not in (full_summary, markup_summary) \
                else f"summary {idx} is missing from the {'block_summaries' if full_summary is None else 'response markup'}"
    return None


def _differs(a: str | None, b: str | None) -> bool:
    """Whether two texts differ once runs of whitespace are one space (`collapse`); None is missing.

    Compared as word lists, without building the collapsed strings: this check was most of
    the full config's ingest time.
    """
    if a is None or b is None:
        return a is not b
    return a != b and a.split() != b.split()
