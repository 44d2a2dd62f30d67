"""Build the SQL models on Apache Spark: the same models/*.sql, transpiled, over the same Parquet.

`build(db, master="local[*]")` is `mementos build --engine spark`. It

1. transpiles every model (and every audit) from DuckDB SQL to Spark SQL with
   sqlglot (`transpile_model`); a model that does not transpile fails with a
   message naming the model and the function, and its downstream models are
   skipped;
2. registers the stored tables as Spark temp views over the Parquet files ingest
   wrote, `PATH.data/<table>/<dataset-slug>/<run_id>/part-*.parquet`, with the
   schemas of sql/schema.sql, and the six base tables as views over them from
   sql/views.spark.sql (`register_base_tables`);
3. builds the models in the engine's dependency order (`engine.load_project`),
   each written aside to `PATH.data/models/.building-<model>-<id>/`, audited with
   the model's audits (the engine's audit SQL, transpiled), then renamed into
   place as `PATH.data/models/<model>/`, with `_build.json` beside its parts.
   A failing audit deletes the new files and keeps the old directory.

Every model, table or view, is materialised as Parquet on Spark (a temp view
would end with the session). There is no freshness check: every selected model
is rebuilt. File operations go through Hadoop's FileSystem API, so the Parquet
root can be a local path (made a file: URI) or any URI the cluster reads
(hdfs://, s3a://). warehouse.md (Spark) has the details.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

from foundation import catalog, storage
from foundation.errors import TranspileError, WarehouseError
from foundation.layout import MODELS_SUBDIR
from foundation.storage import BASE_TABLES
from warehouse.guard import require_warehouse
from warehouse.audits import SHOW_ROWS, Audit, AuditFailure, quote, unique
from warehouse.engine import BuildReport, ModelResult, Project, load_project, parse_select
from warehouse.models import DIALECT, Model
from warehouse.spark_functions import SPARK_FUNCTIONS

TARGET = "spark"
MANIFEST = "_build.json"  # beside each model's parts; Spark and DuckDB skip files starting with _
PARQUET_TABLES = tuple(catalog.STORES)  # the stored tables' directories; ingest_runs lives only in DuckDB
THIS = "__this__"  # stands for {this} while an audit is transpiled
DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
}
_CALL_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")


# ---------------------------------------------------------------------------
# Transpile


def _fix_percentiles(tree: exp.Expression, model: str, where: str) -> exp.Expression:
    """sqlglot 30 mistranslates DuckDB's exact quantiles for Spark: quantile_cont(x, p) becomes
    PERCENTILE_CONT(x, p), which Spark rejects, and percentile_cont(p) WITHIN GROUP (ORDER BY x)
    becomes PERCENTILE_APPROX(x, p), which is approximate. Both mean Spark's exact PERCENTILE(x, p)
    (linear interpolation between the two nearest ranks, as DuckDB's quantile_cont)."""

    def fix(node: exp.Expression) -> exp.Expression:
        # quantile_cont(x, [p, ...])[i]: DuckDB's lists count from 1, Spark's arrays from 0, and
        # sqlglot shifts the index only when it knows the indexed thing is a list
        if (isinstance(node, exp.Bracket) and isinstance(node.this, exp.PercentileCont)
                and isinstance(node.this.args.get("expression"), exp.Array) and len(node.expressions) == 1
                and node.expressions[0].is_int):
            quantile = exp.Quantile(this=node.this.this.copy(), quantile=node.this.expression.copy())
            return exp.Bracket(this=quantile, expressions=[exp.Literal.number(int(node.expressions[0].name) - 1)])
        if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont):
            order = node.expression.expressions if isinstance(node.expression, exp.Order) else []
            if len(order) == 1 and not order[0].args.get("desc") and node.this.args.get("expression") is None:
                return exp.Quantile(this=order[0].this.copy(), quantile=node.this.this.copy())
        if (isinstance(node, exp.PercentileCont) and node.args.get("expression") is not None
                and not isinstance(node.parent, exp.WithinGroup)):
            return exp.Quantile(this=node.this.copy(), quantile=node.expression.copy())
        if isinstance(node, exp.PercentileDisc) or (
                isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileDisc)):
            raise TranspileError(model, where, "quantile_disc",
                                 "function quantile_disc / percentile_disc: sqlglot writes it as a call Spark "
                                 "rejects or as the approximate percentile_approx; use quantile_cont, or see "
                                 "warehouse.md (Spark)")
        return node

    return tree.transform(fix)


