"""`export`: training sets from the versioned export views (models/export_*.sql).

The views decide what the examples are: one row per example (per trace, or per
block for `summarize`) with its labels, status, content_hash, token count and
the spans of the response it is made of. They hold no text. One export is::

    build    the export view and what it reads, if any of them is stale (engine.build)
    plan     one query over the view into a Parquet file, keys only: every example gets a
             reason to be left out (flagged, domain, duplicate, too_long) or none; the
             counts come from it; kept traces are cut into chunks of at most CHUNK_CHARS
             response chars. A second writes the view's rows of the kept examples, unsorted
    stream   chunk by chunk, in (dataset, source_row[, block_idx]) order: the chunk's kept
             rows and its traces' problem and response, fetched as Arrow; the messages are
             laid out (texts cut out of the response at the spans, markup from
             ingest/parser.py); each example goes to its split (a hash of the seed and the
             whitespace-normalised problem, the smallest of its near-duplicate group's, found
             before the stream) and is appended to that split's file in the stage, a fresh
             directory beside DIR (output.Stage)
    finish   fsync the split files, write README.md (the dataset card) and manifest.json into the
             stage (a full disk up to here is one line, disk.disk_full, and removes the stage),
             then swap the stage in for DIR with one rename and remove the old export

Why chunks and not one ORDER BY: in DuckDB 2.0.1 a sort whose payload holds the
responses (~40 KB each) does not spill to disk (out of memory at any limit below
the data), an ordered string_agg cannot spill either, and a list lambda that reads
the response runs at ~15 MB/s. Each chunk query only touches its own rows, so
memory stays flat (one chunk, one Parquet row group per split, and 8 bytes per
example for the token statistics) and the order is total: the same warehouse,
kind, filters and seed give byte-identical files. warehouse.md (Export) has the kinds,
the split rule and the manifest fields.

This module is the command: the plan and chunk queries, the stream, the manifest.
The rest, by job: export_records.py (the records' columns and messages per kind),
export_splits.py (split fractions, near-duplicate groups), export_tokens.py (each
record's exact n_tokens, --max-tokens), export_files.py (the split writers, temp
files, what the directory may hold), export_card.py (README.md), output.py (the stage and its swap).
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mementos.foundation import catalog, disk, storage
from mementos.foundation.errors import WarehouseError, first_line
from mementos.foundation.faults import checkpoint
from mementos.warehouse import engine, guard
from mementos.warehouse.export_card import CARD, dataset_card
from mementos.warehouse.export_files import MANIFEST, SplitWriter, check_directory, check_unchanged, write_synced
from mementos.warehouse.export_records import (LABELS, LAYOUT_VERSION, SUMMARIZE_INSTRUCTION, has_text, messages_array,
                                      output_schema, turns)
from mementos.warehouse.export_splits import (DEFAULT_SPLITS, GROUP_BATCH_ROWS, near_duplicate_groups,
                                     normalize_problem, parse_splits, problem_key, split_of)
from mementos.warehouse.export_tokens import spans_tokens, summarize_tokens, within_max_tokens
from mementos.warehouse.output import Stage, remove_leftovers

__all__ = ["CARD", "MANIFEST", "REASONS", "SUMMARIZE_INSTRUCTION", "KINDS", "FORMATS", "DEFAULT_SPLITS", "export", "ensure_models",
           "ExportResult", "near_duplicate_groups", "normalize_problem", "parse_splits", "problem_key", "split_of"]

KINDS = {
    "memento": "export_memento",
    "compressed": "export_compressed",
    "summarize": "export_summarize",
    "plain": "export_plain",
}
FORMATS = ("jsonl", "parquet")
# Why an example is left out, in the order the reasons are tried: each is counted under the first that applies.
REASONS = ("flagged", "domain", "outlier", "duplicate", "too_long", "empty", "copied")
OUTLIER_MODEL = "outlier_traces"
MANIFEST_VERSION = 3
TOKEN_DEFINITION = ("cl100k_base tokens of the whole example as written: the user turn's content (the problem, "
                    "or for summarize the instruction, a blank line and the block) plus the assistant turn's "
                    "content (markup, separators and answer included), each counted as ordinary text "
                    "(encode_ordinary); a chat template's role markers are not counted")
CHUNK_CHARS = 16_000_000  # response chars fetched per chunk (plus one trace at most)
CHUNK_TRACES = 20_000
PLAN_ROW_GROUP_ROWS = 4096  # the plan file's row groups: a chunk reads the few that hold its rows
SLICE_CHARS = 4_000_000  # response chars of the traces whose records are built and written at a time


# ---------------------------------------------------------------------------
# Models: build what is stale


def ensure_models(db: Path, model: str, models_dir=None, echo: Callable[[str], None] | None = None) -> dict:
    """Build `model` and the models it reads when any is not fresh (the planner says which);
    {name: {version, fingerprint}} of them all."""
    built = engine.build_for_reader(db, [model], "export", models_dir, echo,
                                    announce=lambda plan: f"export: building {', '.join(plan.to_build)} first")
    project, report = built.project, built.report
    if model not in project.models:
        raise WarehouseError(f"no model {model!r} in models/; the export views are models/export_*.sql")
    if report is not None and echo:
        echo(report.format())
    if report is not None and not report.ok:
        raise WarehouseError(f"cannot export: the build of {model} and the models it reads failed:\n"
                             + report.format())
    return {s.model: {"version": project.models[s.model].version, "fingerprint": project.fingerprints[s.model]}
            for s in built.plan.steps}
# ---------------------------------------------------------------------------
# The export


@dataclass
class ExportResult:
    kind: str
    fmt: str
    out: Path
    model: str
    candidates: int  # rows of the export view
    left_out: dict[str, int]
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
        why = {"flagged": "flagged traces (--include-flagged keeps them)",
               "outlier": "listed in outlier_traces (--exclude-outliers)",
               "copied": "summarize: the memento copies its block",
               "domain": f"domain is not {self.filters.get('domain')!r}",
               "duplicate": "exact duplicates of an earlier trace (same content_hash)",
               "too_long": f"more than --max-tokens {self.filters.get('max_tokens')} tokens",
               "empty": "no problem, or nothing to put in the assistant turn"}
        for reason, n in self.left_out.items():
            if n:
                lines.append(f"    {reason:<9} {n:>8,}  {why[reason]}")
                if reason == "outlier":
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


def _outliers(con, selected: bool | Sequence[str]) -> list[str]:
    """Fill the temp table __export_outliers (trace_id, reason): the traces of outlier_traces to leave out,
    each under the first of its reasons that was selected (True: any reason; the model's order). The reasons
    are read from a `reasons` or `reason` column, comma-separated text or a list, so a change of the model's
    other columns or of its grain (one row per trace and reason) does not matter. Returns the reasons present."""
    con.execute("CREATE OR REPLACE TEMP TABLE __export_outliers (trace_id VARCHAR, reason VARCHAR)")
    if not selected:
        return []
    columns = {name.lower(): type_ for name, type_, *_ in con.execute(f"DESCRIBE {OUTLIER_MODEL}").fetchall()}
    column = next((c for c in ("reasons", "reason") if c in columns), None)
    if "trace_id" not in columns or column is None:
        raise WarehouseError(f"--exclude-outliers: the model {OUTLIER_MODEL} has no trace_id and reasons column "
                             f"(its columns: {', '.join(columns)}); check models/{OUTLIER_MODEL}.sql")
    as_list = (f'"{column}"' if columns[column].endswith("[]")
               else f"""string_split(CAST("{column}" AS VARCHAR), ',')""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __outlier_reasons AS
        SELECT trace_id, trim(CAST(reason AS VARCHAR)) AS reason, pos FROM (
            SELECT trace_id, unnest({as_list}) AS reason, generate_subscripts({as_list}, 1) AS pos
            FROM {OUTLIER_MODEL})
        WHERE trim(CAST(reason AS VARCHAR)) <> ''""")
    present = [r for (r,) in con.execute("SELECT DISTINCT reason FROM __outlier_reasons ORDER BY ALL").fetchall()]
    wanted = None if selected is True else list(selected)
    unknown = [r for r in wanted or () if r not in present]
    if unknown:
        raise WarehouseError(f"--exclude-outliers {','.join(wanted)}: no trace in {OUTLIER_MODEL} has the reason "
                             f"{', '.join(unknown)}; reasons present: {', '.join(present) or '(none)'}")
    con.execute("""
        INSERT INTO __export_outliers
        SELECT trace_id, reason FROM __outlier_reasons
        WHERE $all OR list_contains($wanted, reason)
        QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY pos, reason) = 1""",
                {"all": wanted is None, "wanted": wanted or []})
    return present


def _plan_sql(view: str, per_block: bool) -> str:
    """Every candidate's key, response_chars and reason to be left out (NULL: kept), in (dataset, source_row[,
    block_idx]) order. Narrow on purpose: the window and the sort hold these few columns, not the spans."""
    block = ", block_idx" if per_block else ""
    return f"""
