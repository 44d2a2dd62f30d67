"""JSON lines of the export's rows that are too big for DuckDB's to_json.

DuckDB's to_json sizes its output buffer for the worst case, six bytes a character (each could become
`\\uXXXX`), rounded up to a power of two, and takes it from the buffer pool: one 50 MB response asked for
512 MiB, more than the 600 MB pool held beside its input. Rows with more than BIG_ROW_BYTES of message text
are written here instead, byte for byte as to_json writes them (tests/test_export_json.py compares the
two over every escaped character): compact, keys in the schema's order, UTF-8 as it is, and only `"`, `\\` and
the control characters U+0000-U+001F escaped, those without a short form as `\\u00XX` in upper-case hex.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BIG_ROW_BYTES = 4_000_000  # rows above this are encoded here: to_json's buffer grows with the row
PIECE_CHARS = 1_000_000  # a long text is escaped and encoded this many characters at a time

_SHORT = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
_ESCAPES = {c: _SHORT.get(c, f"\\u{c:04X}") for c in range(0x20)} | {ord('"'): '\\"', ord("\\"): "\\\\"}
# the control characters without a short form: json.dumps writes their hex in lower case, to_json in upper
_LONG_FORM = re.compile(r"[\x00-\x07\x0b\x0e-\x1f]")


def runs(table: pa.Table) -> Iterator[tuple[pa.Table, bool]]:
    """The table as consecutive slices, each all big rows (True) or all small ones (False), in order."""
    big = _message_bytes(table) > BIG_ROW_BYTES
    if not big.any():
        yield table, False
        return
    start = 0
    for end in [*(np.flatnonzero(big[1:] != big[:-1]) + 1).tolist(), len(big)]:
        yield table.slice(start, end - start), bool(big[start])
        start = end


def lines(table: pa.Table) -> Iterator[bytes]:
    """The rows as JSON lines, each ending in a newline, as DuckDB's to_json writes them: UTF-8 pieces of at
    most a few MB, so that a long text is never held escaped and encoded whole beside itself."""
    for i in range(table.num_rows):
        [row] = table.slice(i, 1).to_pylist()
        yield from (piece.encode("utf-8") for piece in _pieces(row))
        yield b"\n"


def _message_bytes(table: pa.Table) -> np.ndarray:
    """UTF-8 bytes of each row's message contents."""
    messages = table.column("messages").combine_chunks()
    contents = messages.flatten().field("content")
    sizes = pc.fill_null(pc.binary_length(contents), 0).to_numpy(zero_copy_only=False)
    rows = pc.list_parent_indices(messages).to_numpy(zero_copy_only=False)
    return np.bincount(rows, weights=sizes, minlength=len(messages))


def _pieces(v) -> Iterator[str]:
    if v is None:
        yield "null"
    elif isinstance(v, str):
        yield '"'
        for at in range(0, len(v), PIECE_CHARS):
            yield _escaped(v[at:at + PIECE_CHARS])
        yield '"'
    elif isinstance(v, bool):
        yield "true" if v else "false"
    elif isinstance(v, int):
        yield str(v)
    elif isinstance(v, (dict, list)):
        items = v.items() if isinstance(v, dict) else ((None, x) for x in v)
        yield "{" if isinstance(v, dict) else "["
        for n, (key, value) in enumerate(items):
            if n:
                yield ","
            if key is not None:
                yield from _pieces(key)
                yield ":"
            yield from _pieces(value)
        yield "}" if isinstance(v, dict) else "]"
    else:  # the export's schema has no floats (to_json prints them its own way) and nothing else
        raise TypeError(f"an export record holds a {type(v).__name__}, which json_lines does not encode")


def _escaped(text: str) -> str:
    """`text` escaped as to_json escapes it: by json.dumps (C, a tenth of translate's time) unless it holds a
    control character that json.dumps would write in lower-case hex."""
    if _LONG_FORM.search(text):
        return text.translate(_ESCAPES)
    return json.dumps(text, ensure_ascii=False)[1:-1]
