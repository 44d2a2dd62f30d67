"""Flatten one Arrow batch of input rows into rows of the base tables.

Pure functions of their input: a batch and where it came from go in, an Arrow
table of the stored `traces` (default config) or `full_traces` (full config)
comes out (sql/schema.sql). Segments, sentences, blocks and issues are nested
lists in those rows; the base views unnest them (sql/views.sql).
"""

from __future__ import annotations

import gc
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from mementos.ingest.full_config import check_full_row
from mementos.ingest.parser import parse_response
from mementos.ingest.vector_parser import parse_well_formed, range_word_counts, single_array, utf8_offsets
from mementos.foundation.tokens import count_tokens


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
    unsegmented: int = 0
    input_bytes: int = 0
    issue_counts: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)  # rows of each derived table, for reconciliation

    def add(self, other: "Flattened") -> None:
        """Count `other`'s rows in too (its tables are not kept): a shard's counters from its batches'."""
        self.rows += other.rows
        self.ok += other.ok
        self.flagged += other.flagged
        self.unsegmented += other.unsegmented
        self.input_bytes += other.input_bytes
        self.issue_counts.update(other.issue_counts)
        self.counts.update(other.counts)


def trace_id(dataset: str, source_row: int, turn: int | None = None) -> str:
    """'<dataset>:<source_row>', and '.<turn>' for a conversation's assistant turn when it has several."""
    return f"{dataset}:{source_row}" if turn is None else f"{dataset}:{source_row}.{turn}"


def full_trace_id(dataset: str, source_row: int) -> str:
    return f"{dataset}:full:{source_row}"


def _utf8_values(col: pa.ChunkedArray | pa.Array) -> list:
    """Each value's UTF-8 bytes as a memoryview into the column's buffer (None for NULL), without copying."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    values = []
    for arr in chunks:
        n = len(arr)
        offsets = utf8_offsets(arr).tolist()
        data = memoryview(arr.buffers()[2] or b"")
        valid = [True] * n if arr.null_count == 0 else arr.is_valid().to_pylist()
        values.extend(data[offsets[k]:offsets[k + 1]] if valid[k] else None for k in range(n))
    return values


def _digest(problem, response) -> str:
    # xxh3-128: a hash made for equality checks, several times blake2b's speed (bench/RESULTS.md).
    h = xxhash.xxh3_128()
    for part in (problem, response):
        if part is None:
            h.update(b"\xff")  # 0xff never occurs in UTF-8, so a NULL cannot collide with real text
        else:
            h.update(part)
            h.update(b"\x00")
    return h.hexdigest()


def content_hashes(problems: pa.ChunkedArray | pa.Array, responses: pa.ChunkedArray | pa.Array) -> list[str]:
    """Each row's content hash, read off the columns' UTF-8 in place: equal hashes mean the
    same problem and response, and NULL differs from ''."""
    return [_digest(p, r) for p, r in zip(_utf8_values(problems), _utf8_values(responses))]


def _column(batch: pa.Table, name: str) -> list:
    if name not in batch.column_names:
        return [None] * batch.num_rows
    col = batch.column(name)
    if pa.types.is_integer(col.type):
        col = pc.cast(col, pa.string())
    return col.to_pylist()


def _arrow_column(batch: pa.Table, name: str, type_: pa.DataType) -> pa.ChunkedArray:
    """The column as `_column` would give it back to Arrow: integers as their decimal text, missing as NULL."""
    if name not in batch.column_names:
        return pa.chunked_array([pa.nulls(batch.num_rows, type_)])
    col = batch.column(name)
    if pa.types.is_integer(col.type) and not pa.types.is_integer(type_):
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


_WORD_COUNT_SLICE = 1024  # texts per step: the byte masks stay a few MB


def word_counts(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`len(t.split())` for every text of a string column (0 for NULL), as int32."""
    if isinstance(texts, pa.ChunkedArray):
        chunks = texts.chunks
    else:
        chunks = [texts]
    parts = [np.zeros(0, dtype=np.int64)]
    for chunk in chunks:
        chunk = single_array(chunk)
        for at in range(0, len(chunk), _WORD_COUNT_SLICE):
            piece = chunk.slice(at, _WORD_COUNT_SLICE)
            offsets = utf8_offsets(piece)
            data = np.frombuffer(piece.buffers()[2] or b"", np.uint8)[offsets[0]:offsets[-1]]
            counts = range_word_counts(data, offsets[:-1] - offsets[0], offsets[1:] - offsets[0])
            if piece.null_count:  # a NULL's slot may still span bytes
                counts[~np.asarray(piece.is_valid())] = 0
            parts.append(counts)
    return pa.array(np.concatenate(parts), pa.int32())


