"""What one export is asked to write (`ExportSpec`), and the names the export uses: its kinds, its formats
and why an example is left out. Plain Python values: cli.py parses the command line's strings into them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Mapping, Sequence

from mementos.foundation.errors import WarehouseError


class ExportKind(StrEnum):
    """What an example is made of (warehouse.md, Export); each kind is written from its view, models/export_*.sql."""

    MEMENTO = "memento"
    COMPRESSED = "compressed"
    SUMMARIZE = "summarize"
    PLAIN = "plain"

    @property
    def view(self) -> str:
        return f"export_{self.value}"

    @property
    def per_block(self) -> bool:
        """One example per block (keyed by trace_id and block_idx), not one per trace."""
        return self is ExportKind.SUMMARIZE


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    PARQUET = "parquet"


class LeftOut(StrEnum):
    """Why an example is left out, in the order the reasons are tried: each is counted under the first that
    applies."""

    FLAGGED = "flagged"
    DOMAIN = "domain"
    OUTLIER = "outlier"
    DUPLICATE = "duplicate"
    TOO_LONG = "too_long"
    EMPTY = "empty"
    COPIED = "copied"


DEFAULT_SPLITS = {"train": 0.98, "validation": 0.01, "test": 0.01}
_SPLIT_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def splits_text(splits: Mapping[str, float]) -> str:
    """{'train': 0.98, 'test': 0.02} -> 'train=0.98,test=0.02', as --split writes them."""
    return ",".join(f"{name}={fraction:g}" for name, fraction in splits.items())


def check_splits(splits: Mapping[str, float]) -> None:
    """Split names that make file names (letters, digits, _ or -), fractions between 0 and 1 adding up to 1."""
    shown = splits_text(splits)
    for name, fraction in splits.items():
        if not _SPLIT_NAME_RE.match(name) or not 0 <= fraction <= 1:
            raise WarehouseError(f"--split {shown}: each part is NAME=FRACTION with NAME of letters, digits, _ "
                                 f"or - and FRACTION between 0 and 1 (e.g. {splits_text(DEFAULT_SPLITS)}); not "
                                 f"{f'{name}={fraction:g}'!r}")
    total = sum(splits.values())
    if abs(total - 1.0) > 1e-6:
        raise WarehouseError(f"--split {shown}: the fractions add up to {total:g}, not 1")


def _member(enum: type[StrEnum], value, what: str, plural: str) -> StrEnum:
    try:
        return enum(value)
    except ValueError:
        raise WarehouseError(f"unknown {what} {value!r}; {plural}: {', '.join(enum)}") from None


@dataclass(frozen=True)
class ExportSpec:
    """One export: which kind into which directory, split how, and what is left out."""

    kind: ExportKind
    out: Path
    fmt: ExportFormat = ExportFormat.JSONL
    splits: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLITS))  # name -> fraction, in order
    seed: int = 0  # of the split assignment: the same seed gives the same files
    domain: str | None = None  # only traces of this domain
    max_tokens: int | None = None  # leave out longer examples
    include_flagged: bool = False
    exclude_outliers: bool | Sequence[str] = False  # True: every trace of outlier_traces; else those of these reasons
    overwrite: bool = False  # delete whatever else is in `out`
    allow_empty: bool = False  # write the files even when every example is left out

    def __post_init__(self):
        # frozen: the values are normalised once, here
        object.__setattr__(self, "kind", _member(ExportKind, self.kind, "export kind", "kinds"))
        object.__setattr__(self, "fmt", _member(ExportFormat, self.fmt, "format", "formats"))
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "splits", {name: float(fraction) for name, fraction in dict(self.splits).items()})
        if not isinstance(self.exclude_outliers, bool):  # None or a sequence of reasons
            object.__setattr__(self, "exclude_outliers", tuple(self.exclude_outliers or ()))
        check_splits(self.splits)
        if self.max_tokens is not None and self.max_tokens < 1:
            raise WarehouseError(f"--max-tokens {self.max_tokens}: must be at least 1")

    @property
    def outliers_shown(self) -> str | list[str] | None:
        """exclude_outliers as the manifest writes it: None (none left out), "all", or the reasons."""
        return None if not self.exclude_outliers else "all" if self.exclude_outliers is True else list(
            self.exclude_outliers)

    def files(self) -> list[str]:
        """The split files' names, in the splits' order."""
        return [f"{name}.{self.fmt}" for name in self.splits]
