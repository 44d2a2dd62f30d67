"""DuckDB SQL to Spark SQL: each model and audit transpiled with sqlglot, checked, or an error naming the function.

`transpile_model` gives a model's SELECT and audits in Spark SQL (or the model's own
`/* spark: ... */` variant); `transpile_report` is `mementos models --engine spark`.
Nothing here starts Spark. warehouse.md (Spark, "How the transpile works") has the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

from mementos.foundation.errors import TranspileError, first_line
from mementos.warehouse.audits import Audit, unique
from mementos.warehouse.project import Project, load_project
from mementos.warehouse.models import DIALECT, Model
from mementos.warehouse.spark.layout import local_root, read_local_manifest
from mementos.warehouse.spark.functions import SPARK_FUNCTIONS

TARGET = "spark"
THIS = "__this__"  # stands for {this} while an audit is transpiled
_CALL_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")


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
                                 f"({first_line(exc)})") from None
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
        raise TranspileError(model, where, None, f"the SQL does not parse ({first_line(exc)})") from None
    tree = _fix_percentiles(tree, model, where)
    tree = _fix_list_lengths(tree, schema)
    tree = _fix_lists(tree, model, where)
    _check_ordered_aggregates(tree, model, where)
    _check_functions(tree, model, where)
    try:
        return tree.sql(dialect=TARGET, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        detail = first_line(exc)
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
    root = local_root(db) if db is not None else None
    header = ("model", "kind", "spark", "rows", "last built on spark")
    rows = []
    for name in project.order:
        manifest = read_local_manifest(root, name) if root is not None else None
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
    from mementos.warehouse.spark.functions import SPARK_VERSION
    return SPARK_VERSION

