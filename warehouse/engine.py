"""Build the SQL models on DuckDB: the engine's state, its adapter for the executor, build records.

`build(db)` rebuilds every model that is new, changed, or downstream of one
that is, and nothing else: warehouse/planner.py decides (from the project, the
selection and model_builds); warehouse/executor.py executes its plan through
this module's adapter, each model by its materialisation (warehouse/
materializations.py). A build is one transaction around all the models it
rebuilds, in dependency order::

    BEGIN
    for each model to rebuild, parents first:
        CREATE TABLE __build_<name> AS <SELECT>      -- the new table (or view)
            -- an incremental step instead: DELETE and INSERT in <name> (materializations.apply_increment)
        <audits on __build_<name>>                   -- offending rows or an error: stop
        DROP TABLE <name>; ALTER TABLE __build_<name> RENAME TO <name>
        INSERT INTO model_builds ...                 -- status 'ok'
    COMMIT                                           -- once, after the last model

DuckDB sees its own uncommitted DDL, so each model reads the new versions of
the parents rebuilt before it in the same transaction. When a model errors or
fails an audit, the whole transaction is rolled back: every model keeps its
previous table or view, the failure is recorded in model_builds on its own
(after the rollback), the models built before it are reported rolled back,
and the rest are skipped.

Why atomic and not model by model: models depend on each other's columns. If a
parent were committed with a changed schema (column x renamed to y) and its
child then failed, the child's old view would stay in place reading a column
that no longer exists. A build that is all or nothing never leaves a parent
and a child from different versions of the project, and a build killed at any
point leaves the warehouse as it was.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

import duckdb

from mementos.foundation import catalog, disk, snapshots, storage
from mementos.foundation.catalog import data_version
from mementos.foundation.errors import WarehouseBusy, first_line
from mementos.foundation.faults import checkpoint
from mementos.warehouse import guard, materializations, planner
from mementos.warehouse.audits import quote, run_audits, unique
from mementos.warehouse.executor import BuildReport, ModelResult, Status, execute
from mementos.warehouse.models import Model
from mementos.warehouse.planner import Action, LastBuild, ModelState, Plan, Step
from mementos.warehouse.project import BUILDS_TABLE, Project, load_project

BUILDS_DDL = f"""
CREATE TABLE IF NOT EXISTS {BUILDS_TABLE} (
    build_id     VARCHAR   NOT NULL,  -- one per `build` command
    model        VARCHAR   NOT NULL,
    version      VARCHAR   NOT NULL,  -- the header's version
    kind         VARCHAR   NOT NULL,  -- 'table' | 'view' | 'incremental'
    fingerprint  VARCHAR   NOT NULL,  -- normalised SQL + kind + version + parents' fingerprints
    data_version VARCHAR,             -- the ingest runs the base tables held when built
    status       VARCHAR   NOT NULL,  -- 'ok' | 'audit_failed' | 'error'
    rows         BIGINT,              -- rows of the new table (NULL unless ok)
    seconds      DOUBLE    NOT NULL,
    built_at     TIMESTAMP NOT NULL,
    detail       VARCHAR              -- the failing audits or the error, NULL when ok
)
"""
# Added since the first catalogs: how an ok build was made ('full' | 'incremental') and, for an incremental
# one, the traces it added and removed.
BUILDS_COLUMNS = ("mode VARCHAR", "traces_added BIGINT", "traces_removed BIGINT")


def ensure_builds_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(BUILDS_DDL)
    for column in BUILDS_COLUMNS:
        con.execute(f"ALTER TABLE {BUILDS_TABLE} ADD COLUMN IF NOT EXISTS {column}")


# ---------------------------------------------------------------------------
# State: what is built, what is fresh


def existing_objects(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Tables and views of the warehouse's main schema: name -> 'table' | 'view'."""
    rows = con.execute(
        "SELECT lower(table_name), table_type FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_catalog = current_database()"
    ).fetchall()
    return {name: ("view" if kind == "VIEW" else "table") for name, kind in rows}


def last_builds(con: duckdb.DuckDBPyConnection, objects: dict[str, str]) -> dict[str, LastBuild]:
    if BUILDS_TABLE not in objects:
        return {}
    rows = con.execute(
        f"SELECT model, version, fingerprint, data_version, rows, seconds, built_at FROM {BUILDS_TABLE} "
        f"WHERE status = 'ok' QUALIFY row_number() OVER (PARTITION BY model ORDER BY built_at DESC) = 1"
    ).fetchall()
    return {r[0]: LastBuild(*r[1:]) for r in rows}


def duckdb_state(con: duckdb.DuckDBPyConnection) -> planner.State:
    """What the warehouse has built, for the planner: model_builds, its tables and views, its data."""
    objects = existing_objects(con)
    return planner.State(last_builds(con, objects), objects, data_version(con))


