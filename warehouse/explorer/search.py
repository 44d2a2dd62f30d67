"""The explorer's text search, read as full-text search engines read a query (SQLite's FTS5 behind
Datasette, the Hugging Face dataset viewer): the traces whose problem or response holds every word of
`q` (a run of letters and digits) inside one of its words, in one of its spellings (`spellings`), in any
order. `"a quoted phrase"`, or a query with no letter or digit, is looked for as written instead.

The texts are long and a scan of them is slow, so the search asks the trace_words model first (the
words of each trace, case kept, models/trace_words.sql): a word of `q` lies inside a word of a text
exactly when the text contains it, so the model's answer needs no text read. A phrase needs its inner
words whole, its first word at the end of a word and its last at the start of one: the traces holding
all of them are only candidates, and their texts are read to confirm. Traces ingested after the model
was built are read too, so the result is always what a scan of every text would give. The words are
found in the model's vocabulary (trace_vocabulary), then their traces in trace_words by equality.
Without the two models, every text is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import duckdb

from mementos.foundation import snapshots, storage
from mementos.warehouse.materializations import PROCESSED_PREFIX

MODEL = "trace_words"
VOCABULARY = "trace_vocabulary"  # the distinct words of MODEL, each with the number of traces holding it
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


def needs(cur: duckdb.DuckDBPyConnection, variants: list[str]) -> list[list[Need]]:
    """For each spelling, its words and how a text's words must hold them: the first word may be the end of
    a longer word, the last the start of one, a word touching both ends any part of one, the others whole."""
    rows = cur.execute(
        f"SELECT regexp_extract_all(v, '{WORD}', 0), regexp_matches(v, '^{WORD}'), regexp_matches(v, '{WORD}$') "
        f"FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS s(v, i) ORDER BY i", [variants]).fetchall()
    out = []
    for runs, at_start, at_end in rows:
        needed = []
        for i, run in enumerate(runs):
            first, last = i == 0 and at_start, i == len(runs) - 1 and at_end
            needed.append(Need("contains" if first and last else "ends_with" if first else
                               "starts_with" if last else "equals", run))
        out.append(needed)
    return out


def exact(needed: list[Need]) -> bool:
    """Whether the traces holding these words are the answer (a spelling of letters and digits only)."""
    return len(needed) == 1 and needed[0].test == "contains"


def holding_any(cur: duckdb.DuckDBPyConnection, needed: list[Need], among: set[str] | None = None) -> set[str]:
    """The trace ids (of `among`, when given) whose words meet one of `needed`: the vocabulary says which
    words do, and DuckDB reads only the row groups of trace_words that hold those words."""
    tests = " OR ".join(WORD_TESTS[n.test] for n in needed)
    params: list = [n.word for n in needed]
    within = ""
    if among is not None:
        within, params = " AND trace_id IN (SELECT unnest(?::VARCHAR[]))", params + [sorted(among)]
    return {tid for (tid,) in cur.execute(
        f"SELECT DISTINCT trace_id FROM {MODEL} WHERE word IN (SELECT word FROM {VOCABULARY} WHERE {tests}){within}",
        params).fetchall()}


def holding_all(cur: duckdb.DuckDBPyConnection, groups: list[list[Need]]) -> set[str]:
    """The trace ids whose words meet one of the needs of every group, the group held by the fewest traces
    first, so that the fewest ids are carried on."""
    def traces(group: list[Need]) -> int:
        tests = " OR ".join(WORD_TESTS[n.test] for n in group)
        return cur.execute(f"SELECT coalesce(sum(traces), 0) FROM {VOCABULARY} WHERE {tests}",
                           [n.word for n in group]).fetchone()[0]

    found: set[str] | None = None
    for group in sorted(groups, key=traces):
        found = holding_any(cur, group, found)
        if not found:
            break
    return found or set()


def unindexed(cur: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]] | None:
    """(trace_id, dataset, source_row) of the traces the model has not read (ingested since its last build,
    or a reused id of a changed shard); None when the model was never built, or its vocabulary was not
    built with it (then the vocabulary may lack words)."""
    if not _index_tables_built(cur):
        return None
    last = dict(cur.execute("SELECT model, max(build_id) FROM model_builds WHERE status = 'ok' AND model IN (?, ?) "
                            "GROUP BY model", [MODEL, VOCABULARY]).fetchall())
    if last.get(VOCABULARY, "") < last.get(MODEL, ""):
        return None
    return cur.execute(f"SELECT trace_id, dataset, source_row FROM traces ANTI JOIN {PROCESSED_PREFIX + MODEL} "
                       f"USING (trace_id, run_id) ORDER BY dataset, source_row").fetchall()


def indexed(db: str | Path) -> bool:
    """Whether the warehouse's search index is built (models on request: `build --select trace_words+`)."""
    with storage.connect(snapshots.resolve(db), read_only=True) as con:
        return _index_tables_built(con)


