"""Token counts with OpenAI's cl100k_base, the encoding the Memento pipeline counts with.

`bpe-openai` ships the encoding's ranks inside the package, so counting works
without network access. The encoder is loaded once per process, on first use.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import re
import sys
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


# bpe-openai's chunk limit for cl100k_base (the Encoding's runtime states it; tests/test_fast_counts.py checks).
CHUNK_LIMIT = 200_000
# A text whose count pins the compiled tokenizer to cl100k's (as encode_ordinary counts it).
_PROBE = "Let $x = 3$: then <|block_start|> x^2 = 9 \u00e9\u4e2d\U0001f600  \n\n def f(): return 42"
_PROBE_TOKENS = 30


@lru_cache(maxsize=1)
def _counter():
    """The Rust tokenizer's `count`: the same BPE as `encode_ordinary`, without
    building a list of token ids (or, first, a UTF-8 copy of the text to check
    it encodes). Taken from bpe-openai's compiled module alone (`_bindings`): importing
    the package decodes the ranks of three encodings in Python first, which only
    `encode_ordinary` needs, and every process that counts (each ingest worker) would pay
    that. bpe-openai is pinned; None if this version lacks it or counts the probe otherwise."""
    try:
        count = _bindings().tokenizer_for_encoding(ENCODING).count
        if count(_PROBE) != _PROBE_TOKENS:
            return None
    except Exception:
        return None
    return count, CHUNK_LIMIT


def _bindings():
    """bpe-openai's compiled module, loaded without running the package's __init__ when that has not run
    yet; registered under its own name, so that the package, imported later, uses this one."""
    name = "bpe_openai._bindings"
    package = None if "bpe_openai" in sys.modules else importlib.util.find_spec("bpe_openai")
    folders = list(package.submodule_search_locations or []) if package else []
    found = importlib.machinery.PathFinder.find_spec("_bindings", folders) if folders else None
    if found is None or found.origin is None:
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(name, found.origin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


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
    def encode(text: str) -> list[int]:  # the full encoder, loaded only for a text the fast count cannot take
        return _encoder().encode_ordinary(text)

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