def _fix_list_lengths(tree: exp.Expression, schema) -> exp.Expression:
    """DuckDB's len(x) / length(x) measure strings and lists alike; Spark's length() takes strings
    only and size() lists. sqlglot cannot tell them apart without types, so when the schemas of the
    tables read are known (at build time, from Spark's views), annotate a qualified copy and turn
    each length of a list into size(). Without schemas, or if sqlglot cannot qualify the query,
    the tree is returned as it is (Spark then names the function if it rejects it)."""
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify

    lengths = list(tree.find_all(exp.Length))
    if not lengths or schema is None:
        return tree
    try:
        typed = annotate_types(qualify(tree.copy(), schema=schema, dialect=DIALECT, validate_qualify_columns=False),
                               schema=schema, dialect=DIALECT)
    except Exception:  # sqlglot.errors.OptimizeError and friends: leave the SQL as written
        return tree
    typed_lengths = list(typed.find_all(exp.Length))
    if len(typed_lengths) != len(lengths):
        return tree
    for node, typed_node in zip(lengths, typed_lengths):
        arg_type = typed_node.this.type
        if arg_type is not None and arg_type.is_type(exp.DataType.Type.ARRAY):
            node.replace(exp.ArraySize(this=node.this.copy()))
    return tree


def _fix_lists(tree: exp.Expression, model: str, where: str) -> exp.Expression:
    """DuckDB's list(x ORDER BY k) / array_agg: sqlglot writes Spark's COLLECT_LIST(x) and silently
    drops the ORDER BY; COLLECT_LIST also skips NULLs, and gives [] where DuckDB gives NULL (a
    FILTER that keeps no row). Each becomes
        CASE WHEN SIZE(c) = 0 THEN NULL ELSE TRANSFORM(ARRAY_SORT(c, cmp), e -> e.v) END
    with c = COLLECT_LIST(STRUCT(k0, ..., x AS v)) [FILTER (...)]: the struct is never NULL, so
    NULL values are kept, and cmp orders by the keys as DuckDB does (ASC/DESC, NULLS FIRST/LAST)."""
    for agg in list(tree.find_all(exp.ArrayAgg)):
        if isinstance(agg.this, exp.Distinct):
            continue  # list(DISTINCT x): COLLECT_SET semantics aside, left to sqlglot
        target = agg.parent if isinstance(agg.parent, exp.Filter) and agg.arg_key == "this" else agg
        order = agg.this if isinstance(agg.this, exp.Order) else None
        value = order.this if order is not None else agg.this
        keys = list(order.expressions) if order is not None else []
        fields = [f"{k.this.sql(dialect=TARGET)} AS k{i}" for i, k in enumerate(keys)]
        fields.append(f"{value.sql(dialect=TARGET)} AS v")
        collected = f"COLLECT_LIST(STRUCT({', '.join(fields)}))"
        if target is not agg:
            collected += f" FILTER(WHERE {target.expression.this.sql(dialect=TARGET)})"
        whens = []
        for i, k in enumerate(keys):
            less = ">" if k.args.get("desc") else "<"
            nulls = "IS NULL" if k.args.get("nulls_first") else "IS NOT NULL"
            other = "IS NOT NULL" if k.args.get("nulls_first") else "IS NULL"
            for a, b, sign in (("l", "r", -1), ("r", "l", 1)):
                whens.append(f"WHEN ({a}.k{i} {nulls} AND {b}.k{i} {other}) OR {a}.k{i} {less} {b}.k{i} THEN {sign}")
        items = f"ARRAY_SORT({collected}, (l, r) -> CASE {' '.join(whens)} ELSE 0 END)" if keys else collected
        replacement = f"CASE WHEN SIZE({collected}) = 0 THEN NULL ELSE TRANSFORM({items}, e -> e.v) END"
        try:
            target.replace(sqlglot.parse_one(replacement, read=TARGET))
        except ParseError as exc:
            raise TranspileError(model, where, "list", f"function list/array_agg: cannot rewrite it for Spark "
                                 f"({str(exc).splitlines()[0]})") from None
    return tree


