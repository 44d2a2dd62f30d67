"""Build the SQL models on DuckDB: the project, the plan executed, build-audit-swap, build records.

`build(db)` rebuilds every model that is new, changed, or downstream of one
that is, and nothing else: warehouse/planner.py decides (from the project, the
selection and model_builds); this module executes its plan. A build is one
transaction around all the models it rebuilds, in dependency order::

    BEGIN
    for each model to rebuild, parents first:
        CREATE TABLE __build_<name> AS <SELECT>      -- the new table (or view)
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

import hashlib
import heapq
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from mementos.foundation import catalog, disk, snapshots, storage
from mementos.foundation.errors import CycleError, ModelError, WarehouseBusy, first_line
from mementos.foundation.faults import checkpoint
from mementos.foundation.storage import BASE_TABLES
from mementos.warehouse import guard, planner
from mementos.warehouse.audits import AuditFailure, quote, run_audit, unique
from mementos.warehouse.batches import batch_queries, trace_batches
from mementos.warehouse.models import Model, discover, fingerprint
from mementos.warehouse.planner import LastBuild, ModelState

BUILDS_TABLE = "model_builds"
BUILDS_DDL = f"""
CREATE TABLE IF NOT EXISTS {BUILDS_TABLE} (
    build_id     VARCHAR   NOT NULL,  -- one per `build` command
    model        VARCHAR   NOT NULL,
    version      VARCHAR   NOT NULL,  -- the header's version
    kind         VARCHAR   NOT NULL,  -- 'table' | 'view'
    fingerprint  VARCHAR   NOT NULL,  -- normalised SQL + kind + version + parents' fingerprints
    data_version VARCHAR,             -- the ingest runs the base tables held when built
    status       VARCHAR   NOT NULL,  -- 'ok' | 'audit_failed' | 'error'
    rows         BIGINT,              -- rows of the new table (NULL unless ok)
    seconds      DOUBLE    NOT NULL,
    built_at     TIMESTAMP NOT NULL,
    detail       VARCHAR              -- the failing audits or the error, NULL when ok
)
"""
ENGINE_TABLES = (BUILDS_TABLE,)
TMP_PREFIX = "__build_"


# ---------------------------------------------------------------------------
# The project: models, their order and fingerprints


@dataclass
class Project:
    models: dict[str, Model]
    order: list[str]  # dependency order: parents before children
    parents: dict[str, list[str]]  # model -> models it reads
    children: dict[str, list[str]]
    base_refs: dict[str, list[str]]  # model -> non-model tables it reads
    fingerprints: dict[str, str]


def topo_order(parents: dict[str, list[str]]) -> list[str]:
    """Parents before children, ties by name; a cycle raises CycleError naming it."""
    waiting = {name: len(ps) for name, ps in parents.items()}
    children: dict[str, list[str]] = {name: [] for name in parents}
    for name, ps in parents.items():
        for p in ps:
            children[p].append(name)
    ready = [name for name, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) < len(parents):
        raise CycleError(f"models depend on each other in a cycle: {' -> '.join(find_cycle(parents, set(order)))}")
    return order


def find_cycle(parents: dict[str, list[str]], done: set[str]) -> list[str]:
    """One cycle among the models not in `done`, as [a, b, ..., a] where each reads the next."""
    left = sorted(n for n in parents if n not in done)
    path: list[str] = []
    on_path: dict[str, int] = {}
    node = left[0]
    while node not in on_path:
        on_path[node] = len(path)
        path.append(node)
        node = sorted(p for p in parents[node] if p not in done)[0]
    return path[on_path[node]:] + [node]


def load_project(models_dir: str | Path | None = None, known_tables: set[str] | None = None) -> Project:
    """Discover the models and check them: names, references, cycles. Raises ModelError."""
    models = discover(models_dir)
    base = set(BASE_TABLES) | set(ENGINE_TABLES)
    known = base | {t.lower() for t in (known_tables or ())}
    parents: dict[str, list[str]] = {}
    base_refs: dict[str, list[str]] = {}
    for name, model in models.items():
        if name in base:
            raise ModelError(f"{model.where}: a model cannot be named {name!r}: that is a table the "
                             f"{'engine' if name in ENGINE_TABLES else 'ingest'} writes")
        unknown = sorted(r for r in model.refs if r not in models and r not in known)
        if unknown:
            listed = ", ".join(f"`{u}`" for u in unknown)
            raise ModelError(f"{model.where}: reads {listed}, which is neither a model nor a table in "
                             f"the warehouse (check the spelling, or add models/{unknown[0]}.sql)")
        parents[name] = sorted(r for r in model.refs if r in models)
        base_refs[name] = sorted(r for r in model.refs if r not in models)
    order = topo_order(parents)
    children: dict[str, list[str]] = {name: [] for name in models}
    for name in order:
        for p in parents[name]:
            children[p].append(name)
    fingerprints: dict[str, str] = {}
    for name in order:
        fingerprints[name] = fingerprint(models[name], {p: fingerprints[p] for p in parents[name]})
    return Project(models, order, parents, children, base_refs, fingerprints)


# ---------------------------------------------------------------------------
# State: what is built, what is fresh


def existing_objects(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Tables and views of the warehouse's main schema: name -> 'table' | 'view'."""
    rows = con.execute(
        "SELECT lower(table_name), table_type FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_catalog = current_database()"
    ).fetchall()
    return {name: ("view" if kind == "VIEW" else "table") for name, kind in rows}


