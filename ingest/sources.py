"""Sources: turn SOURCE into data files, and data files into Arrow batches.

Hub ids, local directories in the hub layout, and Parquet/JSONL files or globs
all go through `datasets`: the files are resolved by `load_dataset_builder` (hub
and directories) or by glob, and every file is streamed with
`load_dataset(..., streaming=True)` in Arrow format, one file at a time, so an
error can name the file and rows never become Python dicts.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from mementos.foundation.errors import SourceError, first_line

CONFIGS = ("default", "full")
DEFAULT_COLUMNS = {"problem": "string", "response": "string"}
OPTIONAL_COLUMNS = {"domain": "string", "source": "string", "difficulty": "integer or string"}
FULL_COLUMNS = {"sentences": "list<string>", "blocks": "list<list<int>>", "block_summaries": "list<string>"}
BUILDER_BY_SUFFIX = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
# Rows per Parquet read, by config (see read_batches). Each read has a fixed cost in datasets whatever
# its size, which matters for the full config's many small rows; for the default config larger reads
# saved little time and raised ingest's peak memory.
PARQUET_READ_ROWS = {"default": 16, "full": 32}


@dataclass(frozen=True)
class SourceFile:
    config: str  # 'default' | 'full'
    path: str  # local path or hf:// URL
    builder: str  # 'parquet' | 'json'
    rows: int | None = None  # known row count, for progress bars


def configs_for(config: str) -> tuple[str, ...]:
    if config == "all":
        return CONFIGS
    if config not in CONFIGS:
        raise SourceError(f"unknown config {config!r}: use default, full or all")
    return (config,)


def default_name(source: str) -> str:
    """Dataset name when --name is not given: the last part of the path or hub id."""
    stripped = source.rstrip("/")
    if any(ch in stripped for ch in "*?["):
        stripped = os.path.dirname(stripped) or "files"
    return Path(stripped).stem if os.path.isfile(stripped) else Path(stripped).name or stripped


def dataset_name(name: str | None, source: str) -> str:
    """The dataset's name: `name` (--name) when given, which must hold a visible character and no control
    characters (an empty --name was once silently replaced by the default), else default_name(source)."""
    if name is None:
        return default_name(source)
    if not name.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise SourceError(
            f"--name {name!r} is not a dataset name: a name is text with at least one character that is not "
            f"a space, and no control characters such as newlines or tabs; leave out --name to use "
            f"{default_name(source)!r} (the last part of SOURCE)")
    return name


def resolve(source: str, config: str) -> list[SourceFile]:
    """All data files to read, in order: every `default` file, then every `full` file."""
    wanted = configs_for(config)
    if os.path.isdir(source):
        files = _from_hub_layout(source, wanted, where=f"directory {source}")
    elif os.path.isfile(source) or glob.has_magic(source):
        files = _from_files(source, wanted)
    elif source.startswith((".", "/", "~")) or Path(source).suffix.lower() in BUILDER_BY_SUFFIX:
        raise SourceError(f"{source}: no such file or directory")
    else:
        files = _from_hub_layout(source, wanted, where=f"hub dataset {source}")
    for f in files:
        if not f.path.startswith(("hf://", "http://", "https://")) and os.path.getsize(f.path) == 0:
            raise SourceError(f"{f.path}: the file is empty (0 bytes); remove it or regenerate it")
    return files


def check_db(files: list[SourceFile], db: str | Path) -> None:
    """Refuse a --db that is one of the source's files, naming it (any other file that is not a warehouse is
    refused by the writer, foundation/snapshots.py, before anything is written)."""
    db = Path(db)
    if not db.is_file():
        return
    for f in files:
        if not f.path.startswith(("hf://", "http://", "https://")) and os.path.samefile(f.path, db):
            raise SourceError(f"--db {db} is one of the files ingest reads ({f.config} config); the warehouse is a "
                              f"DuckDB file of its own: give a new name, e.g. --db {db.with_suffix('.duckdb')}")


def _builder_for(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in BUILDER_BY_SUFFIX:
        raise SourceError(f"{path}: unsupported file type {suffix or '(none)'}; expected .parquet, .jsonl or .json")
    return BUILDER_BY_SUFFIX[suffix]


def _from_files(pattern: str, wanted: tuple[str, ...]) -> list[SourceFile]:
    paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    if not paths:
        raise SourceError(f"{pattern}: the pattern matches no files")
    return [SourceFile(cfg, p, _builder_for(p), _parquet_rows(p)) for cfg in wanted for p in paths]


def _parquet_rows(path: str) -> int | None:
    if not path.endswith(".parquet"):
        return None
    try:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # unreadable files get their error when they are read
        return None


def _from_hub_layout(source: str, wanted: tuple[str, ...], where: str) -> list[SourceFile]:
    import datasets

    files: list[SourceFile] = []
    for cfg in wanted:
        try:
            builder = datasets.load_dataset_builder(source, cfg)
        except ValueError as exc:
            if "BuilderConfig" in str(exc) or "not found" in str(exc):
                raise SourceError(
                    f"{where} has no config {cfg!r}; its README.md card must list it under `configs:` "
                    f"(hub layout: data/train-* for default, full/train-* for full)"
                ) from None
            raise SourceError(f"{where}: {exc}") from None
        except FileNotFoundError as exc:
            patterns = _card_patterns(source, cfg)
            if patterns:
                raise SourceError(
                    f"{where}: its README.md card lists {', '.join(patterns)} for config {cfg!r}, which matches "
                    f"no data files; fix the paths under `configs:` in README.md (hub layout: data/train-* for "
                    f"default, full/train-* for full)"
                ) from None
            raise SourceError(
                f"{where}: {exc}. Expected a hub dataset id or a directory with a README.md card "
                f"and data/train-* (default) and full/train-* (full) files"
            ) from None
        except Exception as exc:  # network, auth, malformed card: all reported the same way
            if _out_of_memory(exc):
                raise  # not the card's fault: the CLI says what to change
            if os.path.isdir(source):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise SourceError(
                    f"{where}: cannot read its README.md card or data files for config {cfg!r} "
                    f"({type(exc).__name__}: {first}); check the YAML between the --- lines at the top of README.md"
                ) from None
            raise SourceError(
                f"{where}: cannot resolve config {cfg!r} ({type(exc).__name__}: {exc}); "
                f"if this machine is offline, download the dataset and pass its local directory"
            ) from None
        data_files = (builder.config.data_files or {}).get("train") or []
        if not data_files:
            patterns = _card_patterns(source, cfg) if os.path.isdir(source) else []
            if patterns:
                raise SourceError(
                    f"{where}: its README.md card lists {', '.join(patterns)} for config {cfg!r}, which matches "
                    f"no data files; fix the paths under `configs:` in README.md (hub layout: data/train-* for "
                    f"default, full/train-* for full)"
                )
            raise SourceError(f"{where}: config {cfg!r} lists no train files; check the paths in its README.md card")
        split_info = (builder.info.splits or {}).get("train") if builder.info.splits else None
        n_files = len(data_files)
        for path in data_files:
            path = str(path)
            if not path.startswith("hf://") and not os.path.exists(path):
                raise SourceError(f"{where}: config {cfg!r} points to {path}, which does not exist")
            rows = _parquet_rows(path) if not path.startswith("hf://") else None
            if rows is None and split_info is not None and n_files == 1:
                rows = split_info.num_examples
            files.append(SourceFile(cfg, path, _builder_for(path), rows))
    return files


def _card_patterns(directory: str, cfg: str) -> list[str]:
    """The data_files patterns that a local README.md card gives for `cfg` (empty when unknown)."""
    card = Path(directory) / "README.md"
    if not card.is_file():
        return []
    try:
        import yaml

        text = card.read_text(encoding="utf-8")
        meta = yaml.safe_load(text.split("---")[1]) if text.startswith("---") else None
        for entry in (meta or {}).get("configs") or []:
            if entry.get("config_name") == cfg:
                files = entry.get("data_files")
                if isinstance(files, (str, list)) and not isinstance(files, dict):
                    files = [files] if isinstance(files, str) else files
                    return [f if isinstance(f, str) else str(f.get("path")) for f in files]
                return [str(files)]
    except Exception:  # only used to word an error message
        return []
    return []


def expected_columns(config: str) -> dict[str, str]:
    return {**DEFAULT_COLUMNS, **(FULL_COLUMNS if config == "full" else {})}


def check_schema(schema: pa.Schema, sf: SourceFile) -> None:
    """Raise a SourceError naming the file if a needed column is missing or mistyped."""
    try:
        _check_columns(schema, sf)
    except SourceError:
        if sf.builder == "json" and os.path.isfile(sf.path):
            line, why = _first_mistyped_json_line(sf.path, sf.config)
            if line is not None:
                raise SourceError(f"{sf.path}, line {line}: {why}; fix or remove that line and ingest again") from None
        raise


def _check_columns(schema: pa.Schema, sf: SourceFile) -> None:
    for name, expected in expected_columns(sf.config).items():
        if name not in schema.names:
            raise SourceError(
                f"{sf.path}: missing column {name!r} needed by config {sf.config!r} "
                f"(found: {', '.join(schema.names) or 'no columns'}); expected {expected}"
            )
        if not _type_ok(schema.field(name).type, expected):
            raise SourceError(f"{sf.path}: column {name!r} has type {schema.field(name).type}; expected {expected}")
    for name, expected in OPTIONAL_COLUMNS.items():
        if name in schema.names and not _type_ok(schema.field(name).type, expected):
            raise SourceError(f"{sf.path}: column {name!r} has type {schema.field(name).type}; expected {expected}")


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t)


def _is_list_of(t: pa.DataType, inner) -> bool:
    if pa.types.is_null(t):
        return True
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and inner(t.value_type)


def _type_ok(t: pa.DataType, expected: str) -> bool:
    return {
        "string": _is_text,
        "integer or string": lambda x: _is_text(x) or pa.types.is_integer(x),
        "list<string>": lambda x: _is_list_of(x, _is_text),
        "list<list<int>>": lambda x: _is_list_of(x, lambda v: _is_list_of(v, pa.types.is_integer)),
    }[expected](t)


def read_batches(sf: SourceFile, batch_rows: int, check=None) -> Iterator[pa.Table]:
    """Stream one file as Arrow tables of at most `batch_rows` rows; `check(schema, sf)` (by default
    check_schema, the OpenMementos columns) raises a SourceError when the first batch's columns do not do."""
    import datasets

    # Every read error becomes one SourceError below; datasets' own log line about it is noise.
    for logger in _DATASETS_READ_LOGGERS:
        logging.getLogger(logger).setLevel(logging.CRITICAL)
    if sf.builder == "parquet" and _parquet_rows(sf.path) == 0:
        raise SourceError(f"{sf.path}: the file has no rows; remove it or regenerate it")
    rows_before = 0
    try:
        # Parquet: Arrow's scanner decodes ahead of a slow reader (the workers set the pace) by a
        # number of batches, not bytes: reads of PARQUET_READ_ROWS rows keep that to a few MB of text
        # (large reads held that much more text in the ingest process); `iter` still yields
        # `batch_rows`. Smaller reads cost CPU, which is why the full config reads more rows at once.
        sized = ({"batch_size": min(batch_rows, PARQUET_READ_ROWS[sf.config])}
                 if sf.builder == "parquet" else {})
        stream = datasets.load_dataset(sf.builder, data_files=[sf.path], split="train", streaming=True, **sized)
        for table in stream.with_format("arrow").iter(batch_size=batch_rows):
            if rows_before == 0:
                (check or check_schema)(table.schema, sf)
            _check_utf8(table, sf, rows_before)
            rows_before += table.num_rows
            yield _plain_text(table)
    except SourceError:
        raise
    except Exception as exc:
        if _out_of_memory(exc):
            raise  # not the file's fault: the CLI says what to change
        raise SourceError(_read_error(sf, rows_before, exc)) from None
    if rows_before == 0:
        raise SourceError(f"{sf.path}: the file has no rows; remove it or regenerate it")


