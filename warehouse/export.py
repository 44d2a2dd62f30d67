"""`export`: training sets from the versioned export views (models/export_*.sql).

The views decide what the examples are: one row per example (per trace, or per
block for `summarize`) with its labels, status, content_hash, token count and
the spans of the response it is made of. They hold no text. One export is::

    build    the export view and what it reads, if any of them is stale (engine.build)
    plan     one query over the view into a temp table: every example gets a reason to
             be left out (flagged, domain, duplicate, too_long) or none; the counts come
             from it; kept traces are cut into chunks of at most CHUNK_CHARS response chars
    stream   chunk by chunk, in (dataset, source_row[, block_idx]) order: the chunk's plan
             rows and its traces' problem and response, fetched as Arrow; the messages are
             laid out (texts cut out of the response at the spans, markup from
             ingest/parser.py); each example goes to its split (a hash of the seed and the
             whitespace-normalised problem, the smallest of its near-duplicate group's, found
             before the stream) and is appended to that split's temp file
             `.NAME.<pid>.export-tmp` beside the final NAME
    finish   fsync the temp files and the new card's and manifest's temp files (everything
             that takes space is written before anything is replaced; a full disk up to
             here is one line, guard.disk_full, and removes every temp file), delete the
             old manifest.json, os.replace each temp file
             into place, write README.md (the dataset card), delete what the earlier export
             listed and this one did not write, then write manifest.json (temp + replace) last

Why chunks and not one ORDER BY: in DuckDB 2.0.1 a sort whose payload holds the
responses (~40 KB each) does not spill to disk (out of memory at any limit below
the data), an ordered string_agg cannot spill either, and a list lambda that reads
the response runs at ~15 MB/s. Each chunk query only touches its own rows, so
memory stays flat (one chunk, one Parquet row group per split, and 8 bytes per
example for the token statistics) and the order is total: the same warehouse,
kind, filters and seed give byte-identical files. warehouse.md (Export) has the kinds,
the split rule and the manifest fields.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from array import array
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from foundation import storage
from foundation.errors import WarehouseError
from foundation.faults import checkpoint
from foundation.markup import SUMMARY_END, SUMMARY_START, THINK_CLOSE, THINK_OPEN
from warehouse import engine, guard

KINDS = {
    "memento": "export_memento",
    "compressed": "export_compressed",
    "summarize": "export_summarize",
    "plain": "export_plain",
}
FORMATS = ("jsonl", "parquet")
DEFAULT_SPLITS = "train=0.98,validation=0.01,test=0.01"
# Why an example is left out, in the order the reasons are tried: each is counted under the first that applies.
REASONS = ("flagged", "domain", "outlier", "duplicate", "too_long", "empty", "copied")
OUTLIER_MODEL = "outlier_traces"
MANIFEST = "manifest.json"
CARD = "README.md"  # the Hugging Face dataset card: `datasets.load_dataset(DIR)` reads its configs
MANIFEST_VERSION = 2
LAYOUT_VERSION = 2  # bump when the text of the messages changes for the same views (render_* below)
SUMMARIZE_INSTRUCTION = ("Write the memento of this reasoning block: a short summary that keeps every result, "
                         "value and decision needed to continue the reasoning without the block.")
TOKEN_DEFINITION = ("cl100k_base tokens of the whole example as written: the user turn's content (the problem, "
                    "or for summarize the instruction, a blank line and the block) plus the assistant turn's "
                    "content (markup, separators and answer included), each counted as ordinary text "
                    "(encode_ordinary); a chat template's role markers are not counted")
CHUNK_CHARS = 32_000_000  # response chars fetched per chunk (plus one trace at most)
CHUNK_TRACES = 20_000
ROW_GROUP_ROWS = 1000  # rows per Parquet row group: fixed, so the bytes never depend on chunk boundaries
MEMORY_LIMIT = os.environ.get("MEMENTOS_EXPORT_MEMORY", "1GB")  # DuckDB's, for the export's queries
TMP_SUFFIX = ".export-tmp"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)" + re.escape(TMP_SUFFIX) + "$")
_SPLIT_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
LABELS = ("domain", "source", "difficulty", "status")
# Where each segment is in the assistant turn: content[start:end] is its text (characters, end-exclusive).
SPAN_TYPE = pa.list_(pa.struct([("kind", pa.string()), ("block_idx", pa.int32()), ("start", pa.int64()),
                                ("end", pa.int64())]))


def output_schema(kind: str) -> pa.Schema:
    """The columns of every record, in this order (block_idx only for summarize, spans for the others)."""
    fields = [pa.field("messages", MESSAGES_TYPE), pa.field("trace_id", pa.string())]
    if kind == "summarize":
        fields.append(pa.field("block_idx", pa.int32()))
    fields += [pa.field(c, pa.string()) for c in LABELS] + [pa.field("n_tokens", pa.int64())]
    if kind != "summarize":
        fields.append(pa.field("spans", SPAN_TYPE))
    return pa.schema(fields)


# ---------------------------------------------------------------------------
# Splits


def parse_splits(spec: str) -> list[tuple[str, float]]:
    """`train=0.98,validation=0.01,test=0.01` -> [(name, fraction), ...] in the given order."""
    splits: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, eq, value = part.strip().partition("=")
        name = name.strip()
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not eq or not _SPLIT_NAME_RE.match(name) or not 0 <= fraction <= 1:
            raise WarehouseError(f"--split {spec}: each part is NAME=FRACTION with NAME of letters, digits, _ "
                                 f"or - and FRACTION between 0 and 1 (e.g. {DEFAULT_SPLITS}); not {part.strip()!r}")
        if name in (s for s, _ in splits):
            raise WarehouseError(f"--split {spec}: split {name!r} is named twice")
        splits.append((name, fraction))
    total = sum(f for _, f in splits)
    if abs(total - 1.0) > 1e-6:
        raise WarehouseError(f"--split {spec}: the fractions add up to {total:g}, not 1")
    return splits


def normalize_problem(problem: str | None) -> str:
    """The problem with every run of whitespace (as str.split sees it) made one space, ends trimmed."""
    return " ".join((problem or "").split())


def split_point(problem: str | None, seed: int) -> float:
    """Where a problem falls in [0, 1): blake2b-64 of "<seed>\\0<normalised problem>" (UTF-8) / 2**64."""
    key = f"{seed}\x00{normalize_problem(problem)}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def problem_key(problem: str | None, seed: int) -> int:
    """blake2b-64 of "<seed>\\0<normalised problem>" (UTF-8) as an unsigned integer: split_point * 2**64."""
    key = f"{seed}\x00{normalize_problem(problem)}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def split_of(problem: str | None, seed: int, splits: list[tuple[str, float]], groups: dict[int, int] | None = None) -> str:
    """The split a problem goes to: the first whose cumulative fraction exceeds its split point. With `groups`
    (near_duplicate_groups), the point is the smallest of its near-duplicate group's, so the group stays together."""
    key = problem_key(problem, seed)
    return _split_at((groups or {}).get(key, key) / 2**64, splits)


