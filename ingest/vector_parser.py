"""The fast path of the memento grammar: a batch of responses at once, vectorised over their UTF-8.

`parse_well_formed(responses)` reads an Arrow string column as one byte buffer
with NumPy: it finds the six markup tokens, checks each response against the
grammar of an ``ok`` response (ingest/parser.py), and for the responses it
proves well-formed gives their segments as columns: kind, block index,
character offsets and word counts. It decides nothing else: a response with any
defect, NULL, or something the fast path does not look at (a whitespace gap or
trim longer than `_MAX_WHITESPACE` characters) is left to `parse_response`, the
reference, which is the definition. tests/test_vector_parser.py checks that the
two give identical segments for every response the fast path takes, on
generated and hostile texts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mementos.foundation.markup import BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START, THINK_CLOSE, THINK_OPEN

# Token codes are indexes into TOKENS; a well-formed response's tokens read
# THINK_OPEN (BLOCK_START BLOCK_END SUMMARY_START SUMMARY_END)+ THINK_CLOSE.
TOKENS = (THINK_OPEN, BLOCK_START, BLOCK_END, SUMMARY_START, SUMMARY_END, THINK_CLOSE)
_OPEN, _BS, _BE, _SS, _SE, _CLOSE = range(6)
_TOKEN_BYTES = [np.frombuffer(t.encode(), np.uint8) for t in TOKENS]
_TOKEN_LEN = np.array([len(t) for t in _TOKEN_BYTES], np.int64)
_WIDTH = int(_TOKEN_LEN.max())
_PAIR = np.array([_BS, _BE, _SS, _SE], np.int8)

# Gaps between pairs and the whitespace trimmed off a segment are a few
# characters in practice; longer runs go to the reference parser rather than
# making every batch pay for a scan that finds them.
_MAX_WHITESPACE = 16

# The parser's whitespace (space, tab, CR, LF): what it trims and allows between pairs.
_TRIM = np.zeros(256, bool)
_TRIM[[ord(c) for c in " \t\r\n"]] = True

# str.split()'s whitespace (str.isspace): ASCII 9-13 and 28-32 (see _space_mask), and these UTF-8
# sequences. Every one is below U+3001 (tests/test_vector_parser.py checks all of Unicode).
_WIDE_SPACE_BELOW = 0x3001
_WIDE_SPACES = [chr(c).encode() for c in range(128, _WIDE_SPACE_BELOW) if chr(c).isspace()]
_WIDE_SPACE_LEADS = sorted({s[0] for s in _WIDE_SPACES})


@dataclass(frozen=True)
class WellFormed:
    """Segments of the responses the fast path took, in row order, each row's in response order."""

    ok: np.ndarray  # bool per response: taken here (status 'ok', no issues)
    response_chars: np.ndarray  # per response, taken or not: its length in code points (0 for NULL)
    row: np.ndarray  # per segment: index of its response in the batch
    kind: np.ndarray  # per segment: 0 block, 1 summary, 2 answer
    block_idx: np.ndarray  # per segment: pair index (-1 for the answer)
    char_start: np.ndarray
    char_end: np.ndarray
    n_words: np.ndarray  # len(text.split())
    byte_start: np.ndarray  # into `data`, for cutting the texts out
    byte_end: np.ndarray
    data: pa.Buffer | None  # the UTF-8 buffer the byte offsets point into

    def texts(self) -> list[str]:
        """Every segment's text (for token counts)."""
        n = len(self.row)
        if n == 0:
            return []
        bounds = np.empty(2 * n + 1, np.int64)
        bounds[0:2 * n:2] = self.byte_start
        bounds[1:2 * n:2] = self.byte_end
        bounds[2 * n] = self.byte_end[-1]
        # Texts and the gaps between them as one array over the same buffer; the texts are every other value.
        cut = pa.LargeStringArray.from_buffers(2 * n, pa.py_buffer(bounds), self.data)
        return cut.to_pylist()[0::2]


