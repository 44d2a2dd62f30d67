"""The vectorised word counts and the fast token counts equal the plain Python definitions.

`segments.n_words` is defined as `len(text.split())` and `n_tokens` as
`len(encode_ordinary(text))` (warehouse.md); ingest computes them faster
(numpy over the Arrow buffer; the Rust tokenizer's count), so these tests pin
the results to the definitions, whitespace and odd code points included.
"""

from __future__ import annotations

import random
import sys

import pyarrow as pa
import pytest

from mementos.ingest.flatten import word_counts
from mementos.foundation.tokens import _encoder, count_tokens

WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
ODD = list("ab ÿ€中😀\x00\x08\x0e\x1b\x7f\x1c") + ["\u200b", "\ufeff", "é"]


def _random_texts(seed: int, n: int, alphabet: list[str], max_len: int = 14) -> list[str]:
    rnd = random.Random(seed)
    return ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, max_len))) for _ in range(n)]


def _check(texts: list[str], array) -> None:
    got = word_counts(array).to_pylist()
    want = [len(t.split()) for t in texts]
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    assert not bad, bad[:5]


def test_every_whitespace_code_point():
    texts = [f"{w}a{w}{w}b{w}" for w in WHITESPACE] + [w * 3 for w in WHITESPACE]
    _check(texts, pa.array(texts))


def test_random_unicode_and_ascii_texts():
    texts = _random_texts(1, 20_000, WHITESPACE + ODD)
    _check(texts, pa.array(texts))
    ascii_texts = _random_texts(2, 20_000, [chr(i) for i in range(128)], max_len=30)
    _check(ascii_texts, pa.array(ascii_texts))


def test_slices_chunks_empties_and_large_strings():
    texts = ["", "a", "", " b  c ", "", "", "x" * 10, "", "\x0b\x1f", "\u3000y\u3000"] * 400
    arr = pa.array(texts)
    _check(texts, arr)
    _check(texts[7:2007], arr.slice(7, 2000))
    _check(texts, pa.chunked_array([arr.slice(0, 3), arr.slice(3)]))
    _check(texts, pa.array(texts, pa.large_string()))
    assert word_counts(pa.array([], pa.string())).to_pylist() == []
    assert word_counts(pa.array(["", None])).to_pylist() == [0, 0]
    assert word_counts(pa.array(["a b"])).type == pa.int32()


def test_long_segment_texts():
    rnd = random.Random(3)
    words = ["Let", "$x^2", "=", "9$", "\\frac{1}{2}", "def", "f():", "naïve", "\u00a0", "\n\n", "\t"]
    texts = [" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 3000))) for _ in range(60)]
    _check(texts, pa.array(texts))


@pytest.mark.parametrize("seed", [4, 5])
def test_token_counts_equal_encode_ordinary(seed):
    encode = _encoder().encode_ordinary
    alphabet = list("ab cd\n\t  <|>_/$\\{}0123456789éü中😀\u00a0\u2028") + [
        "<|block_start|>", "<|summary_end|>", "<|endoftext|>", "<think>", "\ud800", "\r\n", "    ",
    ]
    texts = _random_texts(seed, 5_000, alphabet, max_len=80) + ["", "x" * 5000, "\ud83d lone high surrogate"]
    assert count_tokens(texts) == [len(encode(t)) if t else 0 for t in texts]


# Texts of a million characters or more: the tokenizer refuses them, so they are counted in
# parts cut where cl100k's pre-tokenizer always ends a piece. These check that the cut never
# changes the count, on texts short enough for the tokenizer to count whole.
from hypothesis import given, settings, strategies as st  # noqa: E402

from mementos.foundation.tokens import split_at_boundaries  # noqa: E402

PIECES = ["word", "Word", " ", "  ", "\n", "\n\n", "\r\n", "\t", "123", "4", "é", "中文", "'s", "'re", ".", "(",
          "<|block_end|>", "😀", "x\u00a0y", "-", "_", "ÿ"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=300), st.integers(min_value=2, max_value=60))
def test_cut_text_counts_add_up_to_the_whole(pieces, max_chars):
    text = "".join(pieces)
    parts = split_at_boundaries(text, max_chars=max_chars)
    if parts is None:  # some stretch of max_chars had no boundary: counted as unknown, never guessed
        return
    assert "".join(parts) == text and all(len(p) <= max_chars for p in parts)
    encode = _encoder().encode_ordinary
    assert sum(len(encode(p)) for p in parts) == len(encode(text))


def test_a_text_over_a_million_characters_is_counted():
    """1,300,000 characters: 'hello world\\n' is 3 tokens, and 100,000 of them are 300,000."""
    assert count_tokens(["hello world\n" * 100_000 + "x" * 100_000]) == [300_000 + len(_encoder().encode_ordinary("x" * 100_000))]


def test_a_million_characters_without_a_boundary_have_no_count():
    assert count_tokens(["7" * 1_000_001]) == [None]


def test_the_fast_count_is_the_encoders_own_and_loads_without_the_package():
    """A fresh process counts with the compiled tokenizer alone (bpe_openai's __init__, which decodes the
    ranks of three encodings, never runs), under the chunk limit and probe the full encoder states."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys; from mementos.foundation import tokens; "
                          "print(tokens.count_tokens(['hello world\\n'])[0], 'bpe_openai' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["3", "False"]
    from mementos.foundation import tokens

    assert tokens.CHUNK_LIMIT == _encoder()._runtime.chunk_limit
    assert tokens._PROBE_TOKENS == len(_encoder().encode_ordinary(tokens._PROBE))