def _split_at(point: float, splits: list[tuple[str, float]]) -> str:
    cumulative = 0.0
    for name, fraction in splits:
        cumulative += fraction
        if point < cumulative:
            return name
    return [name for name, fraction in splits if fraction > 0][-1]  # float rounding at the top end


# ---------------------------------------------------------------------------
# Near-duplicate problems: one split per group
#
# Two problems are near-duplicates when they have the same numbers (as a multiset: `\d+` runs) and their sets
# of word bigrams (lowercased `\w+` words) are similar: MinHash with LSH (datasketch), Jaccard threshold
# NEAR_DUP_THRESHOLD. The numbers are part of each LSH bucket's key, so a template filled with other numbers is
# another problem while a rewording that keeps them (or swaps them) is not. Groups are the connected components
# of "share a bucket"; a group goes to the split of its smallest split point. warehouse.md (Splits) has the
# measurements behind the threshold.

NEAR_DUP_THRESHOLD = 0.6
NEAR_DUP_PERMUTATIONS = 128
NEAR_DUP_SHINGLE_WORDS = 2
_WORD_RE = re.compile(r"\w+")
_NUMBER_RE = re.compile(r"\d+")
_GROUP_BATCH_ROWS = 8192


def near_duplicate_method() -> dict:
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=NEAR_DUP_THRESHOLD, num_perm=NEAR_DUP_PERMUTATIONS)
    return {"method": "MinHash LSH over lowercased word bigrams, within problems of the same numbers (datasketch)",
            "threshold": NEAR_DUP_THRESHOLD, "permutations": NEAR_DUP_PERMUTATIONS,
            "shingle_words": NEAR_DUP_SHINGLE_WORDS, "bands": lsh.b, "rows_per_band": lsh.r}


def _lsh_buckets(normalised: str, base, bands: int, rows: int) -> list[int]:
    """The LSH bucket of each band of the problem's MinHash, keyed by its numbers too."""
    from datasketch import MinHash

    words = _WORD_RE.findall(normalised.lower())
    k = NEAR_DUP_SHINGLE_WORDS
    shingles = [" ".join(words[i:i + k]).encode("utf-8") for i in range(max(1, len(words) - k + 1))]
    m = MinHash(num_perm=NEAR_DUP_PERMUTATIONS, seed=1, permutations=base.permutations, scheme=base.scheme)
    m.update_batch(shingles)
    values = m.hashvalues
    numbers = " ".join(sorted(_NUMBER_RE.findall(normalised))).encode("ascii")
    return [int.from_bytes(hashlib.blake2b(numbers + b"\x00" + band.to_bytes(2, "big")
                                           + values[band * rows:(band + 1) * rows].tobytes(),
                                           digest_size=8).digest(), "big")
            for band in range(bands)]


def near_duplicate_groups(batches, seed: int) -> tuple[dict[int, int], dict]:
    """{problem_key: the smallest problem_key of its group} for the problems in a group of two or more, and
    what it found; `batches` yields lists of problems (any order, repeats allowed). Memory: 8 bytes per
    distinct problem and band (148 bytes a problem with 18 bands), then the groups."""
    import numpy as np
    from datasketch import MinHash

    started = time.monotonic()
    method = near_duplicate_method()
    bands, rows = method["bands"], method["rows_per_band"]
    base = MinHash(num_perm=NEAR_DUP_PERMUTATIONS, seed=1)
    seen: set[int] = set()
    keys, buckets = array("Q"), array("Q")  # per distinct problem: its key, and its bucket in each band
    for problems in batches:
        for problem in problems:
            normalised = normalize_problem(problem)
            key = problem_key(normalised, seed)
            if key in seen:
                continue
            seen.add(key)
            keys.append(key)
            buckets.extend(_lsh_buckets(normalised, base, bands, rows))
    del seen
    keys_np = np.frombuffer(keys, np.uint64)
    by_band = np.frombuffer(buckets, np.uint64).reshape(-1, bands)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    for band in range(bands):  # one band at a time: a few bytes per problem beyond the buckets themselves
        order = np.argsort(by_band[:, band], kind="stable")
        sorted_buckets = by_band[order, band]
        same = np.nonzero(sorted_buckets[1:] == sorted_buckets[:-1])[0]  # neighbours in one bucket: one group
        for x, y in zip(keys_np[order[same]].tolist(), keys_np[order[same + 1]].tolist()):
            x, y = find(x), find(y)
            if x != y:
                parent[max(x, y)] = min(x, y)  # the root is the smallest key: the group's split point
    groups = {x: find(x) for x in parent} | {find(x): find(x) for x in parent}
    sizes: dict[int, int] = {}
    for root in groups.values():
        sizes[root] = sizes.get(root, 0) + 1
    stats = method | {"problems": len(keys), "groups_merged": len(sizes), "problems_in_them": len(groups),
                      "largest_group": max(sizes.values(), default=1),
                      "seconds": round(time.monotonic() - started, 2)}
    return groups, stats


# ---------------------------------------------------------------------------
# The messages: texts cut out of the response at the views' spans, markup from the parser


def copies_block(memento: str, block: str) -> bool:
    """A memento that copies its block: with whitespace runs made one space, it is the block, or holds all of it.
    Such a pair teaches nothing about compressing; `summarize` leaves it out (reason `copied`)."""
    m, b = " ".join(memento.split()), " ".join(block.split())
    return bool(b) and b in m


def _span(kind: str, block_idx: int | None, start: int, end: int) -> dict:
    return {"kind": kind, "block_idx": block_idx, "start": start, "end": end}


def render_compressed(mementos: list[tuple[int, str]], answer: str | None) -> tuple[str | None, list[dict]]:
    """'<think>\\n' + each memento as '<|summary_start|>\\nM\\n<|summary_end|>\\n' + '</think>\\n\\n' + answer,
    and the spans of the mementos and the answer in it. `mementos` are (block_idx, text) in block order."""
    if not mementos:
        return None, []
    parts, spans, at = [f"{THINK_OPEN}\n"], [], len(THINK_OPEN) + 1
    for idx, text in mementos:
        at += len(SUMMARY_START) + 1
        spans.append(_span("memento", idx, at, at + len(text)))
        parts.append(f"{SUMMARY_START}\n{text}\n{SUMMARY_END}\n")
        at += len(text) + 1 + len(SUMMARY_END) + 1
    return _close(parts, spans, at, answer)


def render_plain(blocks: list[tuple[int, str]], answer: str | None) -> tuple[str | None, list[dict]]:
    """'<think>\\n' + the blocks joined by a blank line + '\\n</think>\\n\\n' + answer: no memento markup at all;
    and the spans of the blocks and the answer in it. `blocks` are (block_idx, text) in block order."""
    if not blocks:
        return None, []
    parts, spans, at = [f"{THINK_OPEN}\n"], [], len(THINK_OPEN) + 1
    for i, (idx, text) in enumerate(blocks):
        if i:
            parts.append("\n\n")
            at += 2
        spans.append(_span("block", idx, at, at + len(text)))
        parts.append(text)
        at += len(text)
    parts.append("\n")
    return _close(parts, spans, at + 1, answer)


