"""The files of an export directory: each split written into the export's stage (output.Stage; sha256, size
and token statistics while writing), and what the directory it replaces may hold (what an earlier export
wrote, checked against its manifest's sha256, and anything else)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from array import array
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mementos.foundation.errors import WarehouseError
from mementos.warehouse.export import json_lines
from mementos.foundation.durable import create_exclusive

MANIFEST = "manifest.json"
ROW_GROUP_ROWS = 1000  # rows per Parquet row group: fixed, so the bytes never depend on chunk boundaries


class HashingFile:
    """A binary file that hashes and counts what is written to it (ParquetWriter accepts it)."""

    def __init__(self, path: Path):
        self._f = create_exclusive(path)
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

    def __init__(self, tmp: Path, final: Path, fmt: str, schema: pa.Schema, encoder):
        """`tmp`: the file in the stage; `final`: where it will be (what errors name)."""
        self.tmp, self.final, self.fmt, self.schema, self.encoder = tmp, final, fmt, schema, encoder
        self.file = HashingFile(self.tmp)
        self.rows = 0
        self.traces = 0
        self.tokens = array("q")
        self.tokens_missing = False
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._parquet = pq.ParquetWriter(self.file, schema, compression="zstd") if fmt == "parquet" else None
        fields = ", ".join(f"'{f.name}': \"{f.name}\"" for f in schema)
        # the newline added here: the lines come out as one buffer to write as it is
        self._to_json = f"SELECT to_json({{{fields}}}) || chr(10) AS line FROM __export_rows"

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
            for part, big in json_lines.runs(table):  # rows too big for DuckDB's to_json: json_lines
                if big:
                    for piece in json_lines.lines(part):
                        self.file.write(piece)
                    continue
                self.encoder.register("__export_rows", part)
                lines = self.encoder.sql(self._to_json).to_arrow_table().column("line")
                self.encoder.unregister("__export_rows")
                for chunk in lines.chunks:  # each chunk's characters as they are (combine_chunks copies them)
                    if len(chunk):
                        self.file.write(_string_data(chunk))
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


def _string_data(strings: pa.Array) -> memoryview:
    """The bytes of a string array's values, end to end, without a copy."""
    offsets = memoryview(strings.buffers()[1]).cast("q" if pa.types.is_large_string(strings.type) else "i")
    start, end = offsets[strings.offset], offsets[strings.offset + len(strings)]
    return memoryview(strings.buffers()[2])[start:end]


def _quantile(sorted_values, q: float) -> float:
    """Linear interpolation between closest ranks, like DuckDB's quantile_cont."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    value = sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
    return int(value) if value == int(value) else round(value, 2)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _earlier_export(out: Path) -> dict[str, str | None] | None:
    """{name: sha256 or None} of what an earlier export's manifest says it wrote (its split files, its card);
    None when there is no readable manifest. Only plain names inside `out` count."""
    path = out / MANIFEST
    try:
        if path.is_symlink() or not path.is_file():
            return None
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = {s["file"]: s.get("sha256") for s in manifest["splits"].values()}
        if manifest.get("card"):
            files[manifest["card"]] = manifest.get("card_sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return {n: h if isinstance(h, str) else None for n, h in files.items()
            if isinstance(n, str) and n and Path(n).name == n and n not in (".", "..", MANIFEST)}


def _not_as_written(path: Path, sha256: str | None) -> str | None:
    """Why `path`, listed by the earlier manifest, is not exactly what that export wrote (None: it is)."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link, which no export writes"
    if stat.S_ISDIR(st.st_mode):
        return "a directory, which no export writes"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if sha256 is None:
        return "manifest.json has no sha256 for it"
    if _sha256(path) != sha256:
        return "not the bytes manifest.json lists"
    return None


def entries(out: Path) -> dict[str, tuple]:
    """What is in `out` (name -> type, inode, size, mtime): taken when it is checked, compared before the
    export replaces it."""
    result = {}
    for p in sorted(out.iterdir()) if out.is_dir() else ():
        st = p.lstat()
        result[p.name] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_size, st.st_mtime_ns)
    return result


def check_directory(out: Path, overwrite: bool, option: str = "--out") -> dict[str, tuple]:
    """`out` before an export replaces it whole: only what an earlier export wrote (its manifest, and the
    regular files it lists with their sha256) may be replaced. Anything else stops the export unless
    `overwrite`. Returns `entries(out)` as checked. (An `out` that holds the warehouse was refused before,
    by guard.output_dir, --overwrite or not.)"""
    if not out.is_dir():
        return {}
    seen = entries(out)
    earlier = _earlier_export(out)
    ours = {MANIFEST} if earlier is not None else set()
    unknown = []  # (label, listed by the manifest)
    for name in seen:
        path = out / name
        if name in ours:
            continue
        if earlier is not None and name in earlier:
            why = _not_as_written(path, earlier[name])
            if why is None:
                continue
            unknown.append((f"{name} ({why})", True))
        else:
            unknown.append((name + ("/" if path.is_dir() and not path.is_symlink() else ""), False))
    if unknown and not overwrite:
        names = ", ".join(label for label, _ in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        why = ("" if all(listed for _, listed in unknown[:5])
               else "; no earlier export's manifest.json lists them" if earlier is not None
               else "; there is no manifest.json of an earlier export")
        raise WarehouseError(f"{option} {out} holds files that are not part of an earlier export ({names}{more}"
                             f"{why}); export into a new or empty directory, or pass --overwrite to delete them")
    return seen


def check_unchanged(out: Path, seen: dict[str, tuple], option: str = "--out") -> None:
    """Right before the swap: `out` holds what check_directory saw, so nothing added since is deleted."""
    now = entries(out)
    if now != seen:
        changed = sorted(n for n in now.keys() | seen.keys() if now.get(n) != seen.get(n))
        raise WarehouseError(f"{option} {out} changed while the export ran ({', '.join(changed[:5])}"
                             f"{' and more' if len(changed) > 5 else ''}); nothing was replaced; run the export "
                             f"again")


def write_synced(path: Path, text: str) -> str:
    """Write a new file (never through anything already there); its sha256."""
    data = text.encode("utf-8")
    with create_exclusive(path) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()
