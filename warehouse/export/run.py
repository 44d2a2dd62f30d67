"""One export run: build the view if stale, plan, stream the examples into their split files in a stage,
write the card and the manifest, swap the stage in (the package's docstring, warehouse/export/__init__.py)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mementos.foundation import catalog, disk, storage
from mementos.foundation.errors import WarehouseError
from mementos.foundation.faults import checkpoint
from mementos.warehouse import engine, guard
from mementos.warehouse.export.card import CARD, dataset_card
from mementos.warehouse.export.files import MANIFEST, SplitWriter, check_directory, check_unchanged, write_synced
from mementos.warehouse.export.pipeline import InOrder, read_ahead
from mementos.warehouse.export.plan import (COPIES_MODEL, OUTLIER_MODEL, TEXTS_SQL, chunks_sql, select_outliers,
                                             write_plan)
from mementos.warehouse.export.records import (CARRIED, LABELS, LAYOUT_VERSION, has_text, messages_array,
                                               output_schema, take_rows, turns)
from mementos.warehouse.export.result import ExportResult
from mementos.warehouse.export.spec import ExportKind, ExportSpec, LeftOut
from mementos.warehouse.export.splits import GROUP_BATCH_ROWS, near_duplicate_groups, split_of
from mementos.warehouse.export.tokens import spans_tokens, summarize_tokens, within_max_tokens
from mementos.warehouse.output import Stage, remove_leftovers

MANIFEST_VERSION = 3
TOKEN_DEFINITION = ("cl100k_base tokens of the whole example as written: the user turn's content (the problem, "
                    "or for summarize the instruction, a blank line and the block) plus the assistant turn's "
                    "content (markup, separators and answer included), each counted as ordinary text "
                    "(encode_ordinary); a chat template's role markers are not counted")
SLICE_CHARS = 4_000_000  # response chars of the traces whose records are built and written at a time
# Left out while the records are laid out, after the plan: the rest are the plan's.
LEFT_OUT_IN_STREAM = (LeftOut.TOO_LONG, LeftOut.EMPTY, LeftOut.COPIED)


# ---------------------------------------------------------------------------
# Models: build what is stale


def ensure_models(db: Path, models: list[str], con: duckdb.DuckDBPyConnection, models_dir=None,
                  echo: Callable[[str], None] | None = None) -> tuple[dict, duckdb.DuckDBPyConnection]:
    """Build `models` and the models they read when any is not fresh (the planner says which, on the reader's
    connection `con`, engine.build_for_reader), in one build; ({name: {version, fingerprint}} of them all,
    the connection to read with: a new one after a build, `con` closed then)."""
    built = engine.build_for_reader(db, models, "export", models_dir, echo,
                                    announce=lambda plan: f"export: building {', '.join(plan.to_build)} first",
                                    con=con)
    project, report = built.project, built.report
    try:
        for model in models:
            if model not in project.models:
                raise WarehouseError(f"no model {model!r} in models/; the export views are models/export_*.sql")
        if report is not None and echo:
            echo(report.format())
        if report is not None and not report.ok:
            raise WarehouseError(f"cannot export: the build of {', '.join(models)} and the models they read "
                                 f"failed:\n" + report.format())
    except WarehouseError:
        built.con.close()  # the caller closes the connection it gave, which a build may have replaced
        raise
    return ({s.model: {"version": project.models[s.model].version, "fingerprint": project.fingerprints[s.model]}
             for s in built.plan.steps}, built.con)


def _check_domain(con: duckdb.DuckDBPyConnection, domain: str) -> None:
    """An unknown --domain is a mistake, not a filter that keeps nothing: say which domains there are."""
    present = [d for (d,) in con.execute("SELECT DISTINCT coalesce(domain, '(unknown)') FROM traces "
                                         "ORDER BY ALL").fetchall()]
    if domain not in present:
        raise WarehouseError(f"--domain {domain}: no trace has this domain; domains present: "
                             f"{', '.join(present) or '(none: the warehouse is empty)'}")


def _ingest_runs(con) -> list[dict]:
    rows = con.execute(
        "SELECT dataset, run_id, source, config, CAST(finished_at AS VARCHAR), default_rows, parser_version, "
        f"token_encoding FROM ({catalog.current_runs_sql(con)}) ORDER BY dataset").fetchall()
    keys = ("dataset", "run_id", "source", "config", "finished_at", "traces", "parser_version", "token_encoding")
    return [dict(zip(keys, r)) for r in rows]


# ---------------------------------------------------------------------------
# The export


def export(db: str | Path, spec: ExportSpec, models_dir=None, echo: Callable[[str], None] | None = None,
           progress: bool = False) -> ExportResult:
    """Write the training set `spec` describes from the warehouse at `db` into spec.out (`models_dir`: as for
    build; `echo`: where notes about the build go; `progress`: a progress bar on stderr)."""
    started = time.monotonic()
    db, out = Path(db), spec.out
    # not over the warehouse, not holding it, not below a file: checked before any work
    guard.output_dir(db, out, spec.files() + [CARD, MANIFEST])
    con = guard.open_warehouse(db)  # what the export reads, unless a build publishes a newer snapshot
    try:
        real = Path(os.path.realpath(out))  # a link to the export directory stays a link; its target is replaced
        remove_leftovers(real)  # stages of killed exports into DIR (an old export set aside goes back first)
        seen = check_directory(out, spec.overwrite)  # before any build: stop early on a directory that is not one
        needs = [spec.kind.view]  # built together: one plan, one build, one connection to plan it
        if spec.exclude_outliers:
            needs.append(OUTLIER_MODEL)
        if spec.kind.per_block:
            needs.append(COPIES_MODEL)
        models, con = ensure_models(db, needs, con, models_dir=models_dir, echo=echo)
        if spec.domain is not None:
            _check_domain(con, spec.domain)
        guard.make_dir(real.parent)
        free_before = disk.free_bytes(real.parent)
        stage = Stage(real, shown=out)
    except BaseException:
        con.close()
        raise

    writers: dict[str, SplitWriter] = {}
    try:
        with con:
            plan = _plan(con, spec, stage.spill)
            left_in_stream = _stream(con, spec, plan, stage, writers, progress)
        for w in writers.values():
            w.close()
        left_out = {reason: plan.counts.get(reason, 0) for reason in LeftOut} | left_in_stream
        if not spec.allow_empty and not any(w.rows for w in writers.values()):
            why = ", ".join(f"{n:,} {reason}" for reason, n in left_out.items() if n) or "the view has no rows"
            raise WarehouseError(f"export {spec.kind} would write no examples: of {plan.candidates:,} candidates, "
                                 f"left out: {why}; change the filters, or pass --allow-empty to write empty files")
        split_info = {name: w.describe() for name, w in writers.items()}
        _publish(stage, spec, _manifest(spec, models, plan, left_out, split_info), seen)
    except BaseException as exc:
        for w in writers.values():
            w.abandon()
        stage.discard()
        if disk.is_disk_full(exc):
            raise disk.disk_full(stage.public(disk.failed_path(exc, stage.spill)), free_before=free_before,
                                  done="nothing was replaced and no temporary file is left") from None
        raise
    return ExportResult(spec.kind, spec.fmt, out, spec.kind.view, plan.candidates, left_out, split_info,
                        time.monotonic() - started, plan.text_chars, _filters(spec), plan.outlier_counts, plan.near)


@dataclass
class _Plan:
    """What the plan says before any text is read."""

    runs: list[dict]  # the current ingest runs
    counts: dict[str, int]  # reason to be left out ('': kept) -> candidate examples
    outlier_counts: dict[str, int]  # reason in outlier_traces -> examples left out as outliers
    text_chars: int  # response chars of the kept traces
    groups: dict[int, int]  # near_duplicate_groups: problem_key -> its group's smallest
    near: dict  # near_duplicate_groups' stats
    chunks: list[tuple[str, int, int]]  # (dataset, first source_row, last source_row), in order

    @property
    def candidates(self) -> int:
        return sum(self.counts.values())


def _plan(con: duckdb.DuckDBPyConnection, spec: ExportSpec, spill: Path) -> _Plan:
    """The plan (plan.py) written to the spill directory, its counts, the kept problems' near-duplicate groups
    and the chunks."""
    con.execute("SET temp_directory = ?", [str(spill)])  # a bound value: --out may hold quotes
    # every chunk reads `traces`: its files' metadata once for the export, not once a chunk
    con.execute("SET parquet_metadata_cache = true")
    runs = _ingest_runs(con)
    select_outliers(con, spec.exclude_outliers)
    write_plan(con, spec.kind.view, spec.kind.per_block,
               {"include_flagged": spec.include_flagged, "domain": spec.domain}, spill)
    counts = dict(con.execute("SELECT coalesce(reason, ''), count(*) FROM __export_plan GROUP BY ALL").fetchall())
    outlier_counts = dict(con.execute(
        "SELECT outlier_reason, count(*) FROM __export_plan WHERE reason = ? GROUP BY ALL ORDER BY ALL",
        [LeftOut.OUTLIER.value]).fetchall())
    [(text_chars,)] = con.execute("SELECT coalesce(sum(response_chars), 0) FROM (SELECT DISTINCT trace_id, "
                                  "response_chars FROM __export_plan WHERE reason IS NULL)").fetchall()
    # every kept trace's problem as it streams past: near_duplicate_groups keeps a hash per normalised
    # problem, where a DISTINCT here would hold every distinct problem's text
    problems = con.sql("SELECT problem FROM traces WHERE trace_id IN "
                       "(SELECT trace_id FROM __export_plan WHERE reason IS NULL)")
    groups, near = near_duplicate_groups((b.column(0).to_pylist() for b in
                                          problems.to_arrow_reader(GROUP_BATCH_ROWS)), spec.seed)
    return _Plan(runs, counts, outlier_counts, int(text_chars), groups, near, con.execute(chunks_sql()).fetchall())


def _stream(con: duckdb.DuckDBPyConnection, spec: ExportSpec, plan: _Plan, stage: Stage,
            writers: dict[str, SplitWriter], progress: bool) -> dict[LeftOut, int]:
    """Every chunk's kept examples laid out and appended to their splits' files in the stage (`writers`, filled
    here); how many were left out on the way, by reason. The next chunk is read and the last one written in
    threads while this one is laid out (pipeline.py)."""
    schema = output_schema(spec.kind)
    encoder = duckdb.connect()  # in memory, order-preserving: encodes the JSON lines
    if storage.MEMORY_LIMIT:  # the warehouse connection's limit (MEMENTOS_MEMORY_LIMIT) for this one too
        encoder.execute("SET memory_limit = ?", [storage.MEMORY_LIMIT])
    for name in spec.splits:
        writers[name] = SplitWriter(stage.new / f"{name}.{spec.fmt}", spec.out / f"{name}.{spec.fmt}", spec.fmt,
                                    schema, encoder)
    left_out = dict.fromkeys(LEFT_OUT_IN_STREAM, 0)
    bar = _progress(progress, sum(last - first + 1 for _, first, last in plan.chunks), spec.kind)
    out = InOrder()
    chunks = read_ahead(_read_chunk(con, spec, plan.groups, params) for params in _chunk_params(plan))
    try:
        for chunk in chunks:
            counted = _write_chunk(spec, chunk, schema, writers, out)
            for reason, n in zip(LEFT_OUT_IN_STREAM, counted):
                left_out[reason] += n
            out.submit(lambda: checkpoint("export.mid_write"))
            if bar is not None:
                bar.update(chunk.rows)
        out.close()
    except BaseException:
        out.cancel()
        raise
    finally:
        chunks.close()  # the reading thread stops before the warehouse connection closes
        if bar is not None:
            bar.close()
    encoder.close()
    return left_out


def _chunk_params(plan: _Plan) -> Iterator[dict]:
    return ({"dataset": dataset, "first": first, "last": last} for dataset, first, last in plan.chunks)


@dataclass
class _Chunk:
    """One chunk as read: its kept rows in order, its traces' texts, each row's trace and each trace's split."""

    plan: pa.Table
    texts: pa.Table
    at: np.ndarray  # each plan row's row in texts
    trace_split: pa.Array  # each trace's split, as its index in spec.splits
    rows: int  # source rows the chunk spans (for the progress bar)


