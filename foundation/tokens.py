"""Token counts with OpenAI's cl100k_base, the encoding the Memento pipeline counts with.

`bpe-openai` ships the encoding's ranks inside the package, so counting works
without network access. The encoder is loaded once per process, on first use.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

ENCODING = "cl100k_base"


@lru_cache(maxsize=1)
def _encoder():
    import bpe_openai

    return bpe_openai.get_encoding(ENCODING)


# Texts the fast path leaves to `encode_ordinary`, so that they keep its behaviour
# (it refuses texts of a million characters or more, and results over its chunk limit).
_FAST_MAX_CHARS = 1_000_000


@lru_cache(maxsize=1)
def _counter():
    """The Rust tokenizer's `count`: the same BPE as `encode_ordinary`, without
    building a list of token ids (or, first, a UTF-8 copy of the text to check
    it encodes). bpe-openai is pinned; None if this version lacks it."""
    enc = _encoder()
    count = getattr(getattr(enc, "_backend", None), "count", None)
    probe = "Let $x = 3$: then <|block_start|> x^2 = 9 \u00e9\u4e2d\U0001f600  \n\n def f(): return 42"
    try:
        if count is None or count(probe) != len(enc.encode_ordinary(probe)):
            return None
    except Exception:
        return None
    limit = getattr(getattr(enc, "_runtime", None), "chunk_limit", None)
    return count, limit


# Where cl100k's pre-tokenizer always ends a piece, so splitting there cannot change the count:
# between a newline and a letter (no piece runs from newlines into letters), and before a space
# that stands between two letters (" word" is one piece, and letters never join a space after them).
_PIECE_BOUNDARY = re.compile(r"(?<=\n)(?=[^\W\d_])|(?<=[^\W\d_])(?= [^\W\d_])")
_SEARCH_BACK = 100_000  # how far below the limit a boundary is looked for


def split_at_boundaries(text: str, max_chars: int = _FAST_MAX_CHARS - 1) -> list[str] | None:
    """`text` cut into parts of at most `max_chars` characters at piece boundaries (see above),
    so that their token counts add up to the count of `text`; None if some stretch has no boundary."""
    parts, at = [], 0
    while len(text) - at > max_chars:
        window_start = max(at + 1, at + max_chars - _SEARCH_BACK)
        cut = None
        for m in _PIECE_BOUNDARY.finditer(text, window_start, at + max_chars + 1):
            cut = m.start()
        if cut is None:
            return None
        parts.append(text[at:cut])
        at = cut
    parts.append(text[at:])
    return parts


def _count_one(text: str, count, limit, encode) -> int | None:
    # A part no longer than the chunk limit in characters cannot exceed it in tokens.
    part_chars = min(limit or _FAST_MAX_CHARS - 1, _FAST_MAX_CHARS - 1)
    if len(text) > part_chars:
        parts = split_at_boundaries(text, part_chars)
        if parts is None:  # a long stretch without a letter after a newline or a space: no exact count
            return None
        return sum(_count_one(p, count, limit, encode) for p in parts)
    n = None
    if count is not None:
        try:
            n = count(text)
        except Exception:  # e.g. a lone surrogate: encode_ordinary sanitises it
            n = None
    return len(encode(text)) if n is None else n


def count_tokens(texts: Iterable[str]) -> list[int | None]:
    """Tokens of each text; markup-like strings count as ordinary text, never as special tokens.

    Equal to `len(encode_ordinary(text))` for every text (tests/test_fast_counts.py);
    anything the fast count cannot take (lone surrogates) goes through `encode_ordinary`.
    Texts longer than the encoder's chunk limit (200,000 tokens; it refuses them, and
    any text of a million characters) are counted in parts of at most that many
    characters, cut where the count cannot change; the rare text with no such place
    within 100,000 characters gets None (unknown), never a guess.
    """
    encode = _encoder().encode_ordinary
    count, limit = _counter() or (None, None)
    if count is None:
        return [_count_one(text, count, limit, encode) if text else 0 for text in texts]
    part_chars = min(limit or _FAST_MAX_CHARS - 1, _FAST_MAX_CHARS - 1)
    out = []
    for text in texts:  # most texts are short: counted here, without _count_one's call per text
        if not text:
            out.append(0)
            continue
        if len(text) <= part_chars:
            try:
                out.append(count(text))
                continue
            except Exception:  # e.g. a lone surrogate: _count_one takes it to encode_ordinary
                pass
        out.append(_count_one(text, count, limit, encode))
    return out
