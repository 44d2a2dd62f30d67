"""`mementos report`: one self-contained HTML file describing a warehouse.

The report reads the models (warehouse/engine.py builds the stale ones first,
with a line saying so), plus small aggregates over base tables (ingest runs,
traces per dataset, domain and status, parse issues per code). The only rows it reads from base tables one trace at a
time are the texts of the few traces it shows side by side (`trace_views`),
looked up by trace_id: no model holds texts.

Three steps, each a function that tests can call on its own:

    gather(con, ...)  -> ReportData     the numbers, from the models (plain Python values)
    plots.render_all(data)              six PNGs, base64 data: URIs (warehouse/plots.py)
    render_html(data) -> str            Jinja2, autoescape on (templates/report.html.j2)

`write_report(db, out)` runs the three and writes the file (warehouse/output.py: a
temp file of a random name, renamed over a regular file; a device or pipe written
as it is). Nothing in the page
loads anything from the network: CSS is inline, images are data: URIs, and
there is no script.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from mementos.foundation import catalog, storage
from mementos.foundation.errors import WarehouseError
from mementos.foundation.resources import resource_dir
from mementos.warehouse import card, guard
from mementos.warehouse.report_data import MAX_BLOCKS_BIN, RATIO_BIN, RATIO_MAX, CardRow, ReportData
from mementos.warehouse.output import write_file
from mementos.warehouse.trace_view import _dicts, _no_trace, _ratio, anchor_for, clip, trace_views

TEMPLATES = resource_dir("templates")

MAX_PLOT_DOMAINS = 6  # plots draw the largest domains; the tables list all of them
MIN_PLOT_SHARE = 0.01  # ... those with at least 1% of the analysed traces
MAX_DOMAIN_VIEWS = 8  # one typical trace per domain, for the largest domains
DEFAULT_OUTLIERS = 10
SCATTER_SAMPLE = 3000
# The models the report reads (their upstream models are built with them).
REPORT_MODELS = ("all_traces", "block_pairs", "trace_compression", "domain_compression", "inference_summary",
                 "outlier_traces", "full_alignment", "memento_retention", "retention_summary",
                 "compression_by_position")
# The columns `gather` reads of each model (its queries and card_rows; a model of yours replacing one must have
# them): checked first, so a missing one is named rather than a Binder error in the middle of the report.
REPORT_COLUMNS = {
    "block_pairs": ("domain", "ratio_chars", "block_chars", "memento_chars", "block_tokens", "memento_tokens"),
    "trace_compression": ("trace_id", "domain", "n_blocks", "ratio_chars", "compression_chars",
                          "compression_tokens", "block_tokens", "memento_tokens"),
    "domain_compression": ("domain", "is_total", "median_ratio_chars", "median_trace_ratio_chars",
                           "median_trace_ratio_words"),
    "inference_summary": ("domain", "is_total", "k", "traces", "median_peak_no_eviction",
                          "median_peak_with_eviction", "median_peak_plain_cot", "p90_peak_with_eviction",
                          "median_saved_fraction_vs_no_eviction", "median_saved_fraction_vs_plain_cot",
                          "median_kv_saved_fraction_vs_plain_cot", "share_fits_8k_plain_cot",
                          "share_fits_8k_with_eviction", "share_fits_16k_plain_cot", "share_fits_16k_with_eviction",
                          "share_fits_32k_plain_cot", "share_fits_32k_with_eviction"),
    "compression_by_position": ("domain", "is_total", "position_order", "median_ratio_chars"),
    "retention_summary": ("domain", "is_total", "pairs", "pairs_with_numbers", "median_numbers_kept_fraction",
                          "p10_numbers_kept_fraction", "p90_numbers_kept_fraction", "share_keeping_every_number",
                          "median_word_recall", "p10_word_recall", "p90_word_recall"),
    "memento_retention": ("trace_id", "block_idx", "domain", "block_chars", "memento_chars", "block_numbers",
                          "numbers_kept", "numbers_kept_fraction", "block_content_words", "content_words_kept",
                          "word_recall"),
    "outlier_traces": ("trace_id", "dataset", "domain", "status", "reasons", "n_reasons", "issue_codes",
                       "duplicate_of", "n_blocks", "ratio_chars", "domain_median_ratio_chars", "ratio_z", "blocks_z",
                       "max_block_chars", "max_block_z", "answer_chars"),
    "full_alignment": ("trace_id", "full_trace_id", "link", "aligned"),
}
REPORT_MEMORY_LIMIT = "64MB"  # DuckDB's pool for the report's queries, unless MEMENTOS_MEMORY_LIMIT is set
LEAST_INFORMATIVE = 10  # mementos listed in the retention section
MIN_CONTENT_WORDS = 10  # blocks with fewer content words are too short to judge a memento's word recall


# ---------------------------------------------------------------------------
# Helpers


def _scalar_row(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> dict:
    rows = _dicts(con, sql, params)
    return rows[0] if rows else {}


# ---------------------------------------------------------------------------
# Stale models


def report_models(project) -> list[str]:
    """The models the report reads and everything upstream of them, in dependency order."""
    return project.dag.in_order(project.dag.upstream(REPORT_MODELS))


def ensure_built(db: str | Path, echo=print, models_dir=None) -> float:
    """Build the models the report needs that are not fresh (the planner says which), saying so;
    returns the seconds it took."""
    from mementos.warehouse.engine import build_for_reader
    from mementos.warehouse.executor import Status

    def announce(plan) -> str:
        stale = [plan.step(name) for name in plan.to_build]
        listed = ", ".join(f"{s.model} ({s.reason})" for s in stale[:4])
        more = f" and {len(stale) - 4} more" if len(stale) > 4 else ""
        return (f"report: {len(stale)} model{'s' if len(stale) != 1 else ''} stale or never built, "
                f"building first: {listed}{more}")

    result = build_for_reader(db, REPORT_MODELS, "report", models_dir, echo, announce).report
    if result is None:
        return 0.0
    if not result.ok:
        raise WarehouseError("the report needs these models, and their build failed:\n" + result.format())
    built = len(result.by_status(Status.BUILT))
    echo(f"report: built {built} model{'s' if built != 1 else ''} in {result.seconds:.1f} s")
    return result.seconds


# ---------------------------------------------------------------------------
# Gathering


def gather(con: duckdb.DuckDBPyConnection, db: str = "", extra_traces: list[str] | tuple[str, ...] = (),
           outliers: int = DEFAULT_OUTLIERS, models_dir=None) -> ReportData:
    """Everything the report shows, from a warehouse whose models are built (`models_dir`: as for build)."""
    from mementos.warehouse.engine import data_version, existing_objects

    con.execute("SET enable_progress_bar = false")
    objects = existing_objects(con)
    missing = [m for m in REPORT_MODELS if m != "full_alignment" and m not in objects]
    if missing:
        raise WarehouseError(f"the warehouse {db} lacks the models {', '.join(missing)}; "
                             f"run `mementos build --db {db}` (the report command does it for you)")
    check_columns(con, models_dir)

    # traces per dataset, domain and status: one pass over `traces` (all_traces, a view, would also join
    # every trace's issue codes), from which the totals, datasets and domains are summed
    counts = con.execute("SELECT dataset, coalesce(domain, '(unknown)') AS domain, status, count(*) FROM traces "
                         "GROUP BY ALL").fetchall()
    totals, datasets, domains = _trace_counts(counts)
    totals["blocks"] = con.execute("SELECT count(*) FROM block_pairs").fetchall()[0][0]

    runs = _dicts(con, """
        SELECT run_id, dataset, source, config, started_at, finished_at, rows_read, rows_ok, rows_flagged,
               default_rows, full_rows, input_bytes, parser_version, token_encoding, seconds,
               list_contains($current, run_id) AS current
        FROM ingest_runs ORDER BY finished_at DESC LIMIT 50""", {"current": list(catalog.current_runs(con).values())})
    for d in domains:
        d["share"] = d["traces"] / totals["traces"] if totals["traces"] else None
    # parse issues per config and code, one config at a time (the view's two, sql/views.sql): a query over both
    # reads the Parquet metadata of the traces' and the full traces' files at once (~20 MiB more at 228,557
    # traces, measured when the files had a row group per 125 traces)
    issues = []
    for config in ("default", "full"):
        issues += _dicts(con, """
            SELECT config, code, count(DISTINCT trace_id) AS traces, count(*) AS issues
            FROM parse_issues WHERE config = ? GROUP BY config, code""", [config])
    issues.sort(key=lambda r: (r["config"], -r["traces"], r["code"]))
    alignment = None
    if "full_alignment" in objects:
        alignment = _scalar_row(con, """
            SELECT count(*) FILTER (WHERE link <> 'unlinked') AS linked,
                   count(*) FILTER (WHERE link = 'hash') AS by_hash,
                   count(*) FILTER (WHERE link = 'problem') AS by_problem,
                   count(*) FILTER (WHERE aligned) AS aligned,
                   count(*) FILTER (WHERE NOT aligned) AS disagreeing,
                   count(*) FILTER (WHERE link = 'unlinked' AND full_trace_id IS NULL) AS unlinked_default,
                   count(*) FILTER (WHERE link = 'unlinked' AND trace_id IS NULL) AS unlinked_full
            FROM full_alignment""")

    card_table, has_tokens = card_rows(con)

    # plots -----------------------------------------------------------------
    plot_domains = [r[0] for r in con.execute(
        "SELECT domain FROM trace_compression GROUP BY domain "
        "HAVING count(*) >= ? * (SELECT count(*) FROM trace_compression) "
        "ORDER BY count(*) DESC, domain LIMIT ?", [MIN_PLOT_SHARE, MAX_PLOT_DOMAINS]).fetchall()]
    nbins = int(round(RATIO_MAX / RATIO_BIN)) + 1
    ratio_hist = {d: [0] * nbins for d in plot_domains}
    for domain, b, n in con.execute(
            "SELECT domain, CAST(least(floor(ratio_chars / ?), ?) AS INTEGER) AS bin, count(*) FROM block_pairs "
            "GROUP BY ALL", [RATIO_BIN, nbins - 1]).fetchall():
        if domain in ratio_hist:
            ratio_hist[domain][b] += n
    blocks_hist: dict[str, dict[int, int]] = {d: {} for d in plot_domains}
    for domain, nb, n in con.execute(
            "SELECT domain, least(n_blocks, ?) AS nb, count(*) FROM trace_compression GROUP BY ALL ORDER BY nb",
            [MAX_BLOCKS_BIN]).fetchall():
        if domain in blocks_hist:
            blocks_hist[domain][nb] = blocks_hist[domain].get(nb, 0) + n
    scatter = [tuple(r) for r in con.execute(
        f"SELECT domain, block_chars, memento_chars FROM block_pairs "
        f"USING SAMPLE reservoir({SCATTER_SAMPLE} ROWS) REPEATABLE (7)").fetchall()]
    scatter.sort(key=lambda r: (str(r[0]), r[1], r[2]))
    compression_unit = "tokens" if has_tokens else "chars"
    compression_box = {}
    for domain, qs, n in con.execute(
            f"SELECT domain, quantile_cont(compression_{compression_unit}, [0.05, 0.25, 0.5, 0.75, 0.95]), "
            f"count(compression_{compression_unit}) FROM trace_compression GROUP BY domain").fetchall():
        if domain in plot_domains and n:
            compression_box[domain] = dict(zip(("p5", "q1", "med", "q3", "p95"), qs), n=n)
    inference: dict[str, dict[int, tuple]] = {}
    inference_total: dict[int, tuple] = {}
    for domain, is_total, k, no_ev, with_ev, plain in con.execute(
            "SELECT domain, is_total, k, median_peak_no_eviction, median_peak_with_eviction, median_peak_plain_cot "
            "FROM inference_summary ORDER BY k").fetchall():
        if is_total:  # not `domain == 'all'`: a domain may be called that
            inference_total[k] = (no_ev, with_ev, plain)
        elif domain in plot_domains:
            inference.setdefault(domain, {})[k] = (no_ev, with_ev, plain)

    positions: dict[str, dict[int, float | None]] = {}
    positions_total: dict[int, float | None] = {}
    for domain, is_total, order, median in con.execute(
            "SELECT domain, is_total, position_order, median_ratio_chars FROM compression_by_position").fetchall():
        if is_total:
            positions_total[order] = median
        elif domain in plot_domains:
            positions.setdefault(domain, {})[order] = median
    savings = _dicts(con, """
        SELECT k, traces, median_peak_plain_cot, median_peak_no_eviction, median_peak_with_eviction,
               p90_peak_with_eviction, median_saved_fraction_vs_no_eviction, median_saved_fraction_vs_plain_cot,
               median_kv_saved_fraction_vs_plain_cot, share_fits_8k_plain_cot, share_fits_8k_with_eviction,
               share_fits_16k_plain_cot, share_fits_16k_with_eviction, share_fits_32k_plain_cot,
               share_fits_32k_with_eviction
        FROM inference_summary WHERE is_total AND median_peak_with_eviction IS NOT NULL ORDER BY k""")

    # memento retention -------------------------------------------------------
    retention = _dicts(con, """
        SELECT domain, pairs, pairs_with_numbers, median_numbers_kept_fraction, p10_numbers_kept_fraction,
               p90_numbers_kept_fraction, share_keeping_every_number, median_word_recall, p10_word_recall,
               p90_word_recall
        FROM retention_summary ORDER BY is_total, pairs DESC, domain""")
    least_informative = _dicts(con, """
        SELECT trace_id, block_idx, domain, block_chars, memento_chars, block_numbers, numbers_kept,
               block_content_words, content_words_kept, word_recall
        FROM memento_retention
        WHERE block_content_words >= ?
        ORDER BY word_recall, numbers_kept_fraction NULLS LAST, trace_id, block_idx
        LIMIT ?""", [MIN_CONTENT_WORDS, LEAST_INFORMATIVE])

    # outliers and the traces shown -----------------------------------------
    outlier_total = con.execute("SELECT count(*) FROM outlier_traces").fetchall()[0][0]
    outlier_reasons = _dicts(con, """
        SELECT reason, count(*) AS traces
        FROM (SELECT unnest(string_split(reasons, ',')) AS reason FROM outlier_traces)
        GROUP BY reason ORDER BY traces DESC, reason""")
    top = _dicts(con, """
        SELECT trace_id, dataset, domain, status, reasons, n_reasons, issue_codes, duplicate_of, n_blocks,
               ratio_chars, domain_median_ratio_chars, ratio_z, blocks_z, max_block_chars, max_block_z, answer_chars
        FROM outlier_traces
        ORDER BY n_reasons DESC,
                 greatest(coalesce(abs(ratio_z), 0), coalesce(abs(blocks_z), 0), coalesce(abs(max_block_z), 0)) DESC,
                 trace_id
        LIMIT ?""", [outliers])
    for o in top:
        o["anchor"] = anchor_for(o["trace_id"])
        o["reasons"] = o["reasons"].split(",") if o["reasons"] else []

    typical = _dicts(con, """
        WITH ranked AS (
            SELECT trace_id, domain, ratio_chars,
                   quantile_cont(ratio_chars, 0.5) OVER (PARTITION BY domain) AS median_ratio,
                   count(*) OVER (PARTITION BY domain) AS traces
            FROM trace_compression
        )
        SELECT domain, trace_id, ratio_chars, median_ratio, traces FROM ranked
        QUALIFY row_number() OVER (PARTITION BY domain ORDER BY abs(ratio_chars - median_ratio), trace_id) = 1
        ORDER BY traces DESC, domain LIMIT ?""", [MAX_DOMAIN_VIEWS])

    why: dict[str, list[str]] = {}
    for t in typical:
        why.setdefault(t["trace_id"], []).append(
            f"typical {t['domain']} trace (memento/block ratio closest to the domain median)")
    for o in top:
        why.setdefault(o["trace_id"], []).append("outlier: " + ", ".join(o["reasons"]))
    for tid in extra_traces:
        why.setdefault(tid, []).append("chosen with --trace")
    with _pool_for_texts(con, list(why)):
        found = trace_views(con, list(why))
    unknown = [t for t in extra_traces if t not in found]
    if unknown:
        raise WarehouseError(_no_trace(con, unknown[0], db))
    views = []
    for tid, reasons in why.items():
        if tid in found:
            found[tid].why = reasons
            views.append(found[tid])

    return ReportData(
        db=str(db), generated_at=datetime.now().astimezone(), data_version=data_version(con, objects),
        totals=totals, datasets=datasets, runs=runs, domains=domains, issues=issues, alignment=alignment,
        card=card_table, has_tokens=has_tokens, plot_domains=plot_domains, ratio_hist=ratio_hist,
        blocks_hist=blocks_hist, scatter=scatter, compression_box=compression_box,
        compression_unit=compression_unit, inference=inference, inference_total=inference_total,
        positions=positions, positions_total=positions_total, savings=savings, retention=retention, least_informative=least_informative,
        outlier_total=outlier_total,
        outlier_reasons=outlier_reasons, outliers=top, views=views, models=model_rows(con, models_dir))


def check_columns(con: duckdb.DuckDBPyConnection, models_dir=None) -> None:
    """Every column of REPORT_COLUMNS in its model's table, or one line naming the model's file and what it lacks."""
    found: dict[str, set[str]] = {}
    for table, column in con.execute(
            "SELECT lower(table_name), lower(column_name) FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_catalog = current_database()").fetchall():
        found.setdefault(table, set()).add(column)
    for model, columns in REPORT_COLUMNS.items():
        lacking = [c for c in columns if model in found and c not in found[model]]
        if lacking:
            from mementos.warehouse.models import discover

            where = getattr(discover(models_dir).get(model), "where", f"models/{model}.sql")
            raise WarehouseError(
                f"{where}: the report reads the column{'s' if len(lacking) > 1 else ''} {', '.join(lacking)} of "
                f"{model}, which this model does not have; add {'them' if len(lacking) > 1 else 'it'} to its SELECT "
                f"(warehouse.md, \"Your own models\"), or leave the model out of --models")


def _trace_counts(counts: list[tuple]) -> tuple[dict, list[dict], list[dict]]:
    """(dataset, domain, status, traces) rows -> the totals, the datasets and the domains, each with its traces,
    ok and flagged, in the report's order (most traces first, then by name)."""
    def tally(rows) -> dict:
        return {"traces": sum(n for *_, n in rows), "ok": sum(n for *_, s, n in rows if s == "ok"),
                "flagged": sum(n for *_, s, n in rows if s == "flagged")}

    def grouped(position: int) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = {}
        for r in counts:
            out.setdefault(r[position], []).append(r)
        return out

    totals = tally(counts) | {"datasets": len(grouped(0))}
    datasets = [{"dataset": name, **tally(rows), "domains": len({r[1] for r in rows})}
                for name, rows in grouped(0).items()]
    domains = [{"domain": name, **tally(rows)} for name, rows in grouped(1).items()]
    datasets.sort(key=lambda d: (-d["traces"], d["dataset"]))
    domains.sort(key=lambda d: (-d["traces"], d["domain"]))
    return totals, datasets, domains