def _close(parts: list[str], spans: list[dict], at: int, answer: str | None) -> tuple[str, list[dict]]:
    """Append '</think>\\n\\n' + answer ('' when there is none; a span only when there is one)."""
    parts.append(f"{THINK_CLOSE}\n\n{answer or ''}")
    if answer is not None:
        at += len(THINK_CLOSE) + 2
        spans.append(_span("answer", None, at, at + len(answer)))
    return "".join(parts), spans


def _response_spans(blocks: list[dict], mementos: list[dict], a: int | None, b: int | None) -> list[dict]:
    """The memento kind's spans: the segments as the parser found them in the response, by start."""
    spans = [_span("block", x["block_idx"], x["start"], x["end"]) for x in blocks]
    spans += [_span("memento", x["block_idx"], x["start"], x["end"]) for x in mementos]
    if a is not None:
        spans.append(_span("answer", None, a, b))
    spans.sort(key=lambda x: x["start"])
    return spans


def _turns(kind: str, plan: pa.Table, texts: pa.Table,
           at: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array | None, pa.Array | None]:
    """The user and assistant contents of a chunk's examples, aligned with its plan rows, their spans
    (not for summarize) and whether the memento copies its block (summarize only).

    `texts` has one row per trace (problem, response); `at` gives each plan row's trace in it.
    Each response becomes a Python string once, however many examples are cut from it.
    """
    if kind == "memento":
        cols = [plan.column(c).to_pylist() for c in ("blocks", "mementos", "answer_start", "answer_end")]
        spans = pa.array([_response_spans(*row) for row in zip(*cols)], SPAN_TYPE)
        return (texts.column("problem").take(at).combine_chunks(), texts.column("response").take(at).combine_chunks(),
                spans, None)
    responses = [r or "" for r in texts.column("response").to_pylist()]
    rows = at.to_pylist()
    if kind == "summarize":
        cols = [plan.column(c).to_pylist() for c in ("block_start", "block_end", "memento_start", "memento_end")]
        users, assistants, copied = [], [], []
        for i, bs, be, ms, me in zip(rows, *cols):
            r = responses[i]
            users.append(f"{SUMMARIZE_INSTRUCTION}\n\n{r[bs:be]}")
            assistants.append(r[ms:me])
            copied.append(copies_block(r[ms:me], r[bs:be]))
        return (pa.array(users, pa.string()), pa.array(assistants, pa.string()), None,
                pa.array(copied, pa.bool_()))
    render = render_compressed if kind == "compressed" else render_plain
    think = plan.column("think_spans").to_pylist()
    starts, ends = plan.column("answer_start").to_pylist(), plan.column("answer_end").to_pylist()
    assistants, spans = [], []
    for i, segments, a, b in zip(rows, think, starts, ends):
        r = responses[i]
        content, where = render([(x["block_idx"], r[x["start"]:x["end"]]) for x in segments],
                                r[a:b] if a is not None else None)
        assistants.append(content)
        spans.append(where)
    return (texts.column("problem").take(at).combine_chunks(), pa.array(assistants, pa.string()),
            pa.array(spans, SPAN_TYPE), None)


def _messages_array(user: pa.Array, assistant: pa.Array) -> pa.Array:
    """[{role: user, content}, {role: assistant, content}] per row, built column-wise."""
    n = len(user)
    contents = pa.concat_arrays([user, assistant]).take(pa.array([i // 2 + (i % 2) * n for i in range(2 * n)],
                                                                 pa.int64()))
    roles = pa.array(["user", "assistant"] * n, pa.string())
    values = pa.StructArray.from_arrays([roles, contents], names=["role", "content"])
    return pa.ListArray.from_arrays(pa.array(range(0, 2 * n + 1, 2), pa.int32()), values).cast(MESSAGES_TYPE)


def rendered_tokens(user: pa.Array, assistant: pa.Array) -> pa.Array:
    """Each example's n_tokens: cl100k_base tokens of its user content plus its assistant content, as
    written (foundation.tokens.count_tokens: exact, encode_ordinary's count). None when a text has no exact
    count (over a million characters with no place to cut it, see count_tokens)."""
    from foundation.tokens import count_tokens

    counts = [None if u is None or a is None else u + a
              for u, a in zip(count_tokens(t or "" for t in user.to_pylist()),
                              count_tokens(t or "" for t in assistant.to_pylist()))]
    return pa.array(counts, pa.int64())


def summarize_tokens(stored, user: pa.Array, assistant: pa.Array) -> pa.Array:
    """rendered_tokens of summarize examples, from the counts ingest stored where that is exact.

    The user turn is SUMMARIZE_INSTRUCTION + blank line + block, and cl100k's pre-tokenizer always ends
    a piece between a newline and a letter (foundation/tokens.py), so when the block starts with a letter
    its count is tokens(instruction + blank line) + tokens(block); the assistant turn is the memento.
    `stored` is the view's n_tokens (block + memento, as counted at ingest); the other rows (no stored
    counts, a block that starts with something else) are counted as written."""
    from foundation.tokens import count_tokens

    prefix = SUMMARIZE_INSTRUCTION + "\n\n"
    [head] = count_tokens([prefix])
    users, assistants = user.to_pylist(), assistant.to_pylist()
    stored = stored.to_pylist()
    todo = [i for i, (u, n) in enumerate(zip(users, stored))
            if n is None or u is None or not u.startswith(prefix) or not u[len(prefix):len(prefix) + 1].isalpha()]
    counted = rendered_tokens(pa.array([users[i] for i in todo], pa.string()),
                              pa.array([assistants[i] for i in todo], pa.string())).to_pylist()
    out = [None if n is None else head + n for n in stored]
    for i, n in zip(todo, counted):
        out[i] = n
    return pa.array(out, pa.int64())


_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_TAIL_WINDOW = 200  # how far back from a segment's end a piece boundary is looked for


def _starts_a_piece(content: str, at: int) -> bool:
    """cl100k's pre-tokenizer always starts a piece here: at the start, or between a newline and a letter,
    digit or punctuation mark (no piece runs from a newline into anything but whitespace)."""
    if at == 0:
        return True
    c = content[at]
    return content[at - 1] == "\n" and (c.isalnum() or c in _ASCII_PUNCTUATION)


def _count_plan(content: str | None, spans: list[dict] | None, stored: int | None):
    """How to get tokens(content) from `stored`, the sum of the stored counts of the segments that the
    spans locate in it: (stored, texts to add, texts to subtract), or None to count it as written.

    Each segment whose start begins a piece (_starts_a_piece) and that has a piece boundary near its
    end (foundation.tokens' boundaries) is split there: its head comes from `stored` less the count of
    its tail; the tails, the markup and separators between segments, and any segment that cannot be
    split are counted as written. Every cut is a piece boundary both in the content and in the segment
    alone, so the counts add up exactly."""
    from foundation.tokens import _PIECE_BOUNDARY

    if stored is None or content is None or spans is None:
        return None
    plus, minus, at = [], [], 0
    for span in sorted(spans, key=lambda x: x["start"]):
        start, end = span["start"], span["end"]
        if start < at or end < start or end > len(content):
            return None
        if start == end:
            continue
        cut = None
        if _starts_a_piece(content, start):
            for m in _PIECE_BOUNDARY.finditer(content, max(start + 1, end - _TAIL_WINDOW), end):
                cut = m.start()
        if cut is None:  # counted as written, within the text between heads
            minus.append(content[start:end])
            continue
        plus.append(content[at:start])
        minus.append(content[cut:end])
        at = cut
    plus.append(content[at:])
    return stored, plus, minus


def spans_tokens(stored, user: pa.Array, assistant: pa.Array, spans: pa.Array | None) -> pa.Array:
    """rendered_tokens of memento, compressed and plain examples, tokenizing only what the stored counts
    do not cover: the user turn, the markup and separators, and a few words at each segment's end
    (_count_plan). `stored` is the view's n_tokens: the stored counts of exactly the segments in `spans`."""
    from foundation.tokens import count_tokens

    if spans is None:
        return rendered_tokens(user, assistant)
    users, assistants = user.to_pylist(), assistant.to_pylist()
    plans = [_count_plan(a, sp, n) for a, sp, n in zip(assistants, spans.to_pylist(), stored.to_pylist())]
    texts, where = [], []
    for i, plan in enumerate(plans):
        if plan is None:
            texts.append(assistants[i] or "")
            where.append((i, 1))
        else:
            texts += plan[1] + plan[2]
            where += [(i, 1)] * len(plan[1]) + [(i, -1)] * len(plan[2])
    out = [0 if plan is None else plan[0] for plan in plans]
    for (i, sign), n in zip(where, count_tokens(texts)):
        out[i] = None if out[i] is None or n is None else out[i] + sign * n
    for i, n in enumerate(count_tokens(u or "" for u in users)):
        out[i] = None if out[i] is None or n is None or users[i] is None or assistants[i] is None else out[i] + n
    return pa.array(out, pa.int64())


def _within(n_tokens: pa.Array, max_tokens: int | None) -> tuple[pa.Array, int]:
    """Which examples --max-tokens keeps (n_tokens <= max_tokens; an unknown count is not kept), and how
    many it leaves out (reason too_long)."""
    if max_tokens is None:
        return pa.array([True] * len(n_tokens), pa.bool_()), 0
    keep = pc.fill_null(pc.less_equal(n_tokens, max_tokens), False)
    return keep, len(keep) - (pc.sum(keep).as_py() or 0)


def _has_text(texts: pa.Array) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(texts, r"\S"), False)


