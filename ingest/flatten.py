"""Flatten one Arrow batch of input rows into rows of the base tables.

Pure functions of their input: a batch and where it came from go in, Arrow
tables for `traces`, `segments`, `parse_issues` (default config) or
`full_traces`, `sentences`, `full_blocks`, `parse_issues` (full config) come out.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

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


def _response_bytes(batch: pa.Table) -> int:
    return int(pc.sum(pc.binary_length(batch.column("response"))).as_py() or 0)


def flatten_default(batch: pa.Table, origin: BatchOrigin, schemas: dict[str, pa.Schema],
                    with_tokens: bool, keep_hashes: bool = False) -> Flattened:
    problems = _column(batch, "problem")
    responses = _column(batch, "response")
    domains, sources, difficulties = (_column(batch, c) for c in ("domain", "source", "difficulty"))
    dataset = origin.dataset
    traces = {name: [] for name in schemas["traces"].names}
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
            ("source_file", origin.source_file), ("problem", problems[i]), ("response", response),
            ("domain", domains[i]), ("source", sources[i]), ("difficulty", difficulties[i]),
            ("content_hash", digest), ("status", parsed.status), ("n_blocks", n_blocks),
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
            segs["n_words"].append(len(seg.text.split()))
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
    out.tables = {
        "traces": pa.Table.from_pydict(traces, schema=schemas["traces"]),
        "segments": pa.Table.from_pydict(segs, schema=schemas["segments"]),
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
