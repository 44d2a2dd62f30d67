"""Input shapes: every source row becomes trace records, or one rejected row with a coded reason.

A reader (ingest/sources.py) streams Arrow batches of whatever columns a file has; an adapter
maps a batch onto the one trace record the parser and flattener read (as datatrove's adapters
map a source's fields onto its document): `problem`, `response`, `domain`, `source`,
`difficulty`, and `source_row` (the input row), `turn`, `context` and `metadata`. The shape is
detected from the columns (`detect`); `--format` forces one.

Shapes (warehouse.md, "Input shapes"):
- ``openmementos``: `problem`, `response` and label columns, taken as they are.
- ``columns``: any columns, mapped by `--columns problem=question,response=output` or a mapping file.
- ``chat``: OpenAI-style `messages` (role, content); an assistant turn's reasoning is inline
  (`<think>…</think>` in `content`) or in `reasoning_content` beside it. A mapping file's
  `message_property_mappings` names a message's role and content keys, as axolotl's does
  (e.g. {role = "from", content = "value"}).
- ``sharegpt``: `conversations` of {from: human|gpt|system, value}.

In both conversation shapes an assistant turn in OpenThoughts' own markup,
`<|begin_of_thought|> R <|end_of_thought|>` then `<|begin_of_solution|> A <|end_of_solution|>`,
is the reasoning R and the answer A: its trace's response is `<think>\nR\n</think>\n\nA`, as for a
`reasoning_content` field (an unclosed thought: `<think>\nR`, flagged as an unclosed think).
- ``export``: this project's own export records (`messages`, `trace_id`, and `spans` or `block_idx`).
  A `compressed` or `plain` record carries the texts its assistant turn leaves out (`blocks`, `mementos`):
  with the texts its `spans` locate, they make the trace again, pair by pair, in the memento markup.

Multi-turn rule: each assistant turn that carries reasoning becomes a trace; its problem is the
last user turn before it, and the messages before that user turn are its `context` (JSON). A
conversation with several assistant turns numbers them (`turn`, from 1); with one, `turn` is NULL.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from mementos.foundation.errors import SourceError
from mementos.foundation.markup import (
    BLOCK_END, BLOCK_START, MARKUP, SUMMARY_END, SUMMARY_START, THINK_CLOSE, THINK_OPEN,
)

SHAPES = ("openmementos", "columns", "chat", "sharegpt", "export")
TARGETS = ("problem", "response", "domain", "source", "difficulty")
LABELS = ("domain", "source", "difficulty")

# Why a source row became no trace: the codes of ingest_runs.rejected_reasons and the view rejected_rows.
NO_ASSISTANT_TURN = "no_assistant_turn"  # a conversation with no assistant turn (or no conversation at all)
EMPTY_RESPONSE = "empty_response"  # every assistant turn is empty (no content, no reasoning)
NO_REASONING = "no_reasoning"  # assistant turns, none with reasoning (no markup, no reasoning field)
UNMAPPED_COLUMN = "unmapped_column"  # a mapped problem or response column has no value in the row
REJECT_REASONS = (NO_ASSISTANT_TURN, EMPTY_RESPONSE, NO_REASONING, UNMAPPED_COLUMN)

# The trace record every adapter writes (the flattener takes the stored columns by name).
RECORD = pa.schema([("problem", pa.string()), ("response", pa.string()), ("domain", pa.string()),
                    ("source", pa.string()), ("difficulty", pa.string()), ("source_row", pa.int64()),
                    ("turn", pa.int32()), ("context", pa.string()), ("metadata", pa.string())])
BEGIN_OF_THOUGHT, END_OF_THOUGHT = "<|begin_of_thought|>", "<|end_of_thought|>"
BEGIN_OF_SOLUTION, END_OF_SOLUTION = "<|begin_of_solution|>", "<|end_of_solution|>"
MESSAGE_PROPERTIES = ("role", "content")  # what message_property_mappings may map
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system"}


@dataclass(frozen=True)
class InputSpec:
    """How to read the rows: the shape (None: detect), column maps, and the columns to keep."""

    format: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # target -> source column
    keep: tuple[str, ...] = ()  # source columns kept as `metadata` (JSON)
    field_messages: str | None = None  # the conversation column, when not `messages`/`conversations`
    field_thinking: str = "reasoning_content"  # an assistant message's reasoning field
    # a message's key per property (axolotl's message_property_mappings); unmapped: the shape's own keys
    message_property_mappings: dict[str, str] = field(default_factory=dict)


@dataclass
class Adapted:
    """A batch as trace records, and the rows that became none: (source_row, reason)."""

    table: pa.Table
    rejected: list[tuple[int, str]]

    @property
    def reasons(self) -> Counter:
        return Counter(reason for _, reason in self.rejected)


def parse_columns(text: str | None) -> dict[str, str]:
    """'problem=question,response=output' -> {'problem': 'question', 'response': 'output'}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        target, sep, column = part.partition("=")
        if not sep or not column.strip() or target.strip() not in TARGETS:
            raise SourceError(f"--columns {text!r}: each part is TARGET=COLUMN with TARGET one of "
                              f"{', '.join(TARGETS)} (e.g. problem=question,response=output); not {part!r}")
        out[target.strip()] = column.strip()
    return out


