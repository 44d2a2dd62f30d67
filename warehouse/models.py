"""Model files: discovery, header parsing, dependencies and fingerprints.

A model is one file `models/NAME.sql`: a header comment holding YAML, then one
SELECT (see warehouse.md, "The model engine")::

    /*
    name: block_pairs
    version: 1
    kind: incremental      # view | table | incremental (a table kept up to date trace by trace)
    grain: [trace_id, block_idx]
    batch_traces: 20000    # tables: built this many traces at a time; incremental models need it
    trace_inputs: >        # incremental models: what a trace's rows depend on (default: its run, see Model)
      SELECT trace_id, run_id FROM traces
    on_request: false      # true: a plain `build` leaves it out until it is selected once (planner)
    description: Each block with its memento.
    columns:               # every output column with its meaning (docs/models.md is made from them)
      trace_id: the trace
      block_idx: 0-based position of the block in its trace
    audits:
      - not_null: [block_chars, memento_chars]
      - accepted_range: {column: ratio_chars, min: 0}
    */
    SELECT ...

The header may also be written as consecutive `--` comment lines. Dependencies
are the tables the SELECT (and its custom audits) reads, found by sqlglot; CTE
names are not dependencies. Nothing here touches a database.
"""

from __future__ import annotations

import functools
import hashlib
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
import yaml
from sqlglot import exp

from mementos.foundation.errors import ModelError, first_line
from mementos.foundation.resources import resource_dir
from mementos.warehouse.audits import Audit, parse_audits

MODELS_DIR = resource_dir("models")  # the bundled models
DIALECT = "duckdb"
# libyaml's safe loader where PyYAML was built with it: the same documents, read several times faster
# (every build, report and export reads every model's header).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KINDS = ("table", "view", "incremental")
HEADER_KEYS = {"name", "version", "kind", "grain", "batch_traces", "trace_inputs", "on_request", "description", "columns",
               "audits"}
REQUIRED_KEYS = ("name", "version", "kind", "grain", "description")
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
# The engine's working tables: NAME is built as __build_NAME (materializations.aside_name), batches read
# __batch_traces, exports fill __export_*. A model called __build_zz beside zz would be dropped as zz's
# leftover, or swapped over it.
RESERVED_PREFIX = "__"


@dataclass(frozen=True)  # load_model hands the same Model to every caller
class Model:
    name: str
    version: str
    kind: str  # 'table' | 'view' | 'incremental'
    grain: list[str]
    description: str
    audits: list[Audit]
    sql: str  # the body: one SELECT, as written
    path: Path
    refs: set[str] = field(default_factory=set)  # tables the body and custom audits read (lower case)
    normalized_sql: str = ""
    batch_traces: int | None = None  # built this many traces at a time (warehouse/batches.py)
    columns: dict[str, str] = field(default_factory=dict)  # output column -> its meaning, as the header gives them
    body_refs: set[str] = field(default_factory=set)  # tables the body alone reads
    trace_inputs: str | None = None
    """An incremental model's SELECT of trace_id and run_id (first) and whatever else each trace's rows
    depend on beyond that trace's own rows (e.g. the row it is linked to): the engine recomputes a trace
    whenever its row here changes, so such a model may read models rebuilt whole. None: the trace's
    (trace_id, run_id), or a full row's (full_trace_id, run_id) (materializations.trace_inputs)."""
    on_request: bool = False
    """Built only once selected by name (an index few users need, such as the explorer's search words); from
    then on a plain `build` keeps it up to date like any other model (planner.default_selection)."""

    @property
    def relation(self) -> str:
        """What it is in the warehouse: 'view', or 'table' (an incremental model is a table)."""
        return "view" if self.kind == "view" else "table"

    @property
    def where(self) -> str:
        return _display(self.path)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def split_header(text: str, where: str) -> tuple[str, str]:
    """(header text without comment markers, body) of a model file."""
    stripped = text.lstrip()
    if stripped.startswith("/*"):
        end = stripped.find("*/")
        if end == -1:
            raise ModelError(f"{where}: the header comment /* ... is never closed with */")
        first, _, rest = stripped[2:end].partition("\n")
        return first.strip() + "\n" + textwrap.dedent(rest), stripped[end + 2:]
    if stripped.startswith("--"):
        lines = stripped.splitlines(keepends=True)
        header = []
        i = 0
        while i < len(lines) and lines[i].lstrip().startswith("--"):
            header.append(lines[i].lstrip()[2:])
            i += 1
        return textwrap.dedent("".join(header)), "".join(lines[i:])
    raise ModelError(
        f"{where}: a model file starts with a header comment (/* YAML */ or -- lines) giving "
        f"name, version, kind, grain, description and audits"
    )


