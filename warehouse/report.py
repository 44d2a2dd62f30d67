"""`mementos report`: one self-contained HTML file describing a warehouse.

The report reads the models (warehouse/engine.py builds the stale ones first,
with a line saying so), plus small aggregates over base tables (ingest runs,
traces per dataset, domain and status, parse issues per code). The only rows it reads from base tables one trace at a
time are the texts of the few traces it shows side by side (`trace_views`),
looked up by trace_id: no model holds texts.

Three steps, each a function that tests can call on its own:

    gather(con, ...)  -> ReportData     the numbers, from the models (plain Python values), one
                                        function per section (report_sections.py)
    plots.render_all(data)              six PNGs, base64 data: URIs (warehouse/plots.py)
    render_html(data) -> str            Jinja2, autoescape on (templates/report.html.j2)

`write_report(db, out)` runs the three and writes the file (warehouse/output.py: a
temp file of a random name, renamed over a regular file; a device or pipe written
as it is). Nothing in the page
loads anything from the network: CSS is inline, images are data: URIs, and
there is no script.
"""

from __future__ import annotations

import functools
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from mementos.foundation import formatting, storage
from mementos.foundation.errors import WarehouseError
from mementos.foundation.resources import resource_dir
from mementos.warehouse import guard, report_sections
from mementos.warehouse.output import write_file
from mementos.warehouse.report_data import ReportData
from mementos.warehouse.trace_view import TraceView, _no_trace, clip, trace_views

TEMPLATES = resource_dir("templates")

DEFAULT_OUTLIERS = 10
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
                           "median_trace_ratio_words", "median_blocks_per_trace", "median_block_chars",
                           "median_memento_chars"),
    "inference_summary": ("domain", "is_total", "k", "traces", "median_peak_no_eviction",
                          "median_peak_with_eviction", "median_peak_plain_cot", "p90_peak_with_eviction",
                          "median_saved_fraction_vs_no_eviction", "median_saved_fraction_vs_plain_cot",
                          "median_kv_saved_fraction_vs_plain_cot", "share_fits_8k_plain_cot",
                          "share_fits_8k_with_eviction", "share_fits_16k_plain_cot", "share_fits_16k_with_eviction",
                          "share_fits_32k_plain_cot", "share_fits_32k_with_eviction",
                          "median_peak_ratio_vs_plain_cot", "median_kv_area_ratio_vs_plain_cot"),
    "compression_by_position": ("domain", "is_total", "position_order", "median_ratio_chars"),
    "retention_summary": ("domain", "is_total", "pairs", "pairs_with_numbers", "median_numbers_kept_fraction",
                          "p10_numbers_kept_fraction", "p90_numbers_kept_fraction", "share_keeping_every_number",
                          "median_single_digits_kept_fraction", "median_word_recall", "p10_word_recall",
                          "p90_word_recall"),
    "memento_retention": ("trace_id", "block_idx", "domain", "block_chars", "memento_chars", "block_numbers",
                          "numbers_kept", "numbers_kept_fraction", "block_content_words", "content_words_kept",
                          "word_recall"),
    "outlier_traces": ("trace_id", "dataset", "domain", "status", "reasons", "n_reasons", "issue_codes",
                       "duplicate_of", "n_blocks", "ratio_chars", "domain_median_ratio_chars", "ratio_z", "blocks_z",
                       "max_block_chars", "max_block_z", "answer_chars"),
    "full_alignment": ("trace_id", "full_trace_id", "link", "aligned"),
}
REPORT_MEMORY_LIMIT = "64MB"  # DuckDB's pool for the report's queries, unless MEMENTOS_MEMORY_LIMIT is set


# ---------------------------------------------------------------------------
# Stale models


def report_models(project) -> list[str]:
    """The models the report reads and everything upstream of them, in dependency order."""
    return project.dag.in_order(project.dag.upstream(REPORT_MODELS))


