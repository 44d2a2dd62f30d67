"""Each export record's n_tokens: the exact cl100k_base count of the example as written, from the counts
ingest stored where that is exact, tokenizing only what they do not cover; and what --max-tokens keeps."""

from __future__ import annotations

import re
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

from mementos.warehouse.export.records import SUMMARIZE_INSTRUCTION


def rendered_tokens(user: pa.Array, assistant: pa.Array) -> pa.Array:
    """Each example's n_tokens: cl100k_base tokens of its user content plus its assistant content, as
    written (foundation.tokens.count_tokens: exact, encode_ordinary's count). None when a text has no exact
    count (over a million characters with no place to cut it, see count_tokens)."""
    from mementos.foundation.tokens import count_tokens

    counts = [None if u is None or a is None else u + a
              for u, a in zip(count_tokens(t or "" for t in user.to_pylist()),
                              count_tokens(t or "" for t in assistant.to_pylist()))]
    return pa.array(counts, pa.int64())


def summarize_tokens(stored, user: pa.Array, assistant: pa.Array) -> pa.Array:
    """rendered_tokens of summarize examples, from the counts ingest stored where that is exact.

    The user turn is SUMMARIZE_INSTRUCTION + blank line + block, and cl100k's pre-tokenizer always ends
    a piece between a newline and a letter (foundation/tokens.py), so when the block starts with a letter
    its count is tokens(instruction + blank line) + tokens(block); the assistant turn is the memento.
    `stored` is the view's n_tokens (block + memento, as counted at ingest); the other rows (no stored
    counts, a block that starts with something else) are counted as written."""
    from mementos.foundation.tokens import count_tokens

    prefix = SUMMARIZE_INSTRUCTION + "\n\n"
    [head] = count_tokens([prefix])
    users, assistants = user.to_pylist(), assistant.to_pylist()
    stored = stored.to_pylist()
    todo = [i for i, (u, n) in enumerate(zip(users, stored))
            if n is None or u is None or not u.startswith(prefix) or not u[len(prefix):len(prefix) + 1].isalpha()]
    counted = rendered_tokens(pa.array([users[i] for i in todo], pa.string()),
                              pa.array([assistants[i] for i in todo], pa.string())).to_pylist()
    out = [None if n is None else head + n for n in stored]
    for i, n in zip(todo, counted):
        out[i] = n
    return pa.array(out, pa.int64())


_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_TAIL_WINDOW = 200  # how far back from a segment's end a piece boundary is looked for


def _starts_a_piece(content: str, at: int) -> bool:
    """cl100k's pre-tokenizer always starts a piece here: at the start, or between a newline and a letter,
    digit or punctuation mark (no piece runs from a newline into anything but whitespace)."""
    if at == 0:
        return True
    c = content[at]
    return content[at - 1] == "\n" and (c.isalnum() or c in _ASCII_PUNCTUATION)


@lru_cache(maxsize=1)
def _last_boundary() -> re.Pattern:
    """The last piece boundary (foundation.tokens' _PIECE_BOUNDARY) in a window, as the end of one match: a
    greedy run backs off from the window's end to the nearest boundary, where finding every boundary from the
    start and keeping the last steps through each word of the window."""
    from mementos.foundation.tokens import _PIECE_BOUNDARY

    return re.compile(f"(?s:.*)(?:{_PIECE_BOUNDARY.pattern})")


def _count_plan(content: str | None, spans: list[dict] | None, stored: int | None):
    """How to get tokens(content) from `stored`, the sum of the stored counts of the segments that the
    spans locate in it: (stored, texts to add, texts to subtract), or None to count it as written.

    Each segment whose start begins a piece (_starts_a_piece) and that has a piece boundary near its
    end (foundation.tokens' boundaries) is split there: its head comes from `stored` less the count of
    its tail; the tails, the markup and separators between segments, and any segment that cannot be
    split are counted as written. Every cut is a piece boundary both in the content and in the segment
    alone, so the counts add up exactly."""
    if stored is None or content is None or spans is None:
        return None
    plus, minus, at = [], [], 0
    for span in sorted(spans, key=lambda x: x["start"]):
        start, end = span["start"], span["end"]
        if start < at or end < start or end > len(content):
            return None
        if start == end:
            continue
        cut = None
        if _starts_a_piece(content, start):
            last = _last_boundary().match(content, max(start + 1, end - _TAIL_WINDOW), end)
            cut = last.end() if last else None
        if cut is None:  # counted as written, within the text between heads
            minus.append(content[start:end])
            continue
        plus.append(content[at:start])
        minus.append(content[cut:end])
        at = cut
    plus.append(content[at:])
    return stored, plus, minus


def spans_tokens(stored, user: pa.Array, assistant: pa.Array, spans: pa.Array | None) -> pa.Array:
    """rendered_tokens of memento, compressed and plain examples, tokenizing only what the stored counts
    do not cover: the user turn, the markup and separators, and a few words at each segment's end
    (_count_plan). `stored` is the view's n_tokens: the stored counts of exactly the segments in `spans`."""
    from mementos.foundation.tokens import count_tokens

    if spans is None:
        return rendered_tokens(user, assistant)
    users, assistants = user.to_pylist(), assistant.to_pylist()
    plans = [_count_plan(a, sp, n) for a, sp, n in zip(assistants, spans.to_pylist(), stored.to_pylist())]
    texts, where = [], []
    for i, plan in enumerate(plans):
        if plan is None:
            texts.append(assistants[i] or "")
            where.append((i, 1))
        else:
            texts += plan[1] + plan[2]
            where += [(i, 1)] * len(plan[1]) + [(i, -1)] * len(plan[2])
    out = [0 if plan is None else plan[0] for plan in plans]
    for (i, sign), n in zip(where, count_tokens(texts)):
        out[i] = None if out[i] is None or n is None else out[i] + sign * n
    for i, n in enumerate(count_tokens(u or "" for u in users)):
        out[i] = None if out[i] is None or n is None or users[i] is None or assistants[i] is None else out[i] + n
    return pa.array(out, pa.int64())


def within_max_tokens(n_tokens: pa.Array, max_tokens: int | None) -> tuple[pa.Array, int]:
    """Which examples --max-tokens keeps (n_tokens <= max_tokens; an unknown count is not kept), and how
    many it leaves out (reason too_long)."""
    if max_tokens is None:
        return pa.array([True] * len(n_tokens), pa.bool_()), 0
    keep = pc.fill_null(pc.less_equal(n_tokens, max_tokens), False)
    return keep, len(keep) - (pc.sum(keep).as_py() or 0)