def _nested(columns: list, offsets: list[int], type_: pa.DataType) -> pa.Array:
    """A list<struct> column: one list per row, cut by `offsets` from flat columns (lists or Arrow arrays)."""
    fields = list(type_.value_type)
    values = pa.StructArray.from_arrays(
        [c if isinstance(c, pa.Array) else pa.array(c, f.type) for c, f in zip(columns, fields)], fields=fields)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=type_)


def _stored_table(batch: pa.Table, schema: pa.Schema, computed: dict[str, pa.Array]) -> pa.Table:
    """The stored row of every input row: computed columns, the rest taken from the batch as they come."""
    return pa.Table.from_arrays(
        [computed[f.name] if f.name in computed else _arrow_column(batch, f.name, f.type) for f in schema],
        schema=schema)


_KINDS = pa.array(["block", "summary", "answer", "reasoning"], pa.string())
_KIND_CODE = {"block": 0, "summary": 1, "answer": 2, "reasoning": 3}


@dataclass
class _Rest:
    """The reference parser's output for the rows the fast path left, as flat columns."""

    segments: tuple = field(default_factory=lambda: ([], [], [], [], [], []))  # row, kind, block_idx, start, end, text
    issue_rows: list = field(default_factory=list)
    issue_cols: tuple = field(default_factory=lambda: ([], [], []))  # code, char_offset, detail


def _parse_rest(responses: pa.Array, rows: np.ndarray, status: np.ndarray, issue_counts: Counter) -> _Rest:
    rest = _Rest()
    seg_row, kinds, block_idx, starts, ends, texts = rest.segments
    for i, response in zip(rows.tolist(), responses.take(rows).to_pylist() if len(rows) else []):
        parsed = parse_response(response)
        status[i] = parsed.status
        for seg in parsed.segments:
            seg_row.append(i)
            kinds.append(_KIND_CODE[seg.kind])
            block_idx.append(-1 if seg.block_idx is None else seg.block_idx)
            starts.append(seg.char_start)
            ends.append(seg.char_end)
            texts.append(seg.text)
        for issue in parsed.issues:
            rest.issue_rows.append(i)
            for column, value in zip(rest.issue_cols, (issue.code, issue.char_offset, issue.detail)):
                column.append(value)
            issue_counts[issue.code] += 1
    return rest