WITH candidates AS (
    SELECT v.trace_id, v.dataset, v.source_row{', v.block_idx' if per_block else ''}, v.content_hash,
        v.response_chars, o.reason AS outlier_reason,
        CASE
            WHEN NOT $include_flagged AND status = 'flagged' THEN 'flagged'
            WHEN $domain IS NOT NULL AND domain IS DISTINCT FROM $domain THEN 'domain'
            WHEN o.reason IS NOT NULL THEN 'outlier'
        END AS pre
    FROM {view} AS v
    LEFT JOIN __export_outliers AS o ON o.trace_id = v.trace_id
),
ranked AS (
    SELECT *,
        row_number() OVER (PARTITION BY pre IS NULL, content_hash{block} ORDER BY dataset, source_row) AS copy
    FROM candidates
)
SELECT * EXCLUDE (content_hash, pre, copy),
    coalesce(pre, CASE
        WHEN copy > 1 THEN 'duplicate'
    END) AS reason
FROM ranked
ORDER BY dataset, source_row{block}
"""


def _kept_sql(view: str, per_block: bool) -> str:
    """The view's rows of the kept examples (the plan's rows whose reason is NULL), with the plan's columns, in
    no particular order: nothing is sorted or held but the view's own aggregates, and a chunk sorts its rows."""
    on = "v.trace_id = p.trace_id" + (" AND v.block_idx = p.block_idx" if per_block else "")
    return f"""
SELECT v.*, p.outlier_reason, p.reason
FROM {view} AS v
JOIN __export_plan AS p ON {on}
WHERE p.reason IS NULL
"""