def load_mapping(path: str | Path) -> dict:
    """A mapping file (TOML, or YAML for .yaml/.yml): format, columns, keep, field_messages, field_thinking,
    message_property_mappings."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = _yaml(text) if path.suffix.lower() in (".yaml", ".yml") else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise SourceError(f"--mapping {path}: cannot read it ({exc}); write TOML (or YAML for .yaml), e.g. "
                          f"format = \"columns\" and a [columns] table with problem = \"question\"") from None
    allowed = {"format", "columns", "keep", "field_messages", "field_thinking", "message_property_mappings"}
    if not isinstance(data, dict):
        raise SourceError(f"--mapping {path}: expected keys ({', '.join(sorted(allowed))}), found {data!r}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SourceError(f"--mapping {path}: unknown keys {unknown!r}; the keys are {', '.join(sorted(allowed))}")
    properties = data.get("message_property_mappings") or {}
    if not isinstance(properties, dict) or not set(properties) <= set(MESSAGE_PROPERTIES) or not all(
            isinstance(v, str) and v for v in properties.values()):
        raise SourceError(f"--mapping {path}: message_property_mappings maps {' and '.join(MESSAGE_PROPERTIES)} "
                          f"to a message's keys, e.g. {{role = \"from\", content = \"value\"}}; not {properties!r}")
    return data


def _yaml(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


def input_spec(format: str | None = None, columns: str | None = None, mapping: str | None = None,
               keep: str | None = None) -> InputSpec:
    """The InputSpec of the command line: --format, --columns, --mapping FILE and --keep a,b (options win)."""
    data = load_mapping(mapping) if mapping else {}
    mapped = dict(data.get("columns") or {})
    for target in mapped:
        if target not in TARGETS:
            raise SourceError(f"--mapping {mapping}: unknown target column {target!r}; use {', '.join(TARGETS)}")
    mapped.update(parse_columns(columns))
    kept = [k for k in (data.get("keep") or [])] + [k.strip() for k in (keep or "").split(",") if k.strip()]
    spec = InputSpec(format=format or data.get("format"), columns=mapped, keep=tuple(dict.fromkeys(kept)),
                     field_messages=data.get("field_messages"),
                     field_thinking=data.get("field_thinking") or "reasoning_content",
                     message_property_mappings=dict(data.get("message_property_mappings") or {}))
    if spec.format is not None and spec.format not in SHAPES:
        raise SourceError(f"--format {spec.format!r}: the shapes are {', '.join(SHAPES)}")
    if spec.format is None and {"problem", "response"} & set(mapped):
        spec = replace(spec, format="columns")  # labels alone (domain=topic) map onto the OpenMementos shape
    return spec


def detect(names: list[str], spec: InputSpec) -> str:
    """The shape of a file with these columns: --format when given, else from the columns."""
    if spec.format:
        return spec.format
    if spec.field_messages:
        return "chat"
    if "messages" in names and "trace_id" in names and ("spans" in names or "block_idx" in names):
        return "export"
    if "messages" in names:
        return "chat"
    if "conversations" in names:
        return "sharegpt"
    return "openmementos"


def check_columns(schema: pa.Schema, path: str, spec: InputSpec) -> str:
    """Raise a SourceError naming the file when the shape's columns are missing; the shape otherwise."""
    shape = detect(schema.names, spec)
    needed = {"columns": [c for t, c in spec.columns.items() if t in ("problem", "response")] or ["response"],
              "chat": [spec.field_messages or "messages"], "export": ["messages"],
              "sharegpt": [spec.field_messages or "conversations"]}.get(shape, [])
    if shape == "columns" and "response" not in spec.columns:
        raise SourceError(f"{path}: --format columns needs the response column mapped, e.g. "
                          f"--columns problem=question,response=output (found: {', '.join(schema.names)})")
    mapped = spec.columns.values() if shape in ("columns", "openmementos") else ()
    for name in [*needed, *spec.keep, *mapped]:
        if name not in schema.names:
            raise SourceError(f"{path}: no column {name!r} for the {shape} shape (found: "
                              f"{', '.join(schema.names) or 'no columns'}); map the columns with --columns "
                              f"problem=COL,response=COL or force the shape with --format {'|'.join(SHAPES)}")
    return shape