def _read_chunk(con: duckdb.DuckDBPyConnection, spec: ExportSpec, groups: dict[int, int], params: dict) -> _Chunk:
    """A chunk's kept rows and its traces' texts, read from the warehouse."""
    # each chunk starts from an empty pool: the plan's blocks and the chunks' cached reads would otherwise
    # grow with the corpus
    storage.release_memory(con)
    order = "source_row, block_idx" if spec.kind.per_block else "source_row"
    plan = con.sql(f"SELECT * FROM __export_kept WHERE dataset = $dataset AND source_row BETWEEN $first AND $last "
                   f"ORDER BY {order}", params=params).to_arrow_table()
    texts = con.sql(TEXTS_SQL, params=params).to_arrow_table()
    at = pc.index_in(plan.column("source_row"), value_set=texts.column("source_row")).to_numpy()
    index = {name: i for i, name in enumerate(spec.splits)}
    trace_split = pa.array([index[split_of(p, spec.seed, spec.splits, groups)]
                            for p in texts.column("problem").to_pylist()], pa.int8())
    return _Chunk(plan, texts, at, trace_split, params["last"] - params["first"] + 1)


def _write_chunk(spec: ExportSpec, chunk: _Chunk, schema: pa.Schema, writers: dict[str, SplitWriter],
                 out: InOrder) -> tuple[int, int, int]:
    """One chunk's records, laid out a slice of traces at a time and handed to `out` to be written; (too_long,
    empty, copied) of its examples."""
    total = (0, 0, 0)
    at = chunk.at
    for start, stop in _slices(chunk.plan.column("response_chars").to_numpy(), at, SLICE_CHARS):
        # the slice's traces only: what is built from them below is a few copies of SLICE_CHARS
        rows, at_rows = np.unique(at[start:stop], return_inverse=True)
        tables, counted = _records(spec, chunk.plan.slice(start, stop - start), take_rows(chunk.texts, rows),
                                   pa.array(at_rows, pa.int64()), chunk.trace_split.take(pa.array(rows)), schema)
        for name, table in tables.items():
            out.submit(partial(writers[name].write, table))
        total = tuple(a + b for a, b in zip(total, counted))
    return total