def ensure_built(db: str | Path, con: duckdb.DuckDBPyConnection, echo=print,
                 models_dir=None) -> tuple[float, duckdb.DuckDBPyConnection]:
    """Build the models the report needs that are not fresh (the planner says which, on the reader's
    connection `con`, engine.build_for_reader), saying so; returns the seconds it took (0.0: nothing was built)
    and the connection to read with (a new one after a build: `con` is closed then)."""
    from mementos.warehouse.engine import build_for_reader
    from mementos.warehouse.executor import Status

    def announce(plan) -> str:
        stale = [plan.step(name) for name in plan.to_build]
        listed = ", ".join(f"{s.model} ({s.reason})" for s in stale[:4])
        more = f" and {len(stale) - 4} more" if len(stale) > 4 else ""
        return (f"report: {len(stale)} model{'s' if len(stale) != 1 else ''} stale or never built, "
                f"building first: {listed}{more}")

    built = build_for_reader(db, REPORT_MODELS, "report", models_dir, echo, announce, con=con)
    result = built.report
    if result is None:
        return 0.0, built.con
    if not result.ok:
        raise WarehouseError("the report needs these models, and their build failed:\n" + result.format())
    n = len(result.by_status(Status.BUILT))
    echo(f"report: built {n} model{'s' if n != 1 else ''} in {result.seconds:.1f} s")
    return result.seconds, built.con


# ---------------------------------------------------------------------------
# Gathering


def check_ready(con: duckdb.DuckDBPyConnection, db: str = "", models_dir=None) -> dict[str, str]:
    """The warehouse's relations (existing_objects), once every model the report reads is built with the
    columns it reads; else a WarehouseError saying what to do."""
    from mementos.warehouse.engine import existing_objects

    objects = existing_objects(con)
    missing = [m for m in REPORT_MODELS if m != "full_alignment" and m not in objects]
    if missing:
        raise WarehouseError(f"the warehouse {db} lacks the models {', '.join(missing)}; "
                             f"run `mementos build --db {db}` (the report command does it for you)")
    check_columns(con, models_dir)
    return objects


def gather(con: duckdb.DuckDBPyConnection, db: str = "", extra_traces: list[str] | tuple[str, ...] = (),
           outliers: int = DEFAULT_OUTLIERS, models_dir=None) -> ReportData:
    """Everything the report shows, from a warehouse whose models are built (`models_dir`: as for build):
    each section gathered by its function in report_sections.py."""
    from mementos.foundation.catalog import data_version

    con.execute("SET enable_progress_bar = false")
    objects = check_ready(con, db, models_dir)
    card_comparison = report_sections.card_comparison(con)
    listed = report_sections.outliers(con, outliers)
    return ReportData(
        db=str(db), generated_at=datetime.now().astimezone(), data_version=data_version(con),
        overview=report_sections.overview(con, objects), card=card_comparison,
        plot_data=report_sections.plot_data(con, card_comparison.has_tokens),
        retention=report_sections.retention(con), outliers=listed,
        views=_views(con, db, report_sections.traces_to_show(con, listed.top, extra_traces), extra_traces),
        models=model_rows(con, models_dir))


def _views(con: duckdb.DuckDBPyConnection, db: str, why: dict[str, list[str]], chosen) -> list[TraceView]:
    """The trace views of the traces in `why`, in its order, each with its reasons; a trace `chosen` with
    --trace that is not in the warehouse is an error naming it."""
    with _pool_for_texts(con, list(why)):
        found = trace_views(con, list(why))
    unknown = [t for t in chosen if t not in found]
    if unknown:
        raise WarehouseError(_no_trace(con, unknown[0], db))
    views = []
    for tid, reasons in why.items():
        if tid in found:
            found[tid].why = reasons
            views.append(found[tid])
    return views


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
                f"(README.md, \"Your own models\"), or leave the model out of --models")


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


@functools.cache
def _environment():
    """One per process: it keeps the compiled template (compiling it took a tenth of a small report)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = formatting.number
    env.filters["signed"] = formatting.signed
    env.filters["pct"] = lambda v, digits=1: "–" if v is None else f"{100 * v:.{digits}f}%"
    env.filters["when"] = lambda v: "–" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")
    env.filters["mb"] = formatting.megabytes
    env.filters["clip"] = clip
    return env


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
    con = guard.open_warehouse(db)  # what the report reads, unless a build publishes a newer snapshot
    try:
        seconds, con = ensure_built(db, con, echo, models_dir)
    except BaseException:
        con.close()
        raise
    timings = {"build": seconds}
    t = time.monotonic()
    with con:
        with _small_pool(con):
            data = gather(con, str(db), list(traces), outliers, models_dir=models_dir)
    timings["queries"] = time.monotonic() - t
    if data.overview.nothing_to_analyse:
        echo(f"report: nothing to analyse: {data.overview.nothing_to_analyse}")
    t = time.monotonic()
    data.plots = plots.render_all(data.plot_data)
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
    each table block it reads cached up to its pool, so the pool is what grows with the corpus (the peak
    memory at both sizes with each pool: bench/RESULTS.md). The pool is the database's, shared with any other
    connection of this process to it: put back after."""
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
