"""`export`: training sets written from the versioned export views (models/export_*.sql).

One export is::

    build the export model and what it reads, if any of them is stale   (engine.build; writer lock)
    plan     one cheap query over the view's key columns: every candidate example gets
             a reason to be left out (flagged, domain, duplicate, too_long) or none,
             in a temp table; the counts per reason come from it
    stream   SELECT the kept examples JOIN the plan ORDER BY dataset, source_row[, block_idx],
             fetched as Arrow record batches; each row goes to its split (a hash of the
             seed and the whitespace-normalised problem) and is appended to that split's
             temp file (`.NAME.<pid>.export-tmp` beside the final NAME)
    finish   fsync the temp files, delete the old manifest.json, os.replace each temp file
             into place, then write manifest.json (temp + replace) last

Memory stays flat: DuckDB runs with a memory limit and spills its sort to a
directory beside the output; Python holds one record batch (and, for Parquet,
one row group) per split, plus 8 bytes per example for the token statistics.
The same warehouse, kind, filters and seed give byte-identical files: the order
is total, Parquet row groups are a fixed number of rows, and nothing in the
files or the manifest depends on the time or the machine. docs/export.md has
the kinds, the split rule and the manifest fields.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse import engine, storage
from warehouse.faults import checkpoint
from warehouse.storage import WarehouseError

KINDS = {
    "memento": "export_memento",
    "compressed": "export_compressed",
    "summarize": "export_summarize",
    "plain": "export_plain",
}
FORMATS = ("jsonl", "parquet")
DEFAULT_SPLITS = "train=0.98,validation=0.01,test=0.01"
# Why an example is left out, in the order the reasons are tried: each example is
# counted under the first that applies.
REASONS = ("flagged", "domain", "duplicate", "too_long", "empty")
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
TOKEN_DEFINITION = ("cl100k_base tokens of the segments the example is made of, as counted at ingest "
                    "(segments.n_tokens): memento = blocks + mementos + answer, compressed = mementos + answer, "
                    "plain = blocks + answer, summarize = the block + its memento; the problem, the "
                    "instruction, markup and separators are not counted")
BATCH_ROWS = 256  # rows per Arrow record batch fetched from DuckDB
ROW_GROUP_ROWS = 1000  # rows per Parquet row group: fixed, so the bytes never depend on batch boundaries
MEMORY_LIMIT = os.environ.get("MEMENTOS_EXPORT_MEMORY", "1GB")  # DuckDB's, for the export query; it spills beyond
TMP_SUFFIX = ".export-tmp"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)" + re.escape(TMP_SUFFIX) + "$")
_SPLIT_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# columns written to the files, in this order (block_idx only for kinds with one example per block)
OUTPUT_COLUMNS = ("messages", "trace_id", "block_idx", "domain", "source", "difficulty", "status", "n_tokens")


# ---------------------------------------------------------------------------
# Splits


def parse_splits(spec: str) -> list[tuple[str, float]]:
    """`train=0.98,validation=0.01,test=0.01` -> [(name, fraction), ...] in the given order."""
    splits: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, eq, value = part.strip().partition("=")
        name = name.strip()
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not eq or not _SPLIT_NAME_RE.match(name) or not 0 <= fraction <= 1:
            raise WarehouseError(f"--split {spec}: each part is NAME=FRACTION with NAME of letters, digits, _ "
                                 f"or - and FRACTION between 0 and 1 (e.g. {DEFAULT_SPLITS}); not {part.strip()!r}")
        if name in (s for s, _ in splits):
            raise WarehouseError(f"--split {spec}: split {name!r} is named twice")
        splits.append((name, fraction))
    total = sum(f for _, f in splits)
    if abs(total - 1.0) > 1e-6:
        raise WarehouseError(f"--split {spec}: the fractions add up to {total:g}, not 1")
    return splits


def normalize_problem(problem: str | None) -> str:
    """The problem with every run of whitespace (as str.split sees it) made one space, ends trimmed."""
    return " ".join((problem or "").split())


def split_point(problem: str | None, seed: int) -> float:
    """Where a problem falls in [0, 1): blake2b-64 of "<seed>\\0<normalised problem>" / 2**64."""
    key = f"{seed}\x00{normalize_problem(problem)}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def split_of(problem: str | None, seed: int, splits: list[tuple[str, float]]) -> str:
    """The split a problem goes to: the first whose cumulative fraction exceeds its split point."""
    point, cumulative = split_point(problem, seed), 0.0
    for name, fraction in splits:
        cumulative += fraction
        if point < cumulative:
            return name
    return [name for name, fraction in splits if fraction > 0][-1]  # float rounding at the top end


# ---------------------------------------------------------------------------
# Models: build what is stale


def ancestors(project: engine.Project, name: str) -> set[str]:
    out: set[str] = set()
    stack = [name]
    while stack:
        for parent in project.parents[stack.pop()]:
            if parent not in out:
                out.add(parent)
                stack.append(parent)
    return out


def ensure_models(db: Path, model: str, models_dir=None, echo: Callable[[str], None] | None = None) -> dict:
    """Build `model` and the models it reads when any is not fresh; {name: {version, fingerprint}}."""
    with storage.connect(db, read_only=True) as con:
        objects = engine.existing_objects(con)
        project = engine.load_project(models_dir, set(objects))
        if model not in project.models:
            raise WarehouseError(f"no model {model!r} in models/; the export views are models/export_*.sql")
        needed = ancestors(project, model) | {model}
        states = engine.model_states(con, project)
    stale = sorted(n for n in needed if states[n].state != "fresh")
    if stale:
        if echo:
            echo(f"building {', '.join(stale)} first ...")
        report = engine.build(db, select=sorted(needed), models_dir=models_dir)
        if echo:
            echo(report.format())
        if not report.ok:
            raise WarehouseError(f"cannot export: the build of {model} and its upstream models failed:\n"
                                 + report.format())
    return {n: {"version": project.models[n].version, "fingerprint": project.fingerprints[n]}
            for n in project.order if n in needed}


# ---------------------------------------------------------------------------
# Writers: temp file beside the target, sha256 and size while writing


class _HashingFile:
    """A binary file that hashes and counts what is written to it (ParquetWriter accepts it)."""

    def __init__(self, path: Path):
        self._f = open(path, "wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        data = bytes(data)
        self.sha256.update(data)
        self.size += len(data)
        return self._f.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()


class _SplitWriter:
    """One split's output: rows appended in order to a temp file; token lengths kept for the stats."""

    def __init__(self, name: str, final: Path, fmt: str, schema: pa.Schema):
        self.name, self.final, self.fmt, self.schema = name, final, fmt, schema
        self.tmp = final.with_name(f".{final.name}.{os.getpid()}{TMP_SUFFIX}")
        self.file = _HashingFile(self.tmp)
        self.rows = 0
        self.traces = 0
        self._last_trace: str | None = None
        self.tokens = array("q")
        self.tokens_missing = False
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._parquet = (pq.ParquetWriter(self.file, schema, compression="zstd") if fmt == "parquet" else None)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.rows += batch.num_rows
        for trace_id in batch.column("trace_id").to_pylist():
            if trace_id != self._last_trace:
                self.traces += 1
                self._last_trace = trace_id
        tokens = batch.column("n_tokens")
        if tokens.null_count:
            self.tokens_missing = True
        self.tokens.extend(v for v in tokens.to_pylist() if v is not None)
        if self._parquet is None:
            lines = [json.dumps(row, ensure_ascii=False) for row in batch.to_pylist()]
            self.file.write(("\n".join(lines) + "\n").encode("utf-8"))
        else:
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
            if self._pending_rows >= ROW_GROUP_ROWS:
                self._flush(final=False)

    def _flush(self, final: bool) -> None:
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        start = 0
        while table.num_rows - start >= ROW_GROUP_ROWS or (final and start < table.num_rows):
            self._parquet.write_table(table.slice(start, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
            start += ROW_GROUP_ROWS
        rest = table.slice(start)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> None:
        if self._parquet is not None:
            if self._pending_rows:
                self._flush(final=True)
            self._parquet.close()
        self.file.close()

    def abandon(self) -> None:
        try:
            if self._parquet is not None:
                self._parquet.close()
        except Exception:
            pass
        try:
            self.file.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)

    def token_stats(self) -> dict | None:
        if self.tokens_missing or not self.tokens:
            return None
        values = sorted(self.tokens)
        return {"min": values[0], "median": _quantile(values, 0.5), "p95": _quantile(values, 0.95),
                "max": values[-1]}

    def describe(self) -> dict:
        return {"file": self.final.name, "rows": self.rows, "traces": self.traces, "bytes": self.file.size,
                "sha256": self.file.sha256.hexdigest(), "tokens": self.token_stats()}


def _quantile(sorted_values, q: float) -> float:
    """Linear interpolation between closest ranks, like DuckDB's quantile_cont."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    value = sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
    return int(value) if value == int(value) else round(value, 2)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(out: Path) -> list[Path]:
    """Temp files and spill directories of exports into `out` that were killed; returns what was removed."""
    removed = []
    for path in out.iterdir() if out.is_dir() else ():
        m = _TMP_RE.match(path.name)
        if m and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


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
    traces_read: int  # traces the view was built from (for throughput)
    filters: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(s["rows"] for s in self.splits.values())

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
        left = [f"{n:,} {reason}" for reason, n in self.left_out.items() if n]
        lines.append("  left out: " + (", ".join(left) if left else "nothing")
                     + f" (of {self.candidates:,} candidate examples)")
        why = {"flagged": "flagged traces (--include-flagged keeps them)",
               "domain": f"domain is not {self.filters.get('domain')!r}",
               "duplicate": "exact duplicates of an earlier trace (same content_hash)",
               "too_long": f"more than --max-tokens {self.filters.get('max_tokens')} tokens",
               "empty": "empty problem or nothing to put in the assistant turn"}
        for reason, n in self.left_out.items():
            if n:
                lines.append(f"    {reason:<9} {n:>8,}  {why[reason]}")
        rate = max(self.seconds, 1e-9)
        lines.append(f"  {self.rows:,} examples, {self.bytes / 1e6:,.1f} MB in {self.seconds:.1f} s "
                     f"({self.traces_read / rate:,.0f} traces/s, {self.bytes / 1e6 / rate:,.1f} MB/s); "
                     f"manifest: {self.out / MANIFEST}")
        return "\n".join(lines)


def _plan_sql(view: str, per_block: bool) -> str:
    block = ", block_idx" if per_block else ""
    return f"""
CREATE TEMP TABLE __export_plan AS
WITH candidates AS (
    SELECT trace_id{block}, dataset, source_row, content_hash, n_tokens,
        CASE
            WHEN NOT $include_flagged AND status = 'flagged' THEN 'flagged'
            WHEN $domain IS NOT NULL AND domain IS DISTINCT FROM $domain THEN 'domain'
        END AS pre
    FROM {view}
),
ranked AS (
    SELECT *,
        row_number() OVER (PARTITION BY pre IS NULL, content_hash{block} ORDER BY dataset, source_row) AS copy
    FROM candidates
)
SELECT trace_id{block}, n_tokens, pre IS NULL AND n_tokens IS NULL AS tokens_missing,
    coalesce(pre, CASE
        WHEN copy > 1 THEN 'duplicate'
        WHEN $max_tokens IS NOT NULL AND n_tokens > $max_tokens THEN 'too_long'
    END) AS reason
FROM ranked
"""


def _data_sql(view: str, per_block: bool) -> str:
    block_col = "v.block_idx, " if per_block else ""
    block_join = " AND p.block_idx = v.block_idx" if per_block else ""
    block_order = ", v.block_idx" if per_block else ""
    return f"""
SELECT v.messages, v.trace_id, {block_col}v.domain, v.source, v.difficulty, v.status, v.n_tokens, v.problem
FROM {view} AS v
JOIN __export_plan AS p ON p.trace_id = v.trace_id{block_join}
WHERE p.reason IS NULL
ORDER BY v.dataset, v.source_row{block_order}
"""


def _empty_mask(batch: pa.RecordBatch) -> pa.Array:
    """True where the problem / user turn or the assistant turn is NULL or only whitespace."""
    messages = batch.column("messages")
    has_text = None
    for i in (0, 1):
        content = pc.struct_field(pc.list_element(messages, i), "content")
        ok = pc.fill_null(pc.match_substring_regex(content, r"\S"), False)
        has_text = ok if has_text is None else pc.and_(has_text, ok)
    return pc.invert(has_text)


def _ingest_runs(con) -> list[dict]:
    rows = con.execute(
        "SELECT dataset, run_id, source, config, CAST(finished_at AS VARCHAR), default_rows, parser_version, "
        "token_encoding FROM ingest_runs QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY finished_at DESC) = 1 "
        "ORDER BY dataset"
    ).fetchall()
    keys = ("dataset", "run_id", "source", "config", "finished_at", "traces", "parser_version", "token_encoding")
    return [dict(zip(keys, r)) for r in rows]


def export(db: str | Path, kind: str, out: str | Path, fmt: str = "jsonl", splits: str = DEFAULT_SPLITS,
           seed: int = 0, domain: str | None = None, max_tokens: int | None = None,
           include_flagged: bool = False, models_dir=None, echo: Callable[[str], None] | None = None,
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
    if not db.exists():
        raise WarehouseError(f"no warehouse at {db}; create one with `mementos ingest SOURCE --db {db}` first")
    view = KINDS[kind]
    per_block = kind == "summarize"
    models = ensure_models(db, view, models_dir=models_dir, echo=echo)

    out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    spill = out / f".spill.{os.getpid()}{TMP_SUFFIX}"
    filters = {"include_flagged": include_flagged, "domain": domain, "max_tokens": max_tokens,
               "duplicates": "written once (first by dataset, source_row)", "seed": seed,
               "split": dict(split_list)}
    writers: dict[str, _SplitWriter] = {}
    try:
        with storage.connect(db, read_only=True) as con:
            spill.mkdir(exist_ok=True)
            con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            con.execute("SET temp_directory = ?", [str(spill)])  # a bound value: --out may hold quotes
            runs = _ingest_runs(con)
            params = {"include_flagged": include_flagged, "domain": domain, "max_tokens": max_tokens}
            con.execute(_plan_sql(view, per_block), params)
            counts = dict(con.execute("SELECT coalesce(reason, ''), count(*) FROM __export_plan GROUP BY ALL").fetchall())
            [(missing,)] = con.execute("SELECT count(*) FROM __export_plan WHERE tokens_missing").fetchall()
            if max_tokens is not None and missing:
                raise WarehouseError(f"--max-tokens needs token counts, and {missing:,} examples have none "
                                     f"(the data was ingested with --no-tokens); re-ingest with tokens")
            [(traces_read,)] = con.execute("SELECT count(*) FROM traces").fetchall()

            reader = con.sql(_data_sql(view, per_block)).to_arrow_reader(BATCH_ROWS)
            columns = [c for c in OUTPUT_COLUMNS if per_block or c != "block_idx"]
            schema = pa.schema([reader.schema.field(c) for c in columns])
            for name, _ in split_list:
                writers[name] = _SplitWriter(name, out / f"{name}.{fmt}", fmt, schema)
            names = [name for name, _ in split_list]
            index = {name: i for i, name in enumerate(names)}
            bar = _progress(progress, sum(counts.get(r, 0) for r in ("",)), kind)
            empty = 0
            for batch in reader:
                drop = _empty_mask(batch)
                n_empty = pc.sum(drop).as_py() or 0
                if n_empty:
                    empty += n_empty
                    batch = batch.filter(pc.invert(drop))
                targets = pa.array([index[split_of(p, seed, split_list)] for p in batch.column("problem").to_pylist()],
                                   pa.int8())
                body = batch.select(columns)
                for i, name in enumerate(names):
                    writers[name].write(body.filter(pc.equal(targets, i)))
                checkpoint("export.mid_write")
                if bar is not None:
                    bar.update(batch.num_rows + n_empty)
            if bar is not None:
                bar.close()
        for w in writers.values():
            w.close()
        checkpoint("export.before_rename")
        (out / MANIFEST).unlink(missing_ok=True)  # a manifest on disk always describes the files beside it
        for w in writers.values():
            os.replace(w.tmp, w.final)
        left_out = {reason: counts.get(reason, 0) for reason in REASONS}
        left_out["empty"] = empty
        split_info = {name: w.describe() for name, w in writers.items()}
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "kind": kind,
            "format": fmt,
            "model": view,
            "models": models,
            "ingest_runs": runs,
            "filters": filters,
            "token_count": TOKEN_DEFINITION,
            "candidates": sum(counts.values()),
            "left_out": left_out,
            "splits": split_info,
        }
        tmp = out / f".{MANIFEST}.{os.getpid()}{TMP_SUFFIX}"
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, out / MANIFEST)
    except BaseException:
        for w in writers.values():
            w.abandon()
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return ExportResult(kind, fmt, out, view, manifest["candidates"], left_out, split_info,
                        time.monotonic() - started, traces_read, filters)


def _progress(enabled: bool, total: int, kind: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" examples", desc=f"export {kind}", leave=False, dynamic_ncols=True)