def card_rows(con: duckdb.DuckDBPyConnection) -> tuple[list[CardRow], bool]:
    """This warehouse's figures beside the card's, each computed as the card states it."""
    ratios = dict(con.execute(
        "SELECT domain, median_ratio_chars FROM domain_compression WHERE NOT is_total").fetchall())
    # the tutorial's figure: the median over traces of each trace's memento/block ratio
    per_trace_ratios = {d: (c, w) for d, c, w in con.execute(
        "SELECT domain, median_trace_ratio_chars, median_trace_ratio_words FROM domain_compression "
        "WHERE NOT is_total").fetchall()}
    all_row = _scalar_row(con, "SELECT * FROM domain_compression WHERE is_total")
    per_block = _scalar_row(con, "SELECT avg(block_tokens) AS block, avg(memento_tokens) AS memento, "
                                 "count(block_tokens) AS with_tokens FROM block_pairs")
    per_trace = _scalar_row(con, "SELECT avg(block_tokens) AS block, avg(memento_tokens) AS memento "
                                 "FROM trace_compression")
    has_tokens = bool(per_block.get("with_tokens"))

    def med(col):
        v = all_row.get(col)
        return f"median {v:,.0f}" if v is not None else ""

    rows = []
    for domain, figure in card.median_ratio_chars().items():
        chars, words = per_trace_ratios.get(domain, (None, None))
        note = (f"median of per-trace ratios {chars:.3f} (chars), {words:.3f} (words)"
                if chars is not None and words is not None else "")
        rows.append(CardRow(f"memento/block ratio, {domain} (characters, per block)", "median", figure,
                            ratios.get(domain), note, 3))
    overall = card.overall
    rows += [
        CardRow("block length (tokens)", "average", overall(card.TOKENS_PER_BLOCK), per_block.get("block"),
                med("median_tokens_per_block"), 0),
        CardRow("memento length (tokens)", "average", overall(card.TOKENS_PER_MEMENTO), per_block.get("memento"),
                med("median_tokens_per_memento"), 0),
        CardRow("block tokens per trace", "average", overall(card.BLOCK_TOKENS_PER_TRACE), per_trace.get("block"),
                med("median_block_tokens_per_trace"), 0),
        CardRow("memento tokens per trace", "average", overall(card.MEMENTO_TOKENS_PER_TRACE),
                per_trace.get("memento"), med("median_memento_tokens_per_trace"), 0),
        CardRow("trace-level compression (block tokens / memento tokens, x)", "ratio of the averages",
                overall(card.TRACE_COMPRESSION), _ratio(per_trace.get("block"), per_trace.get("memento")),
                (f"median per trace {all_row['median_compression_tokens']:.2f}"
                 if all_row.get("median_compression_tokens") is not None else ""), 2),
    ]
    return rows, has_tokens


