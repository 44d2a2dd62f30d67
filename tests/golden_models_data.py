"""The hand-written corpus the model tests compute their golden numbers from.

Texts are runs of one-letter words ("a a a ..."), so that a text of n words has
2n - 1 chars, n words and n cl100k tokens: every number in the golden tests can
be worked out by hand from the word counts below. Blocks are made of "a",
mementos of "b", answers of "c".

    row  domain   source  diff  blocks (words)  mementos (words)  answer      notes
    0    math     alpha   1     100 200 50      20 30 10          30 words    the worked example of warehouse.md (Models)
    1    math     alpha   2     40 60           10 6              "42"        empty-ish answer (2 chars)
    2    code     beta    1     80              16                10 words
    3    code     beta    3     10 30           12 3              5 words     memento 0 longer than its block;
                                                                               full: summary 1 differs
    4    math     alpha   1     (flagged: block 1 never closed)               full: block 1 missing
    5    code     beta    1     = row 2 (same problem and response: an exact duplicate)
    6    science  gamma   -     50 50           5 20              8 words     difficulty missing
    7    math     alpha   2     3000            2                 5 words     very long block, ratio far too low
    8    science  gamma   2     50 50           10 10             8 words     block 0 has a newline inside
    9    science  gamma   2     20 40 30        5 8 6             6 words
    10   science  delta   3     12 x 10         12 x 2            4 words     far too many blocks
"""

from __future__ import annotations

from pathlib import Path

from conftest import write_hub_dir

DATASET = "golden"


def words(n: int, letter: str) -> str:
    return " ".join([letter] * n)


def response(blocks: list[str], mementos: list[str], answer: str) -> str:
    body = "".join(f"<|block_start|>{b}<|block_end|>\n<|summary_start|>{m}<|summary_end|>\n"
                   for b, m in zip(blocks, mementos))
    return f"<think>\n{body}</think>\n{answer}"