def _write_parquet(con, sql: str, params: dict, path: Path, ordered: bool) -> str:
    """The query's rows into a Parquet file in the export's spill directory (`ordered`: in the query's order),
    and a temp view over it; returns the view's name."""
    if ordered:
        con.execute("SET preserve_insertion_order = true")  # the file in the query's order
    try:
        con.sql(sql, params=params).write_parquet(str(path), row_group_size=PLAN_ROW_GROUP_ROWS)
    except duckdb.Error as exc:
        if disk.is_disk_full(exc):  # as an OSError naming the file, like the split files' (disk.failed_path)
            raise OSError(errno.ENOSPC, first_line(exc), str(path)) from None
        raise
    finally:
        con.execute("SET preserve_insertion_order = false")
    return "read_parquet('" + str(path).replace("'", "''") + "')"


def _write_plan(con, view: str, per_block: bool, params: dict, spill: Path) -> None:
    """The plan in two Parquet files in the export's spill directory, each with a temp view over it (a temp
    table would keep every candidate's spans in memory for the whole export): __export_plan, every candidate's
    key and reason, in order (the counts and the chunks come from it); __export_kept, the view's rows of the
    kept examples (the chunks read theirs). One query doing both held every trace's span lists in its window
    and its sort: ~600 MiB at 228,557 traces against ~240 at 20,000."""
    source = _write_parquet(con, _plan_sql(view, per_block), params, spill / "plan.parquet", ordered=True)
    con.execute(f"CREATE OR REPLACE TEMP VIEW __export_plan AS SELECT * FROM {source}")
    source = _write_parquet(con, _kept_sql(view, per_block), {}, spill / "kept.parquet", ordered=False)
    con.execute(f"CREATE OR REPLACE TEMP VIEW __export_kept AS SELECT * FROM {source}")


# Kept traces cut into chunks of consecutive source rows: a new chunk starts every CHUNK_CHARS
# response chars or CHUNK_TRACES traces, whichever comes first.
def _chunks_sql() -> str:
    return f"""
WITH kept AS (
    SELECT DISTINCT dataset, source_row, response_chars FROM __export_plan WHERE reason IS NULL
),
numbered AS (
    SELECT dataset, source_row,
        (sum(response_chars) OVER w - response_chars) // {int(CHUNK_CHARS)} AS by_chars,
        (row_number() OVER w - 1) // {int(CHUNK_TRACES)} AS by_traces
    FROM kept
    WINDOW w AS (PARTITION BY dataset ORDER BY source_row ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT dataset, min(source_row) AS first_row, max(source_row) AS last_row
FROM numbered
GROUP BY dataset, by_chars, by_traces
ORDER BY dataset, first_row
"""