def model_rows(con: duckdb.DuckDBPyConnection, models_dir=None) -> list[dict]:
    """Each model the report reads (and its upstream), with the version and fingerprint of its last build."""
    from mementos.warehouse.engine import existing_objects, last_builds, model_states
    from mementos.warehouse.project import load_project

    objects = existing_objects(con)
    project = load_project(models_dir, set(objects))
    states = model_states(con, project)
    lasts = last_builds(con, objects)
    out = []
    for name in report_models(project):
        last = lasts.get(name)
        out.append({"name": name, "kind": project.models[name].kind, "version": project.models[name].version,
                    "built_version": last.version if last else None,
                    "fingerprint": last.fingerprint if last else None,
                    "built_at": last.built_at if last else None, "rows": last.rows if last else None,
                    "state": states[name].state, "reason": states[name].reason})
    return out


# ---------------------------------------------------------------------------
# Rendering


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _fmt_num
    env.filters["signed"] = _fmt_signed
    env.filters["pct"] = lambda v, digits=1: "–" if v is None else f"{100 * v:.{digits}f}%"
    env.filters["when"] = lambda v: "–" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")
    env.filters["mb"] = lambda v: "–" if v is None else f"{v / 1e6:,.1f} MB"
    env.filters["clip"] = clip
    return env