def single_array(responses: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The column as one string array (the fast path reads one buffer)."""
    if isinstance(responses, pa.ChunkedArray):
        responses = responses.combine_chunks() if responses.num_chunks != 1 else responses.chunk(0)
    if responses.type not in (pa.string(), pa.large_string()):
        responses = responses.cast(pa.large_string())
    return responses


def utf8_offsets(arr: pa.Array) -> np.ndarray:
    """Where each value of a string array starts and ends in its data buffer (n + 1 offsets, int64)."""
    offset_type = np.int64 if arr.type == pa.large_string() else np.int32
    return np.frombuffer(arr.buffers()[1], offset_type)[arr.offset:arr.offset + len(arr) + 1].astype(np.int64)


def _none(n: int) -> WellFormed:
    empty = np.zeros(0, np.int64)
    return WellFormed(np.zeros(n, bool), np.zeros(n, np.int64), empty, empty, empty, empty, empty, empty, empty,
                      empty, None)


def _find_tokens(data: np.ndarray, row_end: np.ndarray):
    """Byte offset, code and row of every markup token that lies wholly inside its response."""
    lt = np.flatnonzero(data == ord("<"))
    lt = lt[lt + 1 < len(data)]
    lt = lt[np.isin(data[lt + 1], np.array([t[1] for t in _TOKEN_BYTES], np.uint8))]
    # Past the buffer's end the window repeats its last byte: no token can match there (each
    # ends in two different bytes), and a match running past its response is dropped below.
    window = data[np.minimum(lt[:, None] + np.arange(_WIDTH), len(data) - 1)]
    code = np.full(len(lt), -1, np.int8)
    for c, token in enumerate(_TOKEN_BYTES):
        code[(window[:, :len(token)] == token).all(axis=1)] = c
    found = code >= 0
    pos, code = lt[found], code[found]
    row = np.searchsorted(row_end, pos, side="right")
    inside = pos + _TOKEN_LEN[code] <= row_end[row]  # not cut by the end of its response
    return pos[inside], code[inside], row[inside]


def _runs_of(data: np.ndarray, table: np.ndarray, start: np.ndarray, end: np.ndarray, reverse: bool = False):
    """Per range [start, end): how many leading (trailing if reverse) bytes are in `table`,
    and whether that count is known (False when it reaches _MAX_WHITESPACE)."""
    width = np.minimum(end - start, _MAX_WHITESPACE)
    steps = np.arange(_MAX_WHITESPACE)
    at = (end[:, None] - 1 - steps) if reverse else (start[:, None] + steps)
    inside = steps < width[:, None]
    hit = np.zeros(at.shape, bool)
    hit[inside] = table[data[at[inside]]]
    # Length of the leading run of hits within each range.
    run = np.where((~hit & inside).any(axis=1), np.argmin(hit | ~inside, axis=1), width)
    known = (run < _MAX_WHITESPACE) | (end - start <= _MAX_WHITESPACE)
    return run, known


def _space_mask(data: np.ndarray, ascii_only: bool = False) -> np.ndarray:
    """str.isspace() of the character each byte belongs to (every byte of a wide space is marked)."""
    # (9 <= b < 14) | (28 <= b < 33), written into two buffers: each temporary costs a pass of page faults.
    shifted = np.subtract(data, np.uint8(9))
    space = np.less(shifted, 5)
    np.subtract(data, np.uint8(28), out=shifted)
    space |= np.less(shifted, 5, out=shifted.view(bool))
    leads = () if ascii_only else np.flatnonzero(data >= min(_WIDE_SPACE_LEADS))
    if len(leads):
        lead_bytes = data[leads]
        for lead in _WIDE_SPACE_LEADS:
            at = leads[lead_bytes == lead]
            for seq in (s for s in _WIDE_SPACES if s[0] == lead):
                cand = at[at + len(seq) <= len(data)]
                match = np.ones(len(cand), bool)
                for k in range(1, len(seq)):
                    match &= data[cand + k] == seq[k]
                for k in range(len(seq)):
                    space[cand[match] + k] = True
    return space


def range_word_counts(data: np.ndarray, start: np.ndarray, end: np.ndarray,
                      ascii_only: bool | None = None) -> np.ndarray:
    """len(text.split()) of every range [start, end) of a UTF-8 buffer; the ranges are in order
    and do not overlap. `ascii_only` says the buffer has no byte >= 0x80 (found out if None)."""
    if ascii_only is None:
        ascii_only = data.max(initial=0) < 0x80
    space = _space_mask(data, ascii_only)
    # A word starts at a non-space byte after a space byte, or at a range's first byte if it is not a space.
    after_space = np.zeros(len(data), bool)
    np.greater(space[:-1], space[1:], out=after_space[1:])
    nonempty = end > start
    first = np.zeros(len(start), np.int64)
    first[nonempty] = ~space[start[nonempty]]
    return _set_bits_in_ranges(after_space, np.minimum(start + 1, end), end) + first


def _set_bits_in_ranges(bits: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """How many of `bits` are set in each [start, end), counted 64 bits at a time: the set bits
    before a position are those of the whole words before it plus those below it in its word."""
    if not len(start):
        return np.zeros(0, np.int64)
    packed = np.packbits(bits, bitorder="little")  # bit p is bit p % 64 of word p // 64 (little-endian words)
    padded = np.zeros(8 * (len(packed) // 8 + 1), np.uint8)  # a spare word: `end` may be len(bits)
    padded[:len(packed)] = packed
    words = padded.view("<u8")
    words_before = np.zeros(len(words) + 1, np.int64)
    np.cumsum(np.bitwise_count(words), out=words_before[1:])

    def before(x):
        word = x // 64
        below = (np.uint64(1) << (x % 64).astype(np.uint64)) - np.uint64(1)
        return words_before[word] + np.bitwise_count(words[word] & below)

    return before(end) - before(start)


def parse_well_formed(responses: pa.Array | pa.ChunkedArray) -> WellFormed:
    """Segments of every response of the batch that is a well-formed memento trace (see module doc)."""
    arr = single_array(responses)
    n = len(arr)
    if n == 0:
        return _none(0)
    offsets = utf8_offsets(arr)
    lo, hi = int(offsets[0]), int(offsets[-1])
    buffer = arr.buffers()[2]
    if buffer is None or hi == lo:
        return _none(n)
    data = np.frombuffer(buffer, np.uint8)[lo:hi]
    row_start, row_end = offsets[:-1] - lo, offsets[1:] - lo
    valid = np.ones(n, bool) if arr.null_count == 0 else np.asarray(arr.is_valid())

    pos, code, row = _find_tokens(data, row_end)
    counts = np.bincount(row, minlength=n)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    local = np.arange(len(pos)) - first[row]
    last = local == counts[row] - 1
    expected = np.where(local == 0, _OPEN, np.where(last, _CLOSE, _PAIR[(local - 1) % 4]))
    ok = valid & (counts >= 6) & ((counts - 2) % 4 == 0)
    ok[row[code != expected]] = False

    # Every gap that must hold only whitespace: before <think>, and after <think>, a block's end and a summary's end.
    take = ok[row]
    gap_from = np.flatnonzero(take & ((code == _OPEN) | (code == _BE) | (code == _SE)))
    gap_start = np.concatenate([row_start[row[gap_from[code[gap_from] == _OPEN]]],
                                pos[gap_from] + _TOKEN_LEN[code[gap_from]]])
    gap_end = np.concatenate([pos[gap_from[code[gap_from] == _OPEN]], pos[gap_from + 1]])
    gap_row = np.concatenate([row[gap_from[code[gap_from] == _OPEN]], row[gap_from]])
    lead, known = _runs_of(data, _TRIM, gap_start, gap_end)
    ok[gap_row[~known | (lead < gap_end - gap_start)]] = False

    # Segments: blocks and summaries between their tokens, the answer after </think>.
    take = ok[row]
    opener = np.flatnonzero(take & ((code == _BS) | (code == _SS) | (code == _CLOSE)))
    seg_row = row[opener]
    raw_start = pos[opener] + _TOKEN_LEN[code[opener]]
    raw_end = np.where(code[opener] == _CLOSE, row_end[seg_row], pos[np.minimum(opener + 1, len(pos) - 1)])
    lead, lead_known = _runs_of(data, _TRIM, raw_start, raw_end)
    trail, trail_known = _runs_of(data, _TRIM, raw_start, raw_end, reverse=True)
    empty = lead == raw_end - raw_start
    is_answer = code[opener] == _CLOSE
    ok[seg_row[~lead_known | ~trail_known | (empty & ~is_answer)]] = False

    keep = ok[seg_row]
    seg_row, is_answer, seg_code = seg_row[keep], is_answer[keep], code[opener][keep]
    start = np.where(empty[keep], raw_start[keep], raw_start[keep] + lead[keep])
    end = np.where(empty[keep], raw_start[keep], raw_end[keep] - trail[keep])
    kind = np.where(is_answer, 2, np.where(seg_code == _BS, 0, 1)).astype(np.int8)
    block_idx = np.where(is_answer, -1, (local[opener][keep] - 1) // 4)

    # Code points = bytes that do not continue a UTF-8 sequence.
    row_first = row_start[seg_row]
    response_chars = row_end - row_start
    ascii_only = data.max(initial=0) < 0x80
    if not ascii_only:
        continuation = np.flatnonzero((data & 0xC0) == 0x80)
        base = row_first - np.searchsorted(continuation, row_first)
        char_start = start - np.searchsorted(continuation, start) - base
        char_end = end - np.searchsorted(continuation, end) - base
        response_chars -= np.diff(np.searchsorted(continuation, np.append(row_start, len(data))))
    else:
        char_start, char_end = start - row_first, end - row_first
    response_chars[~valid] = 0  # a NULL's slot may still span bytes
    return WellFormed(ok=ok, response_chars=response_chars, row=seg_row, kind=kind, block_idx=block_idx,
                      char_start=char_start, char_end=char_end,
                      n_words=range_word_counts(data, start, end, ascii_only),
                      byte_start=start + lo, byte_end=end + lo, data=buffer)
