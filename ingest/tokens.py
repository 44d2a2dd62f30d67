"""Token counts with OpenAI's cl100k_base, the encoding the Memento pipeline counts with.

`bpe-openai` ships the encoding's ranks inside the package, so counting works
without network access. The encoder is loaded once per process, on first use.
"""

from __future__ import annotations

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


def count_tokens(texts: Iterable[str]) -> list[int]:
    """Tokens of each text; markup-like strings count as ordinary text, never as special tokens.

    Equal to `len(encode_ordinary(text))` for every text (tests/test_tokens.py);
    anything the fast count cannot take (lone surrogates, very long texts,
    counts over the encoder's chunk limit) goes through `encode_ordinary`.
    """
    encode = _encoder().encode_ordinary
    fast = _counter()
    if fast is None:
        return [len(encode(text)) if text else 0 for text in texts]
    count, limit = fast
    out = []
    for text in texts:
        if not text:
            out.append(0)
            continue
        n = None
        if len(text) < _FAST_MAX_CHARS:
            try:
                n = count(text)
            except Exception:  # e.g. a lone surrogate: encode_ordinary sanitises it
                n = None
        if n is None or (limit and n > limit):
            n = len(encode(text))
        out.append(n)
    return out
