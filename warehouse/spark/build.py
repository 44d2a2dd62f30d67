"""The executor's Spark adapter: each model written aside as Parquet, audited, renamed into place.

`build(db, master="local[*]")` is `mementos build --engine spark`. The planner
(warehouse/planner.py) decides what to build from the project, the selection and
each model's `_build.json` (`spark_state`); the executor (warehouse/executor.py)
runs the plan through `SparkEngine`, up to `parallel` independent models at a time.
Every kind of model is materialised the same way on Spark, as Parquet (a temp view
would end with the session); an incremental model keeps its processed traces beside
its parts (warehouse/spark/incremental.py). warehouse.md (Spark, "The build").
"""

from __future__ import annotations

import json
import re
import time
import uuid
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from mementos.foundation import storage
from mementos.foundation.errors import first_line
from mementos.warehouse import planner
from mementos.warehouse.audits import Audit, AuditFailure, run_audits
from mementos.warehouse.executor import BuildReport, ModelResult, Status, execute
from mementos.warehouse.materializations import Increment, aside_name, trace_inputs
from mementos.warehouse.models import Model
from mementos.warehouse.planner import Action, LastBuild, State, Step
from mementos.warehouse.project import Project, load_project
from mementos.warehouse.spark import incremental
from mementos.warehouse.spark.layout import (MANIFEST, FileSystem, Layout, base_table_dirs, data_version, layout_for,
                                             leftover)
from mementos.warehouse.spark.session import register_base_tables, spark_session
from mementos.warehouse.spark.transpile import (SparkModel, TranspileError, spark_schema, transpile_model,
                                                transpile_project, transpile_sql)


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
    """Undo what a killed build left in PATH.data/models: what was being built (never swapped in) is
    deleted; an old directory set aside is restored when the model's directory is missing, else deleted."""
    for name in fs.list_dirs(layout.models_root):
        path = f"{layout.models_root}/{name}"
        left = leftover(name)
        if left is None:
            continue
        what, model = left
        if what == "old" and not fs.exists(layout.model_dir(model)):
            fs.rename(path, layout.model_dir(model))
        else:
            fs.delete(path)


class SparkEngine:
    """The executor's Spark adapter (warehouse/executor.py): each model swapped in on its own (a failure
    keeps that model's old directory and stops only what reads it), up to `parallel` at a time (Spark runs
    jobs from several threads side by side: independent branches of the DAG overlap)."""
    atomic = False
    label = " on spark"

    def __init__(self, spark, fs: FileSystem, layout: Layout, state: State, project: Project,
                 spark_models: dict[str, SparkModel], untranspiled: dict[str, TranspileError], parallel: int):
        self.spark, self.fs, self.layout, self.project = spark, fs, layout, project
        self.state = state  # what was built before, for the planner
        self.spark_models, self.untranspiled = spark_models, untranspiled
        self.parallel = max(1, parallel)
        self.master = spark.sparkContext.master
        self.build_id = datetime.now().strftime("%Y%m%dT%H%M%S.%f")

    def build(self, model: Model, step: Step) -> ModelResult:
        """Write one model aside, audit it, rename it into place; a failure leaves the old directory.
        A model that does not transpile fails without running. An incremental step writes the new
        directory from the current one (warehouse/spark/incremental.py)."""
        if model.name in self.untranspiled:
            error = str(self.untranspiled[model.name])
            return ModelResult(model.name, Status.FAILED, "does not transpile", error=error)
        t0 = time.monotonic()
        token = uuid.uuid4().hex[:8]
        tmp, tmp_view = self.layout.building_dir(model.name, token), aside_name(model.name)
        result = ModelResult(model.name, Status.FAILED, step.reason)
        try:
            sql, rows = self._write_and_audit(model, step, tmp, tmp_view, result)
            if result.error is not None or result.failures:
                result.seconds = time.monotonic() - t0
                return result
            self._swap_in(model, tmp, token, sql, rows, time.monotonic() - t0)
        finally:
            self.spark.catalog.dropTempView(tmp_view)
            if self.fs.exists(tmp):
                self.fs.delete(tmp)
        result.status, result.rows, result.seconds = Status.BUILT, rows, time.monotonic() - t0
        return result

    def undo(self, failed: ModelResult) -> None:
        raise AssertionError("the Spark build is not atomic: each model is swapped in on its own")

    def _write_and_audit(self, model: Model, step: Step, tmp: str, tmp_view: str,
                         result: ModelResult) -> tuple[str, int]:
        """Write the model's Parquet to `tmp` (an incremental step: from its current directory, spark/
        incremental.py) and audit it as the temp view `tmp_view`; (the Spark SQL, rows). An error or a
        failed audit is set on `result`, what an incremental step added and removed too."""
        spark = self.spark
        tables = spark_schema(spark, sorted(model.refs))
        sm, rows = self.spark_models[model.name], 0
        try:
            sm = transpile_model(model, tables)  # again, now with the types of what it reads
            inputs = (transpile_sql(trace_inputs(model), model.name, f"{model.where}: trace_inputs")
                      if model.kind == "incremental" else None)
            out = incremental.frames(spark, self.fs, model, sm.sql, self.layout.model_dir(model.name),
                                     step.action == Action.INCREMENTAL, inputs)
            incremental.write(out, tmp)
            _say_how(result, step, out.increment)
        except TranspileError as exc:
            result.error = str(exc)
        except Exception as exc:  # AnalysisException, execution errors (ANSI overflow, ...)
            result.error = _spark_error(exc, model)
        if result.error is None:
            spark.read.parquet(tmp).createOrReplaceTempView(tmp_view)
            try:
                audited = transpile_model(model, tables, spark_schema(spark, [tmp_view])[tmp_view])
                rows, result.failures = _run_audits(spark, audited.audits, tmp_view)
            except TranspileError as exc:
                result.error = str(exc)
            except Exception as exc:
                result.error = _spark_error(exc, model, " (an audit)")
        return sm.sql, rows

    def _swap_in(self, model: Model, tmp: str, token: str, sql: str, rows: int, seconds: float) -> None:
        """Record the build in `_build.json` beside the new parts, then rename them into place."""
        fs, layout = self.fs, self.layout
        fs.write_text(f"{tmp}/{MANIFEST}", json.dumps({
            "model": model.name, "version": model.version, "kind": model.kind,
            "fingerprint": self.project.fingerprints[model.name], "engine": "spark",
            "spark_version": self.spark.version, "master": self.master, "build_id": self.build_id,
            "data_version": self.state.data_version, "rows": rows, "seconds": round(seconds, 3),
            "built_at": datetime.now().isoformat(), "sql": sql,
        }, indent=2) + "\n")
        final, old = layout.model_dir(model.name), layout.old_dir(model.name, token)
        if fs.exists(final):
            fs.rename(final, old)
        fs.rename(tmp, final)
        if fs.exists(old):
            fs.delete(old)
        self.spark.read.parquet(final).createOrReplaceTempView(model.name)