def _fmt_num(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, int) and digits == 0:
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def _fmt_signed(v, digits: int = 0) -> str:
    """With its sign, except a difference that rounds to zero: 0.0, never -0.0 or +0.0."""
    if v is None:
        return "–"
    text = f"{v:+,.{digits}f}"
    return text[1:] if float(text.replace(",", "")) == 0 else text


def render_html(data: ReportData) -> str:
    return _environment().get_template("report.html.j2").render(r=data)


@dataclass
class ReportResult:
    out: Path
    bytes: int
    seconds: float
    timings: dict[str, float]
    views: int


def write_report(db: str | Path, out: str | Path = "report.html", traces: list[str] | tuple[str, ...] = (),
                 outliers: int = DEFAULT_OUTLIERS, models_dir=None, echo=print) -> ReportResult:
    """Build the stale models, gather, plot, render, and write `out` (atomically)."""
    from mementos.warehouse import plots

    t0 = time.monotonic()
    db = Path(db)
    out = guard.output_file(db, out)  # not over the warehouse, not below a file: before any work
    guard.require_warehouse(db)
    timings = {"build": ensure_built(db, echo, models_dir)}
    t = time.monotonic()
    with storage.connect(db, read_only=True) as con:
        with _small_pool(con):
            data = gather(con, str(db), list(traces), outliers, models_dir=models_dir)
    timings["queries"] = time.monotonic() - t
    if data.nothing_to_analyse:
        echo(f"report: nothing to analyse: {data.nothing_to_analyse}")
    t = time.monotonic()
    data.plots = plots.render_all(data)
    timings["plots"] = time.monotonic() - t
    t = time.monotonic()
    body = render_html(data).encode("utf-8")
    guard.make_dir(out.parent)
    write_file(out, body)  # atomically over a file; a device or pipe (/dev/null, a FIFO) written as it is
    timings["render"] = time.monotonic() - t
    seconds = time.monotonic() - t0
    return ReportResult(out, len(body), seconds, timings, len(data.views))