_TEXTS_SQL = """
SELECT source_row, problem, response FROM traces
WHERE dataset = $dataset AND source_row BETWEEN $first AND $last
  AND trace_id IN (SELECT trace_id FROM __export_plan
                   WHERE reason IS NULL AND dataset = $dataset AND source_row BETWEEN $first AND $last)
"""


def _check_domain(db: Path, domain: str) -> None:
    """An unknown --domain is a mistake, not a filter that keeps nothing: say which domains there are."""
    with storage.connect(db, read_only=True) as con:
        present = [d for (d,) in con.execute("SELECT DISTINCT coalesce(domain, '(unknown)') FROM traces "
                                             "ORDER BY ALL").fetchall()]
    if domain not in present:
        raise WarehouseError(f"--domain {domain}: no trace has this domain; domains present: "
                             f"{', '.join(present) or '(none: the warehouse is empty)'}")


def _ingest_runs(con) -> list[dict]:
    rows = con.execute(
        "SELECT dataset, run_id, source, config, CAST(finished_at AS VARCHAR), default_rows, parser_version, "
        "token_encoding FROM ingest_runs WHERE list_contains(?, run_id) ORDER BY dataset",
        [list(catalog.current_runs(con).values())]).fetchall()
    keys = ("dataset", "run_id", "source", "config", "finished_at", "traces", "parser_version", "token_encoding")
    return [dict(zip(keys, r)) for r in rows]


