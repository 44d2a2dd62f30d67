"""What an export wrote (`ExportResult`), and the summary the command prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mementos.warehouse.export.card import CARD
from mementos.warehouse.export.files import MANIFEST
from mementos.warehouse.export.spec import ExportFormat, ExportKind, LeftOut


@dataclass
class ExportResult:
    kind: ExportKind
    fmt: ExportFormat
    out: Path
    model: str
    candidates: int  # rows of the export view
    left_out: dict[LeftOut, int]  # every reason, in LeftOut's order
    splits: dict[str, dict]  # name -> describe()
    seconds: float
    text_chars: int  # response chars of the traces the examples were cut from (for throughput)
    filters: dict = field(default_factory=dict)
    left_out_outliers: dict[str, int] = field(default_factory=dict)  # reason -> traces' examples, of "outlier"
    near_duplicates: dict = field(default_factory=dict)  # near_duplicate_groups' stats

    @property
    def rows(self) -> int:
        return sum(s["rows"] for s in self.splits.values())

    @property
    def traces(self) -> int:
        return sum(s["traces"] for s in self.splits.values())

    @property
    def bytes(self) -> int:
        return sum(s["bytes"] for s in self.splits.values())

    def format(self) -> str:
        lines = [f"export {self.kind} -> {self.out} ({self.fmt}, from {self.model})"]
        width = max(len(n) for n in self.splits)
        for name, s in self.splits.items():
            t = s["tokens"]
            tokens = (f"tokens min {t['min']:,} / median {t['median']:,} / p95 {t['p95']:,} / max {t['max']:,}"
                      if t else "tokens -")
            lines.append(f"  {name:<{width}}  {s['rows']:>10,} examples  {s['traces']:>9,} traces  "
                         f"{s['bytes'] / 1e6:9.1f} MB  {tokens}")
            if not s["rows"]:  # said here, not only in the card: a training script's ds[name] would fail
                lines.append(f"  {'':<{width}}  empty: not in {CARD}'s configs, so load_dataset(DIR) has no "
                             f"{name!r} split (datasets cannot load a split of no rows)")
        left = [f"{n:,} {reason}" for reason, n in self.left_out.items() if n]
        lines.append("  left out: " + (", ".join(left) if left else "nothing")
                     + f" (of {self.candidates:,} candidate examples)")
        why = {LeftOut.FLAGGED: "flagged or unsegmented traces (--include-flagged keeps them)",
               LeftOut.OUTLIER: "listed in outlier_traces (--exclude-outliers)",
               LeftOut.COPIED: "summarize: the memento copies its block",
               LeftOut.DOMAIN: f"domain is not {self.filters.get('domain')!r}",
               LeftOut.DUPLICATE: "exact duplicates of an earlier trace (same content_hash)",
               LeftOut.TOO_LONG: f"more than --max-tokens {self.filters.get('max_tokens')} tokens",
               LeftOut.EMPTY: "no problem, or nothing to put in the assistant turn"}
        for reason, n in self.left_out.items():
            if n:
                lines.append(f"    {reason:<9} {n:>8,}  {why[reason]}")
                if reason == LeftOut.OUTLIER:
                    lines += [f"      {r:<24} {k:>8,}" for r, k in self.left_out_outliers.items()]
        n = self.near_duplicates
        if n:
            lines.append(f"  splits by problem: {n['problems']:,} distinct problems; {n['groups_merged']:,} groups of "
                         f"near-duplicates ({n['problems_in_them']:,} problems, the largest {n['largest_group']:,}) "
                         f"kept in one split each ({n['seconds']:.1f} s)")
        rate = max(self.seconds, 1e-9)
        lines.append(f"  {self.rows:,} examples from {self.traces:,} traces ({self.text_chars / 1e6:,.1f} M chars "
                     f"of response text), {self.bytes / 1e6:,.1f} MB written in {self.seconds:.1f} s: "
                     f"{self.traces / rate:,.0f} traces/s, {self.text_chars / 1e6 / rate:,.1f} M chars/s read, "
                     f"{self.bytes / 1e6 / rate:,.1f} MB/s written")
        lines.append(f"  manifest: {self.out / MANIFEST}")
        return "\n".join(lines)