# ---------------------------------------------------------------------------
# Models: build what is stale


def ensure_models(db: Path, model: str, models_dir=None, echo: Callable[[str], None] | None = None) -> dict:
    """Build `model` and the models it reads when any is not fresh (the planner says which);
    {name: {version, fingerprint}} of them all."""
    project, plan = engine.plan_build(db, [model], models_dir=models_dir)
    if model not in project.models:
        raise WarehouseError(f"no model {model!r} in models/; the export views are models/export_*.sql")
    needed = [s.model for s in plan.steps]
    if plan.to_build:
        if echo:
            echo(f"export: building {', '.join(plan.to_build)} first")
        report = engine.build(db, select=needed, models_dir=models_dir)
        if echo:
            echo(report.format())
        if not report.ok:
            raise WarehouseError(f"cannot export: the build of {model} and the models it reads failed:\n"
                                 + report.format())
    return {n: {"version": project.models[n].version, "fingerprint": project.fingerprints[n]} for n in needed}


# ---------------------------------------------------------------------------
# Writers: a temp file beside the target, sha256 and size while writing


class _HashingFile:
    """A binary file that hashes and counts what is written to it (ParquetWriter accepts it)."""

    def __init__(self, path: Path):
        self._f = open(path, "wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        data = bytes(data)
        self.sha256.update(data)
        self.size += len(data)
        return self._f.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self) -> None:
        if not self._f.closed:
            try:
                self._f.flush()
                os.fsync(self._f.fileno())
            finally:  # closed even when the flush fails (a full disk): no descriptor left on a deleted file
                self._f.close()


class _SplitWriter:
    """One split's output: tables appended in order to a temp file; token lengths kept for the stats.

    JSON Lines are encoded by DuckDB's to_json (one compact object per line, keys in
    the schema's order, UTF-8); Parquet is zstd, in row groups of exactly ROW_GROUP_ROWS.
    """

    def __init__(self, final: Path, fmt: str, schema: pa.Schema, encoder):
        self.final, self.fmt, self.schema, self.encoder = final, fmt, schema, encoder
        self.tmp = final.with_name(f".{final.name}.{os.getpid()}{TMP_SUFFIX}")
        self.file = _HashingFile(self.tmp)
        self.rows = 0
        self.traces = 0
        self.tokens = array("q")
        self.tokens_missing = False
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._parquet = pq.ParquetWriter(self.file, schema, compression="zstd") if fmt == "parquet" else None
        fields = ", ".join(f"'{f.name}': \"{f.name}\"" for f in schema)
        self._to_json = f"SELECT to_json({{{fields}}}) AS line FROM __export_rows"

    def write(self, table: pa.Table) -> None:
        """Append `table` (whole traces, in order)."""
        with self._naming_errors():
            self._write(table)

    @contextmanager
    def _naming_errors(self):
        """An OSError from writing the temp file names the file it is for (a full disk says where)."""
        try:
            yield
        except OSError as exc:
            if exc.filename is None:
                exc.filename = str(self.final)
            raise

    def _write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        self.traces += pc.count_distinct(table.column("trace_id")).as_py()
        tokens = table.column("n_tokens")
        if tokens.null_count:
            self.tokens_missing = True
        self.tokens.extend(v for v in tokens.to_pylist() if v is not None)
        if self._parquet is None:
            self.encoder.register("__export_rows", table)
            lines = self.encoder.sql(self._to_json).to_arrow_table().column("line").combine_chunks()
            self.encoder.unregister("__export_rows")
            lines = pc.binary_join_element_wise(lines, pa.scalar("\n"), pa.scalar(""))
            offsets = memoryview(lines.buffers()[1]).cast("q" if pa.types.is_large_string(lines.type) else "i")
            start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
            self.file.write(memoryview(lines.buffers()[2])[start:end])
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        table = pa.concat_tables(self._pending) if self._pending else self.schema.empty_table()
        start = 0
        while table.num_rows - start >= ROW_GROUP_ROWS or (final and start < table.num_rows):
            # one contiguous array per column: Parquet pages must not depend on how the rows arrived
            self._parquet.write_table(table.slice(start, ROW_GROUP_ROWS).combine_chunks(),
                                      row_group_size=ROW_GROUP_ROWS)
            start += ROW_GROUP_ROWS
        rest = table.slice(start)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> None:
        with self._naming_errors():
            if self._parquet is not None:
                self._flush(final=True)
                self._parquet.close()
            self.file.close()

    def abandon(self) -> None:
        try:
            if self._parquet is not None:
                self._parquet.close()
        except Exception:
            pass
        try:
            self.file.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)

    def token_stats(self) -> dict | None:
        if self.tokens_missing or not self.tokens:
            return None
        values = sorted(self.tokens)
        return {"min": values[0], "median": _quantile(values, 0.5), "p95": _quantile(values, 0.95),
                "max": values[-1]}

    def describe(self) -> dict:
        return {"file": self.final.name, "rows": self.rows, "traces": self.traces, "bytes": self.file.size,
                "sha256": self.file.sha256.hexdigest(), "tokens": self.token_stats()}


