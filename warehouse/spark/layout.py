"""Where the Spark engine reads and writes: the Parquet root, the run directories of the base tables,
`PATH.data/models/<model>/` with its `_build.json`, and the file operations on them (Hadoop's
FileSystem API, so a local path, hdfs:// or s3a:// alike). warehouse.md (Spark, "The Parquet layout").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from mementos.foundation import catalog, storage
from mementos.foundation.errors import WarehouseError, first_line, no_warehouse
from mementos.foundation.layout import MODELS_SUBDIR
from mementos.warehouse.guard import require_warehouse

MANIFEST = "_build.json"  # beside each model's parts; Spark and DuckDB skip files starting with _
PARQUET_TABLES = tuple(catalog.STORES)  # the stored tables' directories; ingest_runs lives only in DuckDB


@dataclass
class Layout:
    root: str  # the Parquet root as a URI (file:///.../PATH.data, hdfs://..., s3a://...)
    db: Path | None  # the DuckDB file, when there is one: it says which run of each dataset is committed

    @property
    def models_root(self) -> str:
        return f"{self.root}/{MODELS_SUBDIR}"

    def model_dir(self, name: str) -> str:
        return f"{self.models_root}/{name}"

    # A build writes a model aside as .building-<model>-<token>, sets the old directory aside as
    # .old-<model>-<token> while it renames the new one into place, then deletes the old one.
    def building_dir(self, name: str, token: str) -> str:
        return f"{self.models_root}/{BUILDING}{name}-{token}"

    def old_dir(self, name: str, token: str) -> str:
        return f"{self.models_root}/{OLD}{name}-{token}"


BUILDING, OLD = ".building-", ".old-"


def leftover(entry: str) -> tuple[str, str] | None:
    """What a killed build left in the models directory, from an entry's name: ('building', model)
    or ('old', model); None for a model's own directory."""
    for what, prefix in (("building", BUILDING), ("old", OLD)):
        if entry.startswith(prefix):
            return what, entry[len(prefix):].rsplit("-", 1)[0]
    return None


def _has_scheme(path: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path) is not None or path.startswith("file:")


def layout_for(db: str | Path) -> Layout:
    """`--db` is the DuckDB file (its Parquet root is PATH.data beside it), a Parquet root
    directory, or a Parquet root URI."""
    text = str(db)
    if _has_scheme(text):
        return Layout(text.rstrip("/"), None)
    path = Path(text)
    if path.is_dir():
        return Layout(path.resolve().as_uri(), None)
    if not path.exists():
        raise no_warehouse(path)
    require_warehouse(path)
    root = storage.data_dir(path)
    if not root.is_dir():
        raise WarehouseError(f"the warehouse {path} has no Parquet directory {root}; nothing was ingested yet")
    return Layout(root.resolve().as_uri(), path)


def local_root(db: str | Path) -> Path | None:
    text = str(db)
    if text.startswith("file:"):
        from urllib.parse import urlparse
        return Path(urlparse(text).path)
    if _has_scheme(text):
        return None
    path = Path(text)
    return path if path.is_dir() else storage.data_dir(path)


def read_local_manifest(root: Path | None, name: str) -> dict | None:
    try:
        return json.loads((root / MODELS_SUBDIR / name / MANIFEST).read_text())
    except (OSError, ValueError, TypeError):
        return None


def live_files(db: Path) -> dict[str, list[str]]:
    """The live shards' Parquet files of every stored table, relative to the data directory, from the
    DuckDB file's ingest_shards (catalog.live_files)."""
    from mementos.foundation.layout import data_dir

    with storage.connect(db, read_only=True) as con:
        try:
            return catalog.live_files(con, data_dir(db))
        except Exception as exc:  # no ingest_runs table: nothing ingested
            raise WarehouseError(f"the warehouse {db} has no ingest runs: {first_line(exc)}") from None


class FileSystem:
    """The few file operations a build needs, through Hadoop's FileSystem (local, HDFS, S3...)."""

    def __init__(self, spark, root: str):
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        self.fs = self._path(root).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(self._path(path)))

    def delete(self, path: str) -> None:
        self.fs.delete(self._path(path), True)

    def rename(self, src: str, dst: str) -> None:
        if not self.fs.rename(self._path(src), self._path(dst)):
            raise WarehouseError(f"cannot rename {src} to {dst}")

    def mkdirs(self, path: str) -> None:
        self.fs.mkdirs(self._path(path))

    def list_dirs(self, path: str) -> list[str]:
        """Names of the subdirectories of `path` ([] when it does not exist)."""
        if not self.exists(path):
            return []
        return sorted(s.getPath().getName() for s in self.fs.listStatus(self._path(path)) if s.isDirectory())

    def has_parquet(self, path: str) -> bool:
        found = self.fs.globStatus(self._path(f"{path}/*.parquet"))
        return found is not None and len(found) > 0

    def read_text(self, path: str) -> str | None:
        """The UTF-8 text of the file at `path`, or None when there is none."""
        if not self.exists(path):
            return None
        stream = self.fs.open(self._path(path))
        try:
            return bytes(stream.readAllBytes()).decode("utf-8")
        finally:
            stream.close()

    def write_text(self, path: str, text: str) -> None:
        out = self.fs.create(self._path(path), True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()



def base_table_dirs(fs: FileSystem, layout: Layout) -> dict[str, list[str]]:
    """The Parquet paths Spark reads for every base table, under `<root>/<table>/<dataset-slug>/<run_id>`.

    With the DuckDB file, exactly the files of the live shards (ingest_shards: a dataset's may lie in
    several run directories, which may also hold files of shards replaced since); with a bare
    Parquet root, the one run directory of each dataset, and an error when an interrupted ingest
    left a second one.
    """
    dirs: dict[str, list[str]] = {}
    if layout.db is not None:
        files = live_files(layout.db)
        return {table: [f"{layout.root}/{rel}" for rel in files.get(table, [])] for table in PARQUET_TABLES}
    for table in PARQUET_TABLES:
        dirs[table] = []
        for slug in fs.list_dirs(f"{layout.root}/{table}"):
            run_ids = fs.list_dirs(f"{layout.root}/{table}/{slug}")
            if len(run_ids) > 1:
                raise WarehouseError(
                    f"{layout.root}/{table}/{slug} holds {len(run_ids)} runs ({', '.join(run_ids)}): an interrupted "
                    f"ingest left one behind. Build with --db PATH.duckdb (ingest_runs says which is committed), "
                    f"or run any ingest to clean up")
            dirs[table] += [f"{layout.root}/{table}/{slug}/{r}" for r in run_ids
                            if fs.has_parquet(f"{layout.root}/{table}/{slug}/{r}")]
    return dirs



def data_version(dirs: dict[str, list[str]]) -> str:
    """Identity of the base tables' contents: the run directories read."""
    runs = sorted({"/".join(d.rsplit("/", 2)[-2:]) for ds in dirs.values() for d in ds})
    return sha256(repr(runs).encode()).hexdigest()[:16] if runs else "empty"

