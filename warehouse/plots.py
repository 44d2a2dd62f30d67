"""The report's six plots: matplotlib (Agg canvas, no pyplot), each returned as a PNG data: URI.

Every function takes the plain values that report_sections.plot_data put in
PlotData and returns "data:image/png;base64,...". A plot with nothing to draw
still returns an image, saying so, so the page never has a broken image.

Labels that come from the data (domain names) go through `label()`: matplotlib
reads `$...$` as math, so `$` is escaped, and long names are cut.
"""

from __future__ import annotations

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from mementos.warehouse import card
from mementos.warehouse.report_data import MAX_BLOCKS_BIN, RATIO_BIN, PlotData

WIDTH, HEIGHT, DPI = 7.5, 4.2, 110
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def label(text, limit: int = 28) -> str:
    """A data string made safe for a matplotlib label: no math mode, no newlines, not too long."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("\\", "\\\\").replace("$", r"\$")


def _to_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(title: str):
    fig = Figure(figsize=(WIDTH, HEIGHT))  # the Agg canvas directly: no pyplot, no global state
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _empty(title: str, why: str) -> str:
    fig, ax = _figure(title)
    ax.axis("off")
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=11, color="#555", transform=ax.transAxes)
    return _to_uri(fig)


def _color(domains: list[str], domain: str) -> str:
    return COLORS[domains.index(domain) % len(COLORS)] if domain in domains else "#7f7f7f"


def ratio_axis_end(ratio_hist: dict[str, list[int]]) -> float:
    """Where the ratio axis ends: one bin past the last bin any domain has blocks in (and past the
    card's medians), so data that ends near 0.5 does not sit in the left half of an axis running to 1."""
    last = max((i for counts in ratio_hist.values() for i, c in enumerate(counts) if c), default=0)
    highest = max(card.median_ratio_chars().values(), default=0.0)
    return max((last + 2) * RATIO_BIN, highest + RATIO_BIN)


def ratio_distribution(data: PlotData) -> str:
    title = "Memento/block ratio per domain (one count per block)"
    if not any(sum(c) for c in data.ratio_hist.values()):
        return _empty(title, "no analysed blocks")
    fig, ax = _figure(title)
    for domain in data.domains:
        counts = data.ratio_hist[domain]
        total = sum(counts)
        if not total:
            continue
        edges = [i * RATIO_BIN for i in range(len(counts) + 1)]
        shares = [100.0 * c / total for c in counts]
        color = _color(data.domains, domain)
        ax.stairs(shares, edges, color=color, linewidth=1.6, label=f"{label(domain)} ({total:,} blocks)")
        if domain in card.median_ratio_chars():
            ax.axvline(card.median_ratio_chars()[domain], color=color, linestyle=":", linewidth=1.2)
    ax.set_xlabel("memento chars / block chars (ratio; the last bin holds everything ≥ 1)")
    ax.set_ylabel(f"share of the domain's blocks (%, bins of {RATIO_BIN})")
    ax.set_xlim(0, ratio_axis_end(data.ratio_hist))
    ax.plot([], [], color="#333", linestyle=":", label="card median (math, code, science)")
    ax.legend(fontsize=8)
    return _to_uri(fig)


def blocks_per_trace(data: PlotData) -> str:
    title = "Blocks per trace per domain (analysed traces)"
    fig = blocks_per_trace_figure(data, title)
    return _empty(title, "no analysed traces") if fig is None else _to_uri(fig)


def blocks_per_trace_figure(data: PlotData, title: str = "") -> Figure | None:
    if not any(data.blocks_hist.values()):
        return None
    fig, ax = _figure(title)
    top = 0
    for domain in data.domains:
        hist = data.blocks_hist[domain]
        total = sum(hist.values())
        if not total:
            continue
        xs = list(range(1, max(hist) + 1))
        top = max(top, xs[-1])
        ax.plot(xs, [100.0 * hist.get(x, 0) / total for x in xs], marker="o", markersize=3, linewidth=1.4,
                color=_color(data.domains, domain), label=f"{label(domain)} ({total:,} traces)")
    # The axis ends at the largest count drawn; the last bin (MAX_BLOCKS_BIN, which holds the longer traces
    # too) is said so only when the axis reaches it.
    if top >= MAX_BLOCKS_BIN:
        ax.set_xlabel(f"blocks per trace (count; the last point, {MAX_BLOCKS_BIN}, holds {MAX_BLOCKS_BIN} or more)")
    else:
        ax.set_xlabel("blocks per trace (count)")
    ax.set_ylabel("share of the domain's traces (%)")
    ax.set_xlim(0.5, top + 0.5)
    ax.legend(fontsize=8)
    return fig


def block_vs_memento(data: PlotData) -> str:
    title = f"Block length against memento length ({len(data.scatter):,} blocks sampled)"
    fig = block_vs_memento_figure(data, title)
    return _empty(title, "no analysed blocks") if fig is None else _to_uri(fig)


def block_vs_memento_figure(data: PlotData, title: str = "") -> Figure | None:
    points = [(d, b, m) for d, b, m in data.scatter if b and m and b > 0 and m > 0]
    if not points:
        return None
    fig, ax = _figure(title)
    groups: dict[str, list[tuple[int, int]]] = {}
    for d, b, m in points:
        groups.setdefault(d if d in data.domains else "other", []).append((b, m))
    for domain, pts in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=6, alpha=0.45, linewidths=0,
                   color=_color(data.domains, domain), label=label(domain))
    lo = min(min(b, m) for _, b, m in points)
    hi = max(max(b, m) for _, b, m in points)
    xs = [lo, hi]
    ax.plot(xs, xs, color="#333", linewidth=0.9, linestyle="--", label="memento = block")
    ax.plot(xs, [0.2 * x for x in xs], color="#333", linewidth=0.9, linestyle=":", label="memento = 0.2 × block")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("block length (characters, log scale)")
    ax.set_ylabel("memento length (characters, log scale)")
    ax.legend(fontsize=8, markerscale=2)
    return fig