def _as_list(value, key: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ModelError(f"{where}: `{key}` must be a non-empty list of column names")
    return [v.lower() for v in value]


def parse_header(header_text: str, where: str, stem: str) -> dict:
    try:
        header = yaml.load(header_text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise ModelError(f"{where}: the header is not valid YAML ({first_line(exc)})") from None
    if not isinstance(header, dict):
        raise ModelError(f"{where}: the header must be YAML `key: value` lines")
    unknown = sorted(set(header) - HEADER_KEYS)
    if unknown:
        raise ModelError(f"{where}: unknown header key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(HEADER_KEYS))}")
    missing = [k for k in REQUIRED_KEYS if header.get(k) in (None, "")]
    if missing:
        raise ModelError(f"{where}: the header is missing {', '.join(missing)}")
    name = str(header["name"])
    if name != stem:
        raise ModelError(f"{where}: header name {name!r} differs from the file name; they must be equal")
    if not NAME_RE.match(name):
        raise ModelError(f"{where}: model name {name!r} must be lower-case letters, digits and _")
    if name.startswith(RESERVED_PREFIX):
        raise ModelError(f"{where}: model name {name!r} starts with {RESERVED_PREFIX}, which is reserved for the "
                         f"engine's working tables (it builds NAME as __build_NAME); rename the file and its name")
    if header["kind"] not in KINDS:
        raise ModelError(f"{where}: kind must be table, view or incremental, not {header['kind']!r}")
    header["version"] = str(header["version"])
    header["grain"] = _as_list(header["grain"], "grain", where)
    batch = header.get("batch_traces")
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ModelError(f"{where}: batch_traces must be a whole number of traces (e.g. 20000), not {batch!r}")
        if header["kind"] == "view":
            raise ModelError(f"{where}: batch_traces is for tables; a view is not built, so it has nothing to batch")
        if "trace_id" not in header["grain"] and "full_trace_id" not in header["grain"]:
            raise ModelError(f"{where}: batch_traces needs trace_id (or full_trace_id) in the grain: each row must "
                             f"belong to one trace (or one full row)")
    elif header["kind"] == "incremental":
        raise ModelError(f"{where}: kind incremental needs batch_traces (e.g. `batch_traces: 20000`): an incremental "
                         f"model is a batched model, each trace's rows computed from that trace's rows alone")
    if header.get("trace_inputs") is not None and header["kind"] != "incremental":
        raise ModelError(f"{where}: trace_inputs is for kind incremental: it says when a trace's rows are recomputed")
    if not isinstance(header.get("on_request", False), bool):
        raise ModelError(f"{where}: on_request must be true or false, not {header['on_request']!r}")
    header["description"] = " ".join(str(header["description"]).split())
    header["columns"] = _columns(header.get("columns"), header["grain"], where)
    return header


def _columns(value, grain: list[str], where: str) -> dict[str, str]:
    """The header's `columns:` (optional for a model of yours; every bundled model has it, tests/test_docs.py
    checks it against the built relation): a mapping of lower-case column names to one line of meaning that
    names every grain column."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise ModelError(f"{where}: `columns` must map each output column to its meaning "
                         f"(`columns:` then lines `  name: what it holds`)")
    columns = {}
    for name, meaning in value.items():
        if not isinstance(name, str) or not NAME_RE.match(name.lower()):
            raise ModelError(f"{where}: `columns`: {name!r} is not a column name (letters, digits and _)")
        if not isinstance(meaning, str) or not meaning.strip():
            raise ModelError(f"{where}: `columns`: {name} needs its meaning as text, e.g. `{name}: what it holds`")
        columns[name.lower()] = " ".join(meaning.split())
    undocumented = [g for g in grain if g not in columns]
    if undocumented:
        raise ModelError(f"{where}: `columns` lacks the grain column(s) {', '.join(undocumented)}; "
                         f"list every output column")
    return columns


def parse_body(sql: str, where: str) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        at = f" (line {first.get('line')}, column {first.get('col')})" if first.get("line") else ""
        desc = first.get("description") or first_line(exc)
        raise ModelError(f"{where}: the SQL does not parse{at}: {desc}") from None
    if len(statements) != 1:
        raise ModelError(f"{where}: the body must be exactly one SELECT; found {len(statements)} statements")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise ModelError(f"{where}: the body must be a SELECT; found {tree.key.upper()}")
    return tree


def table_refs(tree: exp.Expression) -> set[str]:
    """Names of the tables a statement reads; CTE names and table functions are not tables."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    refs = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # read_parquet(...), unnest(...) and other table functions
        name = table.name.lower()
        if table.db or table.catalog:
            if table.db.lower() not in ("main", "") or table.catalog:
                refs.add(".".join(p for p in (table.catalog, table.db, name) if p).lower())
                continue
        elif name in ctes:
            continue
        refs.add(name)
    return refs


def normalize_sql(tree: exp.Expression) -> str:
    """The statement as sqlglot prints it: layout, comments and keyword case do not matter."""
    return tree.sql(dialect=DIALECT, normalize=True, comments=False)


def load_model(path: Path) -> Model:
    where = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{where}: cannot be read ({exc})") from None
    return _parsed_model(path, where, text)


# Every build, report, export and explorer page loads the whole project, and parsing the SQL with sqlglot
# is most of a small build's time: a file's Model is made once per process for each text it has had.
@functools.lru_cache(maxsize=1024)
def _parsed_model(path: Path, where: str, text: str) -> Model:
    header_text, body = split_header(text, where)
    header = parse_header(header_text, where, path.stem)
    tree = parse_body(body, where)
    audits = parse_audits(header.get("audits"), where)
    body_refs = table_refs(tree)
    refs = set(body_refs)
    for audit in audits:
        if audit.sql is not None:
            refs |= audit_refs(audit, where)
    trace_inputs = header.get("trace_inputs")
    if trace_inputs is not None:
        trace_inputs = " ".join(str(trace_inputs).split())
        refs |= table_refs(parse_body(trace_inputs, f"{where}: trace_inputs"))
    return Model(
        name=header["name"], version=header["version"], kind=header["kind"], grain=header["grain"],
        description=header["description"], audits=audits, sql=body.strip().rstrip(";").strip(),
        path=path, refs=refs, normalized_sql=normalize_sql(tree),
        batch_traces=header.get("batch_traces"), body_refs=body_refs, columns=header["columns"],
        trace_inputs=trace_inputs, on_request=header.get("on_request", False),
    )


def audit_refs(audit: Audit, where: str) -> set[str]:
    """Tables a custom audit reads besides the model itself ({this})."""
    try:
        tree = sqlglot.parse_one(audit.sql.replace("{this}", "__this__"), read=DIALECT)
    except sqlglot.errors.ParseError as exc:
        raise ModelError(f"{where}: audit {audit.name!r}: the SQL does not parse ({first_line(exc)})") from None
    return table_refs(tree) - {"__this__"}


def model_dirs(user: str | Path | None = None, bundled: bool = True) -> list[Path] | None:
    """The model directories a command reads, in the order `discover` layers them: the bundled
    models, then `user`'s (`--models DIR` / $MEMENTOS_MODELS), whose models replace bundled ones
    of the same name; with bundled=False (`--no-bundled-models`) `user`'s alone. None: the bundled
    models only (discover's default)."""
    if user is None:
        if not bundled:
            raise ModelError("--no-bundled-models needs a models directory of your own: pass --models DIR "
                             "or set MEMENTOS_MODELS")
        return None
    user = Path(user)
    if not user.is_dir():
        raise ModelError(f"{user}: no such models directory (from --models or MEMENTOS_MODELS); give a "
                         f"directory of NAME.sql model files (README.md, \"Your own models\")")
    return [MODELS_DIR, user] if bundled else [user]


def discover(models_dir: str | Path | list[str | Path] | None = None) -> dict[str, Model]:
    """Every model in `models_dir` (default: the bundled models/), by name. A list of directories
    is read in order, a model replacing one of the same name from an earlier directory."""
    directories = [Path(d) for d in models_dir] if isinstance(models_dir, (list, tuple)) else \
        [Path(models_dir) if models_dir is not None else MODELS_DIR]
    models = {}
    for directory in directories:
        if not directory.is_dir():
            raise ModelError(f"{directory}: no such models directory")
        for path in sorted(directory.glob("*.sql")):
            model = load_model(path)
            models[model.name] = model
    return models


def fingerprint(model: Model, parent_fingerprints: dict[str, str]) -> str:
    """Hash of what makes the model's table what it is: its normalised SQL, kind and version,
    its grain and audits (an edited audit must run again), and the fingerprints of the
    models it reads (base tables have none)."""
    h = hashlib.sha256()
    checks = [",".join(model.grain)] + [" ".join(a.query.split()) for a in model.audits]
    checks += [model.trace_inputs] if model.trace_inputs else []  # new inputs: every trace recomputed
    for part in (model.name, model.version, model.kind, model.normalized_sql, *checks):
        h.update(part.encode() + b"\x00")
    for parent in sorted(parent_fingerprints):
        h.update(f"{parent}={parent_fingerprints[parent]}".encode() + b"\x00")
    return h.hexdigest()[:16]