def adapt(batch: pa.Table, spec: InputSpec, first_row: int) -> Adapted:
    """The batch's rows (source rows first_row, first_row + 1, ...) as trace records."""
    shape = detect(batch.column_names, spec)
    if shape == "openmementos" and not spec.keep and not spec.columns:
        return Adapted(batch, [])  # already trace records: untouched (source_row: consecutive rows)
    if shape in ("openmementos", "columns"):
        return _adapt_columns(batch, spec, first_row, shape)
    return _adapt_conversations(batch, spec, first_row, shape)


def _adapt_columns(batch: pa.Table, spec: InputSpec, first_row: int, shape: str) -> Adapted:
    """One trace per row; a mapped shape rejects the rows whose problem or response column is NULL."""
    mapping = {t: spec.columns.get(t, t if shape == "openmementos" else None) for t in TARGETS}
    columns = {t: batch.column(c) if c in batch.column_names else pa.nulls(batch.num_rows, pa.string())
               for t, c in mapping.items() if c is not None}
    rows = pa.array(range(first_row, first_row + batch.num_rows), pa.int64())
    table = pa.table({**columns, "source_row": rows, "metadata": _metadata(batch, spec.keep)})
    if shape != "columns":
        return Adapted(table, [])
    needed = [columns[t] for t in ("problem", "response") if t in spec.columns]
    present = [all(v.is_valid for v in values) for values in zip(*needed)]
    rejected = [(first_row + i, UNMAPPED_COLUMN) for i, ok in enumerate(present) if not ok]
    return Adapted(table.filter(pa.array(present, pa.bool_())) if rejected else table, rejected)


def _metadata(batch: pa.Table, keep: tuple[str, ...]) -> pa.Array:
    if not keep:
        return pa.nulls(batch.num_rows, pa.string())
    values = [batch.column(k).to_pylist() for k in keep]
    return pa.array([json.dumps(dict(zip(keep, row)), ensure_ascii=False, default=str) for row in zip(*values)],
                    pa.string())