def model_states(con: duckdb.DuckDBPyConnection, project: Project) -> dict[str, ModelState]:
    return planner.model_states(project, duckdb_state(con))


# ---------------------------------------------------------------------------
# The adapter: one model built, audited, swapped in and recorded


class DuckDBEngine:
    """The executor's DuckDB adapter (warehouse/executor.py): every model of a build in the one
    transaction `tx`, one at a time; the model's materialisation (warehouse/materializations.py)
    creates it aside."""
    atomic = True
    parallel = 1
    label = ""

    def __init__(self, con: duckdb.DuckDBPyConnection, db: Path, project: Project, state: planner.State,
                 tx: storage.Transaction):
        self.con, self.db, self.project, self.tx = con, db, project, tx
        self.state = state  # what was built before, for the planner
        self.objects = dict(state.present)  # the relations now, kept up to date by each swap
        self.build_id = datetime.now().strftime("%Y%m%dT%H%M%S.%f")
        self.views = {name: m for name, m in project.models.items() if m.kind == "view"}  # inlined by batches

    def build(self, model: Model, step: Step) -> ModelResult:
        """Create the model aside, audit it, swap it in, record it; an incremental step updates the model's
        table in place instead, and audits the whole table. A FAILED result (the SQL errors or an audit
        returns rows) leaves the transaction for the executor to undo."""
        t0 = time.monotonic()
        result = ModelResult(model.name, Status.FAILED, step.reason)
        increment, unit = None, materializations.for_model(model)
        if step.action == Action.INCREMENTAL and materializations.can_increment(self.con, model.name):
            relation = model.name
            increment = self._run(model, result, lambda: materializations.apply_increment(
                self.con, self.db, model, self.views))
        else:
            if step.action == Action.INCREMENTAL:
                result.reason += "; built whole: no record of the traces it holds"
            relation = materializations.clear_aside(self.con, model.name)
            self._run(model, result, lambda: unit.create(self.con, self.db, model, self.views, relation))
        rows = None
        if result.error is None:
            checkpoint("build.after_create")
            rows, result.failures, result.error = self._audit(model, relation)
        if result.error is not None or result.failures:
            result.seconds = time.monotonic() - t0
            return result
        checkpoint("build.before_swap")
        if increment is None:
            materializations.swap_in(self.con, model.name, unit, self.objects.get(model.name))
            self.objects[model.name] = unit.relation.lower()
        else:
            result.reason, result.traces_added, result.traces_removed = (
                increment.describe(), increment.added, increment.removed)
        result.seconds = time.monotonic() - t0
        self._record(model, "ok", rows, result.seconds, None, increment)
        result.status, result.rows = Status.BUILT, rows
        # the next model starts from an empty pool whatever the corpus size (storage.release_memory)
        storage.release_memory(self.con)
        return result

    def _run(self, model: Model, result: ModelResult, make: Callable):
        """make()'s value; a DuckDB error is set on `result` as one line naming the model's file."""
        try:
            return make()
        except duckdb.Error as exc:
            result.error = f"{model.where}: {storage.out_of_memory(exc) or first_line(exc)}"
            return None

    def _audit(self, model: Model, relation: str) -> tuple[int | None, list, str | None]:
        """(its rows, the audits that failed, the error when one does not run) of the relation built."""
        def query_rows(sql: str) -> tuple[list[str], list[tuple]]:
            result = self.con.execute(sql)
            return [d[0] for d in result.description], result.fetchall()

        try:
            rows, failures = run_audits(query_rows, [unique(model.grain)] + model.audits, quote(relation))
        except duckdb.Error as exc:
            return None, [], f"{model.where}: an audit does not run: {storage.out_of_memory(exc) or first_line(exc)}"
        return rows, failures, None

    def undo(self, failed: ModelResult) -> None:
        """Roll the whole build back, then record the failure on its own."""
        self.tx.roll_back()
        ensure_builds_table(self.con)  # rolled back with the rest on a first build
        detail = failed.error or "; ".join(f"{f.audit}: {f.offending} offending rows" for f in failed.failures)
        self._record(self.project.models[failed.name], "error" if failed.error else "audit_failed",
                     None, failed.seconds, detail)

    def _record(self, model: Model, status: str, rows: int | None, seconds: float, detail: str | None,
                increment: materializations.Increment | None = None) -> None:
        mode = None if status != "ok" else "full" if increment is None else "incremental"
        added, removed = (None, None) if increment is None else (increment.added, increment.removed)
        self.con.execute(
            f"INSERT INTO {BUILDS_TABLE} (build_id, model, version, kind, fingerprint, data_version, status, "
            f"rows, seconds, built_at, detail, mode, traces_added, traces_removed) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [self.build_id, model.name, model.version, model.kind, self.project.fingerprints[model.name],
             self.state.data_version, status, rows, seconds, datetime.now(), detail, mode,
             added, removed],
        )


# ---------------------------------------------------------------------------
# Build


