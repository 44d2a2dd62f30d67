"""The memento grammar, written once.

`parse_response` is a pure function from a response string to segments and
issues. Every other part of the project consumes its output.

Grammar of a well-formed (``ok``) response::

    <think> ( <|block_start|> B <|block_end|> <|summary_start|> S <|summary_end|> )+ </think> ANSWER

with only whitespace between the pairs, non-empty B and S, and no markup in
ANSWER. The six strings in `MARKUP` are the only markup; anything else that
looks like a token is plain text.

A reasoning trace with no block or summary markup at all is ``unsegmented``
(not flagged): a response with no markup (one ``reasoning`` segment), or
``<think> R </think> ANSWER`` with non-empty R (a ``reasoning`` segment and the
answer). Any other markup that breaks the grammar is ``flagged``.

Segment text is the content between two markup tokens with surrounding
whitespace (space, tab, CR, LF) trimmed, and ``response[char_start:char_end]
== text`` always holds. Segment spans never contain markup, except an answer
that is flagged with ``markup_in_answer``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

PARSER_VERSION = "1.0.0"

# The markup strings are defined once, in foundation/markup.py; the parser is their reader.
from mementos.foundation.markup import (  # noqa: E402
    BLOCK_END, BLOCK_START, MARKUP, SUMMARY_END, SUMMARY_START, THINK_CLOSE, THINK_OPEN,
)

WHITESPACE = " \t\r\n"

# Issue codes, one per defect. README.md ("Parse issue codes") has the table with examples.
EMPTY_RESPONSE = "empty_response"
NO_THINK = "no_think"
UNCLOSED_THINK = "unclosed_think"
NO_BLOCKS = "no_blocks"
UNCLOSED_BLOCK = "unclosed_block"
UNCLOSED_SUMMARY = "unclosed_summary"
BLOCK_WITHOUT_SUMMARY = "block_without_summary"
SUMMARY_WITHOUT_BLOCK = "summary_without_block"
NESTED_TOKEN = "nested_token"
OUT_OF_ORDER_TOKEN = "out_of_order_token"
EMPTY_BLOCK = "empty_block"
EMPTY_SUMMARY = "empty_summary"
TEXT_OUTSIDE_PAIRS = "text_outside_pairs"
MARKUP_IN_ANSWER = "markup_in_answer"

# The three outcomes of a parse.
OK, FLAGGED, UNSEGMENTED = "ok", "flagged", "unsegmented"
STATUSES = (OK, FLAGGED, UNSEGMENTED)

ISSUE_CODES = (
    EMPTY_RESPONSE, NO_THINK, UNCLOSED_THINK, NO_BLOCKS, UNCLOSED_BLOCK, UNCLOSED_SUMMARY,
    BLOCK_WITHOUT_SUMMARY, SUMMARY_WITHOUT_BLOCK, NESTED_TOKEN, OUT_OF_ORDER_TOKEN,
    EMPTY_BLOCK, EMPTY_SUMMARY, TEXT_OUTSIDE_PAIRS, MARKUP_IN_ANSWER,
)


class Segment(NamedTuple):
    kind: str  # 'block' | 'summary' | 'answer' | 'reasoning' (an unsegmented trace's think text)
    block_idx: int | None  # a block and its summary share it; None for the answer
    char_start: int
    char_end: int
    text: str


class Issue(NamedTuple):
    code: str
    char_offset: int
    detail: str


class ParsedResponse(NamedTuple):
    status: str  # 'ok' | 'flagged' | 'unsegmented'
    segments: list[Segment]
    issues: list[Issue]

    @property
    def n_blocks(self) -> int:
        return sum(1 for s in self.segments if s.kind == "block")


# One scan for all six tokens. They all start with "<" (the regex engine jumps
# from "<" to "<") and no two can overlap, so the matches are exactly the
# occurrences of each token, already in order of offset. Twice as fast as one
# str.find pass per token.
_MARKUP_RE = re.compile(r"<(?:think>|/think>|\|(?:block_start|block_end|summary_start|summary_end)\|>)")
assert all(_MARKUP_RE.fullmatch(token) for token in MARKUP)


def _tokens(response: str) -> list[tuple[int, str]]:
    """All markup occurrences as (offset, token), in order of offset."""
    return [(m.start(), m.group()) for m in _MARKUP_RE.finditer(response)]


def _trimmed(response: str, start: int, end: int) -> tuple[int, int, str]:
    raw = response[start:end]
    text = raw.strip(WHITESPACE)
    if not text:
        return start, start, ""
    lead = len(raw) - len(raw.lstrip(WHITESPACE))
    return start + lead, start + lead + len(text), text


def _first_text(response: str, start: int, end: int) -> int | None:
    """Offset of the first non-whitespace character in [start, end), or None."""
    raw = response[start:end]
    stripped = raw.lstrip(WHITESPACE)
    return None if not stripped else start + len(raw) - len(stripped)


def _short(token: str) -> str:
    return token.strip("<>|/")


def parse_response(response: str | None) -> ParsedResponse:
    """Split a response into block, summary and answer segments, and its defects."""
    if response is None or not response.strip(WHITESPACE):
        detail = "response is null" if response is None else "response is empty or whitespace"
        return ParsedResponse(FLAGGED, [], [Issue(EMPTY_RESPONSE, 0, detail)])
    tokens = _tokens(response)
    return _unsegmented(response, tokens) or _Parser(response, tokens).run()


def _unsegmented(response: str, tokens: list[tuple[int, str]]) -> ParsedResponse | None:
    """The parse of a reasoning trace without block or summary markup, or None when it has some:
    no markup at all, or only a leading <think> and one </think> around non-blank reasoning."""
    if not tokens:
        start, end, text = _trimmed(response, 0, len(response))
        return ParsedResponse(UNSEGMENTED, [Segment("reasoning", None, start, end, text)], [])
    if len(tokens) != 2 or tokens[0][1] != THINK_OPEN or tokens[1][1] != THINK_CLOSE:
        return None
    (open_at, _), (close_at, _) = tokens
    reasoning = _trimmed(response, open_at + len(THINK_OPEN), close_at)
    if _first_text(response, 0, open_at) is not None or not reasoning[2]:
        return None  # text before <think>, or an empty think section: flagged as before
    answer = _trimmed(response, close_at + len(THINK_CLOSE), len(response))
    return ParsedResponse(UNSEGMENTED, [Segment("reasoning", None, *reasoning), Segment("answer", None, *answer)], [])


class _Parser:
    """One left-to-right pass over the markup tokens, as a small state machine.

    States: 'pre' (before <think>), 'between' (in think, outside pairs),
    'block', 'after_block' (block closed, its summary expected), 'summary',
    'answer'. A segment that is cut short by the wrong token ends there; the
    token is then handled as if the segment had been closed properly.
    """

    def __init__(self, response: str, tokens: list[tuple[int, str]]):
        self.r = response
        self.tokens = tokens
        self.segments: list[Segment] = []
        self.issues: list[Issue] = []
        self.outside: list[Issue] = []  # text_outside_pairs, dropped when there are no pairs at all
        self.next_block_idx = 0
        self.open_idx: int | None = None  # block_idx of the open block or pending/open summary
        self.open_at = 0  # offset of the token that opened the current segment
        self.think_closed = False

    def issue(self, code: str, offset: int, detail: str) -> None:
        self.issues.append(Issue(code, offset, detail))

    def run(self) -> ParsedResponse:
        tokens = self.tokens
        if tokens and tokens[0][1] == THINK_OPEN:
            state = "pre"
        else:
            self.issue(NO_THINK, 0, "response does not start with <think>")
            state = "between"
        cursor = 0
        for pos, token in tokens:
            state = self.step(state, cursor, pos, token)
            cursor = pos + len(token)
        self.finish(state, cursor)
        status = FLAGGED if self.issues else OK
        return ParsedResponse(status, self.segments, sorted(self.issues, key=lambda i: i.char_offset))

    def emit(self, kind: str, start: int, end: int) -> None:
        s, e, text = _trimmed(self.r, start, end)
        self.segments.append(Segment(kind, self.open_idx if kind != "answer" else None, s, e, text))
        if not text and kind == "block":
            self.issue(EMPTY_BLOCK, self.open_at, f"block {self.open_idx} is empty")
        elif not text and kind == "summary":
            self.issue(EMPTY_SUMMARY, self.open_at, f"summary {self.open_idx} is empty")

    def check_gap(self, cursor: int, pos: int) -> None:
        at = _first_text(self.r, cursor, pos)
        if at is not None:
            self.outside.append(Issue(TEXT_OUTSIDE_PAIRS, at, f"{pos - at} characters of text outside a block or summary"))

    def step(self, state: str, cursor: int, pos: int, token: str) -> str:
        if state == "pre":  # only reached with the first token being <think>
            self.check_gap(cursor, pos)
            return "between"
        if state == "answer":
            self.issue(MARKUP_IN_ANSWER, pos, f"{_short(token)} after </think>")
            return "answer"
        if state == "block":
            self.emit("block", cursor, pos)
            if token == BLOCK_END:
                return "after_block"
            self.interrupt("block", pos, token)
            if token == SUMMARY_END:  # consumed: the block ended, its summary is still expected
                return "after_block"
            return self.step("after_block", pos, pos, token)
        if state == "summary":
            self.emit("summary", cursor, pos)
            if token == SUMMARY_END:
                self.open_idx = None
                return "between"
            self.interrupt("summary", pos, token)
            self.open_idx = None
            if token == BLOCK_END:  # consumed: the summary ended
                return "between"
            return self.step("between", pos, pos, token)
        # 'between' or 'after_block': only whitespace is allowed before the token
        self.check_gap(cursor, pos)
        if token == SUMMARY_START:
            if state == "between":
                self.issue(SUMMARY_WITHOUT_BLOCK, pos, "summary_start with no block before it")
                self.open_idx = self.next_block_idx
                self.next_block_idx += 1
            self.open_at = pos
            return "summary"
        if state == "after_block" and token in (BLOCK_START, THINK_CLOSE):
            self.issue(BLOCK_WITHOUT_SUMMARY, self.open_at, f"block {self.open_idx} has no summary after it")
        if token == BLOCK_START:
            self.open_idx = self.next_block_idx
            self.next_block_idx += 1
            self.open_at = pos
            return "block"
        if token == THINK_CLOSE:
            self.think_closed = True
            self.answer_from = pos + len(token)
            return "answer"
        if token == THINK_OPEN:
            self.issue(NESTED_TOKEN, pos, "<think> inside the think section")
        else:  # a closing token with nothing open
            self.issue(OUT_OF_ORDER_TOKEN, pos, f"{_short(token)} with no open {_short(token).split('_')[0]}")
        return state

    def interrupt(self, kind: str, pos: int, token: str) -> None:
        """Record why an open block or summary ended at `token` instead of its closer."""
        name = f"{kind} {self.open_idx}"
        same_opener = BLOCK_START if kind == "block" else SUMMARY_START
        if token in (same_opener, THINK_OPEN):
            self.issue(NESTED_TOKEN, pos, f"{_short(token)} inside {name}")
        elif token in (BLOCK_END, SUMMARY_END):
            self.issue(OUT_OF_ORDER_TOKEN, pos, f"{_short(token)} inside {name}")
        else:  # the next segment's opener or </think>: the closer is missing
            code = UNCLOSED_BLOCK if kind == "block" else UNCLOSED_SUMMARY
            self.issue(code, self.open_at, f"{name} is never closed (ended by {_short(token)})")

    def finish(self, state: str, cursor: int) -> None:
        r = self.r
        end = len(r)
        if state == "block":
            self.emit("block", cursor, end)
            self.issue(UNCLOSED_BLOCK, self.open_at, f"block {self.open_idx} is never closed (text ends)")
            self.issue(BLOCK_WITHOUT_SUMMARY, self.open_at, f"block {self.open_idx} has no summary after it")
        elif state == "after_block":
            self.check_gap(cursor, end)
            self.issue(BLOCK_WITHOUT_SUMMARY, self.open_at, f"block {self.open_idx} has no summary after it")
        elif state == "summary":
            self.emit("summary", cursor, end)
            self.issue(UNCLOSED_SUMMARY, self.open_at, f"summary {self.open_idx} is never closed (text ends)")
        elif state in ("between", "pre"):
            self.check_gap(cursor, end)
        if state == "answer":
            self.emit("answer", self.answer_from, end)
        elif not any(i.code == NO_THINK for i in self.issues):
            self.issue(UNCLOSED_THINK, end, "<think> is never closed (no </think>, no answer)")
        if any(s.kind != "answer" for s in self.segments):
            self.issues.extend(self.outside)
        else:
            self.issue(NO_BLOCKS, 0, "no blocks or summaries: a raw chain of thought")