def _check_ordered_aggregates(tree: exp.Expression, model: str, where: str) -> None:
    """An aggregate's ORDER BY must survive the transpile (sqlglot drops some silently)."""
    for node in tree.find_all(exp.AggFunc):
        if isinstance(node.this, exp.Order) and "WITHIN GROUP" not in node.sql(dialect=TARGET).upper():
            name = _call_name(node.sql(dialect=DIALECT)) or node.key
            raise TranspileError(model, where, name,
                                 f"function {name}(... ORDER BY ...): Spark orders inside an aggregate only with "
                                 f"WITHIN GROUP, and sqlglot does not write it so; see warehouse.md (Spark)")


def _call_name(sql: str) -> str | None:
    m = _CALL_RE.match(sql)
    return m.group(1).lower() if m else None


def _check_functions(tree: exp.Expression, model: str, where: str) -> None:
    """Every function call, as sqlglot writes it for Spark, must be a Spark built-in."""
    for node in tree.find_all(exp.Func):
        if isinstance(node, exp.Anonymous):
            source = spark = node.name.lower()
        else:
            try:
                spark = _call_name(node.sql(dialect=TARGET))
            except UnsupportedError:
                continue  # reported with its own message when the whole statement is generated
            if spark is None or spark in SPARK_FUNCTIONS:
                continue
            source = _call_name(node.sql(dialect=DIALECT)) or node.key
        if spark is not None and spark not in SPARK_FUNCTIONS:
            how = ("sqlglot does not know it and passes it through unchanged" if source == spark
                   else f"sqlglot writes it as {spark}(...)")
            raise TranspileError(model, where, source,
                                 f"function {source}() has no Spark equivalent ({how}, and Spark has no function "
                                 f"{spark}); rewrite it in SQL both engines accept (warehouse.md (Spark))")