def export(db: str | Path, kind: str, out: str | Path, fmt: str = "jsonl", splits: str = DEFAULT_SPLITS,
           seed: int = 0, domain: str | None = None, max_tokens: int | None = None,
           include_flagged: bool = False, exclude_outliers: bool | str | Sequence[str] | None = False, overwrite: bool = False,
           allow_empty: bool = False, models_dir=None, echo: Callable[[str], None] | None = None,
           progress: bool = False) -> ExportResult:
    """Write the `kind` training set from the warehouse at `db` into the directory `out`."""
    started = time.monotonic()
    db, out = Path(db), Path(out)
    if kind not in KINDS:
        raise WarehouseError(f"unknown export kind {kind!r}; kinds: {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise WarehouseError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    split_list = parse_splits(splits)
    if max_tokens is not None and max_tokens < 1:
        raise WarehouseError(f"--max-tokens {max_tokens}: must be at least 1")
    finals = [f"{name}.{fmt}" for name, _ in split_list] + [CARD, MANIFEST]
    # not over the warehouse, not holding it, not below a file: checked before any work
    guard.output_dir(db, out, finals)
    guard.require_warehouse(db)
    view = KINDS[kind]
    per_block = kind == "summarize"
    real = Path(os.path.realpath(out))  # a link to the export directory stays a link; its target is replaced
    remove_leftovers(real)  # stages of killed exports into DIR (an old export set aside goes back first)
    seen = check_directory(out, overwrite)  # before any build: stop early on a directory that is not an export
    models = ensure_models(db, view, models_dir=models_dir, echo=echo)
    if exclude_outliers:
        models.update(ensure_models(db, OUTLIER_MODEL, models_dir=models_dir, echo=echo))

    if domain is not None:
        _check_domain(db, domain)

    guard.make_dir(real.parent)
    free_before = disk.free_bytes(real.parent)
    if isinstance(exclude_outliers, str):  # the command line's value: "all" or REASONS, comma-separated
        exclude_outliers = exclude_outliers == "all" or [r.strip() for r in exclude_outliers.split(",") if r.strip()]
    outliers = (None if not exclude_outliers else "all" if exclude_outliers is True else list(exclude_outliers))
    filters = {"include_flagged": include_flagged, "domain": domain, "max_tokens": max_tokens,
               "exclude_outliers": outliers,
               "duplicates": "written once (the first by dataset, source_row)",
               "problem_groups": "near-duplicates together (near_duplicates)", "seed": seed,
               "split": dict(split_list)}
    schema = output_schema(kind)
    writers: dict[str, SplitWriter] = {}
    index = {name: i for i, (name, _) in enumerate(split_list)}
    empty = copies = too_long = 0
    stage = Stage(real, shown=out)
    spill = stage.spill
    try:
        with storage.connect(db, read_only=True) as con:
            con.execute("SET temp_directory = ?", [str(spill)])  # a bound value: --out may hold quotes
            # every chunk reads `traces`: its files' metadata once for the export, not once a chunk (with
            # 125-trace row groups, ~45 MiB parsed at 228,557 traces: peak RSS 610 -> 596 MiB, 15% less time)
            con.execute("SET parquet_metadata_cache = true")
            runs = _ingest_runs(con)
            _outliers(con, True if exclude_outliers is True else list(exclude_outliers or ()))
            _write_plan(con, view, per_block, {"include_flagged": include_flagged, "domain": domain}, spill)
            counts = dict(con.execute("SELECT coalesce(reason, ''), count(*) FROM __export_plan GROUP BY ALL").fetchall())
            outlier_counts = dict(con.execute(
                "SELECT outlier_reason, count(*) FROM __export_plan WHERE reason = 'outlier' "
                "GROUP BY ALL ORDER BY ALL").fetchall())
            [(text_chars,)] = con.execute("SELECT coalesce(sum(response_chars), 0) FROM (SELECT DISTINCT trace_id, "
                                          "response_chars FROM __export_plan WHERE reason IS NULL)").fetchall()
            # every kept trace's problem as it streams past: near_duplicate_groups keeps one per normalised
            # problem, 8 bytes each, where a DISTINCT here held every distinct problem's text (~60 MiB more
            # at 228,557 traces)
            problems = con.sql("SELECT problem FROM traces WHERE trace_id IN "
                               "(SELECT trace_id FROM __export_plan WHERE reason IS NULL)")
            groups, near = near_duplicate_groups((b.column(0).to_pylist() for b in
                                                  problems.to_arrow_reader(GROUP_BATCH_ROWS)), seed)
            chunks = con.execute(_chunks_sql()).fetchall()

            encoder = duckdb.connect()  # in memory, order-preserving: encodes the JSON lines
            if storage.MEMORY_LIMIT:  # the warehouse connection's limit (MEMENTOS_MEMORY_LIMIT) for this one too
                encoder.execute("SET memory_limit = ?", [storage.MEMORY_LIMIT])
            for name, _ in split_list:
                writers[name] = SplitWriter(stage.new / f"{name}.{fmt}", out / f"{name}.{fmt}", fmt, schema, encoder)
            order = "source_row, block_idx" if per_block else "source_row"
            plan_query = (f"SELECT * FROM __export_kept WHERE dataset = $dataset "
                          f"AND source_row BETWEEN $first AND $last ORDER BY {order}")
            bar = _progress(progress, sum(last - first + 1 for _, first, last in chunks), kind)
            for dataset, first, last in chunks:
                # each chunk starts from an empty pool: the plan's blocks and the chunks' cached reads are
                # more, and held longer, the larger the corpus (peak 627 -> 535 MiB at 228,557 traces)
                storage.release_memory(con)
                params = {"dataset": dataset, "first": first, "last": last}
                plan = con.sql(plan_query, params=params).to_arrow_table()
                texts = con.sql(_TEXTS_SQL, params=params).to_arrow_table()
                at = pc.index_in(plan.column("source_row"), value_set=texts.column("source_row")).to_numpy()
                trace_split = pa.array([index[split_of(p, seed, split_list, groups)]
                                        for p in texts.column("problem").to_pylist()], pa.int8())
                for start, stop in _slices(plan.column("response_chars").to_numpy(), at, SLICE_CHARS):
                    # the slice's traces only: what is built from them below is a few copies of SLICE_CHARS
                    rows, at_rows = np.unique(at[start:stop], return_inverse=True)
                    rows = pa.array(rows)
                    counted = _write_rows(kind, plan.slice(start, stop - start), texts.take(rows),
                                          pa.array(at_rows, pa.int64()), trace_split.take(rows), schema, writers,
                                          index, max_tokens)
                    too_long, empty, copies = too_long + counted[0], empty + counted[1], copies + counted[2]
                del plan, texts
                checkpoint("export.mid_write")
                if bar is not None:
                    bar.update(last - first + 1)
            if bar is not None:
                bar.close()
            encoder.close()
        for w in writers.values():
            w.close()
        left_out = {reason: counts.get(reason, 0) for reason in REASONS} | {"too_long": too_long, "empty": empty,
                                                                             "copied": copies}
        if not allow_empty and not any(w.rows for w in writers.values()):
            why = ", ".join(f"{n:,} {reason}" for reason, n in left_out.items() if n) or "the view has no rows"
            raise WarehouseError(f"export {kind} would write no examples: of {sum(counts.values()):,} candidates, "
                                 f"left out: {why}; change the filters, or pass --allow-empty to write empty files")
        split_info = {name: w.describe() for name, w in writers.items()}
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "kind": kind,
            "format": fmt,
            "model": view,
            "models": models,
            "layout_version": LAYOUT_VERSION,
            "ingest_runs": runs,
            "filters": filters,
            "token_count": TOKEN_DEFINITION,
            "candidates": sum(counts.values()),
            "left_out": left_out,
            "left_out_outliers": outlier_counts,
            "near_duplicates": {k: v for k, v in near.items() if k != "seconds"},
            "splits": split_info,
            "card": CARD,
        }
        # the card's sha256 too: the next export replaces only files that are exactly what this one wrote
        manifest["card_sha256"] = write_synced(stage.new / CARD, dataset_card(manifest, schema))
        write_synced(stage.new / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        checkpoint("export.before_rename")
        if not overwrite:
            check_unchanged(out, seen)  # nothing put in DIR since it was checked is deleted by the swap
        stage.publish()  # DIR is now this export only: the old directory, whatever it held, is removed
    except BaseException as exc:
        for w in writers.values():
            w.abandon()
        stage.discard()
        if disk.is_disk_full(exc):
            raise disk.disk_full(stage.public(disk.failed_path(exc, stage.spill)), free_before=free_before,
                                  done="nothing was replaced and no temporary file is left") from None
        raise
    return ExportResult(kind, fmt, out, view, manifest["candidates"], left_out, split_info,
                        time.monotonic() - started, int(text_chars), filters, outlier_counts, near)


def _slices(response_chars, at, slice_chars: int) -> list[tuple[int, int]]:
    """A chunk's plan rows (in order, each trace's rows together; `at` is each row's trace) cut at trace
    boundaries into [start, stop) ranges of about `slice_chars` response characters each."""
    out, start, chars = [], 0, 0
    for i in range(len(at)):
        if i and at[i] != at[i - 1]:
            if chars >= slice_chars:
                out.append((start, i))
                start, chars = i, 0
        if not i or at[i] != at[i - 1]:
            chars += int(response_chars[i])
    if start < len(at):
        out.append((start, len(at)))
    return out


def _write_rows(kind: str, plan: pa.Table, texts: pa.Table, at: pa.Array, trace_split: pa.Array, schema: pa.Schema,
                writers: dict[str, SplitWriter], index: dict[str, int], max_tokens: int | None) -> tuple[int, int, int]:
    """The records of `plan`'s rows (whole traces; `at` gives each row's trace in `texts`, `trace_split` each
    trace's split) appended to their splits' files; (too_long, empty, copied) of them."""
    per_block = kind == "summarize"
    user, assistant, spans, copied = turns(kind, plan, texts, at)
    columns = {"messages": messages_array(user, assistant), "trace_id": plan.column("trace_id")}
    if per_block:
        columns["block_idx"] = plan.column("block_idx")
    columns.update({c: plan.column(c) for c in LABELS})
    columns["n_tokens"] = n_tokens = (summarize_tokens(plan.column("n_tokens"), user, assistant)
                                      if per_block else
                                      spans_tokens(plan.column("n_tokens"), user, assistant, spans))
    if spans is not None:
        columns["spans"] = spans
    table = pa.table(columns).cast(schema)
    keep, too_long = within_max_tokens(n_tokens, max_tokens)
    fits = keep
    keep = pc.and_(keep, pc.and_(has_text(user), has_text(assistant)))
    empty = (pc.sum(fits).as_py() or 0) - (pc.sum(keep).as_py() or 0) if len(keep) else 0
    copies = 0
    if copied is not None and len(keep):
        copies = pc.sum(pc.and_(keep, copied)).as_py() or 0
        keep = pc.and_(keep, pc.invert(copied))
    splits_of_rows = trace_split.take(at)
    for name, i in index.items():
        writers[name].write(table.filter(pc.and_(keep, pc.equal(splits_of_rows, i))))
    return too_long, empty, copies


def _progress(enabled: bool, total: int, kind: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" traces", desc=f"export {kind}", leave=False, dynamic_ncols=True)