@_gc_paused()
def flatten_default(batch: pa.Table, origin: BatchOrigin, schemas: dict[str, pa.Schema],
                    with_tokens: bool) -> Flattened:
    """One row of `stored_traces` per input row: the trace's columns, its segments as offsets
    into its response (with word and token counts), and its parse issues.

    Well-formed responses are parsed a batch at a time by `parse_well_formed`; the rest,
    one by one, by the reference parser, which also gives their issues."""
    schema = schemas["traces"]
    n = batch.num_rows
    response_col = single_array(_arrow_column(batch, "response", pa.string()))
    fast = parse_well_formed(response_col)
    out = Flattened(tables={}, rows=n, input_bytes=_response_bytes(batch))
    status = np.full(n, "ok", dtype=object)
    rest = _parse_rest(response_col, np.flatnonzero(~fast.ok), status, out.issue_counts)
    seg_row, kinds, block_idx, starts, ends, texts = rest.segments
    issue_rows, issue_cols = rest.issue_rows, rest.issue_cols
    out.flagged = int(np.count_nonzero(status == "flagged"))
    out.unsegmented = int(np.count_nonzero(status == "unsegmented"))
    out.ok = n - out.flagged - out.unsegmented

    # The fast path's segments, then the reference parser's; a stable sort by row interleaves them.
    rows = np.concatenate([fast.row, np.asarray(seg_row, np.int64)])
    order = np.argsort(rows, kind="stable")
    n_words = np.concatenate([fast.n_words, word_counts(pa.array(texts, pa.string())).to_numpy()])
    if with_tokens:
        n_tokens = pa.array(count_tokens(fast.texts() + texts), pa.int32()).take(order)
        problem_tokens = pa.array(count_tokens(p or "" for p in _column(batch, "problem")), pa.int32())
    else:
        n_tokens = pa.nulls(len(rows), pa.int32())
        problem_tokens = pa.nulls(n, pa.int32())
    del texts
    block = np.concatenate([fast.block_idx, np.asarray(block_idx, np.int64)])[order]
    seg_offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    kind = np.concatenate([fast.kind, np.asarray(kinds, np.int8)])[order]
    seg_fields = list(schema.field("segments").type.value_type)
    seg_values = pa.StructArray.from_arrays([
        pa.DictionaryArray.from_arrays(pa.array(kind, pa.int8()), _KINDS).cast(seg_fields[0].type),
        pa.array(block, seg_fields[1].type, mask=block < 0),
        pa.array(np.concatenate([fast.char_start, np.asarray(starts, np.int64)])[order], seg_fields[2].type),
        pa.array(np.concatenate([fast.char_end, np.asarray(ends, np.int64)])[order], seg_fields[3].type),
        pa.array(n_words[order], seg_fields[4].type),
        n_tokens.cast(seg_fields[5].type),
    ], fields=seg_fields)
    issue_offsets = np.concatenate([[0], np.cumsum(np.bincount(np.asarray(issue_rows, np.int64), minlength=n))])

    dataset, first_row = origin.dataset, origin.first_row
    # An adapted batch (ingest/adapters.py) says each trace's source row; a plain one is consecutive rows.
    source_rows = (batch.column("source_row").to_numpy() if "source_row" in batch.column_names
                   else np.arange(first_row, first_row + n, dtype=np.int64))
    turns = batch.column("turn").to_pylist() if "turn" in batch.column_names else [None] * n
    columns = {
        "trace_id": pa.array([trace_id(dataset, r, t) for r, t in zip(source_rows.tolist(), turns)], pa.string()),
        "dataset": pa.array([dataset] * n, pa.string()),
        "run_id": pa.array([origin.run_id] * n, pa.string()),
        "source_row": pa.array(source_rows, schema.field("source_row").type),
        "source_file": pa.array([origin.source_file] * n, pa.string()),
        "content_hash": pa.array(content_hashes(_arrow_column(batch, "problem", pa.string()), response_col),
                                 pa.string()),
        "status": pa.array(status.tolist(), pa.string()),
        "response_chars": pa.array(fast.response_chars, schema.field("response_chars").type),
        "problem_tokens": problem_tokens,
        "segments": pa.ListArray.from_arrays(pa.array(seg_offsets, pa.int32()), seg_values,
                                             type=schema.field("segments").type),
        "issues": _nested(list(issue_cols), issue_offsets.tolist(), schema.field("issues").type),
    }
    out.counts.update(segments=len(rows), default_issues=len(issue_cols[0]),
                      blocks=int(np.count_nonzero(kind == 0)), summaries=int(np.count_nonzero(kind == 1)))
    out.tables = {"traces": _stored_table(batch, schema, columns)}
    return out


@_gc_paused()
def flatten_full(batch: pa.Table, origin: BatchOrigin, schemas: dict[str, pa.Schema]) -> Flattened:
    """One row of `stored_full_traces` per input row: its sentences, block ranges and summaries
    as read, with the checks of `check_full_row` as status and issues."""
    schema = schemas["full_traces"]
    responses = _column(batch, "response")
    all_sentences = _column(batch, "sentences")
    all_blocks = _column(batch, "blocks")
    all_summaries = _column(batch, "block_summaries")
    dataset = origin.dataset
    computed = {name: [] for name in ("dataset", "full_trace_id", "run_id", "source_row", "content_hash", "status")}
    issue_cols, issue_offsets = ([], []), [0]
    out = Flattened(tables={}, rows=batch.num_rows, input_bytes=_response_bytes(batch))
    digests = content_hashes(_arrow_column(batch, "problem", pa.string()), _arrow_column(batch, "response", pa.string()))
    for i, response in enumerate(responses):
        row = origin.first_row + i
        digest = digests[i]
        checked = check_full_row(response, all_sentences[i], all_blocks[i], all_summaries[i])
        for key, value in (("dataset", dataset), ("full_trace_id", full_trace_id(dataset, row)),
                           ("run_id", origin.run_id),
                           ("source_row", row), ("content_hash", digest), ("status", checked.status)):
            computed[key].append(value)
        for issue in checked.issues:
            issue_cols[0].append(issue.code)
            issue_cols[1].append(issue.detail)
            out.issue_counts[issue.code] += 1
        issue_offsets.append(len(issue_cols[0]))
        out.counts["sentences"] += len(all_sentences[i] or [])
        out.counts["full_blocks"] += len(all_blocks[i] or [])
        if checked.status == "ok":
            out.ok += 1
        else:
            out.flagged += 1
    out.counts["full_issues"] = len(issue_cols[0])
    columns = {name: pa.array(values, schema.field(name).type) for name, values in computed.items()}
    columns["issues"] = _nested(list(issue_cols), issue_offsets, schema.field("issues").type)
    out.tables = {"full_traces": _stored_table(batch, schema, columns)}
    return out
