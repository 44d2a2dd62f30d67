"""Terminal output: control characters made visible, and colour for `build` and `models`.

`escape_controls` is the one place where text bound for a terminal loses its control characters:
`show`, `sql`'s table format (and csv/json when stdout is a terminal), `build`, `models`, and the
notes, summaries and error lines of every command pass data through it. A value holding ESC ] 52 ;
... BEL would otherwise write the reader's clipboard (OSC 52), ESC ] 0 ; ... set the window title,
and CSI sequences move the cursor or rewrite what is on screen; shown as \\x1b they do nothing.

Colour: the text is the plain text the library formats (BuildReport.format, models_report);
only the state words are coloured: fresh and built green, stale and skipped yellow,
failed and undone red, never built dim. rich decides whether the output is a
terminal (and honours NO_COLOR and FORCE_COLOR); piped output stays plain text.
"""

from __future__ import annotations

import re
import sys

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


STYLES = {
    "built": "green", "fresh": "green", "stale": "yellow", "skipped": "yellow",
    "FAILED": "bold red", "failed": "bold red", "undone": "red", "never built": "dim",
}
# A state word where the formats put one: first on a build line, in the state column of `models`.
_BUILD_LINE = re.compile(r"^  (built|fresh|skipped|FAILED|undone)\b", re.MULTILINE)
_STATE_WORD = re.compile(r"(?<=  )(fresh|stale|never built|failed)(?=\b)")


def styled(text: str, kind: str):
    """`text` (kind 'build' or 'models'), control characters escaped, with its state words coloured."""
    from rich.text import Text

    text = escape_controls(text)
    out = Text(text)
    if kind == "build":
        for m in _BUILD_LINE.finditer(text):
            out.stylize(STYLES[m.group(1)], m.start(1), m.end(1))
    else:
        lines = text.split("\n")
        at = 0
        for i, line in enumerate(lines):
            if i >= 2:  # below the header and its rule
                m = _STATE_WORD.search(line)
                if m:
                    out.stylize(STYLES[m.group(1)], at + m.start(1), at + m.end(1))
            at += len(line) + 1
    return out


def print_styled(text: str, kind: str, file=None) -> None:
    """Print with colour on a terminal, plain text otherwise."""
    from rich.console import Console

    console = Console(file=file or sys.stdout, highlight=False, soft_wrap=True, emoji=False, markup=False)
    console.print(styled(text, kind))
