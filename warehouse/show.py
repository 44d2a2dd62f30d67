"""`mementos show TRACE_ID`: one trace side by side in the terminal (rich).

The same view as the report's trace views (warehouse.trace_view.trace_view): the
problem, then each block on the left and its memento on the right with tokens
and the memento/block ratio per pair, then the answer. A flagged trace first
shows its parse issues and its raw response with each issue marked ⟦code⟧ at
its offset, then whatever the parser recovered.

Data never goes through rich's markup parser: every piece of it is a
rich.text.Text, and control characters (an ESC could drive the terminal) are
shown as visible escapes such as \\x1b.
"""

from __future__ import annotations

import re

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from warehouse.trace_view import TraceView, trace_view

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(value) -> Text:
    """Data as inert text: no markup, no control characters."""
    s = "" if value is None else str(value)
    return Text(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s))


def _num(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:,}" if isinstance(v, int) and digits == 0 else f"{v:,.{digits}f}"


def render(view: TraceView) -> Group:
    trace_id = plain(view.trace_id)
    trace_id.stylize("bold")
    head = Text()
    head.append("trace ", style="dim").append_text(trace_id)
    for key, value in (("dataset", view.dataset), ("domain", view.domain), ("source", view.source),
                       ("difficulty", view.difficulty), ("status", view.status)):
        head.append(f"  {key} ", style="dim").append_text(plain(value if value is not None else "(none)"))
    if view.issue_codes:
        head.append("  issues ", style="dim").append_text(plain(", ".join(view.issue_codes)))
    summary = Text(f"{len(view.pairs)} pairs · {_num(view.block_tokens)} block tokens → "
                   f"{_num(view.memento_tokens)} memento tokens", style="dim")
    if view.compression_tokens is not None:
        summary.append(f" ({view.compression_tokens:.2f}×)", style="dim")

    parts = [head, summary,
             Panel(plain(view.problem), title="problem", title_align="left", border_style="dim")]
    if view.flagged:
        parts += flagged_parts(view)
    parts.append(pairs_table(view) if view.pairs else
                 Text("(no block/memento pairs recovered)", style="italic dim"))
    answer_title = "answer" + (f" ({view.answer_tokens:,} tokens)" if view.answer_tokens is not None else "")
    no_answer = ("(no answer recovered: see the parse issues above)" if view.flagged
                 else "(no answer: the think section is never closed)")
    answer = plain(view.answer) if view.answer is not None else Text(no_answer, style="italic dim")
    parts.append(Panel(answer, title=answer_title, title_align="left", border_style="green"))
    return Group(*parts)


ISSUE_STYLE = "bold white on red"


def flagged_parts(view: TraceView) -> list:
    """A flagged trace's parse issues, its raw response with each issue marked where it is, then a heading
    for what the parser recovered."""
    issues = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="parse issues", title_justify="left",
                   title_style="bold")
    issues.add_column("code", no_wrap=True)
    issues.add_column("offset", justify="right", no_wrap=True)
    issues.add_column("what the parser found", overflow="fold")
    for issue in view.issues:
        issues.add_row(Text(issue.code, style=ISSUE_STYLE),
                       "–" if issue.char_offset is None else f"{issue.char_offset:,}", plain(issue.detail))
    raw = Text()
    for piece, issue in view.marked_response():
        if issue is None:
            raw.append_text(plain(piece))
        else:
            raw.append(f"⟦{issue.code}⟧", style=ISSUE_STYLE)
    if not view.response:
        raw.append(" (the response is empty)", style="italic dim")
    chars = len(view.response or "")
    return [issues,
            Panel(raw, title=f"raw response ({chars:,} chars; each issue marked ⟦code⟧ where it is)",
                  title_align="left", border_style="red"),
            Text("what the parser recovered", style="bold")]


def pairs_table(view: TraceView) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_lines=True, expand=True, pad_edge=False)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("block", ratio=3, overflow="fold")  # long words wrap: nothing is cut
    table.add_column("memento", ratio=2, overflow="fold")
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("ratio", justify="right", no_wrap=True)
    for p in view.pairs:
        block = plain(p.block) if p.block is not None else Text("(no block)", style="italic dim")
        memento = plain(p.memento) if p.memento is not None else Text("(no memento)", style="italic dim")
        tokens = Text(f"{_num(p.block_tokens)}\n→ {_num(p.memento_tokens)}")
        ratio = Text(f"{_num(p.ratio_tokens, 3)}\n{_num(p.ratio_chars, 3)} ch")
        table.add_row(str(p.block_idx), block, memento, tokens, ratio)
    return table


def show(db, trace_id: str, console: Console | None = None) -> None:
    """Print one trace side by side; a WarehouseError if there is no such trace."""
    view = trace_view(db, trace_id)
    console = console or Console(highlight=False)
    console.print(render(view))
