"""The records of an export: their columns per kind, and the messages laid out from the texts cut out of
the response at the export views' spans, with the parser's markup (warehouse.md, Export)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mementos.foundation.markup import SUMMARY_END, SUMMARY_START, THINK_CLOSE, THINK_OPEN
from mementos.warehouse.export.spec import ExportKind

LAYOUT_VERSION = 2  # bump when the text of the messages changes for the same views (render_* below)
SUMMARIZE_INSTRUCTION = ("Write the memento of this reasoning block: a short summary that keeps every result, "
                         "value and decision needed to continue the reasoning without the block.")
MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
LABELS = ("domain", "source", "difficulty", "status")
# Where each segment is in the assistant turn: content[start:end] is its text (characters, end-exclusive).
SPAN_TYPE = pa.list_(pa.struct([("kind", pa.string()), ("block_idx", pa.int32()), ("start", pa.int64()),
                                ("end", pa.int64())]))
# The segments a kind's assistant turn leaves out, carried as texts beside it so that ingest rebuilds the whole
# trace (ingest/adapters.py): kind -> (the record's column, the export view's spans of them).
CARRIED = {ExportKind.COMPRESSED: ("blocks", "block_spans"), ExportKind.PLAIN: ("mementos", "memento_spans")}
CARRIED_TYPE = pa.list_(pa.struct([("block_idx", pa.int32()), ("text", pa.string())]))


def output_schema(kind: ExportKind) -> pa.Schema:
    """The columns of every record, in this order (block_idx only for summarize, spans for the others, and the
    texts the assistant turn leaves out for compressed and plain)."""
    fields = [pa.field("messages", MESSAGES_TYPE), pa.field("trace_id", pa.string())]
    if kind == ExportKind.SUMMARIZE:
        fields.append(pa.field("block_idx", pa.int32()))
    fields += [pa.field(c, pa.string()) for c in LABELS] + [pa.field("n_tokens", pa.int64())]
    if kind != ExportKind.SUMMARIZE:
        fields.append(pa.field("spans", SPAN_TYPE))
    if kind in CARRIED:
        fields.append(pa.field(CARRIED[kind][0], CARRIED_TYPE))
    return pa.schema(fields)


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


class Turns(NamedTuple):
    """A slice's records, aligned with its plan rows: the user and assistant contents, the spans (not for
    summarize), whether the memento copies its block (summarize only: the plan's memento_copies_block, from
    models/memento_copies.sql, the definition outlier_traces also uses) and the carried texts (CARRIED)."""

    user: pa.Array
    assistant: pa.Array
    spans: pa.Array | None = None
    copied: pa.Array | None = None
    carried: pa.Array | None = None


def turns(kind: ExportKind, plan: pa.Table, texts: pa.Table, at: pa.Array) -> Turns:
    """The records of a chunk's examples. `texts` has one row per trace (problem, response); `at` gives each
    plan row's trace in it. Each response becomes a Python string once, however many examples are cut from it.
    """
    if kind == ExportKind.MEMENTO:
        cols = [plan.column(c).to_pylist() for c in ("blocks", "mementos", "answer_start", "answer_end")]
        spans = pa.array([_response_spans(*row) for row in zip(*cols)], SPAN_TYPE)
        return Turns(take_rows(texts.column("problem"), at), take_rows(texts.column("response"), at), spans)
    responses = [r or "" for r in texts.column("response").to_pylist()]
    rows = at.to_pylist()
    if kind == ExportKind.SUMMARIZE:
        cols = [plan.column(c).to_pylist() for c in ("block_start", "block_end", "memento_start", "memento_end")]
        users, assistants = [], []
        for i, bs, be, ms, me in zip(rows, *cols):
            r = responses[i]
            users.append(f"{SUMMARIZE_INSTRUCTION}\n\n{r[bs:be]}")
            assistants.append(r[ms:me])
        return Turns(pa.array(users, pa.string()), pa.array(assistants, pa.string()),
                     copied=plan.column("memento_copies_block").combine_chunks())
    render = render_compressed if kind == ExportKind.COMPRESSED else render_plain
    think = plan.column("think_spans").to_pylist()
    carried_spans = plan.column(CARRIED[kind][1]).to_pylist()
    starts, ends = plan.column("answer_start").to_pylist(), plan.column("answer_end").to_pylist()
    assistants, spans, carried = [], [], []
    for i, segments, left_out, a, b in zip(rows, think, carried_spans, starts, ends):
        r = responses[i]
        content, where = render([(x["block_idx"], r[x["start"]:x["end"]]) for x in segments],
                                r[a:b] if a is not None else None)
        assistants.append(content)
        spans.append(where)
        carried.append([{"block_idx": x["block_idx"], "text": r[x["start"]:x["end"]]} for x in left_out or ()])
    return Turns(take_rows(texts.column("problem"), at), pa.array(assistants, pa.string()),
                 pa.array(spans, SPAN_TYPE), carried=pa.array(carried, CARRIED_TYPE))


def take_rows(values, at):
    """values.take(at) as one array or table, without copying the texts when `at` is a run of consecutive rows
    (one example per trace, the traces in order): then it is a slice."""
    rows = at.to_numpy(zero_copy_only=False) if isinstance(at, pa.Array) else np.asarray(at)
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows) and bool((np.diff(rows) == 1).all()):
        values = values.slice(int(rows[0]), len(rows))
    else:
        values = values.take(at)
    if isinstance(values, pa.ChunkedArray):  # combine_chunks copies even a single chunk
        return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    return values


def messages_array(user: pa.Array, assistant: pa.Array) -> pa.Array:
    """[{role: user, content}, {role: assistant, content}] per row, built column-wise."""
    n = len(user)
    contents = pa.concat_arrays([user, assistant]).take(pa.array([i // 2 + (i % 2) * n for i in range(2 * n)],
                                                                 pa.int64()))
    roles = pa.array(["user", "assistant"] * n, pa.string())
    values = pa.StructArray.from_arrays([roles, contents], names=["role", "content"])
    return pa.ListArray.from_arrays(pa.array(range(0, 2 * n + 1, 2), pa.int32()), values).cast(MESSAGES_TYPE)


def has_text(texts: pa.Array) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(texts, r"\S"), False)