def transpile_sql(sql: str, model: str, where: str, schema=None) -> str:
    """One DuckDB statement as Spark SQL; raises TranspileError naming the model and the function.
    `schema` (a sqlglot MappingSchema of the tables read), when given, lets list lengths be told
    from string lengths."""
    try:
        tree = sqlglot.parse_one(sql, read=DIALECT)
    except ParseError as exc:
        raise TranspileError(model, where, None, f"the SQL does not parse ({str(exc).splitlines()[0]})") from None
    tree = _fix_percentiles(tree, model, where)
    tree = _fix_list_lengths(tree, schema)
    tree = _fix_lists(tree, model, where)
    _check_ordered_aggregates(tree, model, where)
    _check_functions(tree, model, where)
    try:
        return tree.sql(dialect=TARGET, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        detail = str(exc).strip().splitlines()[0]
        func = re.search(r"expression '(\w+)'", detail)
        raise TranspileError(model, where, func.group(1) if func else None,
                             f"sqlglot cannot write it for Spark: {detail}") from None


@dataclass
class SparkModel:
    name: str
    sql: str  # the SELECT in Spark SQL
    audits: list[Audit]  # the grain's unique audit and the header's audits, queries in Spark SQL ({this} kept)
    variant: bool = False  # True: the file's own Spark SQL (a `/* spark: ... */` block), not transpiled


# A model may carry its own Spark SQL after its DuckDB SELECT, in a comment that DuckDB and the
# fingerprint ignore:   /* spark:
#                       SELECT ... in Spark SQL ...
#                       */
_VARIANT_RE = re.compile(r"/\*\s*spark:[ \t]*\n(.*?)\*/", re.DOTALL)


def spark_variant(model: Model) -> str | None:
    """The model's explicit Spark SQL (see _VARIANT_RE), or None when it is transpiled."""
    found = _VARIANT_RE.findall(model.sql)
    if len(found) > 1:
        raise TranspileError(model.name, model.where, None, "more than one /* spark: ... */ block")
    if not found:
        return None
    return found[0].strip().rstrip(";").strip() or None


def transpile_model(model: Model, tables: dict | None = None, this: dict | None = None) -> SparkModel:
    """The model's SELECT and audits in Spark SQL. Raises TranspileError. `tables`: the columns and
    Spark types of the tables the model reads; `this`: the model's own (for its audits); both as
    `spark_schema` gives them, known only while building."""
    variant = spark_variant(model)
    schema = _mapping(tables) if tables is not None else None
    sql = variant if variant is not None else transpile_sql(model.sql, model.name, model.where, schema)
    audit_schema = _mapping({**tables, THIS: this}) if tables is not None and this is not None else None
    audits = []
    for audit in [unique(model.grain)] + model.audits:
        query = transpile_sql(audit.query.replace("{this}", THIS), model.name, f"{model.where}: audit {audit.name}",
                              audit_schema)
        audits.append(Audit(audit.name, query.replace(THIS, "{this}"), audit.sql))
    return SparkModel(model.name, sql, audits, variant is not None)


def spark_schema(spark, tables) -> dict[str, dict[str, str]]:
    """{table: {column: Spark type}} of registered views, for transpile_model."""
    out = {}
    for table in tables:
        if spark.catalog.tableExists(table):
            out[table] = {f.name: f.dataType.simpleString() for f in spark.table(table).schema.fields}
    return out


def _mapping(tables: dict):
    from sqlglot.schema import MappingSchema

    return MappingSchema(tables, dialect=TARGET)


def transpile_project(project: Project) -> tuple[dict[str, SparkModel], dict[str, TranspileError]]:
    done, failed = {}, {}
    for name in project.order:
        try:
            done[name] = transpile_model(project.models[name])
        except TranspileError as exc:
            failed[name] = exc
    return done, failed


def transpile_report(db: str | Path | None = None, models_dir: str | Path | None = None) -> str:
    """`mementos models --engine spark`: which models transpile, and the last Spark build of each."""
    project = load_project(models_dir)
    done, failed = transpile_project(project)
    root = _local_root(db) if db is not None else None
    header = ("model", "kind", "spark", "rows", "last built on spark")
    rows = []
    for name in project.order:
        manifest = _read_local_manifest(root, name) if root is not None else None
        rows.append((name, project.models[name].kind,
                     ("spark variant" if done[name].variant else "transpiles") if name in done
                     else f"NO: {failed[name].function or 'see below'}",
                     f"{manifest['rows']:,}" if manifest else "-",
                     manifest["built_at"][:19].replace("T", " ") if manifest else "-"))
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(str(v).rjust(w) if c == 3 else str(v).ljust(w) for c, (v, w) in enumerate(zip(r, widths))).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{len(done)} of {len(project.order)} models transpile to Spark SQL (sqlglot {sqlglot.__version__}, "
                 f"checked against the functions of Spark {_spark_version()})")
    lines.extend(f"  {exc}" for exc in failed.values())
    return "\n".join(lines)


def _spark_version() -> str:
    from warehouse.spark_functions import SPARK_VERSION
    return SPARK_VERSION


# ---------------------------------------------------------------------------
# Where the data is


@dataclass
class Layout:
    root: str  # the Parquet root as a URI (file:///.../PATH.data, hdfs://..., s3a://...)
    db: Path | None  # the DuckDB file, when there is one: it says which run of each dataset is committed

    @property
    def models_root(self) -> str:
        return f"{self.root}/{MODELS_SUBDIR}"

    def model_dir(self, name: str) -> str:
        return f"{self.models_root}/{name}"


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
        raise WarehouseError(f"no warehouse at {path}; create one with `mementos ingest SOURCE --db {path}` first")
    require_warehouse(path)
    root = storage.data_dir(path)
    if not root.is_dir():
        raise WarehouseError(f"the warehouse {path} has no Parquet directory {root}; nothing was ingested yet")
    return Layout(root.resolve().as_uri(), path)


def _local_root(db: str | Path) -> Path | None:
    text = str(db)
    if text.startswith("file:"):
        from urllib.parse import urlparse
        return Path(urlparse(text).path)
    if _has_scheme(text):
        return None
    path = Path(text)
    return path if path.is_dir() else storage.data_dir(path)


def _read_local_manifest(root: Path | None, name: str) -> dict | None:
    try:
        return json.loads((root / MODELS_SUBDIR / name / MANIFEST).read_text())
    except (OSError, ValueError, TypeError):
        return None


def committed_runs(db: Path) -> dict[str, str]:
    """dataset -> its committed run, from the DuckDB file's ingest_runs."""
    from foundation.catalog import current_runs

    with storage.connect(db, read_only=True) as con:
        try:
            return current_runs(con)
        except Exception as exc:  # no ingest_runs table: nothing ingested
            raise WarehouseError(f"the warehouse {db} has no ingest runs: {str(exc).splitlines()[0]}") from None


# ---------------------------------------------------------------------------
# Spark


def spark_session(master: str = "local[*]", conf: dict[str, str] | None = None, app_name: str = "mementos build"):
    """A SparkSession on `master` (local[*], local[2], spark://host:7077, yarn, k8s://...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            from pyspark.sql import SparkSession
    except ImportError:
        raise WarehouseError("the Spark engine needs pyspark: pip install '.[spark]' (and Java 17 or newer)") from None
    # pyspark logs every analysis error with a stack trace before raising it; the build reports it itself
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            spark = builder.getOrCreate()
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WarehouseError(f"cannot start Spark on {master}: {text} "
                             f"(pyspark {_installed_pyspark()} needs Java 17 or newer: `java -version`)") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _installed_pyspark() -> str:
    try:
        import pyspark
        return pyspark.__version__
    except ImportError:
        return "?"


class _FileSystem:
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

    def write_text(self, path: str, text: str) -> None:
        out = self.fs.create(self._path(path), True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()


def _arrow_to_spark_schema(schema):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pyspark.sql.pandas.types import from_arrow_schema
        return from_arrow_schema(schema)


def base_table_dirs(fs: _FileSystem, layout: Layout) -> dict[str, list[str]]:
    """The run directories Spark reads for every base table: `<root>/<table>/<dataset-slug>/<run_id>`.

    With the DuckDB file, exactly the committed run of each dataset (ingest_runs); with a bare
    Parquet root, the one run directory of each dataset, and an error when an interrupted
    ingest left a second one.
    """
    from foundation.layout import dataset_slug

    dirs: dict[str, list[str]] = {}
    if layout.db is not None:
        runs = {dataset_slug(d): r for d, r in committed_runs(layout.db).items()}
        for table in PARQUET_TABLES:
            candidates = [f"{layout.root}/{table}/{slug}/{run}" for slug, run in sorted(runs.items())]
            dirs[table] = [d for d in candidates if fs.has_parquet(d)]
        return dirs
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


def register_base_tables(spark, layout: Layout, table_dirs: dict[str, list[str]]) -> dict[str, int]:
    """Temp views over the stored tables' run directories (`base_table_dirs`), with sql/schema.sql's
    types, and the base views over them (sql/views.spark.sql); returns the directories read per table."""
    schemas = catalog.store_schemas()
    registered = {}
    for directory, dirs in table_dirs.items():
        schema = _arrow_to_spark_schema(schemas[directory])
        if dirs:
            df = spark.read.schema(schema).parquet(*dirs)
        else:
            df = spark.createDataFrame([], schema)
        df.createOrReplaceTempView(catalog.STORES[directory])
        registered[directory] = len(dirs)
    linked = catalog.LINKED_FULL_TRACES.format(min_by="min_by", stored_traces="stored_traces",
                                               stored_full_traces="stored_full_traces")
    spark.sql(f"SELECT * FROM {linked}").createOrReplaceTempView("linked_full_traces")
    for name, sql in catalog.view_templates("spark").items():
        spark.sql(sql).createOrReplaceTempView(name)
    if layout.db is not None:  # ingest_runs is small and lives only in DuckDB: copy it in for models that read it
        with storage.connect(layout.db, read_only=True) as con:
            table = con.sql("SELECT * FROM ingest_runs").to_arrow_table()
        spark.createDataFrame(table.to_pylist(), _arrow_to_spark_schema(table.schema)).createOrReplaceTempView(
            "ingest_runs")
    return registered


def _data_version(dirs: dict[str, list[str]]) -> str:
    """Identity of the base tables' contents: the run directories read."""
    runs = sorted({"/".join(d.rsplit("/", 2)[-2:]) for ds in dirs.values() for d in ds})
    return sha256(repr(runs).encode()).hexdigest()[:16] if runs else "empty"


# ---------------------------------------------------------------------------
# Build


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _spark_error(exc: BaseException, model: Model, what: str = "") -> str:
    """A Spark error as one line, naming the function when Spark says which one it lacks or rejects."""
    text = _first_line(exc)
    condition = getattr(exc, "getCondition", lambda: None)() or ""
    func = None
    if condition.startswith(("UNRESOLVED_ROUTINE", "WRONG_NUM_ARGS")):
        func = re.search(r"`([^`]+)`", text)
    elif condition.startswith("DATATYPE_MISMATCH"):  # Cannot resolve "length(blocks)" due to data type mismatch
        func = re.search(r'resolve "(\w+)\(', text)
    if func:
        return (f"{model.where}: model {model.name}{what} does not run on Spark: "
                f"function {func.group(1).lower()}: {text}")
    return f"{model.where}: model {model.name}{what} fails on Spark: {text}"


def _recover(fs: _FileSystem, layout: Layout) -> None:
    """Undo what a killed build left in PATH.data/models: `.building-*` (never swapped in) are
    deleted; `.old-<model>-*` are restored when the model's directory is missing, else deleted."""
    for name in fs.list_dirs(layout.models_root):
        path = f"{layout.models_root}/{name}"
        if name.startswith(".building-"):
            fs.delete(path)
        elif name.startswith(".old-"):
            model = name[len(".old-"):].rsplit("-", 1)[0]
            if fs.exists(layout.model_dir(model)):
                fs.delete(path)
            else:
                fs.rename(path, layout.model_dir(model))


@dataclass
class _Context:
    spark: object
    fs: _FileSystem
    layout: Layout
    master: str
    data_version: str
    build_id: str
    project: Project
    spark_models: dict[str, SparkModel] = field(default_factory=dict)


def build(db: str | Path, select=None, models_dir: str | Path | None = None, master: str = "local[*]",
          spark=None, conf: dict[str, str] | None = None, echo=None, parallel: int = 2) -> BuildReport:
    """Build the selected models (default: all) on Spark, in dependency order, as Parquet under
    PATH.data/models/. `spark`: an existing SparkSession to use (else one is started on `master`
    and stopped at the end). `parallel`: how many independent models are built at once.
    Returns the engine's BuildReport."""
    started = time.monotonic()
    layout = layout_for(db)
    project = load_project(models_dir)
    selected = parse_select(project, select)
    spark_models, untranspiled = transpile_project(project)
    command = "build --engine spark" + (f" --select {' '.join(select) if not isinstance(select, str) else select}"
                                        if select else "")
    report = BuildReport(str(db), [])
    with ExitStack() as stack:
        if layout.db is not None:  # ingest must not replace run directories while Spark reads them
            stack.enter_context(storage.write_lock(layout.db, command))
        if spark is None:  # ours: started here, stopped at the end
            spark = spark_session(master, conf)
            stack.callback(spark.stop)
        fs = _FileSystem(spark, layout.root)
        fs.mkdirs(layout.models_root)
        _recover(fs, layout)
        dirs = base_table_dirs(fs, layout)
        register_base_tables(spark, layout, dirs)
        ctx = _Context(spark, fs, layout, spark.sparkContext.master, _data_version(dirs),
                       datetime.now().strftime("%Y%m%dT%H%M%S.%f"), project, spark_models)
        for name in project.order:
            if name not in selected and fs.exists(layout.model_dir(name)):  # built before: downstream reads it
                spark.read.parquet(layout.model_dir(name)).createOrReplaceTempView(name)
        results = _build_in_order(ctx, selected, untranspiled, parallel, echo)
        report.results = [results[name] for name in project.order if name in results]
    report.seconds = time.monotonic() - started
    return report


def _build_in_order(ctx: _Context, selected: set[str], untranspiled: dict[str, TranspileError],
                    parallel: int, echo) -> dict[str, ModelResult]:
    """Build the selected models, each once all its selected parents are settled; up to `parallel`
    at a time (Spark runs jobs from several threads side by side: independent branches of the
    DAG, e.g. full_alignment and the export models, overlap)."""
    project, fs, layout = ctx.project, ctx.fs, ctx.layout
    results: dict[str, ModelResult] = {}
    pending = [name for name in project.order if name in selected]
    running: dict = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="spark-build") as pool:
        while pending or running:
            for name in list(pending):
                if any(p in selected and p not in results for p in project.parents[name]):
                    continue  # a parent is still to be built
                pending.remove(name)
                broken = [p for p in project.parents[name] if p in results and results[p].status in ("failed", "skipped")]
                missing = [p for p in project.parents[name] if p not in selected and not fs.exists(layout.model_dir(p))]
                if name in untranspiled:
                    results[name] = ModelResult(name, "failed", "does not transpile", error=str(untranspiled[name]))
                elif broken:
                    results[name] = ModelResult(name, "skipped", f"upstream {broken[0]} {results[broken[0]].status}")
                elif missing:
                    results[name] = ModelResult(name, "skipped", f"upstream {missing[0]} was never built on Spark; "
                                                                 f"select {missing[0]}+ or build everything")
                else:
                    if echo:
                        echo(f"  building {name} on spark ...")
                    running[pool.submit(build_model, ctx, project.models[name], "spark build")] = name
            if running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    results[running.pop(future)] = future.result()
            elif pending and not any(  # nothing running and nothing ready: cannot happen with a DAG
                    all(p not in selected or p in results for p in project.parents[n]) for n in pending):
                raise WarehouseError(f"cannot order the models {', '.join(pending)}")
    return results