def _adapt_conversations(batch: pa.Table, spec: InputSpec, first_row: int, shape: str) -> Adapted:
    """Each assistant turn with reasoning becomes a trace (module doc, multi-turn rule)."""
    column = spec.field_messages or ("conversations" if shape == "sharegpt" else "messages")
    conversations = batch.column(column).to_pylist()
    labels = {k: _text_values(batch, k) for k in LABELS}
    kept = _metadata(batch, spec.keep).to_pylist()
    exported = batch.column("trace_id").to_pylist() if shape == "export" else None
    pair_record = shape == "export" and "block_idx" in batch.column_names
    carried = _carried(batch) if shape == "export" else None
    records: dict[str, list] = {name: [] for name in RECORD.names}
    rejected: list[tuple[int, str]] = []
    for i, conversation in enumerate(conversations):
        messages = _messages(conversation, shape, spec)
        if pair_record:
            traces = _summarize_pair(messages)
        elif carried is not None:
            traces = _rebuilt_trace(messages, *carried[i])
        else:
            traces = _assistant_traces(messages)
        if isinstance(traces, str):
            rejected.append((first_row + i, traces))
            continue
        metadata = _merged(kept[i], {"exported_trace_id": exported[i]} if exported else None)
        for problem, response, turn, context in traces:
            row = dict(problem=problem, response=response, source_row=first_row + i, turn=turn,
                       context=context, metadata=metadata, **{k: labels[k][i] for k in LABELS})
            for name in RECORD.names:
                records[name].append(row[name])
    return Adapted(pa.table(records, schema=RECORD), rejected)


def _text_values(batch: pa.Table, name: str) -> list:
    if name not in batch.column_names:
        return [None] * batch.num_rows
    return [None if v is None else str(v) for v in batch.column(name).to_pylist()]


def _merged(kept: str | None, extra: dict | None) -> str | None:
    if not extra:
        return kept
    return json.dumps({**(json.loads(kept) if kept else {}), **extra}, ensure_ascii=False)


def _messages(conversation, shape: str, spec: InputSpec) -> list[dict]:
    """The conversation as [{role, content, reasoning}], roles user/assistant/system."""
    own = {"role": "from", "content": "value"} if shape == "sharegpt" else {"role": "role", "content": "content"}
    keys = {**own, **spec.message_property_mappings}
    out = []
    for m in _json(conversation) or []:
        m = _json(m)  # the JSON reader gives messages whose fields differ from line to line as JSON text
        if not isinstance(m, dict):
            continue
        role = SHAREGPT_ROLES.get(str(m.get(keys["role"])).lower(), m.get(keys["role"]))  # human/gpt anywhere
        reasoning = m.get(spec.field_thinking) if shape != "sharegpt" else None
        out.append({"role": role, "content": m.get(keys["content"]), "reasoning": reasoning})
    return out


