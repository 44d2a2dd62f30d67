"""Flatten one Arrow batch of input rows into rows of the base tables.

Pure functions of their input: a batch and where it came from go in, Arrow
tables for `traces`, `segments`, `parse_issues` (default config) or
`full_traces`, `sentences`, `full_blocks`, `parse_issues` (full config) come out.
"""

from __future__ import annotations

import gc
import hashlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.full_config import check_full_row
from ingest.parser import parse_response
from ingest.tokens import count_tokens


@dataclass(frozen=True)
class BatchOrigin:
    dataset: str
    run_id: str
    source_file: str
    first_row: int  # source_row of the batch's first row


@dataclass
class Flattened:
    tables: dict[str, pa.Table]
    rows: int = 0
    ok: int = 0
    flagged: int = 0
    input_bytes: int = 0
    issue_counts: Counter = field(default_factory=Counter)
    hashes: list[tuple[str, str]] = field(default_factory=list)  # (content_hash, trace_id), default config


def trace_id(dataset: str, source_row: int) -> str:
    return f"{dataset}:{source_row}"


def full_trace_id(dataset: str, source_row: int) -> str:
    return f"{dataset}:full:{source_row}"


def content_hash(problem: str | None, response: str | None) -> str:
    """Equal hashes mean the same problem and response; None differs from ''."""
    h = hashlib.blake2b(digest_size=16)
    for part in (problem, response):
        # 0xff never occurs in UTF-8, so it cannot collide with real text.
        h.update(b"\xff" if part is None else part.encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()


def _column(batch: pa.Table, name: str) -> list:
    if name not in batch.column_names:
        return [None] * batch.num_rows
    col = batch.column(name)
    if pa.types.is_integer(col.type):
        col = pc.cast(col, pa.string())
    return col.to_pylist()


# Columns of `traces` taken as they come (cast to the table's types), never as Python objects.
_PASSTHROUGH = ("problem", "response", "domain", "source", "difficulty")


def _arrow_column(batch: pa.Table, name: str, type_: pa.DataType) -> pa.ChunkedArray:
    """The column as `_column` would give it back to Arrow: integers as their decimal text, missing as NULL."""
    if name not in batch.column_names:
        return pa.chunked_array([pa.nulls(batch.num_rows, type_)])
    col = batch.column(name)
    if pa.types.is_integer(col.type):
        col = pc.cast(col, pa.string())
    return col if col.type == type_ else pc.cast(col, type_)


def _response_bytes(batch: pa.Table) -> int:
    return int(pc.sum(pc.binary_length(batch.column("response"))).as_py() or 0)


@contextmanager
def _gc_paused():
    """Flattening allocates millions of short-lived, acyclic objects (segments,
    list cells); the cyclic GC would only re-scan them (~15% of the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _ascii_space(data: np.ndarray) -> np.ndarray:
    """Python's str.isspace() for ASCII bytes: \t \n \v \f \r (9-13), the separators \x1c-\x1f (28-31), space."""
    return (data == 32) | ((data - np.uint8(9)) < 5) | ((data - np.uint8(28)) < 4)


def _word_counts_chunk(texts: pa.StringArray) -> np.ndarray:
    """len(t.split()) for every t, vectorised over the UTF-8 buffer.

    A word starts at a non-space byte that follows a space byte or starts its
    text. Bytes >= 0x80 count as non-space, which is exact for every text but
    those with non-ASCII whitespace (U+0085, U+00A0, U+2000.., U+3000), so
    texts that are not pure ASCII are recounted with Arrow's Unicode split,
    whose whitespace is exactly str.isspace().
    """
    n = len(texts)
    counts = np.zeros(n, dtype=np.int64)
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset:texts.offset + n + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi > lo:
        space = _ascii_space(np.frombuffer(texts.buffers()[2], dtype=np.uint8)[lo:hi])
        starts = ~space
        starts[1:] &= space[:-1]
        begin = offsets[:-1][offsets[1:] > offsets[:-1]] - lo  # first byte of every non-empty text
        starts[begin] = ~space[begin]
        positions = np.flatnonzero(starts)
        counts = np.searchsorted(positions, offsets[1:] - lo) - np.searchsorted(positions, offsets[:-1] - lo)
    not_ascii = pc.invert(pc.string_is_ascii(texts)).fill_null(False)
    if pc.any(not_ascii).as_py():
        where = pc.indices_nonzero(not_ascii)
        trimmed = pc.utf8_trim_whitespace(texts.take(where))
        exact = pc.if_else(pc.equal(pc.binary_length(trimmed), 0), 0,
                           pc.list_value_length(pc.utf8_split_whitespace(trimmed)))
        counts[where.to_numpy()] = exact.to_numpy(zero_copy_only=False)
    return counts


_WORD_COUNT_SLICE = 1024  # texts per step: the byte masks stay a few MB


def word_counts(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`len(t.split())` for every text of a string column (0 for NULL), as int32."""
    if isinstance(texts, pa.ChunkedArray):
        chunks = texts.chunks
    else:
        chunks = [texts]
    parts = [np.zeros(0, dtype=np.int64)]
    for chunk in chunks:
        if chunk.type != pa.string():
            chunk = chunk.cast(pa.string())
        for at in range(0, len(chunk), _WORD_COUNT_SLICE):
            parts.append(_word_counts_chunk(chunk.slice(at, _WORD_COUNT_SLICE)))
    return pa.array(np.concatenate(parts), pa.int32())


@_gc_paused()
def flatten_default(batch: pa.Table, origin: BatchOrigin, schemas: dict[str, pa.Schema],
                    with_tokens: bool, keep_hashes: bool = False) -> Flattened:
    problems = _column(batch, "problem")
    responses = _column(batch, "response")
    dataset = origin.dataset
    traces = {name: [] for name in schemas["traces"].names if name not in _PASSTHROUGH}
    segs = {name: [] for name in schemas["segments"].names}
    issues = {name: [] for name in schemas["parse_issues"].names}
    out = Flattened(tables={}, rows=batch.num_rows, input_bytes=_response_bytes(batch))
    for i, response in enumerate(responses):
        row = origin.first_row + i
        tid = trace_id(dataset, row)
        parsed = parse_response(response)
        digest = content_hash(problems[i], response)
        n_blocks = sum(1 for s in parsed.segments if s.kind == "block")
        for key, value in (
            ("trace_id", tid), ("dataset", dataset), ("run_id", origin.run_id), ("source_row", row),
            ("source_file", origin.source_file), ("content_hash", digest), ("status", parsed.status), ("n_blocks", n_blocks),
            ("n_summaries", sum(1 for s in parsed.segments if s.kind == "summary")),
            ("n_issues", len(parsed.issues)), ("response_chars", len(response or "")),
        ):
            traces[key].append(value)
        for seg in parsed.segments:
            segs["dataset"].append(dataset)
            segs["trace_id"].append(tid)
            segs["kind"].append(seg.kind)
            segs["block_idx"].append(seg.block_idx)
            segs["text"].append(seg.text)
            segs["char_start"].append(seg.char_start)
            segs["char_end"].append(seg.char_end)
            segs["n_chars"].append(len(seg.text))
        for issue in parsed.issues:
            _add_issue(issues, dataset, tid, "default", issue.code, issue.char_offset, issue.detail)
            out.issue_counts[issue.code] += 1
        if parsed.status == "ok":
            out.ok += 1
        else:
            out.flagged += 1
        if keep_hashes:
            out.hashes.append((digest, tid))
    segs["n_tokens"] = count_tokens(segs["text"]) if with_tokens else [None] * len(segs["text"])
    segs["n_words"] = [None] * len(segs["text"])  # filled below, vectorised over the Arrow text column
    segments = pa.Table.from_pydict(segs, schema=schemas["segments"])
    n_words = schemas["segments"].get_field_index("n_words")
    segments = segments.set_column(n_words, schemas["segments"].field(n_words), word_counts(segments.column("text")))
    out.tables = {
        "traces": pa.Table.from_arrays(
            [_arrow_column(batch, f.name, f.type) if f.name in _PASSTHROUGH else pa.array(traces[f.name], f.type)
             for f in schemas["traces"]], schema=schemas["traces"]),
        "segments": segments,
        "parse_issues": pa.Table.from_pydict(issues, schema=schemas["parse_issues"]),
    }
    return out


def _add_issue(issues: dict, dataset: str, tid: str, config: str, code: str, offset: int | None, detail: str):
    issues["dataset"].append(dataset)
    issues["trace_id"].append(tid)
    issues["config"].append(config)
    issues["code"].append(code)
    issues["char_offset"].append(offset)
    issues["detail"].append(detail)


@_gc_paused()
def flatten_full(batch: pa.Table, origin: BatchOrigin, schemas: dict[str, pa.Schema],
                 trace_by_hash: dict[str, str]) -> Flattened:
    problems = _column(batch, "problem")
    responses = _column(batch, "response")
    all_sentences = _column(batch, "sentences")
    all_blocks = _column(batch, "blocks")
    all_summaries = _column(batch, "block_summaries")
    dataset = origin.dataset
    full = {name: [] for name in schemas["full_traces"].names}
    sentences = {name: [] for name in schemas["sentences"].names}
    blocks = {name: [] for name in schemas["full_blocks"].names}
    issues = {name: [] for name in schemas["parse_issues"].names}
    out = Flattened(tables={}, rows=batch.num_rows, input_bytes=_response_bytes(batch))
    for i, response in enumerate(responses):
        row = origin.first_row + i
        fid = full_trace_id(dataset, row)
        digest = content_hash(problems[i], response)
        tid = trace_by_hash.get(digest)
        checked = check_full_row(response, all_sentences[i], all_blocks[i], all_summaries[i])
        row_sentences = all_sentences[i] or []
        for key, value in (
            ("dataset", dataset), ("full_trace_id", fid), ("trace_id", tid), ("run_id", origin.run_id),
            ("source_row", row), ("content_hash", digest), ("status", checked.status),
            ("n_sentences", len(row_sentences)), ("n_blocks", len(all_blocks[i] or [])),
            ("n_summaries", len(all_summaries[i] or [])),
        ):
            full[key].append(value)
        for idx, text in enumerate(row_sentences):
            sentences["dataset"].append(dataset)
            sentences["full_trace_id"].append(fid)
            sentences["trace_id"].append(tid)
            sentences["sentence_idx"].append(idx)
            sentences["text"].append(text)
        for block in checked.blocks:
            blocks["dataset"].append(dataset)
            blocks["full_trace_id"].append(fid)
            blocks["trace_id"].append(tid)
            blocks["block_idx"].append(block.block_idx)
            blocks["sentence_start"].append(block.sentence_start)
            blocks["sentence_end"].append(block.sentence_end)
            blocks["text"].append(block.text)
            blocks["summary"].append(block.summary)
        for issue in checked.issues:
            _add_issue(issues, dataset, fid, "full", issue.code, None, issue.detail)
            out.issue_counts[issue.code] += 1
        if checked.status == "ok":
            out.ok += 1
        else:
            out.flagged += 1
    out.tables = {
        "full_traces": pa.Table.from_pydict(full, schema=schemas["full_traces"]),
        "sentences": pa.Table.from_pydict(sentences, schema=schemas["sentences"]),
        "full_blocks": pa.Table.from_pydict(blocks, schema=schemas["full_blocks"]),
        "parse_issues": pa.Table.from_pydict(issues, schema=schemas["parse_issues"]),
    }
    return out