def data_version(con: duckdb.DuckDBPyConnection, objects: dict[str, str]) -> str:
    """Identity of the base tables' contents: the committed ingest run of every dataset."""
    if "ingest_runs" not in objects:
        return "empty"
    runs = sorted(catalog.current_runs(con).items())
    return hashlib.sha256(repr(runs).encode()).hexdigest()[:16] if runs else "empty"


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
    return planner.State(last_builds(con, objects), objects, data_version(con, objects))


def model_states(con: duckdb.DuckDBPyConnection, project: Project) -> dict[str, ModelState]:
    return planner.model_states(project, duckdb_state(con))


def plan_build(db: str | Path, needs: list[str] | tuple[str, ...],
               models_dir: str | Path | None = None) -> tuple[Project, planner.Plan]:
    """What a build of the models `needs` and everything they read would do now (read only; names
    that are not models are left out): `report` and `export` ask this, then build the plan's models."""
    guard.require_warehouse(db)
    with storage.connect(db, read_only=True) as con:
        project = load_project(models_dir, set(existing_objects(con)))
        return project, planner.plan(project, duckdb_state(con), planner.upstream(project, needs))


# ---------------------------------------------------------------------------
# Build


@dataclass
class ModelResult:
    name: str
    status: str  # 'built' | 'failed' | 'rolled back' | 'skipped' | 'fresh'
    reason: str = ""  # why it was built / skipped
    rows: int | None = None
    seconds: float = 0.0
    failures: list[AuditFailure] = field(default_factory=list)
    error: str | None = None


@dataclass
class BuildReport:
    db: str
    results: list[ModelResult]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(r.status in ("failed", "rolled back", "skipped") for r in self.results)

    def by_status(self, status: str) -> list[str]:
        return [r.name for r in self.results if r.status == status]

    def format(self) -> str:
        lines = []
        width = max((len(r.name) for r in self.results), default=10)
        for r in self.results:
            if r.status == "built":
                lines.append(f"  built    {r.name:<{width}}  {r.rows:>10,} rows  {r.seconds:6.2f} s   ({r.reason})")
            elif r.status == "rolled back":
                lines.append(f"  undone   {r.name:<{width}}  {r.rows:>10,} rows  {r.seconds:6.2f} s   "
                             f"(built, then rolled back with the whole build)")
            elif r.status == "fresh":
                lines.append(f"  fresh    {r.name}")
            elif r.status == "skipped":
                lines.append(f"  skipped  {r.name:<{width}}  ({r.reason})")
            else:
                lines.append(f"  FAILED   {r.name:<{width}}  the previous table is kept")
                for failure in r.failures:
                    lines.extend("      " + line for line in failure.describe().splitlines())
                if r.error:
                    lines.append(f"      {r.error}")
        failed, undone = self.by_status("failed"), self.by_status("rolled back")
        if failed and undone:
            lines.append(f"rolled back: {', '.join(undone)} (build is atomic; fix {failed[0]} and build again)")
        counts = {s: len(self.by_status(s)) for s in ("built", "failed", "rolled back", "skipped", "fresh")}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no models"
        lines.append(f"build {self.db}: {summary} in {self.seconds:.1f} s")
        return "\n".join(lines)


    def to_dict(self) -> dict:
        """The build as one JSON-ready object (`build --json`), like dbt's run results."""
        return {
            "db": self.db, "ok": self.ok, "seconds": round(self.seconds, 3),
            "counts": {s: len(self.by_status(s)) for s in ("built", "fresh", "failed", "rolled back", "skipped")},
            "results": [{"model": r.name, "status": r.status, "reason": r.reason, "rows": r.rows,
                         "seconds": round(r.seconds, 3), "error": r.error,
                         "audit_failures": [{"audit": f.audit, "offending_rows": f.offending} for f in r.failures]}
                        for r in self.results],
        }



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
                stage.publish = any(r.status in ("built", "failed") for r in report.results)
    except BaseException as exc:
        if disk.is_disk_full(exc):
            raise disk.disk_full(disk.failed_path(exc, db), free_before=free,
                                  done="the build was rolled back, the warehouse is as it was") from None
        raise
    report.seconds = time.monotonic() - started
    return report