def build_model(ctx: _Context, model: Model, reason: str) -> ModelResult:
    """Write one model aside, audit it, rename it into place; a failure leaves the old directory."""
    t0 = time.monotonic()
    spark, fs, layout = ctx.spark, ctx.fs, ctx.layout
    tables = spark_schema(spark, sorted(model.refs))
    token = uuid.uuid4().hex[:8]
    tmp = f"{layout.models_root}/.building-{model.name}-{token}"
    tmp_view = f"__build_{model.name}"
    result = ModelResult(model.name, "failed", reason)
    sm = ctx.spark_models[model.name]
    try:
        try:
            sm = transpile_model(model, tables)  # again, now with the types of what it reads
            df = spark.sql(sm.sql)
            df.write.option("compression", "zstd").parquet(tmp)
        except TranspileError as exc:
            result.error = str(exc)
        except Exception as exc:  # AnalysisException, execution errors (ANSI overflow, ...)
            result.error = _spark_error(exc, model)
        if result.error is None:
            spark.read.parquet(tmp).createOrReplaceTempView(tmp_view)
            try:
                sm = transpile_model(model, tables, spark_schema(spark, [tmp_view])[tmp_view])
                rows, result.failures = _run_audits(spark, sm.audits, tmp_view)
            except TranspileError as exc:
                result.error = str(exc)
            except Exception as exc:
                result.error = _spark_error(exc, model, " (an audit)")
        if result.error is not None or result.failures:
            fs.delete(tmp)
            result.seconds = time.monotonic() - t0
            return result
        seconds = time.monotonic() - t0
        fs.write_text(f"{tmp}/{MANIFEST}", json.dumps({
            "model": model.name, "version": model.version, "kind": model.kind,
            "fingerprint": ctx.project.fingerprints[model.name], "engine": "spark",
            "spark_version": spark.version, "master": ctx.master, "build_id": ctx.build_id,
            "data_version": ctx.data_version, "rows": rows, "seconds": round(seconds, 3),
            "built_at": datetime.now().isoformat(timespec="seconds"), "sql": sm.sql,
        }, indent=2) + "\n")
        final = layout.model_dir(model.name)
        old = f"{layout.models_root}/.old-{model.name}-{token}"
        if fs.exists(final):
            fs.rename(final, old)
        fs.rename(tmp, final)
        if fs.exists(old):
            fs.delete(old)
        spark.read.parquet(final).createOrReplaceTempView(model.name)
    finally:
        spark.catalog.dropTempView(tmp_view)
        if fs.exists(tmp):
            fs.delete(tmp)
    result.status, result.rows, result.seconds = "built", rows, time.monotonic() - t0
    return result