def compression_per_domain(data: PlotData) -> str:
    unit = data.compression_unit
    title = f"Trace-level compression per domain (block {unit} / memento {unit})"
    stats = [(d, data.compression_box[d]) for d in data.domains if d in data.compression_box]
    if not stats:
        return _empty(title, "no analysed traces")
    fig, ax = _figure(title)
    boxes = [{"label": f"{label(d, 18)}\n({s['n']:,})", "whislo": s["p5"], "q1": s["q1"], "med": s["med"],
              "q3": s["q3"], "whishi": s["p95"], "fliers": []} for d, s in stats]
    ax.bxp(boxes, showfliers=False, patch_artist=True,
           boxprops={"facecolor": "#cfe2f3"}, medianprops={"color": "#d62728", "linewidth": 1.6})
    if unit == "tokens":
        ax.axhline(card.overall(card.TRACE_COMPRESSION), color="#333", linestyle=":", linewidth=1.2,
                   label=f"card: ~{card.overall(card.TRACE_COMPRESSION):g}×")
        ax.legend(fontsize=8)
    ax.set_xlabel("domain (traces); box: quartiles, whiskers: 5th and 95th percentiles")
    ax.set_ylabel(f"compression (×, total block {unit} / total memento {unit})")
    ax.set_ylim(bottom=0)
    return _to_uri(fig)


def peak_context(data: PlotData) -> str:
    title = "Peak context in the inference simulation (median over traces)"
    fig = peak_context_figure(data, title)
    return _empty(title, "no token counts (ingested with --no-tokens) or no analysed traces") if fig is None \
        else _to_uri(fig)


def peak_context_figure(data: PlotData, title: str = "") -> Figure | None:
    # (name, color, line width, k -> (no eviction, with, plain CoT)): the total first, then the plotted domains
    lines = [("all domains", "#000000", 2.2, data.inference_total)]
    lines += [(label(d), _color(data.domains, d), 1.3, data.inference[d])
              for d in data.domains if d in data.inference]
    lines = [line for line in lines if any(v[1] is not None for v in line[3].values())]
    if not lines:
        return None
    fig, ax = _figure(title)
    for name, color, width, by_k in lines:
        ks = sorted(by_k)
        ax.plot(ks, [by_k[k][1] for k in ks], marker="o", color=color, linewidth=width)
        ax.plot(ks, [by_k[k][0] for k in ks], color=color, linewidth=width * 0.8, linestyle="--")
        if by_k is data.inference_total:
            ax.plot(ks, [by_k[k][2] for k in ks], color=color, linewidth=width * 0.8, linestyle=":")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xticks([1, 2, 4, 8])
    ax.set_xlabel("k: blocks kept in full in the context (earlier blocks are replaced by their mementos)")
    ax.set_ylabel("peak context (tokens, cl100k_base, with markup)")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    # The lines fill the axes from 2,000 to 14,000 tokens at every k, so no corner is free: one legend
    # below the axes, a colour per line (domain) and a style per kind of peak, instead of one entry per
    # line (3 + 2 per domain) drawn over them.
    handles = [Line2D([], [], color=color, linewidth=width, label=name) for name, color, width, _ in lines]
    handles += [Line2D([], [], color="#555", marker="o", label="with eviction"),
                Line2D([], [], color="#555", linestyle="--", label="no eviction"),
                Line2D([], [], color="#555", linestyle=":", label="plain chain of thought (all domains)")]
    fig.set_layout_engine("constrained")
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return fig


def ratio_by_position(data: PlotData) -> str:
    title = "Memento/block ratio by the block's position in its trace (median)"
    if not data.positions_total:
        return _empty(title, "no analysed traces")
    fig, ax = _figure(title)
    names = ["first"] + [f"{10 * d}-{10 * d + 10}%" for d in range(10)] + ["last"]
    # (name, color, line width, position_order -> median): the total first, then the plotted domains
    lines = [("all domains", "#000000", 2.2, data.positions_total)]
    lines += [(label(d), _color(data.domains, d), 1.3, data.positions[d])
              for d in data.domains if d in data.positions]
    for name, color, width, by_order in lines:
        points = sorted((o, m) for o, m in by_order.items() if o <= 11 and m is not None)
        ax.plot([o for o, _ in points], [m for _, m in points], marker="o", color=color, linewidth=width, label=name)
    ax.set_xticks(range(12))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("position: the first block, the middle blocks by decile of j / (n - 1), the last block")
    ax.set_ylabel("median memento/block ratio (chars)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return _to_uri(fig)


PLOTS = {
    "ratio_distribution": ratio_distribution,
    "blocks_per_trace": blocks_per_trace,
    "block_vs_memento": block_vs_memento,
    "compression_per_domain": compression_per_domain,
    "peak_context": peak_context,
    "ratio_by_position": ratio_by_position,
}


def render_all(data: PlotData) -> dict[str, str]:
    return {name: fn(data) for name, fn in PLOTS.items()}