def build_for_reader(db: str | Path, select: list[str], models_dir=None, what: str = "report",
                     echo=None, announce: str | None = None) -> BuildReport | None:
    """Build the stale models a reading command needs (`report`, `export`), first echoing `announce`.
    When another process is writing the warehouse, read them as last published instead, if they all
    exist: readers never wait for a writer (foundation/snapshots.py). None when nothing was built."""
    if announce and echo and not storage.is_locked(snapshots.resolve(db)):
        echo(announce)
    try:
        return build(db, select=select, models_dir=models_dir)
    except WarehouseBusy as busy:
        with storage.connect(snapshots.resolve(db), read_only=True) as con:
            objects = existing_objects(con)
        missing = [m for m in select if m not in objects]
        if missing:
            raise WarehouseBusy(f"{what} needs {', '.join(missing[:3])}{' and more' if len(missing) > 3 else ''}, "
                                f"never built, and {str(busy).removeprefix('the warehouse ')}") from None
        if echo:
            echo(f"{what}: not rebuilding {', '.join(select[:3])}{' and more' if len(select) > 3 else ''} "
                 f"({busy}); reading them as last published")
        return None


def _build_models(con: duckdb.DuckDBPyConnection, db: Path, select, full_refresh: bool, models_dir,
                  echo) -> BuildReport:
    """The build on an open writer connection, in one transaction (the module docstring)."""
    storage.ensure_schema(con, db)
    objects = existing_objects(con)
    project = load_project(models_dir, set(objects))
    state = duckdb_state(con)
    steps = planner.plan(project, state, planner.select(project, select), full_refresh).steps
    build_id = datetime.now().strftime("%Y%m%dT%H%M%S.%f")
    report = BuildReport(str(db), [])
    done: dict[str, str] = {}  # model -> its ModelResult.status in this run
    views = {name: m for name, m in project.models.items() if m.kind == "view"}  # inlined by batched models
    failed: ModelResult | None = None  # the model that stopped the build
    con.execute("BEGIN TRANSACTION")
    con.execute(BUILDS_DDL)  # in the transaction: a failed first build leaves no model_builds
    try:
        for step in steps:
            name = step.model
            broken = [p for p in project.parents[name] if done.get(p) in ("failed", "skipped")]
            if broken:
                result = ModelResult(name, "skipped", f"upstream {broken[0]} {done[broken[0]]}")
            elif step.action == planner.SKIP:
                result = ModelResult(name, "skipped", step.reason)
            elif step.action == planner.FRESH:
                result = ModelResult(name, "fresh")
            elif failed is not None:
                result = ModelResult(name, "skipped", f"not built: the build stopped at {failed.name}")
            else:
                if echo:
                    echo(f"  building {name} ...")
                result = build_model(con, db, project.models[name], views, project.fingerprints[name],
                                     state.data_version, build_id, step.reason)
                if result.status == "failed":
                    failed = result
                    _roll_back(con, report, done, result, project.models[name],
                               project.fingerprints[name], state.data_version, build_id)
            done[name] = result.status
            report.results.append(result)
        if failed is None:
            checkpoint("build.before_commit")
            con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction left: it was rolled back already
        raise
    return report


def build_model(con: duckdb.DuckDBPyConnection, db: Path, model: Model, views: dict[str, Model], fp: str,
                current_data: str, build_id: str, reason: str) -> ModelResult:
    """Build one model into a new table, audit it, swap it in, record it; inside the build's transaction.

    Returns a 'failed' result (the transaction left for the caller to roll back) when the
    SQL errors or an audit returns rows."""
    t0 = time.monotonic()
    tmp = TMP_PREFIX + model.name
    kind = model.kind.upper()
    result = ModelResult(model.name, "failed", reason)
    con.execute(f"DROP VIEW IF EXISTS {quote(tmp)}")
    con.execute(f"DROP TABLE IF EXISTS {quote(tmp)}")
    try:
        _create(con, db, model, views, tmp, kind)
    except duckdb.Error as exc:
        result.error = f"{model.where}: {first_line(exc)}"
        if (error := storage.out_of_memory(exc)) is not None:
            result.error = f"{model.where}: {error}"
    if result.error is None:
        checkpoint("build.after_create")
        audits = [unique(model.grain)] + model.audits
        try:
            result.failures = [f for f in (run_audit(con, a, tmp) for a in audits) if f is not None]
        except duckdb.Error as exc:
            result.error = f"{model.where}: an audit does not run: {storage.out_of_memory(exc) or first_line(exc)}"
    if result.error is not None or result.failures:
        result.seconds = time.monotonic() - t0
        return result
    [(rows,)] = con.execute(f"SELECT count(*) FROM {quote(tmp)}").fetchall()
    checkpoint("build.before_swap")
    existing = existing_objects(con).get(model.name)
    if existing:
        con.execute(f"DROP {existing.upper()} {quote(model.name)}")
    con.execute(f"ALTER {kind} {quote(tmp)} RENAME TO {quote(model.name)}")
    result.seconds = time.monotonic() - t0
    _record(con, build_id, model, fp, current_data, "ok", rows, result.seconds, None)
    result.status, result.rows = "built", rows
    # the next model starts from an empty pool whatever the corpus size (storage.release_memory)
    storage.release_memory(con)
    return result


