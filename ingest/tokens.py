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


def count_tokens(texts: Iterable[str]) -> list[int]:
    """Tokens of each text; markup-like strings count as ordinary text, never as special tokens."""
    encode = _encoder().encode_ordinary
    return [len(encode(text)) if text else 0 for text in texts]