@contextmanager
def _small_pool(con: duckdb.DuckDBPyConnection):
    """DuckDB's pool at REPORT_MEMORY_LIMIT while the report's queries run (MEMENTOS_MEMORY_LIMIT, when set,
    still decides). They aggregate model tables and read a few traces, each from its own row group; DuckDB keeps
    each table block it reads cached up to its pool, so the pool is what grows with the corpus: with the 600 MB
    every command has, 359 MiB peak RSS at 228,557 traces against 182 at 20,000; with 128 MB 256 against 204;
    with 64 MB 217-223 against 203-205. The pool is the database's, shared with any other connection of this
    process to it: put back after."""
    if "MEMENTOS_MEMORY_LIMIT" in os.environ:
        yield
        return
    con.execute("SET memory_limit = ?", [REPORT_MEMORY_LIMIT])
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        raise storage.out_of_memory(exc, REPORT_MEMORY_LIMIT) from None
    finally:
        con.execute("SET memory_limit = ?", [storage.MEMORY_LIMIT])  # what storage.connect set


@contextmanager
def _pool_for_texts(con: duckdb.DuckDBPyConnection, trace_ids: list[str]):
    """A pool that holds the longest response of the traces shown, while they are read, when the report's
    REPORT_MEMORY_LIMIT is in force: DuckDB reads a text whole, into one allocation of the next power of two
    of its bytes (a 50 MB response asked for 64 MiB of a 64 MB pool). Each trace is read on its own and its
    text is needed in Python anyway; the pool is put back after."""
    if "MEMENTOS_MEMORY_LIMIT" in os.environ or not trace_ids:
        yield
        return
    marks = ", ".join("?" for _ in trace_ids)
    [(chars,)] = con.execute(f"SELECT max(response_chars) FROM traces WHERE trace_id IN ({marks})",
                             trace_ids).fetchall()
    need = _size_bytes(REPORT_MEMORY_LIMIT) + 8 * (chars or 0)  # up to 4 bytes a character, doubled
    if need <= _size_bytes(REPORT_MEMORY_LIMIT) + 16 * 2**20:  # an ordinary trace fits as it is
        yield
        return
    con.execute("SET memory_limit = ?", [f"{need // 2**20}MiB"])
    try:
        yield
    finally:
        con.execute("SET memory_limit = ?", [REPORT_MEMORY_LIMIT])


def _size_bytes(size: str) -> int:
    """'64MB' -> 64,000,000: the sizes this module sets (decimal units, as DuckDB reads them)."""
    number, unit = re.fullmatch(r"(\d+)\s*([KMG]B)", size.strip(), re.IGNORECASE).groups()
    return int(number) * {"KB": 10**3, "MB": 10**6, "GB": 10**9}[unit.upper()]
