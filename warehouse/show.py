"""`mementos show TRACE_ID`: one trace side by side in the terminal (rich).

The same view as the report's trace views (warehouse.trace_view.trace_view): the
problem, then each block on the left and its memento on the right with tokens
and the memento/block ratio per pair, then the answer. A flagged trace first
shows its parse issues and its raw response with each issue marked ⟦code⟧ at
its offset, then whatever the parser recovered.

Data never goes through rich's markup parser: every piece of it is a
rich.text.Text, and control characters (an ESC could drive the terminal) are
shown as visible escapes such as \\x1b (warehouse.console.escape_controls, which
`sql` uses too).
"""

from __future__ import annotations

from collections.abc import Iterator

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mementos.foundation.formatting import number
from mementos.warehouse.console import escape_controls, page
from mementos.warehouse.trace_view import HEAD_CHARS, TAIL_CHARS, TraceView, trace_view


def plain(value) -> Text:
    """Data as inert text: no markup, no control characters."""
    s = "" if value is None else str(value)
    return Text(escape_controls(s))


# A long text is shown as its first SHOW_HEAD_CHARS and last SHOW_TAIL_CHARS characters with a mark
# between saying how many are left out: rich's wrapping of one Text is quadratic in its lines
# (bench/RESULTS.md), and a terminal page of a megabyte is not read anyway. The report's
# trace views clip the same (trace_view.HEAD_CHARS).
SHOW_HEAD_CHARS = HEAD_CHARS
SHOW_TAIL_CHARS = TAIL_CHARS
# The pairs table is printed this many rows at a time, so that what rich holds at once is bounded,
# and shows at most the first SHOW_HEAD_PAIRS and last SHOW_TAIL_PAIRS pairs (a mark says how many
# are left out), so that the time to print a trace is bounded whatever its length.
PAIRS_PER_TABLE = 20
SHOW_HEAD_PAIRS = 160
SHOW_TAIL_PAIRS = 40


def clipped(value) -> Text:
    """Data as inert text (see plain), at most SHOW_HEAD_CHARS + SHOW_TAIL_CHARS characters of it."""
    s = "" if value is None else str(value)
    left_out = len(s) - SHOW_HEAD_CHARS - SHOW_TAIL_CHARS
    if left_out <= 0:
        return plain(s)
    text = plain(s[:SHOW_HEAD_CHARS])
    text.append(f" ⟦… {left_out:,} characters not shown; `mementos sql` prints them …⟧ ", style="italic dim")
    return text.append_text(plain(s[-SHOW_TAIL_CHARS:]))


def render(view: TraceView) -> Group:
    return Group(*parts(view))


def parts(view: TraceView) -> list:
    """What `show` prints, one renderable after the other, each of a bounded size (clipped texts, at
    most PAIRS_PER_TABLE pairs per table), so that printing them one by one takes linear time."""
    trace_id = plain(view.trace_id)
    trace_id.stylize("bold")
    head = Text()
    head.append("trace ", style="dim").append_text(trace_id)
    for key, value in (("dataset", view.dataset), ("domain", view.domain), ("source", view.source),
                       ("difficulty", view.difficulty), ("status", view.status)):
        head.append(f"  {key} ", style="dim").append_text(plain(value if value is not None else "(none)"))
    if view.issue_codes:
        head.append("  issues ", style="dim").append_text(plain(", ".join(view.issue_codes)))
    summary = Text(f"{len(view.pairs)} pairs · {number(view.block_tokens)} block tokens → "
                   f"{number(view.memento_tokens)} memento tokens", style="dim")
    if view.compression_tokens is not None:
        summary.append(f" ({view.compression_tokens:.2f}×)", style="dim")

    out = [head, summary,
           Panel(clipped(view.problem), title="problem", title_align="left", border_style="dim")]
    if view.flagged:
        out += flagged_parts(view)
    if view.reasoning is not None:  # unsegmented: reasoning without mementos, shown whole (clipped)
        tokens = f" ({view.reasoning_tokens:,} tokens)" if view.reasoning_tokens is not None else ""
        out.append(Panel(clipped(view.reasoning), title=f"reasoning, without mementos{tokens}", title_align="left",
                         border_style="yellow"))
    else:
        out += (pairs_tables(view) if view.pairs else
                [Text("(no block/memento pairs recovered)", style="italic dim")])
    answer_title = "answer" + (f" ({view.answer_tokens:,} tokens)" if view.answer_tokens is not None else "")
    no_answer = ("(no answer recovered: see the parse issues above)" if view.flagged
                 else "(no answer: the think section is never closed)")
    answer = clipped(view.answer) if view.answer is not None else Text(no_answer, style="italic dim")
    out.append(Panel(answer, title=answer_title, title_align="left", border_style="green"))
    return out


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
            raw.append_text(clipped(piece))
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
    return _pairs_table(view.pairs, _pairs_widths(view.pairs), show_header=True)


