"""The files of an export directory: each split written to a temp file beside its target (sha256, size
and token statistics while writing), leftovers of killed exports, and what the directory may hold
(what an earlier export's manifest lists, and anything else)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from array import array
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from foundation import storage
from foundation.errors import WarehouseError
from warehouse import export_json

MANIFEST = "manifest.json"
ROW_GROUP_ROWS = 1000  # rows per Parquet row group: fixed, so the bytes never depend on chunk boundaries
TMP_SUFFIX = ".export-tmp"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)" + re.escape(TMP_SUFFIX) + "$")


class HashingFile:
    """A binary file that hashes and counts what is written to it (ParquetWriter accepts it)."""

    def __init__(self, path: Path):
        self._f = open(path, "wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")  # no copy of what the writer hands over (bytes, a pyarrow Buffer)
        self.sha256.update(view)
        self.size += view.nbytes
        return self._f.write(view)

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
            try:
                self._f.flush()
                os.fsync(self._f.fileno())
            finally:  # closed even when the flush fails (a full disk): no descriptor left on a deleted file
                self._f.close()


class SplitWriter:
    """One split's output: tables appended in order to a temp file; token lengths kept for the stats.

    JSON Lines are encoded by DuckDB's to_json (one compact object per line, keys in
    the schema's order, UTF-8); Parquet is zstd, in row groups of exactly ROW_GROUP_ROWS.
    """

    def __init__(self, final: Path, fmt: str, schema: pa.Schema, encoder):
        self.final, self.fmt, self.schema, self.encoder = final, fmt, schema, encoder
        self.tmp = final.with_name(f".{final.name}.{os.getpid()}{TMP_SUFFIX}")
        self.file = HashingFile(self.tmp)
        self.rows = 0
        self.traces = 0
        self.tokens = array("q")
        self.tokens_missing = False
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._parquet = pq.ParquetWriter(self.file, schema, compression="zstd") if fmt == "parquet" else None
        fields = ", ".join(f"'{f.name}': \"{f.name}\"" for f in schema)
        self._to_json = f"SELECT to_json({{{fields}}}) AS line FROM __export_rows"

    def write(self, table: pa.Table) -> None:
        """Append `table` (whole traces, in order)."""
        with self._naming_errors():
            self._write(table)

    @contextmanager
    def _naming_errors(self):
        """An OSError from writing the temp file names the file it is for (a full disk says where)."""
        try:
            yield
        except OSError as exc:
            if exc.filename is None:
                exc.filename = str(self.final)
            raise

    def _write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        self.traces += pc.count_distinct(table.column("trace_id")).as_py()
        tokens = table.column("n_tokens")
        if tokens.null_count:
            self.tokens_missing = True
        self.tokens.extend(v for v in tokens.to_pylist() if v is not None)
        if self._parquet is None:
            for part, big in export_json.runs(table):  # rows too big for DuckDB's to_json: export_json
                if big:
                    for piece in export_json.lines(part):
                        self.file.write(piece)
                    continue
                self.encoder.register("__export_rows", part)
                lines = self.encoder.sql(self._to_json).to_arrow_table().column("line").combine_chunks()
                self.encoder.unregister("__export_rows")
                lines = pc.binary_join_element_wise(lines, pa.scalar("\n"), pa.scalar(""))
                offsets = memoryview(lines.buffers()[1]).cast("q" if pa.types.is_large_string(lines.type) else "i")
                start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
                self.file.write(memoryview(lines.buffers()[2])[start:end])
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        table = pa.concat_tables(self._pending) if self._pending else self.schema.empty_table()
        start = 0
        while table.num_rows - start >= ROW_GROUP_ROWS or (final and start < table.num_rows):
            # one contiguous array per column: Parquet pages must not depend on how the rows arrived
            self._parquet.write_table(table.slice(start, ROW_GROUP_ROWS).combine_chunks(),
                                      row_group_size=ROW_GROUP_ROWS)
            start += ROW_GROUP_ROWS
        rest = table.slice(start)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> None:
        with self._naming_errors():
            if self._parquet is not None:
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
    for path in sorted(out.iterdir()) if out.is_dir() else ():
        m = _TMP_RE.match(path.name)
        if m and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _listed_by_manifest(out: Path) -> set[str] | None:
    """The names an earlier export's manifest lists (its split files, its card, itself); None when the
    manifest is missing or unreadable. Only plain names inside `out` count."""
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        names = {s["file"] for s in manifest["splits"].values()} | {MANIFEST}
        if manifest.get("card"):
            names.add(manifest["card"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return {n for n in names if isinstance(n, str) and n and Path(n).name == n and n not in (".", "..")}


def check_directory(out: Path, overwrite: bool, db: Path | None = None) -> tuple[set[str], list[Path]]:
    """What is in `out` before an export: the names the earlier manifest lists, and everything else (files
    and directories, but not export temp files, which remove_leftovers handles). Anything else stops the
    export unless `overwrite` (it is then deleted once the new export is in place); the warehouse `db`
    itself, its data directory and its lock are never deleted."""
    if not out.is_dir():
        return set(), []
    listed = _listed_by_manifest(out) or set()
    unknown = [p for p in sorted(out.iterdir()) if p.name not in listed and not _TMP_RE.match(p.name)]
    if db is not None:
        own = {q.resolve() for q in (db, storage.data_dir(db), storage.lock_path(db), Path(f"{db}.wal"))}
        if any(p.resolve() in own for p in unknown):
            raise WarehouseError(f"--out {out} holds the warehouse {db} (or its data): export into a directory "
                                 f"of its own")
    if unknown and not overwrite:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        why = ("no earlier export's manifest.json lists them" if (out / MANIFEST).exists()
               else "there is no manifest.json of an earlier export")
        raise WarehouseError(f"--out {out} holds files that are not part of an earlier export ({names}{more}; "
                             f"{why}); export into a new or empty directory, or pass --overwrite to delete them")
    return listed, unknown


def remove_paths(paths) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