def _quantile(sorted_values, q: float) -> float:
    """Linear interpolation between closest ranks, like DuckDB's quantile_cont."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    value = sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
    return int(value) if value == int(value) else round(value, 2)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(out: Path) -> list[Path]:
    """Temp files and spill directories of exports into `out` that were killed; returns what was removed."""
    removed = []
    for path in sorted(out.iterdir()) if out.is_dir() else ():
        m = _TMP_RE.match(path.name)
        if m and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# ---------------------------------------------------------------------------
# The directory is the export: what an earlier export wrote, and anything else


def _listed_by_manifest(out: Path) -> set[str] | None:
    """The names an earlier export's manifest lists (its split files, its card, itself); None when the
    manifest is missing or unreadable. Only plain names inside `out` count."""
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        names = {s["file"] for s in manifest["splits"].values()} | {MANIFEST}
        if manifest.get("card"):
            names.add(manifest["card"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return {n for n in names if isinstance(n, str) and n and Path(n).name == n and n not in (".", "..")}


def check_directory(out: Path, overwrite: bool, db: Path | None = None) -> tuple[set[str], list[Path]]:
    """What is in `out` before an export: the names the earlier manifest lists, and everything else (files
    and directories, but not export temp files, which remove_leftovers handles). Anything else stops the
    export unless `overwrite` (it is then deleted once the new export is in place); the warehouse `db`
    itself, its data directory and its lock are never deleted."""
    if not out.is_dir():
        return set(), []
    listed = _listed_by_manifest(out) or set()
    unknown = [p for p in sorted(out.iterdir()) if p.name not in listed and not _TMP_RE.match(p.name)]
    if db is not None:
        own = {q.resolve() for q in (db, storage.data_dir(db), storage.lock_path(db), Path(f"{db}.wal"))}
        if any(p.resolve() in own for p in unknown):
            raise WarehouseError(f"--out {out} holds the warehouse {db} (or its data): export into a directory "
                                 f"of its own")
    if unknown and not overwrite:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        why = ("no earlier export's manifest.json lists them" if (out / MANIFEST).exists()
               else "there is no manifest.json of an earlier export")
        raise WarehouseError(f"--out {out} holds files that are not part of an earlier export ({names}{more}; "
                             f"{why}); export into a new or empty directory, or pass --overwrite to delete them")
    return listed, unknown


def _remove(paths) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# The dataset card


def _feature(t: pa.DataType) -> dict:
    """A column type as the `features` of a Hugging Face dataset card (the types the records use)."""
    if pa.types.is_list(t) and pa.types.is_struct(t.value_type):
        return {"list": [{"name": f.name, **_feature(f.type)} for f in t.value_type]}
    names = {pa.string(): "string", pa.int32(): "int32", pa.int64(): "int64", pa.bool_(): "bool"}
    return {"dtype": names[t]}


def _source_licence(source: str | None) -> str | None:
    """The `license:` of the source dataset's card, when the source is a directory in the hub layout."""
    import yaml

    try:
        text = (Path(source) / CARD).read_text(encoding="utf-8") if source and Path(source).is_dir() else ""
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    try:
        header = yaml.safe_load(text.split("---", 2)[1]) or {}
    except (yaml.YAMLError, IndexError):
        return None
    licence = header.get("license") if isinstance(header, dict) else None
    return licence if isinstance(licence, str) else None


def dataset_card(manifest: dict, schema: pa.Schema) -> str:
    """README.md for the export directory: a YAML header Hugging Face reads (configs with the split files,
    features, split sizes, licence) and how the set was made."""
    import yaml

    runs = manifest["ingest_runs"]
    licences = {_source_licence(r["source"]) for r in runs}
    licence = licences.pop() if len(licences) == 1 and None not in licences else None
    # `datasets` cannot load a split of zero rows ("corresponds to no data"): an empty split keeps its file
    # but is not in the configs
    splits = {name: s for name, s in manifest["splits"].items() if s["rows"]}
    empty = [name for name, s in manifest["splits"].items() if not s["rows"]]
    header = {
        "license": licence or "unknown",
        "pretty_name": f"Memento training set: {manifest['kind']}",
        "task_categories": ["text-generation"],
        "tags": ["memento", "reasoning", "chat", manifest["kind"]],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": name, "path": s["file"]} for name, s in splits.items()]}],
        "dataset_info": {
            "features": [{"name": f.name, **_feature(f.type)} for f in schema],
            "splits": [{"name": name, "num_bytes": s["bytes"], "num_examples": s["rows"]} for name, s in splits.items()],
        },
    }
    f, near = manifest["filters"], manifest["near_duplicates"]
    lines = [
        "---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000).rstrip(), "---", "",
        f"# Memento training set: `{manifest['kind']}`", "",
        f"Chat examples of the `{manifest['kind']}` kind ({KIND_DESCRIPTIONS[manifest['kind']]}), written by "
        f"`mementos export` from the export view `{manifest['model']}` (text layout version "
        f"{manifest['layout_version']}). Load with `datasets.load_dataset(\"<this directory>\")`.", "",
        "## Splits", "",
        "| split | file | examples | traces | bytes |", "|---|---|---:|---:|---:|",
        *[f"| {name} | {s['file']} | {s['rows']:,} | {s['traces']:,} | {s['bytes']:,} |"
          for name, s in manifest["splits"].items()],
        *(["", f"Empty, so not in the configs (`datasets` cannot load a split of no rows): {', '.join(empty)}."]
          if empty else []),
        "", "## How it was made", "",
        "Source: " + ("; ".join(f"`{r['dataset']}` from {r['source']} (run {r['run_id']}, {r['traces']:,} traces, "
                                f"ingested {r['finished_at']})" for r in runs) or "none") + ".",
        f"Licence: {'carried from the source dataset card: ' + licence if licence else 'unknown: see the source dataset'}.",
        "",
        f"- seed {f['seed']}; split fractions " + ", ".join(f"{n}={v:g}" for n, v in f["split"].items())
        + "; a problem and its near-duplicates go to one split",
        f"- near-duplicates: {near['method']}, Jaccard threshold {near['threshold']} ({near['permutations']} "
        f"permutations, {near['bands']} bands of {near['rows_per_band']} rows); {near['problems']:,} distinct "
        f"problems, {near['groups_merged']:,} groups of near-duplicates ({near['problems_in_them']:,} problems)",
        f"- flagged traces {'kept' if f['include_flagged'] else 'left out'}; domain {f['domain'] or 'any'}; "
        f"max tokens {f['max_tokens'] or 'none'}; outliers excluded: {_listing(f['exclude_outliers'])}; "
        f"exact duplicates {f['duplicates']}",
        f"- {manifest['candidates']:,} candidate examples; left out: "
        + (", ".join(f"{n:,} {r}" for r, n in manifest["left_out"].items() if n) or "nothing")
        + ("" if not manifest["left_out_outliers"] else " (outliers by reason: " + ", ".join(
            f"{n:,} {r}" for r, n in manifest["left_out_outliers"].items()) + ")"),
        f"- `n_tokens`: {manifest['token_count']}",
        "", "`manifest.json` beside this card has the same and more (model versions and fingerprints, "
        "ingest runs, per-split sha256 and token statistics).", "",
    ]
    return "\n".join(lines)


