"""Terminal output: control characters made visible, and colour for `build` and `models`.

`escape_controls` is the one place where text bound for a terminal loses its control characters:
`show`, `sql`'s table format (and csv/json when stdout is a terminal), `build`, `models`, and the
notes, summaries and error lines of every command pass data through it. A value holding ESC ] 52 ;
... BEL would otherwise write the reader's clipboard (OSC 52), ESC ] 0 ; ... set the window title,
and CSI sequences move the cursor or rewrite what is on screen; shown as \\x1b they do nothing.

Colour: the library yields its text in pieces, each status or state word with its value
(BuildReport.pieces, model_list.models_pieces); only those words are coloured: fresh and
built green, stale and skipped yellow, failed and undone red, never built dim. rich decides
whether the output is a terminal (and honours NO_COLOR and FORCE_COLOR); piped output stays
plain text.
"""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from typing import Iterable

# C0 and C1 control characters and DEL, but tab and newline (layout, not commands).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """`text` with every control character but tab and newline written as a visible escape: ESC as \\x1b."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def is_terminal(out) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def page(chunks) -> None:
    """Show the text (an iterable of strings, streamed) through a pager, as git does: $PAGER, else `less`,
    with LESS=-FRX when LESS is unset (quit when it fits one screen, pass colours, leave the text on screen
    after quitting). click strips the colours when the pager does not take them, and writes straight to
    stdout when stdin or stdout is not a terminal. The text holds no control characters from the data:
    those are escaped before they get here."""
    import os

    import click

    had = os.environ.get("LESS")
    if had is None:
        os.environ["LESS"] = "-FRX"
    try:
        click.echo_via_pager(chunks)
    finally:
        if had is None:
            os.environ.pop("LESS", None)


def styles() -> dict[type, dict[StrEnum, str]]:
    """The colour of each word, by vocabulary: a build's statuses (executor.Status), a model's states
    (planner.Freshness). Imported here, not at the top: `sql` and `show` use this module without them."""
    from mementos.warehouse.executor import Status
    from mementos.warehouse.planner import Freshness

    return {
        Status: {Status.BUILT: "green", Status.FRESH: "green", Status.SKIPPED: "yellow",
                 Status.FAILED: "bold red", Status.ROLLED_BACK: "red"},
        Freshness: {Freshness.FRESH: "green", Freshness.STALE: "yellow", Freshness.NEVER_BUILT: "dim"},
    }


def styled(pieces: Iterable[tuple[str, StrEnum | None]]):
    """The pieces (text, the status or state it says, else None) as one rich Text, control characters
    escaped, each status or state coloured."""
    from rich.text import Text

    colours = styles()
    out = Text()
    for text, word in pieces:
        out.append(escape_controls(text), colours[type(word)][word] if word is not None else None)
    return out


def print_styled(pieces: Iterable[tuple[str, StrEnum | None]], file=None) -> None:
    """Print with colour on a terminal, plain text otherwise."""
    from rich.console import Console

    console = Console(file=file or sys.stdout, highlight=False, soft_wrap=True, emoji=False, markup=False)
    console.print(styled(pieces))
