"""What the report is made of: one dataclass per section of the page, plain values gathered from the
models (report_sections.py, composed by report.gather) and drawn by warehouse/plots.py and
templates/report.html.j2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mementos.warehouse.trace_view import TraceView

RATIO_BIN = 0.02  # histogram bin of the memento/block ratio
RATIO_MAX = 1.0  # ratios above it go into the last bin
MAX_BLOCKS_BIN = 40  # blocks per trace above it are counted at 40


@dataclass
class CardRow:
    measure: str
    statistic: str  # how the card states it: median, average, ...
    card: float
    ours: float | None
    ours_note: str  # the same measure as another statistic, for context
    digits: int  # decimals to show

    @property
    def diff(self) -> float | None:
        return None if self.ours is None else self.ours - self.card

    @property
    def diff_pct(self) -> float | None:
        return None if self.ours is None else 100.0 * (self.ours - self.card) / self.card


@dataclass
class Overview:
    """What the warehouse holds: traces per dataset and domain, ingest runs, parse issues, the configs' alignment."""

    totals: dict  # traces, ok, flagged, unsegmented, datasets, blocks
    datasets: list[dict]
    runs: list[dict]
    domains: list[dict]
    issues: list[dict]
    alignment: dict | None  # full_alignment's counts, when the model exists

    @property
    def nothing_to_analyse(self) -> str:
        """Why every figure is empty (no trace is analysed), in a sentence; '' when some trace is."""
        if self.totals.get("ok"):
            return ""
        if not self.totals.get("traces"):
            how = ("its ingest runs read the full config only" if self.runs else "no ingest has written any")
            return (f"This warehouse holds no traces of the default config ({how}); ingest the responses with "
                    f"`mementos ingest SOURCE --config default` (or --config all).")
        if self.totals.get("unsegmented"):
            return ("No trace has memento markup to analyse: the unsegmented traces (reasoning without mementos) "
                    "are listed with their sizes and repeated paragraphs in the model unsegmented_traces, and "
                    "flagged ones by the parse issues below.")
        return "Every trace is flagged, and the figures count analysed traces only; the parse issues below say why."


@dataclass
class CardComparison:
    rows: list[CardRow]
    has_tokens: bool  # False: ingested with --no-tokens, the token rows are empty


@dataclass
class PlotData:
    """What the six plots draw (warehouse/plots.py), and the savings table beside them."""

    domains: list[str]  # the largest domains, drawn each in its colour
    ratio_hist: dict[str, list[int]]  # domain -> counts per RATIO_BIN bin (last bin: >= RATIO_MAX)
    blocks_hist: dict[str, dict[int, int]]  # domain -> n_blocks -> traces
    scatter: list[tuple[str, int, int]]  # (domain, block_chars, memento_chars), a sample
    compression_box: dict[str, dict]  # domain -> quantiles of the trace-level compression
    compression_unit: str  # 'tokens' or 'chars'
    inference: dict[str, dict[int, tuple]]  # domain -> k -> median peaks (no eviction, with eviction, plain CoT)
    inference_total: dict[int, tuple]  # all domains: k -> (no eviction, with eviction, plain CoT)
    positions: dict[str, dict[int, float | None]]  # domain -> position_order -> median ratio_chars
    positions_total: dict[int, float | None]  # all domains: position_order -> median ratio_chars
    savings: list[dict]  # inference_summary, all domains, per k
    paper_kv: list[dict]  # the paper's KV ratios per benchmark (card.paper_kv_figures), beside the savings


@dataclass
class Retention:
    summary: list[dict]  # retention_summary, per domain, then the total ('all')
    least_informative: list[dict]  # memento_retention: the lowest word recall among blocks long enough to judge


@dataclass
class Outliers:
    total: int  # traces in outlier_traces
    reasons: list[dict]  # reason -> traces
    top: list[dict]  # the ones listed, most reasons first, each with its anchor and its reasons as a list


@dataclass
class ReportData:
    """The report's sections, in the page's order."""

    db: str
    generated_at: datetime
    data_version: str
    overview: Overview
    card: CardComparison
    plot_data: PlotData
    retention: Retention
    outliers: Outliers
    views: list[TraceView]
    models: list[dict]
    plots: dict[str, str] = field(default_factory=dict)  # name -> data: URI, filled by plots.render_all
    timings: dict[str, float] = field(default_factory=dict)