def _create(con: duckdb.DuckDBPyConnection, db: Path, model: Model, views: dict[str, Model], tmp: str,
            kind: str) -> None:
    """CREATE the model's new table or view; a batched model (warehouse/batches.py) a batch at a time."""
    batches = trace_batches(con, model.batch_traces) if model.batch_traces else []
    if not batches:
        con.execute(f"CREATE {kind} {quote(tmp)} AS\n{model.sql}")
        return
    for i, sql in enumerate(batch_queries(con, db, model, views, batches)):
        con.execute(f"CREATE TABLE {quote(tmp)} AS\n{sql}" if i == 0 else f"INSERT INTO {quote(tmp)}\n{sql}")
        storage.release_memory(con)


def _roll_back(con: duckdb.DuckDBPyConnection, report: BuildReport, done: dict[str, str], result: ModelResult,
               model: Model, fp: str, current_data: str, build_id: str) -> None:
    """A model failed: undo the whole build, then record the failure on its own."""
    con.execute("ROLLBACK")
    con.execute(BUILDS_DDL)  # rolled back with the rest on a first build
    for earlier in report.results:
        if earlier.status == "built":
            earlier.status = done[earlier.name] = "rolled back"
    detail = result.error or "; ".join(f"{f.audit}: {f.offending} offending rows" for f in result.failures)
    _record(con, build_id, model, fp, current_data, "error" if result.error else "audit_failed",
            None, result.seconds, detail)


def _record(con, build_id, model: Model, fp, current_data, status, rows, seconds, detail) -> None:
    con.execute(
        f"INSERT INTO {BUILDS_TABLE} (build_id, model, version, kind, fingerprint, data_version, status, rows, "
        f"seconds, built_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [build_id, model.name, model.version, model.kind, fp, current_data, status, rows, seconds,
         datetime.now(), detail],
    )


# ---------------------------------------------------------------------------
# `models`: what there is and what state it is in


@dataclass
class ModelInfo:
    name: str
    kind: str
    version: str
    grain: list[str]
    state: str
    reason: str
    rows: int | None
    built_at: datetime | None
    description: str


def list_models(db: str | Path, models_dir: str | Path | None = None) -> list[ModelInfo]:
    guard.require_warehouse(db)
    with storage.connect(db, read_only=True) as con:
        objects = existing_objects(con)
        project = load_project(models_dir, set(objects))
        states = model_states(con, project)
    out = []
    for name in project.order:
        m, s = project.models[name], states[name]
        out.append(ModelInfo(name, m.kind, m.version, m.grain, s.state, s.reason,
                             s.last.rows if s.last else None, s.last.built_at if s.last else None, m.description))
    return out


def models_json(db: str | Path, models_dir: str | Path | None = None) -> list[dict]:
    """The `models --json` command: one object per model in dependency order."""
    return [{"model": i.name, "kind": i.kind, "version": i.version, "grain": i.grain, "state": i.state,
             "reason": i.reason or None, "rows": i.rows,
             "built_at": i.built_at.isoformat(sep=" ", timespec="seconds") if i.built_at else None,
             "description": i.description} for i in list_models(db, models_dir)]


def models_report(db: str | Path, models_dir: str | Path | None = None) -> str:
    """The `models` command: one line per model in dependency order."""
    infos = list_models(db, models_dir)
    header = ("model", "kind", "version", "grain", "state", "rows", "last built")
    rows = [(i.name, i.kind, i.version, ", ".join(i.grain), i.state + (f" ({i.reason})" if i.reason else ""),
             f"{i.rows:,}" if i.rows is not None else "-",
             i.built_at.strftime("%Y-%m-%d %H:%M:%S") if i.built_at else "-") for i in infos]
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(str(v).rjust(w) if c == 5 else str(v).ljust(w) for c, (v, w) in enumerate(zip(r, widths))).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