def _listing(value) -> str:
    return ", ".join(value) if isinstance(value, list) else value or "none"


KIND_DESCRIPTIONS = {
    "memento": "the problem, then the response with its block and memento markup",
    "compressed": "the problem, then every memento (blocks evicted) and the answer",
    "summarize": "one example per block: an instruction and the block, then its memento",
    "plain": "the problem, then the blocks without any memento markup, and the answer",
}


# ---------------------------------------------------------------------------
# The export


@dataclass
class ExportResult:
    kind: str
    fmt: str
    out: Path
    model: str
    candidates: int  # rows of the export view
    left_out: dict[str, int]
    splits: dict[str, dict]  # name -> describe()
    seconds: float
    text_chars: int  # response chars of the traces the examples were cut from (for throughput)
    filters: dict = field(default_factory=dict)
    left_out_outliers: dict[str, int] = field(default_factory=dict)  # reason -> traces' examples, of "outlier"
    near_duplicates: dict = field(default_factory=dict)  # near_duplicate_groups' stats

    @property
    def rows(self) -> int:
        return sum(s["rows"] for s in self.splits.values())

    @property
    def traces(self) -> int:
        return sum(s["traces"] for s in self.splits.values())

    @property
    def bytes(self) -> int:
        return sum(s["bytes"] for s in self.splits.values())

    def format(self) -> str:
        lines = [f"export {self.kind} -> {self.out} ({self.fmt}, from {self.model})"]
        width = max(len(n) for n in self.splits)
        for name, s in self.splits.items():
            t = s["tokens"]
            tokens = (f"tokens min {t['min']:,} / median {t['median']:,} / p95 {t['p95']:,} / max {t['max']:,}"
                      if t else "tokens -")
            lines.append(f"  {name:<{width}}  {s['rows']:>10,} examples  {s['traces']:>9,} traces  "
                         f"{s['bytes'] / 1e6:9.1f} MB  {tokens}")
        left = [f"{n:,} {reason}" for reason, n in self.left_out.items() if n]
        lines.append("  left out: " + (", ".join(left) if left else "nothing")
                     + f" (of {self.candidates:,} candidate examples)")
        why = {"flagged": "flagged traces (--include-flagged keeps them)",
               "outlier": "listed in outlier_traces (--exclude-outliers)",
               "copied": "summarize: the memento copies its block",
               "domain": f"domain is not {self.filters.get('domain')!r}",
               "duplicate": "exact duplicates of an earlier trace (same content_hash)",
               "too_long": f"more than --max-tokens {self.filters.get('max_tokens')} tokens",
               "empty": "no problem, or nothing to put in the assistant turn"}
        for reason, n in self.left_out.items():
            if n:
                lines.append(f"    {reason:<9} {n:>8,}  {why[reason]}")
                if reason == "outlier":
                    lines += [f"      {r:<24} {k:>8,}" for r, k in self.left_out_outliers.items()]
        n = self.near_duplicates
        if n:
            lines.append(f"  splits by problem: {n['problems']:,} distinct problems; {n['groups_merged']:,} groups of "
                         f"near-duplicates ({n['problems_in_them']:,} problems, the largest {n['largest_group']:,}) "
                         f"kept in one split each ({n['seconds']:.1f} s)")
        rate = max(self.seconds, 1e-9)
        lines.append(f"  {self.rows:,} examples from {self.traces:,} traces ({self.text_chars / 1e6:,.1f} M chars "
                     f"of response text), {self.bytes / 1e6:,.1f} MB written in {self.seconds:.1f} s: "
                     f"{self.traces / rate:,.0f} traces/s, {self.text_chars / 1e6 / rate:,.1f} M chars/s read, "
                     f"{self.bytes / 1e6 / rate:,.1f} MB/s written")
        lines.append(f"  manifest: {self.out / MANIFEST}")
        return "\n".join(lines)


def _outliers(con, selected: bool | Sequence[str]) -> list[str]:
    """Fill the temp table __export_outliers (trace_id, reason): the traces of outlier_traces to leave out,
    each under the first of its reasons that was selected (True: any reason; the model's order). The reasons
    are read from a `reasons` or `reason` column, comma-separated text or a list, so a change of the model's
    other columns or of its grain (one row per trace and reason) does not matter. Returns the reasons present."""
    con.execute("CREATE OR REPLACE TEMP TABLE __export_outliers (trace_id VARCHAR, reason VARCHAR)")
    if not selected:
        return []
    columns = {name.lower(): type_ for name, type_, *_ in con.execute(f"DESCRIBE {OUTLIER_MODEL}").fetchall()}
    column = next((c for c in ("reasons", "reason") if c in columns), None)
    if "trace_id" not in columns or column is None:
        raise WarehouseError(f"--exclude-outliers: the model {OUTLIER_MODEL} has no trace_id and reasons column "
                             f"(its columns: {', '.join(columns)}); check models/{OUTLIER_MODEL}.sql")
    as_list = (f'"{column}"' if columns[column].endswith("[]")
               else f"""string_split(CAST("{column}" AS VARCHAR), ',')""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __outlier_reasons AS
        SELECT trace_id, trim(CAST(reason AS VARCHAR)) AS reason, pos FROM (
            SELECT trace_id, unnest({as_list}) AS reason, generate_subscripts({as_list}, 1) AS pos
            FROM {OUTLIER_MODEL})
        WHERE trim(CAST(reason AS VARCHAR)) <> ''""")
    present = [r for (r,) in con.execute("SELECT DISTINCT reason FROM __outlier_reasons ORDER BY ALL").fetchall()]
    wanted = None if selected is True else list(selected)
    unknown = [r for r in wanted or () if r not in present]
    if unknown:
        raise WarehouseError(f"--exclude-outliers {','.join(wanted)}: no trace in {OUTLIER_MODEL} has the reason "
                             f"{', '.join(unknown)}; reasons present: {', '.join(present) or '(none)'}")
    con.execute("""
        INSERT INTO __export_outliers
        SELECT trace_id, reason FROM __outlier_reasons
        WHERE $all OR list_contains($wanted, reason)
        QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY pos, reason) = 1""",
                {"all": wanted is None, "wanted": wanted or []})
    return present