def pairs_tables(view: TraceView) -> list:
    """The pairs table as tables of PAIRS_PER_TABLE rows with the same column widths, the header on the first;
    past SHOW_HEAD_PAIRS + SHOW_TAIL_PAIRS pairs, the middle ones are left out with a line saying so."""
    pairs = view.pairs
    left_out = len(pairs) - SHOW_HEAD_PAIRS - SHOW_TAIL_PAIRS
    runs = [pairs] if left_out <= 0 else [pairs[:SHOW_HEAD_PAIRS], pairs[-SHOW_TAIL_PAIRS:]]
    widths = _pairs_widths(pairs[:SHOW_HEAD_PAIRS] + pairs[-SHOW_TAIL_PAIRS:])
    out: list = []
    for n, run in enumerate(runs):
        if n:
            first, last = pairs[SHOW_HEAD_PAIRS].block_idx, pairs[-SHOW_TAIL_PAIRS - 1].block_idx
            out.append(Text(f"⟦… {left_out:,} pairs not shown (blocks {first:,} to {last:,}); "
                            f"`mementos sql` prints them …⟧", style="italic dim"))
        out += [_pairs_table(run[at:at + PAIRS_PER_TABLE], widths, show_header=n == 0 and at == 0)
                for at in range(0, len(run), PAIRS_PER_TABLE)]
    return out


def _pairs_widths(pairs) -> dict[str, int]:
    """Widths of the narrow columns over all pairs, so that every chunk of the table lines up."""
    return {"#": max(len("#"), *(len(str(p.block_idx)) for p in pairs)),
            "tokens": max(len("tokens"), *(len(number(p.block_tokens)) for p in pairs),
                          *(len(f"→ {number(p.memento_tokens)}") for p in pairs)),
            "ratio": max(len("ratio"), *(len(number(p.ratio_tokens, 3)) for p in pairs),
                         *(len(f"{number(p.ratio_chars, 3)} ch") for p in pairs))}


def _pairs_table(pairs, widths: dict[str, int], show_header: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_lines=True, expand=True, pad_edge=False, show_header=show_header)
    table.add_column("#", justify="right", style="dim", no_wrap=True, width=widths["#"])
    table.add_column("block", ratio=3, overflow="fold")  # long words wrap: nothing is cut
    table.add_column("memento", ratio=2, overflow="fold")
    table.add_column("tokens", justify="right", no_wrap=True, width=widths["tokens"])
    table.add_column("ratio", justify="right", no_wrap=True, width=widths["ratio"])
    for p in pairs:
        block = clipped(p.block) if p.block is not None else Text("(no block)", style="italic dim")
        memento = clipped(p.memento) if p.memento is not None else Text("(no memento)", style="italic dim")
        tokens = Text(f"{number(p.block_tokens)}\n→ {number(p.memento_tokens)}")
        ratio = Text(f"{number(p.ratio_tokens, 3)}\n{number(p.ratio_chars, 3)} ch")
        table.add_row(str(p.block_idx), block, memento, tokens, ratio)
    return table


def show(db, trace_id: str, console: Console | None = None, pager: bool = False) -> None:
    """Print one trace side by side; a WarehouseError if there is no such trace.

    With `pager`, the text goes through the terminal's pager (warehouse.console.page), rendered for the
    terminal's width and colours; the caller asks for it only when stdout is a terminal."""
    view = trace_view(db, trace_id)
    console = console or Console(highlight=False)
    if pager:
        page(rendered(console, parts(view)))
        return
    for part in parts(view):  # one at a time: rich renders a whole renderable in memory before writing it
        console.print(part)


def rendered(console: Console, renderables) -> Iterator[str]:
    """Each renderable as the text `console` would print (with its escape codes for colour), one at a time,
    so that the pager gets the first screen at once and memory stays bounded."""
    for renderable in renderables:
        with console.capture() as capture:
            console.print(renderable)
        yield capture.get()