def _json(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _has_markup(text: str | None) -> bool:
    return bool(text) and any(token in text for token in MARKUP)


def _assistant_traces(messages: list[dict]) -> list[tuple] | str:
    """(problem, response, turn, context) per assistant turn with reasoning, or the reason there is none."""
    assistant_at = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not assistant_at:
        return NO_ASSISTANT_TURN
    traces = []
    for number, i in enumerate(assistant_at, start=1):
        response = _response(messages[i])
        if response is None:
            continue
        user_at = next((j for j in range(i - 1, -1, -1) if messages[j]["role"] == "user"), None)
        earlier = messages[:user_at] if user_at is not None else messages[:i]
        context = json.dumps([{"role": e["role"], "content": e["content"]} for e in earlier],
                             ensure_ascii=False) if earlier else None
        problem = messages[user_at]["content"] if user_at is not None else None
        traces.append((problem, response, number if len(assistant_at) > 1 else None, context))
    if traces:
        return traces
    empty = all(not (messages[i]["content"] or "").strip() and not messages[i]["reasoning"] for i in assistant_at)
    return EMPTY_RESPONSE if empty else NO_REASONING


def _response(message: dict) -> str | None:
    """An assistant turn's response in the parser's markup, or None when it carries no reasoning: its
    reasoning field, or OpenThoughts' thought markup, as a think section before the answer; else its content
    as it is, when it holds memento markup."""
    content, reasoning = message["content"] or "", message["reasoning"]
    if reasoning and reasoning.strip():
        return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{content}"
    thought = content.lstrip()
    if thought.startswith(BEGIN_OF_THOUGHT):
        reasoning, closed, answer = thought[len(BEGIN_OF_THOUGHT):].partition(END_OF_THOUGHT)
        if not closed:
            return f"{THINK_OPEN}\n{reasoning}"
        answer = answer.strip()
        if answer.startswith(BEGIN_OF_SOLUTION) and answer.endswith(END_OF_SOLUTION):
            answer = answer[len(BEGIN_OF_SOLUTION):-len(END_OF_SOLUTION)]
        return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{answer}"
    return content if _has_markup(content) else None


def _summarize_pair(messages: list[dict]) -> list[tuple] | str:
    """A `summarize` export record (user: instruction, blank line, block; assistant: memento) as a
    one-pair trace whose block and memento are the record's."""
    user = next((m for m in messages if m["role"] == "user"), None)
    assistant = next((m for m in messages if m["role"] == "assistant"), None)
    if assistant is None or user is None:
        return NO_ASSISTANT_TURN
    instruction, _, block = (user["content"] or "").partition("\n\n")
    memento = assistant["content"] or ""
    if not block.strip() or not memento.strip():
        return EMPTY_RESPONSE
    response = (f"{THINK_OPEN}\n{BLOCK_START}\n{block}\n{BLOCK_END}\n{SUMMARY_START}\n{memento}\n{SUMMARY_END}\n"
                f"{THINK_CLOSE}\n\n")
    return [(instruction, response, None, None)]


def _carried(batch: pa.Table) -> list[tuple] | None:
    """Per row of a compressed or plain export batch: (spans, the carried texts' kind, the texts); None for
    the other kinds, and for exports written before the records carried them."""
    kind = next((k for k, c in (("block", "blocks"), ("memento", "mementos")) if c in batch.column_names), None)
    if kind is None or "spans" not in batch.column_names:
        return None
    texts = batch.column(f"{kind}s").to_pylist()
    return [(_json(s), kind, _json(t)) for s, t in zip(batch.column("spans").to_pylist(), texts)]


def _rebuilt_trace(messages: list[dict], spans, kind: str, carried) -> list[tuple] | str:
    """A compressed or plain export record as its trace: the block, memento and answer texts that the spans
    cut out of the assistant turn, with the carried texts of the other kind, laid out pair by pair in block
    order in the memento markup, so the parser finds the same blocks and mementos as in the exported trace."""
    user = next((m for m in messages if m["role"] == "user"), None)
    assistant = next((m for m in messages if m["role"] == "assistant"), None)
    if assistant is None:
        return NO_ASSISTANT_TURN
    content = assistant["content"] or ""
    texts: dict[str, dict] = {"block": {}, "memento": {}, "answer": {}}
    for span in spans or []:
        texts.setdefault(span["kind"], {})[span["block_idx"]] = content[span["start"]:span["end"]]
    for item in carried or []:
        texts[kind][item["block_idx"]] = item["text"]
    if not texts["block"] and not texts["memento"]:
        return EMPTY_RESPONSE
    parts = [f"{THINK_OPEN}\n"]
    for idx in sorted(texts["block"].keys() | texts["memento"].keys()):
        if idx in texts["block"]:
            parts.append(f"{BLOCK_START}\n{texts['block'][idx]}\n{BLOCK_END}\n")
        if idx in texts["memento"]:
            parts.append(f"{SUMMARY_START}\n{texts['memento'][idx]}\n{SUMMARY_END}\n")
    parts.append(f"{THINK_CLOSE}\n\n{texts['answer'].get(None, '')}")
    return [(user["content"] if user else None, "".join(parts), None, None)]


def schema_check(spec: InputSpec, config: str):
    """The check sources.read_batches runs on a file's first batch: its shape's columns (and, for the
    OpenMementos shape, their types). The full config is read in the OpenMementos shape only."""
    from mementos.ingest import sources

    def check(schema: pa.Schema, sf) -> None:
        shape = detect(schema.names, spec) if config == "default" else "openmementos"
        if config != "default" and detect(schema.names, spec) != "openmementos":
            raise SourceError(f"{sf.path}: the {config} config is read in the OpenMementos shape only "
                              f"(problem, response, sentences, blocks, block_summaries); use --config default "
                              f"for the {detect(schema.names, spec)} shape")
        check_columns(schema, sf.path, spec)
        if shape == "openmementos":
            sources.check_schema(schema, sf)
    return check