def _plan_sql(view: str, per_block: bool) -> str:
    block = ", block_idx" if per_block else ""
    return f"""
CREATE TEMP TABLE __export_plan AS
WITH candidates AS (
    SELECT v.*, o.reason AS outlier_reason,
        CASE
            WHEN NOT $include_flagged AND status = 'flagged' THEN 'flagged'
            WHEN $domain IS NOT NULL AND domain IS DISTINCT FROM $domain THEN 'domain'
            WHEN o.reason IS NOT NULL THEN 'outlier'
        END AS pre
    FROM {view} AS v
    LEFT JOIN __export_outliers AS o ON o.trace_id = v.trace_id
),
ranked AS (
    SELECT *,
        row_number() OVER (PARTITION BY pre IS NULL, content_hash{block} ORDER BY dataset, source_row) AS copy
    FROM candidates
)
SELECT * EXCLUDE (pre, copy),
    coalesce(pre, CASE
        WHEN copy > 1 THEN 'duplicate'
    END) AS reason
FROM ranked
"""


# Kept traces cut into chunks of consecutive source rows: a new chunk starts every CHUNK_CHARS
# response chars or CHUNK_TRACES traces, whichever comes first.
def _chunks_sql() -> str:
    return f"""
WITH kept AS (
    SELECT DISTINCT dataset, source_row, response_chars FROM __export_plan WHERE reason IS NULL
),
numbered AS (
    SELECT dataset, source_row,
        (sum(response_chars) OVER w - response_chars) // {int(CHUNK_CHARS)} AS by_chars,
        (row_number() OVER w - 1) // {int(CHUNK_TRACES)} AS by_traces
    FROM kept
    WINDOW w AS (PARTITION BY dataset ORDER BY source_row ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT dataset, min(source_row) AS first_row, max(source_row) AS last_row
FROM numbered
GROUP BY dataset, by_chars, by_traces
ORDER BY dataset, first_row
"""

_TEXTS_SQL = """
SELECT source_row, problem, response FROM traces
WHERE dataset = $dataset AND source_row BETWEEN $first AND $last
  AND trace_id IN (SELECT trace_id FROM __export_plan
                   WHERE reason IS NULL AND dataset = $dataset AND source_row BETWEEN $first AND $last)
"""


def _check_domain(db: Path, domain: str) -> None:
    """An unknown --domain is a mistake, not a filter that keeps nothing: say which domains there are."""
    with storage.connect(db, read_only=True) as con:
        present = [d for (d,) in con.execute("SELECT DISTINCT coalesce(domain, '(unknown)') FROM traces "
                                             "ORDER BY ALL").fetchall()]
    if domain not in present:
        raise WarehouseError(f"--domain {domain}: no trace has this domain; domains present: "
                             f"{', '.join(present) or '(none: the warehouse is empty)'}")


def _ingest_runs(con) -> list[dict]:
    rows = con.execute(
        "SELECT dataset, run_id, source, config, CAST(finished_at AS VARCHAR), default_rows, parser_version, "
        "token_encoding FROM ingest_runs QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY finished_at DESC) = 1 "
        "ORDER BY dataset"
    ).fetchall()
    keys = ("dataset", "run_id", "source", "config", "finished_at", "traces", "parser_version", "token_encoding")
    return [dict(zip(keys, r)) for r in rows]