def build(db: str | Path, select=None, full_refresh: bool = False,
          models_dir: str | Path | None = None, echo=None) -> BuildReport:
    """Build the selected models that need it, in dependency order. See the module docstring.

    The build works on the writer's staged snapshot (foundation/snapshots.py) and publishes it
    when it ends, so readers keep reading the last published state meanwhile. A build with
    nothing to do publishes nothing. A full disk is one line (disk.disk_full); the staged
    snapshot is then dropped and the warehouse is as it was."""
    started = time.monotonic()
    db = snapshots.resolve(db)
    guard.require_warehouse(db, writing=True)
    command = "build" + (f" --select {' '.join(select) if not isinstance(select, str) else select}" if select else "")
    free = disk.free_bytes(db.parent)
    try:
        with snapshots.writing(db, command + (" --full-refresh" if full_refresh else "")) as writer:
            with writer.stage() as stage:
                report = _build_models(stage.con, db, select, full_refresh, models_dir, echo)
                stage.publish = any(r.status in (Status.BUILT, Status.FAILED) for r in report.results)
    except BaseException as exc:
        disk.raise_if_full(exc, db, free, done="the build was rolled back, the warehouse is as it was")
        raise
    report.seconds = time.monotonic() - started
    return report


def _build_models(con: duckdb.DuckDBPyConnection, db: Path, select, full_refresh: bool, models_dir,
                  echo) -> BuildReport:
    """The build on an open writer connection, in one transaction (the module docstring)."""
    storage.ensure_schema(con, db)
    project = load_project(models_dir, set(existing_objects(con)))
    with open_engine(con, db, project) as engine:
        selected = planner.select(project, select) if select else None  # None: planner.default_selection
        plan = planner.plan(project, engine.state, selected, full_refresh)
        return BuildReport(str(db), execute(project, plan, engine, echo))


@contextmanager
def open_engine(con: duckdb.DuckDBPyConnection, db: Path, project: Project) -> Iterator[DuckDBEngine]:
    """The DuckDB adapter on the writer's connection `con` (its `state`: what was built), in one
    transaction that commits when the block ends, unless a model failed (the adapter undid it all)."""
    state = duckdb_state(con)
    with storage.transaction(con, before_commit="build.before_commit") as tx:
        ensure_builds_table(con)  # in the transaction: a failed first build leaves no model_builds
        yield DuckDBEngine(con, db, project, state, tx)


# ---------------------------------------------------------------------------
# Readers: build what they read first


@dataclass
class ReaderBuild:
    project: Project
    plan: Plan  # the models the reader reads and every model they read, as they stood before the build
    report: BuildReport | None  # None when nothing was built (all fresh, or read as last published)
    con: duckdb.DuckDBPyConnection  # what the reader reads with: a new connection after a build published


def build_for_reader(db: str | Path, needs: list[str] | tuple[str, ...], reader: str, models_dir=None,
                     echo: Callable[[str], None] | None = None,
                     announce: Callable[[Plan], str] | None = None, *,
                     con: duckdb.DuckDBPyConnection) -> ReaderBuild:
    """Before a command reads the models `needs` (`report`, `export`), build the ones that are not fresh,
    with every model they read, first echoing `announce(plan)`. Names that are not models are left out.
    When another process is writing the warehouse, read them as last published instead, if they all
    exist: readers never wait for a writer (foundation/snapshots.py). `con`: the reader's connection, on which
    it checked the warehouse (guard.open_warehouse) and the plan is made. The result's `con` is the one to read
    with: `con` itself, unless a build published a newer snapshot; then `con` is closed and a new one opened."""
    project = load_project(models_dir, set(existing_objects(con)))
    plan = planner.plan(project, duckdb_state(con), project.dag.upstream(needs))
    if not plan.to_build:
        return ReaderBuild(project, plan, None, con)
    if announce and echo and not storage.is_locked(snapshots.resolve(db)):
        echo(announce(plan))
    needed = [step.model for step in plan.steps]
    try:
        report = build(db, select=needed, models_dir=models_dir)
    except WarehouseBusy as busy:
        objects = existing_objects(con)  # the snapshot the reader goes on reading
        missing = [m for m in needed if m not in objects]
        if missing:
            raise WarehouseBusy(f"{reader} needs {_some(missing)}, never built, and "
                                f"{str(busy).removeprefix('the warehouse ')}") from None
        if echo:
            echo(f"{reader}: not rebuilding {_some(plan.to_build)} ({busy}); reading them as last published")
        return ReaderBuild(project, plan, None, con)
    if report.ok:  # published (a failed build is rolled back whole: the reader's snapshot still stands)
        con.close()
        con = storage.connect(db, read_only=True)
    return ReaderBuild(project, plan, report, con)


def _some(names: list[str]) -> str:
    return f"{', '.join(names[:3])}{' and more' if len(names) > 3 else ''}"