def _plain_text(table: pa.Table) -> pa.Table:
    """Text columns as Arrow's `string`, which the parser and writers read: a column with no value in the batch
    has type `null` (an all-null `response` is a row to flag, not a crash), and Polars and DuckDB write
    `string_view`, which pyarrow's compute functions do not all take."""
    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_null(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return (pa.list_ if pa.types.is_list(t) else pa.large_list)(plain(t.value_type))
        return t

    for name in TEXT_COLUMNS:
        if name not in table.column_names:
            continue
        column = table.column(name)
        if (wanted := plain(column.type)) != column.type:
            table = table.set_column(table.column_names.index(name), name, column.cast(wanted))
    return table


def _out_of_memory(exc: Exception) -> bool:
    """Memory the reader could not get (Arrow's ArrowMemoryError is a MemoryError), or a thread it could not
    start under an address-space cap: foundation.storage.out_of_memory words these for the CLI."""
    return isinstance(exc, MemoryError) or "can't start new thread" in str(exc)


_DATASETS_READ_LOGGERS = ("datasets.packaged_modules.parquet.parquet", "datasets.packaged_modules.json.json")
TEXT_COLUMNS = ("problem", "response", "domain", "source", "difficulty", "sentences", "block_summaries")


def _check_utf8(table: pa.Table, sf: SourceFile, rows_before: int) -> None:
    """Neither Parquet nor Arrow's JSON reader promise valid UTF-8 in strings; Python would fail much later."""
    for name in TEXT_COLUMNS:
        if name not in table.column_names:
            continue
        col = table.column(name)
        try:
            col.validate(full=True)
        except pa.ArrowInvalid:
            if sf.builder == "json" and os.path.isfile(sf.path):
                line, why = _first_bad_json_line(sf.path)
                if line is not None:
                    raise SourceError(f"{sf.path}, line {line}: {why}; fix or remove that line and ingest again") from None
            bad = next((i for i in range(len(col)) if not _valid(col.slice(i, 1))), 0)
            raise SourceError(
                f"{sf.path}, row {rows_before + bad} (counting from 0): column {name!r} holds text that is not "
                f"valid UTF-8; re-encode the file as UTF-8 or leave it out of SOURCE"
            ) from None


def _valid(col) -> bool:
    try:
        col.validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


def _read_error(sf: SourceFile, rows_before: int, exc: Exception) -> str:
    kind = "Parquet" if sf.builder == "parquet" else "JSON Lines"
    where = f"{sf.path}"
    if sf.builder == "json" and os.path.isfile(sf.path):
        line, why = _first_bad_json_line(sf.path)
        if line is None:
            line, why = _first_mistyped_json_line(sf.path, sf.config)
        if line is not None:
            return f"{where}, line {line}: {why}; fix or remove that line and ingest again"
    cause = first_line(exc)
    return (
        f"{where}: cannot be read as {kind} after {rows_before} rows ({cause}); "
        f"check that the file is complete and really {kind}, or leave it out of SOURCE"
    )


def _first_bad_json_line(path: str) -> tuple[int | None, str]:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, f"invalid UTF-8 at byte {exc.start} of the line"
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except ValueError as exc:
                return number, f"invalid JSON ({exc})"
            if not isinstance(value, dict):
                return number, f"expected a JSON object per line, got {type(value).__name__}"
            try:
                json.dumps(value, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                return number, "a string holds a lone UTF-16 surrogate escape (such as \\ud800), which is not text"
    return None, ""


_JSON_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array",
                    dict: "an object", type(None): "null"}
_JSON_TYPES_ALLOWED = {
    "string": lambda v: v is None or isinstance(v, str),
    "integer or string": lambda v: v is None or isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)),
    "list<string>": lambda v: v is None or (isinstance(v, list) and all(x is None or isinstance(x, str) for x in v)),
    "list<list<int>>": lambda v: v is None or (isinstance(v, list) and all(
        x is None or (isinstance(x, list) and all(y is None or (isinstance(y, int) and not isinstance(y, bool))
                                                  for y in x)) for x in v)),
}


def _json_type(value) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _first_mistyped_json_line(path: str, config: str) -> tuple[int | None, str]:
    """The first line whose value in a known column has a type the column does not take, or a type
    other than the column's earlier lines (Arrow then gives the column a type like extension<arrow.json>)."""
    expected = {**expected_columns(config), **OPTIONAL_COLUMNS}
    first_seen: dict[str, tuple[int, str]] = {}
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                value = json.loads(raw)
            except ValueError:
                return None, ""  # not a type problem: _first_bad_json_line reports it
            if not isinstance(value, dict):
                return None, ""
            for name, wanted in expected.items():
                if name not in value or value[name] is None:
                    continue
                got = _json_type(value[name])
                if not _JSON_TYPES_ALLOWED[wanted](value[name]):
                    return number, f"column {name!r} holds {got}; expected {wanted}"
                earlier = first_seen.setdefault(name, (number, got))
                if earlier[1] != got:
                    return number, (f"column {name!r} holds {got} where line {earlier[0]} holds {earlier[1]}; "
                                    f"use one type for the column in every line")
    return None, ""
