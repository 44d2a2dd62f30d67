"""Colour for `build` and `models` output on a terminal, as dbt and SQLMesh print it.

The text is the plain text the library formats (BuildReport.format, models_report);
only the state words are coloured: fresh and built green, stale and skipped yellow,
failed and undone red, never built dim. rich decides whether the output is a
terminal (and honours NO_COLOR and FORCE_COLOR); piped output stays plain text.
"""

from __future__ import annotations

import re
import sys

from rich.console import Console
from rich.text import Text

STYLES = {
    "built": "green", "fresh": "green", "stale": "yellow", "skipped": "yellow",
    "FAILED": "bold red", "failed": "bold red", "undone": "red", "never built": "dim",
}
# A state word where the formats put one: first on a build line, in the state column of `models`.
_BUILD_LINE = re.compile(r"^  (built|fresh|skipped|FAILED|undone)\b", re.MULTILINE)
_STATE_WORD = re.compile(r"(?<=  )(fresh|stale|never built|failed)(?=\b)")


def styled(text: str, kind: str) -> Text:
    """`text` (kind 'build' or 'models') with its state words coloured."""
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
    console = Console(file=file or sys.stdout, highlight=False, soft_wrap=True, emoji=False, markup=False)
    console.print(styled(text, kind))