def _filters(spec: ExportSpec) -> dict:
    """The spec's filters and split rule, as the manifest and the card write them."""
    return {"include_flagged": spec.include_flagged, "domain": spec.domain, "max_tokens": spec.max_tokens,
            "exclude_outliers": spec.outliers_shown,
            "duplicates": "written once (the first by dataset, source_row)",
            "problem_groups": "near-duplicates together (near_duplicates)", "seed": spec.seed,
            "split": dict(spec.splits)}


def _manifest(spec: ExportSpec, models: dict, plan: _Plan, left_out: dict[LeftOut, int],
              split_info: dict[str, dict]) -> dict:
    """manifest.json's content (warehouse.md, Export), but the card's sha256."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "kind": spec.kind.value,
        "format": spec.fmt.value,
        "model": spec.kind.view,
        "models": models,
        "layout_version": LAYOUT_VERSION,
        "ingest_runs": plan.runs,
        "filters": _filters(spec),
        "token_count": TOKEN_DEFINITION,
        "candidates": plan.candidates,
        "left_out": {reason.value: n for reason, n in left_out.items()},
        "left_out_outliers": plan.outlier_counts,
        "near_duplicates": {k: v for k, v in plan.near.items() if k != "seconds"},
        "splits": split_info,
        "card": CARD,
    }


def _publish(stage: Stage, spec: ExportSpec, manifest: dict, seen: dict[str, tuple]) -> None:
    """README.md and manifest.json into the stage, then the stage swapped in for spec.out."""
    # the card's sha256 too: the next export replaces only files that are exactly what this one wrote
    manifest["card_sha256"] = write_synced(stage.new / CARD, dataset_card(manifest, output_schema(spec.kind)))
    write_synced(stage.new / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    checkpoint("export.before_rename")
    if not spec.overwrite:
        check_unchanged(spec.out, seen)  # nothing put in DIR since it was checked is deleted by the swap
    stage.publish()  # DIR is now this export only: the old directory, whatever it held, is removed


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


def _records(spec: ExportSpec, plan: pa.Table, texts: pa.Table, at: pa.Array, trace_split: pa.Array,
             schema: pa.Schema) -> tuple[dict[str, pa.Table], tuple[int, int, int]]:
    """The records of `plan`'s rows (whole traces; `at` gives each row's trace in `texts`, `trace_split` each
    trace's split), by split; (too_long, empty, copied) of them."""
    kind = spec.kind
    per_block = kind.per_block
    user, assistant, spans, copied, carried = turns(kind, plan, texts, at)
    columns = {"messages": messages_array(user, assistant), "trace_id": plan.column("trace_id")}
    if per_block:
        columns["block_idx"] = plan.column("block_idx")
    columns.update({c: plan.column(c) for c in LABELS})
    columns["n_tokens"] = n_tokens = (summarize_tokens(plan.column("n_tokens"), user, assistant)
                                      if per_block else
                                      spans_tokens(plan.column("n_tokens"), user, assistant, spans))
    if spans is not None:
        columns["spans"] = spans
    if carried is not None:
        columns[CARRIED[kind][0]] = carried
    table = pa.table(columns).cast(schema)
    keep, too_long = within_max_tokens(n_tokens, spec.max_tokens)
    fits = keep
    keep = pc.and_(keep, pc.and_(has_text(user), has_text(assistant)))
    empty = (pc.sum(fits).as_py() or 0) - (pc.sum(keep).as_py() or 0) if len(keep) else 0
    copies = 0
    if copied is not None and len(keep):
        copies = pc.sum(pc.and_(keep, copied)).as_py() or 0
        keep = pc.and_(keep, pc.invert(copied))
    splits_of_rows = trace_split.take(at)
    tables = {name: table.filter(pc.and_(keep, pc.equal(splits_of_rows, i))) for i, name in enumerate(spec.splits)}
    return tables, (too_long, empty, copies)


def _progress(enabled: bool, total: int, kind: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" traces", desc=f"export {kind}", leave=False, dynamic_ncols=True)
