"""Numbers as every command and page prints them: thousands separated by commas, sizes in decimal
megabytes (as `ls -h --si` and the disk's vendor count), and a dash for a value that is missing."""

from __future__ import annotations

MISSING = "–"  # an en dash: a value that is not there, never 0


def number(value: int | float | None, digits: int = 0) -> str:
    """12,345 for an int (with `digits` 0), 12,345.7 for a float with `digits` 1; MISSING for None."""
    if value is None:
        return MISSING
    if isinstance(value, int) and digits == 0:
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def signed(value: int | float | None, digits: int = 0) -> str:
    """With its sign, except a difference that rounds to zero: 0.0, never -0.0 or +0.0."""
    if value is None:
        return MISSING
    text = f"{value:+,.{digits}f}"
    return text[1:] if float(text.replace(",", "")) == 0 else text


def megabytes(n_bytes: int | float | None) -> str:
    """A size in megabytes with one decimal: '1,234.5 MB'; MISSING for None."""
    return MISSING if n_bytes is None else f"{n_bytes / 1e6:,.1f} MB"


def size(n_bytes: int | float) -> str:
    """A size in the unit that reads best for free space: megabytes from 1 MB up, kilobytes below."""
    return megabytes(n_bytes) if n_bytes >= 1e6 else f"{n_bytes / 1e3:,.0f} KB"