def export(db: str | Path, kind: str, out: str | Path, fmt: str = "jsonl", splits: str = DEFAULT_SPLITS,
           seed: int = 0, domain: str | None = None, max_tokens: int | None = None,
           include_flagged: bool = False, exclude_outliers: bool | str | Sequence[str] | None = False, overwrite: bool = False,
           allow_empty: bool = False, models_dir=None, echo: Callable[[str], None] | None = None,
           progress: bool = False) -> ExportResult:
    """Write the `kind` training set from the warehouse at `db` into the directory `out`."""
    started = time.monotonic()
    db, out = Path(db), Path(out)
    if kind not in KINDS:
        raise WarehouseError(f"unknown export kind {kind!r}; kinds: {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise WarehouseError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    split_list = parse_splits(splits)
    if max_tokens is not None and max_tokens < 1:
        raise WarehouseError(f"--max-tokens {max_tokens}: must be at least 1")
    finals = [f"{name}.{fmt}" for name, _ in split_list] + [CARD, MANIFEST]
    spill = out / f".spill.{os.getpid()}{TMP_SUFFIX}"
    # not over the warehouse, not below a file: checked before any work
    guard.output_dir(db, out, finals + [f".{n}.{os.getpid()}{TMP_SUFFIX}" for n in finals] + [spill.name])
    guard.require_warehouse(db)
    view = KINDS[kind]
    per_block = kind == "summarize"
    check_directory(out, overwrite, db)  # before any build: stop early on a directory that is not an export
    models = ensure_models(db, view, models_dir=models_dir, echo=echo)
    if exclude_outliers:
        models.update(ensure_models(db, OUTLIER_MODEL, models_dir=models_dir, echo=echo))

    if domain is not None:
        _check_domain(db, domain)

    guard.make_dir(out)
    free_before = guard.free_bytes(out)
    remove_leftovers(out)
    listed, unknown = check_directory(out, overwrite, db)
    if isinstance(exclude_outliers, str):  # the command line's value: "all" or REASONS, comma-separated
        exclude_outliers = exclude_outliers == "all" or [r.strip() for r in exclude_outliers.split(",") if r.strip()]
    outliers = (None if not exclude_outliers else "all" if exclude_outliers is True else list(exclude_outliers))
    filters = {"include_flagged": include_flagged, "domain": domain, "max_tokens": max_tokens,
               "exclude_outliers": outliers,
               "duplicates": "written once (the first by dataset, source_row)",
               "problem_groups": "near-duplicates together (near_duplicates)", "seed": seed,
               "split": dict(split_list)}
    schema = output_schema(kind)
    writers: dict[str, _SplitWriter] = {}
    index = {name: i for i, (name, _) in enumerate(split_list)}
    empty = copies = too_long = 0
    card_tmp = out / f".{CARD}.{os.getpid()}{TMP_SUFFIX}"
    manifest_tmp = out / f".{MANIFEST}.{os.getpid()}{TMP_SUFFIX}"
    try:
        with storage.connect(db, read_only=True) as con:
            spill.mkdir(exist_ok=True)
            con.execute("SET memory_limit = ?", [MEMORY_LIMIT])
            con.execute("SET temp_directory = ?", [str(spill)])  # a bound value: --out may hold quotes
            runs = _ingest_runs(con)
            _outliers(con, True if exclude_outliers is True else list(exclude_outliers or ()))
            con.execute(_plan_sql(view, per_block), {"include_flagged": include_flagged, "domain": domain})
            counts = dict(con.execute("SELECT coalesce(reason, ''), count(*) FROM __export_plan GROUP BY ALL").fetchall())
            outlier_counts = dict(con.execute(
                "SELECT outlier_reason, count(*) FROM __export_plan WHERE reason = 'outlier' "
                "GROUP BY ALL ORDER BY ALL").fetchall())
            [(text_chars,)] = con.execute("SELECT coalesce(sum(response_chars), 0) FROM (SELECT DISTINCT trace_id, "
                                          "response_chars FROM __export_plan WHERE reason IS NULL)").fetchall()
            problems = con.sql("SELECT DISTINCT problem FROM traces WHERE trace_id IN "
                               "(SELECT trace_id FROM __export_plan WHERE reason IS NULL)")
            groups, near = near_duplicate_groups((b.column(0).to_pylist() for b in
                                                  problems.to_arrow_reader(_GROUP_BATCH_ROWS)), seed)
            chunks = con.execute(_chunks_sql()).fetchall()

            encoder = duckdb.connect()  # in memory, order-preserving: encodes the JSON lines
            encoder.execute("SET memory_limit = ?", [MEMORY_LIMIT])
            for name, _ in split_list:
                writers[name] = _SplitWriter(out / f"{name}.{fmt}", fmt, schema, encoder)
            order = "source_row, block_idx" if per_block else "source_row"
            plan_query = (f"SELECT * FROM __export_plan WHERE reason IS NULL AND dataset = $dataset "
                          f"AND source_row BETWEEN $first AND $last ORDER BY {order}")
            bar = _progress(progress, sum(last - first + 1 for _, first, last in chunks), kind)
            for dataset, first, last in chunks:
                params = {"dataset": dataset, "first": first, "last": last}
                plan = con.sql(plan_query, params=params).to_arrow_table()
                texts = con.sql(_TEXTS_SQL, params=params).to_arrow_table()
                at = pc.index_in(plan.column("source_row"), value_set=texts.column("source_row"))
                trace_split = pa.array([index[split_of(p, seed, split_list, groups)]
                                        for p in texts.column("problem").to_pylist()], pa.int8())
                user, assistant, spans, copied = _turns(kind, plan, texts, at)
                columns = {"messages": _messages_array(user, assistant), "trace_id": plan.column("trace_id")}
                if per_block:
                    columns["block_idx"] = plan.column("block_idx")
                columns.update({c: plan.column(c) for c in LABELS})
                columns["n_tokens"] = n_tokens = (summarize_tokens(plan.column("n_tokens"), user, assistant)
                                                  if per_block else
                                                  spans_tokens(plan.column("n_tokens"), user, assistant, spans))
                if spans is not None:
                    columns["spans"] = spans
                table = pa.table(columns).cast(schema)
                keep, long = _within(n_tokens, max_tokens)
                too_long += long
                fits = keep
                keep = pc.and_(keep, pc.and_(_has_text(user), _has_text(assistant)))
                empty += (pc.sum(fits).as_py() or 0) - (pc.sum(keep).as_py() or 0) if len(keep) else 0
                if copied is not None and len(keep):
                    copies += pc.sum(pc.and_(keep, copied)).as_py() or 0
                    keep = pc.and_(keep, pc.invert(copied))
                splits_of_rows = trace_split.take(at)
                for name, i in index.items():
                    writers[name].write(table.filter(pc.and_(keep, pc.equal(splits_of_rows, i))))
                del plan, texts, user, assistant, spans, columns, table
                checkpoint("export.mid_write")
                if bar is not None:
                    bar.update(last - first + 1)
            if bar is not None:
                bar.close()
            encoder.close()
        for w in writers.values():
            w.close()
        left_out = {reason: counts.get(reason, 0) for reason in REASONS} | {"too_long": too_long, "empty": empty,
                                                                             "copied": copies}
        if not allow_empty and not any(w.rows for w in writers.values()):
            why = ", ".join(f"{n:,} {reason}" for reason, n in left_out.items() if n) or "the view has no rows"
            raise WarehouseError(f"export {kind} would write no examples: of {sum(counts.values()):,} candidates, "
                                 f"left out: {why}; change the filters, or pass --allow-empty to write empty files")
        split_info = {name: w.describe() for name, w in writers.items()}
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "kind": kind,
            "format": fmt,
            "model": view,
            "models": models,
            "layout_version": LAYOUT_VERSION,
            "ingest_runs": runs,
            "filters": filters,
            "token_count": TOKEN_DEFINITION,
            "candidates": sum(counts.values()),
            "left_out": left_out,
            "left_out_outliers": outlier_counts,
            "near_duplicates": {k: v for k, v in near.items() if k != "seconds"},
            "splits": split_info,
            "card": CARD,
        }
        # Everything that takes space is written before anything is replaced: a full disk
        # (or a kill) up to here leaves the files in `out` as they were.
        _write_synced(card_tmp, dataset_card(manifest, schema))
        _write_synced(manifest_tmp, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        checkpoint("export.before_rename")
        (out / MANIFEST).unlink(missing_ok=True)  # a manifest on disk always describes the files beside it
        for w in writers.values():
            os.replace(w.tmp, w.final)
        os.replace(card_tmp, out / CARD)
        # what an earlier export listed and this one did not write (other split names, another format),
        # and with --overwrite whatever else was there: the directory is now this export only
        ours = {w.final.name for w in writers.values()} | {CARD, MANIFEST}
        _remove([out / name for name in sorted(listed - ours)] + [p for p in unknown if p.name not in ours])
        os.replace(manifest_tmp, out / MANIFEST)
    except BaseException as exc:
        for w in writers.values():
            w.abandon()
        card_tmp.unlink(missing_ok=True)
        manifest_tmp.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
        if guard.is_disk_full(exc):
            raise guard.disk_full(guard.failed_path(exc, out), free_before=free_before,
                                  done=f"nothing was replaced and no temporary file is left in {out}") from None
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return ExportResult(kind, fmt, out, view, manifest["candidates"], left_out, split_info,
                        time.monotonic() - started, int(text_chars), filters, outlier_counts, near)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _progress(enabled: bool, total: int, kind: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" traces", desc=f"export {kind}", leave=False, dynamic_ncols=True)