def _index_tables_built(cur: duckdb.DuckDBPyConnection) -> bool:
    names = [MODEL, VOCABULARY, PROCESSED_PREFIX + MODEL]
    built = {name for (name,) in cur.execute(
        "SELECT lower(table_name) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'main' AND lower(table_name) IN (?, ?, ?)", names).fetchall()}
    return built == set(names)


def containing(cur: duckdb.DuckDBPyConnection, groups: list[list[str]],
               located: list[tuple[str, str, int]] | None) -> set[str]:
    """The trace ids among `located` ((trace_id, dataset, source_row); None: every trace) whose problem or
    response contains, for every group of `groups`, one of its spellings. A dataset's source rows are asked
    for by value, so DuckDB reads only the row groups that hold them."""
    found = " AND ".join("(" + " OR ".join(f"contains({column}, ?)" for column in ("problem", "response")
                                           for _ in variants) + ")" for variants in groups)
    params = [v for variants in groups for v in variants + variants]
    if located is None:
        return {tid for (tid,) in cur.execute(f"SELECT trace_id FROM traces WHERE {found}", params).fetchall()}
    out: set[str] = set()
    for dataset, rows in groupby(sorted(located, key=lambda r: (r[1], r[2])), key=lambda r: r[1]):
        source_rows = [r[2] for r in rows]
        out |= {tid for (tid,) in cur.execute(
            f"SELECT trace_id FROM traces WHERE dataset = ? AND source_row IN (SELECT unnest(?::BIGINT[])) "
            f"AND ({found})", [dataset, source_rows] + params).fetchall()}
    return out


def words_of(cur: duckdb.DuckDBPyConnection, q: str) -> list[str]:
    """The distinct words of `q` as the model cuts texts into words (WORD), in order."""
    return list(dict.fromkeys(cur.execute(f"SELECT regexp_extract_all(?, '{WORD}', 0)", [q]).fetchone()[0]))


def phrase_of(q: str) -> str | None:
    """The text inside double quotes when `q` is one quoted phrase (`"right triangle"`), else None."""
    return q[1:-1] if len(q) > 2 and q[0] == q[-1] == '"' else None


def search(cur: duckdb.DuckDBPyConnection, q: str, stale: list[tuple[str, str, int]] | None,
           locate) -> list[str]:
    """The trace ids that `q` finds, as full-text search engines read a query (SQLite's FTS5, the dataset
    viewer): every word of `q` (a run of letters and digits) inside a word of the problem or response, in
    one of its spellings, in any order; `"a quoted phrase"`, or a query with no letter or digit, as
    written (one of its spellings contained in the problem or response). `stale`: unindexed();
    `locate(ids)`: (trace_id, dataset, source_row) of those trace ids (the explorer's trace index)."""
    phrase = phrase_of(q)
    words = [] if phrase is not None else words_of(cur, q)
    if not words:
        return phrase_search(cur, q if phrase is None else phrase, stale, locate)
    groups = [spellings(word) for word in words]
    if stale is None:
        return sorted(containing(cur, groups, None))
    found = holding_all(cur, [[Need("contains", v) for v in variants] for variants in groups])
    found -= {row[0] for row in stale}
    return sorted(found | (containing(cur, groups, stale) if stale else set()))


def phrase_search(cur: duckdb.DuckDBPyConnection, q: str, stale: list[tuple[str, str, int]] | None,
                  locate) -> list[str]:
    """The trace ids whose problem or response contains `q` in one of its spellings: the words narrow the
    traces (needs), their texts confirm."""
    variants = spellings(q)
    needed = needs(cur, variants)
    if stale is None or not all(needed):
        return sorted(containing(cur, [variants], None))
    unread = {row[0] for row in stale}
    whole = [words[0] for words in needed if exact(words)]
    answer = holding_any(cur, whole) - unread if whole else set()
    candidates: set[str] = set()
    for words in needed:
        if not exact(words):
            candidates |= holding_all(cur, [[need] for need in words])
    candidates -= answer | unread
    confirmed = containing(cur, [variants], locate(sorted(candidates)) + stale) if candidates or stale else set()
    return sorted(answer | confirmed)
