"""One trace side by side, block and memento: the report's trace views and `mementos show`.

Read from the base tables (traces, segments, parse_issues) for the asked traces only, by
SQL name and column, so it works on a warehouse whose models were never built.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mementos.foundation import catalog
from mementos.foundation.layout import data_dir
from mementos.foundation.errors import WarehouseError
from mementos.warehouse import guard


# A long text is shown as its first HEAD_CHARS and last TAIL_CHARS characters, with a note between saying how
# many are left out and how to print them: by `mementos show` (rich's wrapping is quadratic in the lines of a
# text) and in the report's trace views (a page would grow with the block). Nobody reads a megabyte on a page.
HEAD_CHARS = 8_000
TAIL_CHARS = 2_000


@dataclass
class Clipped:
    head: str
    left_out: int  # characters between head and tail; 0 when the text is shown whole (as head)
    tail: str


def clip(text: str | None) -> Clipped:
    """`text` as its head, the number of characters left out, and its tail (see HEAD_CHARS)."""
    text = text or ""
    left_out = len(text) - HEAD_CHARS - TAIL_CHARS
    if left_out <= 0:
        return Clipped(text, 0, "")
    return Clipped(text[:HEAD_CHARS], left_out, text[-TAIL_CHARS:])


def _ratio(num, den) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[dict]:
    result = con.execute(sql, params or [])
    cols = [d[0] for d in result.description]
    return [dict(zip(cols, row)) for row in result.fetchall()]


def anchor_for(trace_id: str) -> str:
    """An HTML id for a trace's view: [a-z0-9-] only, unique by a hash of the exact id."""
    slug = re.sub(r"[^a-z0-9]+", "-", trace_id.lower()).strip("-")[:40]
    digest = hashlib.blake2b(trace_id.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"trace-{slug}-{digest}" if slug else f"trace-{digest}"


@dataclass
class Pair:
    """One block and its memento (either may be missing in a flagged trace)."""
    block_idx: int
    block: str | None
    memento: str | None
    block_chars: int | None
    memento_chars: int | None
    block_tokens: int | None
    memento_tokens: int | None

    @property
    def ratio_tokens(self) -> float | None:
        return _ratio(self.memento_tokens, self.block_tokens)

    @property
    def ratio_chars(self) -> float | None:
        return _ratio(self.memento_chars, self.block_chars)


@dataclass
class IssueMark:
    """One parse issue of a flagged trace, where it is in the raw response."""
    code: str
    char_offset: int | None  # in characters; None for an issue without a place
    detail: str  # the parser's short explanation, e.g. "block 8 is never closed (ended by summary_start)"


def _pair_total(attr: str) -> property:
    """A trace's sum of `attr` over its complete pairs (block and memento both there); None when it has none,
    or when one of them lacks the value."""
    def total(view: TraceView) -> int | None:
        values = [getattr(p, attr) for p in view.pairs if p.block is not None and p.memento is not None]
        return None if not values or any(v is None for v in values) else sum(values)

    return property(total)


@dataclass
class TraceView:
    trace_id: str
    anchor: str  # an HTML id made of [a-z0-9-] only
    dataset: str
    domain: str | None
    source: str | None
    difficulty: str | None
    status: str
    issue_codes: list[str]
    problem: str | None
    pairs: list[Pair]
    answer: str | None
    answer_tokens: int | None
    why: list[str] = field(default_factory=list)  # why the report shows it
    response: str | None = None  # the raw response, read for flagged traces only
    issues: list[IssueMark] = field(default_factory=list)  # the default config's parse issues, by offset
    reasoning: str | None = None  # an unsegmented trace's reasoning (its think text without mementos)
    reasoning_tokens: int | None = None

    @property
    def flagged(self) -> bool:
        return self.status == "flagged"

    def marked_response(self) -> list[tuple[str, IssueMark | None]]:
        """The raw response cut at each issue's offset: (text, None) pieces with (code, issue) marks between.

        Issues without an offset come first; an offset past the end marks the end.
        """
        text = self.response or ""
        pieces: list[tuple[str, IssueMark | None]] = []
        at = 0
        for issue in sorted(self.issues, key=lambda i: (-1 if i.char_offset is None else i.char_offset, i.code)):
            cut = at if issue.char_offset is None else min(max(issue.char_offset, at), len(text))
            if cut > at:
                pieces.append((text[at:cut], None))
                at = cut
            pieces.append((issue.code, issue))
        if at < len(text):
            pieces.append((text[at:], None))
        return pieces

    def rest_sql(self, what: str, block_idx: int | None = None) -> str:
        """The query that prints a whole text of this trace: 'problem' or 'response' (of traces), or a
        segment's ('block', 'summary', 'answer' or 'reasoning')."""
        trace_id = "'" + self.trace_id.replace("'", "''") + "'"
        if what in ("problem", "response"):
            return f"SELECT {what} FROM traces WHERE trace_id = {trace_id}"
        at = f" AND block_idx = {block_idx}" if block_idx is not None else ""
        return f"SELECT text FROM segments WHERE trace_id = {trace_id} AND kind = '{what}'{at}"

    @property
    def summary_line(self) -> str:
        """One line for a collapsed view: id, domain, blocks, compression."""
        parts = [self.trace_id, self.domain if self.domain is not None else "(no domain)"]
        if self.reasoning is not None:  # unsegmented: no blocks, its reasoning's size instead
            parts.append(f"unsegmented: {self.reasoning_size}")
        else:
            parts.append(f"{len(self.pairs)} block{'s' if len(self.pairs) != 1 else ''}")
        if self.compression_tokens is not None:
            parts.append(f"{self.compression_tokens:.2f}× in tokens")
        elif self.block_chars and self.memento_chars:
            parts.append(f"{self.block_chars / self.memento_chars:.2f}× in chars")
        if self.flagged:
            parts.append("flagged: " + ", ".join(self.issue_codes or [self.status]))
        return " · ".join(parts)

    @property
    def reasoning_size(self) -> str:
        """An unsegmented trace's reasoning size: '1,234 reasoning tokens' ('… chars' when not counted)."""
        if self.reasoning_tokens is not None:
            return f"{self.reasoning_tokens:,} reasoning tokens"
        return f"{len(self.reasoning or ''):,} reasoning chars"

    block_tokens = _pair_total("block_tokens")
    memento_tokens = _pair_total("memento_tokens")
    block_chars = _pair_total("block_chars")
    memento_chars = _pair_total("memento_chars")

    @property
    def compression_tokens(self) -> float | None:
        """Total block tokens / total memento tokens, over complete pairs (trace_compression's measure)."""
        return _ratio(self.block_tokens, self.memento_tokens)


def trace_views(con: duckdb.DuckDBPyConnection, trace_ids: list[str], root: Path | None = None) -> dict[str, TraceView]:
    """The side-by-side views of the given traces, looked up by trace_id.

    Reads the base tables (traces, segments, parse_issues) for these traces only,
    by SQL name and column, so it works on a warehouse whose models were never
    built. A flagged trace also carries its raw response and its parse issues
    with their offsets. Ids not in the warehouse are absent from the result.
    `root`: the warehouse's data directory, when `con` opened another name of its catalog than
    PATH (the explorer opens the published snapshot's own file); by default, beside the file opened.
    """
    ids = list(dict.fromkeys(trace_ids))
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    # Where each trace is (no text read), then each trace's rows from the base views over its own
    # source row: DuckDB reads the one row group whose source_row statistics hold it. A filter on
    # trace_id read the response column of every row group to find a handful of traces: more than the
    # report's small pool holds (bench/RESULTS.md).
    located = con.execute(f"SELECT trace_id, dataset, source_row FROM traces WHERE trace_id IN ({marks})",
                          ids).fetchall()
    if not located:
        return {}
    if root is None:
        [(path,)] = con.execute("SELECT path FROM duckdb_databases() "
                                "WHERE database_name = current_database()").fetchall()
        root = data_dir(path)
    sources_of_rows = catalog.sources_by_rows(con, root)
    heads: list[dict] = []
    issues: dict[str, list[IssueMark]] = {}
    segs: dict[str, list[dict]] = {}
    for trace_id, dataset, source_row in located:
        src = sources_of_rows(dataset, source_row, source_row)
        ranged = catalog.trace_range_views(src, dataset, source_row, source_row)
        with_views = "WITH " + ", ".join(f"{name} AS ({ranged[name]})" for name in ranged) + "\n"
        heads += _dicts(con, with_views + "SELECT trace_id, dataset, domain, source, difficulty, status, problem, "
                                          "response AS whole_response FROM traces WHERE trace_id = ?", [trace_id])
        for r in _dicts(con, with_views + "SELECT trace_id, code, char_offset, detail FROM parse_issues "
                                          "WHERE config = 'default' AND trace_id = ? "
                                          "ORDER BY char_offset NULLS FIRST, code", [trace_id]):
            issues.setdefault(trace_id, []).append(IssueMark(r["code"], r["char_offset"], r["detail"]))
        # Offsets only: the view's `text` re-reads the whole response for every segment (quadratic in a
        # long trace's blocks), so the texts are cut here (_cut_segment_texts).
        segs[trace_id] = _dicts(con, with_views + "SELECT trace_id, kind, block_idx, char_start, char_end, n_chars, "
                                                  "n_tokens FROM segments WHERE trace_id = ? "
                                                  "ORDER BY block_idx NULLS LAST, kind", [trace_id])
    views = {}
    for h in heads:
        response = h.pop("whole_response")
        _cut_segment_texts(segs.get(h["trace_id"], []), response)
        h["response"] = response if h["status"] == "flagged" else None  # the raw response: flagged traces only
        pairs: dict[int, Pair] = {}
        answer, answer_tokens, reasoning = None, None, (None, None)
        for s in segs.get(h["trace_id"], []):
            if s["kind"] == "answer":
                answer, answer_tokens = s["text"], s["n_tokens"]
                continue
            if s["kind"] == "reasoning":
                reasoning = (s["text"], s["n_tokens"])
                continue
            p = pairs.setdefault(s["block_idx"], Pair(s["block_idx"], None, None, None, None, None, None))
            if s["kind"] == "block":
                p.block, p.block_chars, p.block_tokens = s["text"], s["n_chars"], s["n_tokens"]
            else:
                p.memento, p.memento_chars, p.memento_tokens = s["text"], s["n_chars"], s["n_tokens"]
        views[h["trace_id"]] = TraceView(
            trace_id=h["trace_id"], anchor=anchor_for(h["trace_id"]), dataset=h["dataset"],
            domain=h["domain"], source=h["source"], difficulty=h["difficulty"], status=h["status"],
            issue_codes=sorted({i.code for i in issues.get(h["trace_id"], [])}), problem=h["problem"],
            pairs=[pairs[i] for i in sorted(pairs)], answer=answer, answer_tokens=answer_tokens,
            response=h["response"], issues=issues.get(h["trace_id"], []),
            reasoning=reasoning[0], reasoning_tokens=reasoning[1])
    return views


def _cut_segment_texts(segs: list[dict], response: str | None) -> None:
    """Each segment's `text`, cut from its response by its character offsets (the segments view's
    definition: Python slices by code point, as DuckDB's substring does), in time linear in the response."""
    for s in segs:
        s["text"] = None if response is None else response[s["char_start"]:s["char_end"]]


def trace_view(db: str | Path, trace_id: str) -> TraceView:
    """One trace's view, for `mementos show`; a WarehouseError if there is no such trace."""
    with guard.open_warehouse(db) as con:
        views = trace_views(con, [trace_id])
        if trace_id not in views:
            raise WarehouseError(_no_trace(con, trace_id, db))
    return views[trace_id]


def _no_trace(con, trace_id: str, db) -> str:
    example = con.execute("SELECT min(trace_id) FROM traces").fetchall()[0][0]
    hint = f"; trace ids look like {example!r} (dataset:row)" if example else "; the warehouse has no traces"
    return f"no trace {trace_id!r} in {db}{hint}"