def _run_audits(spark, audits: list[Audit], table: str) -> tuple[int, list[AuditFailure]]:
    """(rows of `table`, failed audits); every count in one Spark query."""
    ref = "`" + table.replace("`", "``") + "`"
    queries = [a.query.replace("{this}", ref) for a in audits]
    counts = ", ".join([f"(SELECT count(*) FROM {ref}) AS n_rows"]
                       + [f"(SELECT count(*) FROM ({q}) AS offending) AS a{i}" for i, q in enumerate(queries)])
    [row] = spark.sql(f"SELECT {counts}").collect()
    failures = []
    for i, (audit, query) in enumerate(zip(audits, queries)):
        offending = row[f"a{i}"]
        if offending:
            df = spark.sql(f"SELECT * FROM ({query}) AS offending LIMIT {SHOW_ROWS}")
            failures.append(AuditFailure(audit.name, offending, df.columns, [tuple(r) for r in df.collect()]))
    return row["n_rows"], failures


# ---------------------------------------------------------------------------


def write_function_list(path: str | Path | None = None) -> Path:
    """Regenerate warehouse/spark_functions.py from the installed pyspark's SHOW FUNCTIONS."""
    import textwrap

    path = Path(path) if path else Path(__file__).with_name("spark_functions.py")
    spark = spark_session("local[1]", app_name="mementos function list")
    try:
        names = sorted({r[0] for r in spark.sql("SHOW FUNCTIONS").collect()})
        version = spark.version
    finally:
        spark.stop()
    body = textwrap.fill(" ".join(names), width=100, break_long_words=False, break_on_hyphens=False)
    path.write_text(
        f'"""Built-in functions of Apache Spark {version}, as `SHOW FUNCTIONS` lists them ({len(names)} names).\n\n'
        "warehouse/spark_engine.py checks every function call of a transpiled model against\n"
        "this list, so `mementos models --engine spark` can say which models run on Spark\n"
        "without starting it. Regenerate with `python -m warehouse.spark_engine --write-function-list`\n"
        'when the pinned pyspark changes.\n"""\n\n'
        f'SPARK_VERSION = "{version}"\n\nSPARK_FUNCTIONS = frozenset("""\n{body}\n""".split())\n'
    )
    return path


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write-function-list"]:
        print(f"wrote {write_function_list()}")
    else:
        sys.exit("usage: python -m warehouse.spark_engine --write-function-list")