def _say_how(result: ModelResult, step: Step, increment: Increment | None) -> None:
    """Put what an incremental step did on its result, as the DuckDB engine does."""
    if increment is not None:
        result.reason, result.traces_added, result.traces_removed = (
            increment.describe(), increment.added, increment.removed)
    elif step.action == Action.INCREMENTAL:
        result.reason += "; built whole: no record of the traces it holds"


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
    selected = planner.select(project, select) if select else None  # None: planner.default_selection
    command = "build --engine spark" + (f" --select {' '.join(select) if not isinstance(select, str) else select}"
                                        if select else "") + (" --full-refresh" if full_refresh else "")
    with ExitStack() as stack:
        engine = open_engine(stack, layout, project, master, spark, conf, parallel, command)
        plan = planner.plan(project, engine.state, selected, full_refresh)
        report = BuildReport(str(db), execute(project, plan, engine, echo))
    report.seconds = time.monotonic() - started
    return report


def open_engine(stack: ExitStack, layout: Layout, project: Project, master: str = "local[*]", spark=None,
                conf: dict[str, str] | None = None, parallel: int = 2,
                command: str = "build --engine spark") -> SparkEngine:
    """The Spark adapter for the warehouse at `layout` (layout.layout_for), ready to build: the writer lock
    held (a DuckDB warehouse) and a session started (unless `spark` is given) until `stack` closes, a killed
    build's leftovers undone, the base tables and the models built before registered; its `state` is what
    was built."""
    spark_models, untranspiled = transpile_project(project)
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
    for name in project.order:
        if name in state.present:  # built before: what is not rebuilt is read from here
            spark.read.parquet(layout.model_dir(name)).createOrReplaceTempView(name)
    return SparkEngine(spark, fs, layout, state, project, spark_models, untranspiled, parallel)


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


def _run_audits(spark, audits: list[Audit], table: str) -> tuple[int, list[AuditFailure]]:
    """(rows of `table`, failed audits); every count in one Spark query."""
    def query_rows(sql: str) -> tuple[list[str], list[tuple]]:
        df = spark.sql(sql)
        return df.columns, [tuple(r) for r in df.collect()]

    return run_audits(query_rows, audits, "`" + table.replace("`", "``") + "`")