def _trace(i, domain, source, difficulty, block_words, memento_words, answer, block_texts=None):
    blocks = block_texts or [words(n, "a") for n in block_words]
    mementos = [words(n, "b") for n in memento_words]
    default = {"problem": f"problem {i}", "response": response(blocks, mementos, answer),
               "domain": domain, "source": source, "difficulty": difficulty}
    sentences, ranges = [], []
    for n in block_words:  # each block is two sentences (one when it has one word)
        half = max(1, n // 2)
        parts = [words(half, "a")] + ([words(n - half, "a")] if n - half else [])
        ranges.append([len(sentences), len(sentences) + len(parts) - 1])
        sentences += parts
    full = {**default, "sentences": sentences, "blocks": ranges, "block_summaries": list(mementos)}
    return default, full


def corpus() -> tuple[list[dict], list[dict]]:
    rows = [
        _trace(0, "math", "alpha", 1, [100, 200, 50], [20, 30, 10], words(30, "c")),
        _trace(1, "math", "alpha", 2, [40, 60], [10, 6], "42"),
        _trace(2, "code", "beta", 1, [80], [16], words(10, "c")),
        _trace(3, "code", "beta", 3, [10, 30], [12, 3], words(5, "c")),
    ]
    # 4: flagged. The response's block 1 is never closed; the full row knows only block 0.
    flagged = {"problem": "problem 4",
               "response": f"<think>\n<|block_start|>{words(10, 'a')}<|block_end|>\n"
                           f"<|summary_start|>{words(3, 'b')}<|summary_end|>\n"
                           f"<|block_start|>{words(5, 'a')}\n</think>\n{words(4, 'c')}",
               "domain": "math", "source": "alpha", "difficulty": 1}
    rows.append((flagged, {**flagged, "sentences": [words(10, "a")], "blocks": [[0, 0]],
                           "block_summaries": [words(3, "b")]}))
    rows.append((dict(rows[2][0]), dict(rows[2][1])))  # 5: exact duplicate of 2
    rows += [
        _trace(6, "science", "gamma", None, [50, 50], [5, 20], words(8, "c")),
        _trace(7, "math", "alpha", 2, [3000], [2], words(5, "c")),
        _trace(8, "science", "gamma", 2, [50, 50], [10, 10], words(8, "c"),
               block_texts=[words(25, "a") + "\n" + words(25, "a"), words(50, "a")]),
        _trace(9, "science", "gamma", 2, [20, 40, 30], [5, 8, 6], words(6, "c")),
        _trace(10, "science", "delta", 3, [10] * 12, [2] * 12, words(4, "c")),
    ]
    default, full = [r[0] for r in rows], [r[1] for r in rows]
    # row 3's full config has a different summary 1: full_alignment must find it
    full[3] = {**full[3], "block_summaries": [words(12, "b"), words(2, "b") + " x"]}
    return default, full


def write_corpus(root: Path) -> Path:
    default, full = corpus()
    return write_hub_dir(root, default, full)


def ingest_golden(tmp: Path, with_tokens: bool = True) -> Path:
    """Ingest the corpus (both configs) into tmp/golden.duckdb; returns the db path."""
    from mementos.ingest.pipeline import run_ingest

    src = write_corpus(tmp / "golden_src")
    db = tmp / "golden.duckdb"
    run_ingest(str(src), db, config="all", name=DATASET, with_tokens=with_tokens, workers=0, progress=False)
    return db


# ---------------------------------------------------------------------------
# The alignment corpus: a dataset of its own (so the golden numbers above stay as
# they are), one case per way a default trace and a full row can be linked or not.
#
#     default row  full row  case
#     0            0         identical                                  -> hash, aligned
#     1            1         the full response has memento 1 edited and the
#                            problem extra whitespace                   -> problem, summary_text at 1
#     2            2         the full response ends with a newline      -> problem, response_differs
#     3            -         no full row                                -> default unlinked
#     4            3         same response, but 3 summaries for 2 ranges -> hash, extra_summary at 2
#     5            -         exact duplicate of default 0; one full copy -> default unlinked
#     6, 7         5         same problem, other responses; full 5 is
#                            nearest to default 6 (rows 5 and 6)        -> 6 problem (block_text at 0), 7 unlinked
#     -            4         a problem no default row has              -> full unlinked
#     8            6         same response; the markup's blocks start or end with NBSP,
#                            U+2009, U+3000, hold tabs and CRLF where the sentences
#                            have spaces: the same text in ingest's sense -> hash, aligned
#     -            7, 8      problems no default row has               -> full unlinked
#     9, 10        9, 10     one problem; the full rows' contents swapped (full 9 is
#                            default 10's, full 10 default 9's), each response with
#                            a trailing newline                        -> problem, 9 with 10,
#                            10 with 9 (most blocks agreeing beats the nearest row)

ALIGN_DATASET = "align"


def alignment_corpus() -> tuple[list[dict], list[dict]]:
    d0, f0 = _trace(0, "math", "alpha", 1, [10, 20], [3, 4], words(2, "c"))
    d1, f1 = _trace(1, "math", "alpha", 1, [10, 20], [3, 4], words(2, "c"))
    e1, g1 = _trace(1, "math", "alpha", 1, [10, 20], [3, 5], words(2, "c"))  # memento 1 edited
    f1 = {**g1, "problem": "  problem\n1 "}
    d2, f2 = _trace(2, "code", "beta", 1, [6], [2], words(3, "c"))
    f2 = {**f2, "response": f2["response"] + "\n"}
    d3, _ = _trace(3, "code", "beta", 1, [8], [2], words(3, "c"))
    d4, f4 = _trace(4, "code", "beta", 1, [6, 6], [2, 2], words(3, "c"))
    f4 = {**f4, "block_summaries": f4["block_summaries"] + [words(2, "b")]}
    d5 = dict(d0)
    d6, _ = _trace(6, "science", "gamma", 1, [12], [3], words(3, "c"))
    d7, _ = _trace(6, "science", "gamma", 1, [14], [3], words(3, "c"))  # problem 6 again, another response
    _, f6 = _trace(6, "science", "gamma", 1, [13], [3], words(3, "c"))
    _, f_alone = _trace(99, "science", "gamma", 1, [5], [1], words(1, "c"))
    d8, f8 = _unicode_spaces_trace()
    _, f_alone2 = _trace(97, "science", "gamma", 1, [5], [1], words(1, "c"))
    _, f_alone3 = _trace(98, "science", "gamma", 1, [5], [1], words(1, "c"))
    d9, f9 = _trace(9, "math", "alpha", 1, [10, 20], [3, 4], words(2, "c"))
    d10, f10 = _trace(9, "math", "alpha", 1, [11, 21, 5], [4, 5, 2], words(2, "c"))  # problem 9 again
    f9, f10 = ({**f, "response": f["response"] + "\n"} for f in (f9, f10))
    default = [d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10]
    full = [f0, f1, f2, f4, f_alone, f6, f8, f_alone2, f_alone3, f10, f9]
    return default, full


# (a block of the markup, the same block as the full row's sentence): each the words "a a a" in ingest's
# sense (str.split()), though DuckDB's \s matches none of NBSP, U+2009, U+3000 and its trim() strips the first two
UNICODE_SPACE_BLOCKS = [
    ("\u00a0a a\na", "\u00a0a a a"),  # NBSP at the start, on both sides
    ("a a\na\u2009", "a a a\u2009"),  # U+2009 at the end, on both sides
    ("a\u3000a  a", "a a a"),  # U+3000 between words
    ("a\ta\t a", "a a a"),  # tabs
    ("a\r\na a", "a a a"),  # CRLF
]


def _unicode_spaces_trace() -> tuple[dict, dict]:
    """A trace whose markup's blocks and full row's sentences are UNICODE_SPACE_BLOCKS: the same
    response on both sides (a hash link), every block the same text."""
    blocks = [markup for markup, _ in UNICODE_SPACE_BLOCKS]
    mementos = [words(2, "b")] * len(blocks)
    default = {"problem": "problem 8", "response": response(blocks, mementos, words(2, "c")),
               "domain": "math", "source": "alpha", "difficulty": 1}
    sentences = [sentence for _, sentence in UNICODE_SPACE_BLOCKS]
    ranges = [[i, i] for i in range(len(sentences))]
    return default, {**default, "sentences": sentences, "blocks": ranges, "block_summaries": mementos}


def ingest_alignment(tmp: Path) -> Path:
    """Ingest the alignment corpus (both configs, no tokens) into tmp/align.duckdb; returns the db path."""
    from mementos.ingest.pipeline import run_ingest

    default, full = alignment_corpus()
    src = write_hub_dir(tmp / "align_src", default, full)
    db = tmp / "align.duckdb"
    run_ingest(str(src), db, config="all", name=ALIGN_DATASET, with_tokens=False, workers=0, progress=False)
    return db


# ---------------------------------------------------------------------------
# The outlier corpus: one dataset and domain ("outl", math) where every block is
# a different sentence of 9 words ("block J of trace I works out I plus J",
# 34-37 chars), every memento 3 words ("memo J of I"), and:
#
#     row   blocks  what                                          reason expected
#     0-4   3       ordinary; answers "42", "\boxed{7}", words    none: a short answer is an answer
#     5     150     a 150-block trace among 3-block traces         too_many_blocks (MAD and IQR are 0)
#     6     3       block 1 = block 0 in upper case with double
#                   spaces, block 2 = block 0                      repeated_blocks (2 copies)
#     7     3       memento 1 is block 1's text                    memento_copies_block
#     8     3       the answer is only whitespace                  empty_answer
#     9     3       memento 1 is the first 30 of block 1's 37
#                   chars (81%, verbatim)                          memento_copies_block
#     10    3       memento 1 is block 1 in lower case             memento_copies_block

OUTL_DATASET = "outl"


def _sentence_trace(i: int, n_blocks: int, answer: str, blocks=None, mementos=None) -> dict:
    blocks = blocks or [f"block {j} of trace {i} works out {i} plus {j}" for j in range(n_blocks)]
    mementos = mementos or [f"memo {j} of {i}" for j in range(n_blocks)]
    return {"problem": f"problem {i}", "response": response(blocks, mementos, answer),
            "domain": "math", "source": "omega", "difficulty": 1}


def outlier_corpus() -> list[dict]:
    rows = [_sentence_trace(i, 3, a) for i, a in enumerate(["42", "\\boxed{7}", "c c c", "c c c", "c c c"])]
    rows.append(_sentence_trace(5, 150, "c c c"))
    t = "block 0 of trace 6 works out 6 plus 0"
    rows.append(_sentence_trace(6, 3, "c c c", blocks=[t, t.upper().replace(" ", "  "), t]))
    copied = "block 1 of trace 7 works out 7 plus 1"
    rows.append(_sentence_trace(7, 3, "c c c", mementos=["memo 0 of 7", copied, "memo 2 of 7"]))
    rows.append(_sentence_trace(8, 3, " \n\t "))
    block = "block 1 of trace 9 works out 9 plus 1"
    rows.append(_sentence_trace(9, 3, "c c c", mementos=["memo 0 of 9", block[:30], "memo 2 of 9"]))
    block = "Block 1 Of Trace 10 Works Out 10 Plus 1"
    rows.append(_sentence_trace(10, 3, "c c c", blocks=["block 0 of trace 10 works out 10 plus 0", block,
                                                         "block 2 of trace 10 works out 10 plus 2"],
                                mementos=["memo 0 of 10", block.lower(), "memo 2 of 10"]))
    return rows


def ingest_outliers(tmp: Path) -> Path:
    """Ingest the outlier corpus (default config, no tokens) into tmp/outl.duckdb; returns the db path."""
    from mementos.ingest.pipeline import run_ingest

    src = write_hub_dir(tmp / "outl_src", outlier_corpus())
    db = tmp / "outl.duckdb"
    run_ingest(str(src), db, config="default", name=OUTL_DATASET, with_tokens=False, workers=0, progress=False)
    return db


# ---------------------------------------------------------------------------
# The retention corpus: hand-written pairs for memento_retention (dataset "ret").

RET_DATASET = "ret"

RETENTION_PAIRS = [
    # trace 0 (math)
    ("Counting apples: the basket holds 120 apples of 4.5 grams and x = 3 baskets, so the total is 360 apples.",
     "Total is 360 apples (x = 3)."),
    ("Then the fraction \\frac{1}{2} of 360 is 180, and 180 + 20 = 200 when adding the remaining 20.",
     "Half of 360 is 180; plus 20 gives 200."),
    ("Double check the reasoning carefully.", "Checked the reasoning."),
]


def retention_corpus() -> list[dict]:
    blocks, mementos = [b for b, _ in RETENTION_PAIRS], [m for _, m in RETENTION_PAIRS]
    return [{"problem": "problem 0", "response": response(blocks, mementos, "360"),
             "domain": "math", "source": "omega", "difficulty": 1},
            # trace 1 (code): the memento keeps every number and every content word
            {"problem": "problem 1",
             "response": response(["Loop over range(10) and print squares up to 81."],
                                  ["Loop over range(10); print squares up to 81."], "done"),
             "domain": "code", "source": "omega", "difficulty": 1},
            # trace 2: one pair per case of docs/analyses.md (Retention), in RETENTION_CASES' order
            {"problem": "problem 2",
             "response": response([b for _, b, _ in RETENTION_CASES], [m for _, _, m in RETENTION_CASES], "7"),
             "domain": "cases", "source": "omega", "difficulty": 1}]


# (case, block, memento): trace 2 of the retention corpus
RETENTION_CASES = [
    ("sign", "Subtracting gives -7 at this step.", "Got 7."),
    ("thousands", "The population is 1,000 people.", "Population 1000."),
    ("trailing_zero", "The price is 2.50 dollars.", "Price 2.5."),
    ("result_once", "Solving gives x = 3.", "x = 3."),
    ("fraction_is_decimal", "A half, \\frac{1}{2}, of the quarter 1/4.", "0.5 and 0.25"),
    ("latex_commands", "So \\approx \\alpha with \\lambda stays.", "approx alpha stays"),
    ("single_digits_apart", "Take 2 steps of 15 meters.", "Walked 2 steps, 30 meters total."),
    ("subtraction", "Then 12-5 = 7.", "12 minus 5"),
]


def ingest_retention(tmp: Path) -> Path:
    """Ingest the retention corpus (default config, no tokens) into tmp/ret.duckdb; returns the db path."""
    from mementos.ingest.pipeline import run_ingest

    src = write_hub_dir(tmp / "ret_src", retention_corpus())
    db = tmp / "ret.duckdb"
    run_ingest(str(src), db, config="default", name=RET_DATASET, with_tokens=False, workers=0, progress=False)
    return db


# The markup as cl100k counts it when the markers are read as text (<think> 3 tokens, each memento
# marker 6) and every block evicted with its delimiters: inference_simulation's count before version 3.
CL100K_MARKUP = [(k - 1, False, True, 3, 6) for k in (1, 2, 4, 8)]


def inference_settings_dir(root: Path, rows: list[tuple]) -> Path:
    """`root` holding an inference_settings model whose rows are `rows` (keep_last_n_blocks,
    keep_last_block_for_answer, mask_delimiters, think_tag_tokens, marker_tokens): a --models
    directory that replaces the bundled settings."""
    values = ",\n    ".join(f"({n}, {str(answer).lower()}, {str(mask).lower()}, {t}, {m})"
                            for n, answer, mask, t, m in rows)
    root.mkdir(parents=True, exist_ok=True)
    (root / "inference_settings.sql").write_text(f"""/*
name: inference_settings
version: 1
kind: view
grain: [keep_last_n_blocks]
description: Settings of a test.
*/
SELECT * FROM (VALUES
    {values}
) AS settings(keep_last_n_blocks, keep_last_block_for_answer, mask_delimiters, think_tag_tokens, marker_tokens)
""")
    return root
