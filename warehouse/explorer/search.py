"""The explorer's text search: the traces whose problem or response contains `q` in one of its spellings.

The texts are long and a scan of them is slow, so the search asks the trace_words model first (the
words of each trace, case kept, models/trace_words.sql). A spelling made of letters and digits only lies
inside one word of a text, so the traces with a word containing it are the answer, and no text is read.
A spelling with spaces or punctuation needs its inner words whole, its first word at the end of a word
and its last at the start of one: the traces holding all of them are only candidates, and their texts
are read to confirm. Traces ingested after the model was built are read too, so the result is always
what a scan of every text would give. Without the model, or for a spelling with no letter or digit at
all, every text is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

import duckdb

from mementos.warehouse.materializations import PROCESSED_PREFIX

MODEL = "trace_words"
# The model's pattern for a word: the search must cut a spelling into words as the model cut the texts
# (tests/test_serve.py holds the two equal).
WORD = r"[\p{L}\p{N}]+"
# How a word of the model must relate to a word of the spelling, by where that word lies in the spelling.
WORD_TESTS = {"contains": "contains(word, ?)", "ends_with": "suffix(word, ?)", "starts_with": "prefix(word, ?)",
              "equals": "word = ?"}


def spellings(q: str) -> list[str]:
    """The spellings a text search looks for: as typed, lower case, Capitalised, Title Case and UPPER CASE."""
    return list(dict.fromkeys([q, q.lower(), q.capitalize(), q.title(), q.upper()]))


@dataclass(frozen=True)
class Need:
    """A word a trace must hold for a spelling to be in its texts: `test` (a key of WORD_TESTS) against `word`."""
    test: str
    word: str


def needs(cur: duckdb.DuckDBPyConnection, spelling: str) -> list[Need]:
    """The words of `spelling` and how a text's words must hold them: the first word may be the end of a
    longer word, the last the start of one, a word touching both ends any part of one, the others whole."""
    runs, at_start, at_end = cur.execute(
        f"SELECT regexp_extract_all($1, '{WORD}', 0), regexp_matches($1, '^{WORD}'), regexp_matches($1, '{WORD}$')",
        [spelling]).fetchone()
    out = []
    for i, run in enumerate(runs):
        first, last = i == 0 and at_start, i == len(runs) - 1 and at_end
        test = ("contains" if first and last else "ends_with" if first else "starts_with" if last else "equals")
        out.append(Need(test, run))
    return out


def exact(needed: list[Need]) -> bool:
    """Whether the traces holding these words are the answer (a spelling of letters and digits only)."""
    return len(needed) == 1 and needed[0].test == "contains"


def holding(cur: duckdb.DuckDBPyConnection, needed: list[Need]) -> set[str]:
    """The trace ids whose words hold every one of `needed`."""
    found: set[str] | None = None
    for need in needed:
        ids = {tid for (tid,) in cur.execute(
            f"SELECT DISTINCT trace_id FROM {MODEL} WHERE {WORD_TESTS[need.test]}", [need.word]).fetchall()}
        found = ids if found is None else found & ids
        if not found:
            break
    return found or set()


def unindexed(cur: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]] | None:
    """(trace_id, dataset, source_row) of the traces the model has not read (ingested since its last build,
    or a reused id of a changed shard); None when the model was never built."""
    processed = PROCESSED_PREFIX + MODEL
    built = {name for (name,) in cur.execute(
        "SELECT lower(table_name) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'main' AND lower(table_name) IN (?, ?)", [MODEL, processed]).fetchall()}
    if built != {MODEL, processed}:
        return None
    return cur.execute(f"SELECT trace_id, dataset, source_row FROM traces ANTI JOIN {processed} "
                       f"USING (trace_id, run_id) ORDER BY dataset, source_row").fetchall()


def containing(cur: duckdb.DuckDBPyConnection, variants: list[str],
               located: list[tuple[str, str, int]] | None) -> set[str]:
    """The trace ids among `located` ((trace_id, dataset, source_row); None: every trace) whose problem or
    response contains one of `variants`. A dataset's source rows are asked for by value, so DuckDB reads
    only the row groups that hold them."""
    found = " OR ".join(f"contains({column}, ?)" for column in ("problem", "response") for _ in variants)
    if located is None:
        return {tid for (tid,) in cur.execute(f"SELECT trace_id FROM traces WHERE {found}",
                                              variants + variants).fetchall()}
    out: set[str] = set()
    for dataset, rows in groupby(sorted(located, key=lambda r: (r[1], r[2])), key=lambda r: r[1]):
        source_rows = [r[2] for r in rows]
        out |= {tid for (tid,) in cur.execute(
            f"SELECT trace_id FROM traces WHERE dataset = ? AND source_row IN (SELECT unnest(?::BIGINT[])) "
            f"AND ({found})", [dataset, source_rows] + variants + variants).fetchall()}
    return out


def search(cur: duckdb.DuckDBPyConnection, q: str, stale: list[tuple[str, str, int]] | None,
           locate) -> list[str]:
    """The trace ids whose problem or response contains `q` in one of its spellings. `stale`: unindexed();
    `locate(ids)`: (trace_id, dataset, source_row) of those trace ids (the explorer's trace index)."""
    variants = spellings(q)
    needed = [needs(cur, v) for v in variants]
    if stale is None or not all(needed):
        return sorted(containing(cur, variants, None))
    unread = {row[0] for row in stale}
    answer: set[str] = set()
    candidates: set[str] = set()
    for words in needed:
        (answer if exact(words) else candidates).update(holding(cur, words))
    answer -= unread
    candidates -= answer | unread
    confirmed = containing(cur, variants, locate(sorted(candidates)) + stale) if candidates or stale else set()
    return sorted(answer | confirmed)
