"""Execute the planner's plan on Spark: each model written aside as Parquet, audited, renamed into place.

`build(db, master="local[*]")` is `mementos build --engine spark`. The planner
(warehouse/planner.py) decides what to build from the project, the selection and
each model's `_build.json` (`spark_state`); this module runs the plan, up to
`parallel` independent models at a time. warehouse.md (Spark, "The build").
"""

from __future__ import annotations

import json
import re
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mementos.foundation import storage
from mementos.foundation.errors import WarehouseError, first_line
from mementos.warehouse import planner
from mementos.warehouse.audits import SHOW_ROWS, Audit, AuditFailure
from mementos.warehouse.engine import BuildReport, ModelResult, Project, load_project
from mementos.warehouse.models import Model
from mementos.warehouse.planner import LastBuild, State
from mementos.warehouse.spark.layout import MANIFEST, FileSystem, Layout, base_table_dirs, data_version, layout_for
from mementos.warehouse.spark.session import register_base_tables, spark_session
from mementos.warehouse.spark.transpile import SparkModel, TranspileError, spark_schema, transpile_model, transpile_project


def _spark_error(exc: BaseException, model: Model, what: str = "") -> str:
    """A Spark error as one line, naming the function when Spark says which one it lacks or rejects."""
    text = first_line(exc)
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


def _recover(fs: FileSystem, layout: Layout) -> None:
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
    fs: FileSystem
    layout: Layout
    master: str
    data_version: str
    build_id: str
    project: Project
    spark_models: dict[str, SparkModel] = field(default_factory=dict)


def build(db: str | Path, select=None, models_dir: str | Path | None = None, master: str = "local[*]",
          spark=None, conf: dict[str, str] | None = None, echo=None, parallel: int = 2,
          full_refresh: bool = False) -> BuildReport:
    """Build the selected models (default: all) that the planner finds stale or never built on Spark
    (every selected one with `full_refresh`), in dependency order, as Parquet under PATH.data/models/.
    `spark`: an existing SparkSession to use (else one is started on `master` and stopped at the end).
    `parallel`: how many independent models are built at once. Returns the engine's BuildReport."""
    started = time.monotonic()
    layout = layout_for(db)
    project = load_project(models_dir)
    selected = planner.select(project, select)
    spark_models, untranspiled = transpile_project(project)
    command = "build --engine spark" + (f" --select {' '.join(select) if not isinstance(select, str) else select}"
                                        if select else "") + (" --full-refresh" if full_refresh else "")
    report = BuildReport(str(db), [])
    with ExitStack() as stack:
        if layout.db is not None:  # ingest must not replace run directories while Spark reads them
            stack.enter_context(storage.write_lock(layout.db, command))
        if spark is None:  # ours: started here, stopped at the end
            spark = spark_session(master, conf)
            stack.callback(spark.stop)
        fs = FileSystem(spark, layout.root)
        fs.mkdirs(layout.models_root)
        _recover(fs, layout)
        dirs = base_table_dirs(fs, layout)
        register_base_tables(spark, layout, dirs)
        state = spark_state(fs, layout, project, data_version(dirs))
        plan = planner.plan(project, state, selected, full_refresh)
        ctx = _Context(spark, fs, layout, spark.sparkContext.master, state.data_version,
                       datetime.now().strftime("%Y%m%dT%H%M%S.%f"), project, spark_models)
        for name in project.order:
            if name in state.present:  # built before: what is not rebuilt is read from here
                spark.read.parquet(layout.model_dir(name)).createOrReplaceTempView(name)
        results = _execute(ctx, plan.steps, untranspiled, parallel, echo)
        report.results = [results[step.model] for step in plan.steps]
    report.seconds = time.monotonic() - started
    return report


def spark_state(fs: FileSystem, layout: Layout, project: Project, current_data: str) -> State:
    """What was built on Spark, for the planner: each model's `_build.json` (a model without a
    readable one counts as never built) and the run directories it would read now."""
    builds: dict[str, LastBuild] = {}
    for name in project.order:
        try:
            m = json.loads(fs.read_text(f"{layout.model_dir(name)}/{MANIFEST}") or "null")
            builds[name] = LastBuild(str(m["version"]), m["fingerprint"], m.get("data_version"), m.get("rows"),
                                     m.get("seconds", 0.0), datetime.fromisoformat(m["built_at"]))
        except (ValueError, KeyError, TypeError):
            continue
    return State(builds, dict.fromkeys(builds, "table"), current_data, materialised=True, engine=" on Spark")


def _execute(ctx: _Context, steps: list[planner.Step], untranspiled: dict[str, TranspileError],
             parallel: int, echo) -> dict[str, ModelResult]:
    """Run the plan: each model once all its parents in the plan are settled; up to `parallel`
    at a time (Spark runs jobs from several threads side by side: independent branches of the
    DAG, e.g. full_alignment and the export models, overlap). A model whose parent failed or was
    skipped is skipped; a model that does not transpile fails without running."""
    project = ctx.project
    planned = {step.model for step in steps}
    results: dict[str, ModelResult] = {}
    pending = list(steps)
    running: dict = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="spark-build") as pool:
        while pending or running:
            for step in list(pending):
                name = step.model
                if any(p in planned and p not in results for p in project.parents[name]):
                    continue  # a parent is still to be settled
                pending.remove(step)
                broken = [p for p in project.parents[name] if p in results and results[p].status in ("failed", "skipped")]
                if step.action != planner.FRESH and name in untranspiled:
                    results[name] = ModelResult(name, "failed", "does not transpile", error=str(untranspiled[name]))
                elif broken:
                    results[name] = ModelResult(name, "skipped", f"upstream {broken[0]} {results[broken[0]].status}")
                elif step.action == planner.SKIP:
                    results[name] = ModelResult(name, "skipped", step.reason)
                elif step.action == planner.FRESH:
                    results[name] = ModelResult(name, "fresh")
                else:
                    if echo:
                        echo(f"  building {name} on spark ...")
                    running[pool.submit(build_model, ctx, project.models[name], step.reason)] = name
            if running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    results[running.pop(future)] = future.result()
            elif pending and not any(  # nothing running and nothing ready: cannot happen with a DAG
                    all(p not in planned or p in results for p in project.parents[s.model]) for s in pending):
                raise WarehouseError(f"cannot order the models {', '.join(s.model for s in pending)}")
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
            "built_at": datetime.now().isoformat(), "sql": sm.sql,
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

