"""Execute the planner's plan on an engine: the one executor for DuckDB and Spark.

The planner (warehouse/planner.py) says what each selected model needs: build,
incremental, fresh or skip. `execute` walks the plan in dependency order and asks the engine adapter to
build each model to build; everything else is decided here, once, for every engine:

* a model whose parent failed or was skipped is skipped, naming that parent;
* an atomic engine (DuckDB: the whole build is one transaction) stops at the first
  failure: the adapter undoes the build, the models built before it are reported
  rolled back and the models after it skipped; a non-atomic engine (Spark: each
  model is swapped in on its own) goes on with the branches the failure does not reach;
* an engine that builds several models at once (`parallel`) gets each model as soon
  as all its parents in the plan are settled.

An adapter (warehouse/engine.py, warehouse/spark/build.py) only knows how to build one
model on its engine: materialise it aside (or, an incremental step, update it in
place), audit it, swap it in and record it.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable, Iterator, Protocol

from mementos.foundation.errors import WarehouseError
from mementos.warehouse.audits import AuditFailure
from mementos.warehouse.models import Model
from mementos.warehouse.planner import Action, Plan, Step
from mementos.warehouse.project import Project


class Status(StrEnum):
    """What a build did with a model; the order here is the order of every summary and count."""
    BUILT = "built"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"  # built, then undone with the whole (atomic) build
    SKIPPED = "skipped"
    FRESH = "fresh"

    @property
    def word(self) -> str:
        """The word `build` prints in its first column."""
        return {Status.FAILED: "FAILED", Status.ROLLED_BACK: "undone"}.get(self, self.value)


NOT_OK = (Status.FAILED, Status.ROLLED_BACK, Status.SKIPPED)
BREAKS_CHILDREN = (Status.FAILED, Status.SKIPPED)  # a model reading one of these is skipped


@dataclass
class ModelResult:
    name: str
    status: Status
    reason: str = ""  # why it was built / skipped
    rows: int | None = None
    seconds: float = 0.0
    failures: list[AuditFailure] = field(default_factory=list)
    error: str | None = None
    traces_added: int | None = None  # an incremental step: the traces it added and removed
    traces_removed: int | None = None


@dataclass
class BuildReport:
    db: str
    results: list[ModelResult]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(r.status in NOT_OK for r in self.results)

    def by_status(self, status: Status) -> list[str]:
        return [r.name for r in self.results if r.status == status]

    def counts(self) -> dict[Status, int]:
        return {s: len(self.by_status(s)) for s in Status}

    def pieces(self) -> Iterator[tuple[str, Status | None]]:
        """The text of `format` in pieces, each status word with its Status (console.py colours them)."""
        width = max((len(r.name) for r in self.results), default=10)
        for r in self.results:
            yield "  ", None
            yield r.status.word, r.status
            yield " " * (9 - len(r.status.word)) + _result_text(r, width) + "\n", None
        failed, undone = self.by_status(Status.FAILED), self.by_status(Status.ROLLED_BACK)
        if failed and undone:
            yield f"rolled back: {', '.join(undone)} (build is atomic; fix {failed[0]} and build again)\n", None
        summary = ", ".join(f"{n} {s}" for s, n in self.counts().items() if n) or "no models"
        yield f"build {self.db}: {summary} in {self.seconds:.1f} s", None

    def format(self) -> str:
        return "".join(text for text, _ in self.pieces())

    def to_dict(self) -> dict:
        """The build as one JSON-ready object (`build --json`), like dbt's run results."""
        return {
            "db": self.db, "ok": self.ok, "seconds": round(self.seconds, 3),
            "counts": {str(s): n for s, n in self.counts().items()},
            "results": [{"model": r.name, "status": str(r.status), "reason": r.reason, "rows": r.rows,
                         "seconds": round(r.seconds, 3), "error": r.error,
                         "traces_added": r.traces_added, "traces_removed": r.traces_removed,
                         "audit_failures": [{"audit": f.audit, "offending_rows": f.offending} for f in r.failures]}
                        for r in self.results],
        }


def _result_text(r: ModelResult, width: int) -> str:
    """A result's line after its status word (and, for a failure, the lines saying why)."""
    if r.status == Status.BUILT:
        return f"{r.name:<{width}}  {r.rows:>10,} rows  {r.seconds:6.2f} s   ({r.reason})"
    if r.status == Status.ROLLED_BACK:
        return (f"{r.name:<{width}}  {r.rows:>10,} rows  {r.seconds:6.2f} s   "
                f"(built, then rolled back with the whole build)")
    if r.status == Status.FRESH:
        return r.name
    if r.status == Status.SKIPPED:
        return f"{r.name:<{width}}  ({r.reason})"
    lines = [f"{r.name:<{width}}  the previous table is kept"]
    for failure in r.failures:
        lines.extend("      " + line for line in failure.describe().splitlines())
    if r.error:
        lines.append(f"      {r.error}")
    return "\n".join(lines)


class Engine(Protocol):
    """What the executor needs of an engine adapter."""
    atomic: bool  # the build is one transaction: the first failure undoes it all
    parallel: int  # how many models it builds at once
    label: str  # how progress lines name the engine: '' or ' on spark'

    def build(self, model: Model, step: Step) -> ModelResult:
        """Materialise the model aside, audit it, swap it in, record it: BUILT, or FAILED keeping the old one.
        `step.action` is BUILD or INCREMENTAL (the traces added and removed since its last build)."""

    def undo(self, failed: ModelResult) -> None:
        """(Atomic engines.) Roll the build back, then record the failure on its own."""


def execute(project: Project, plan: Plan, engine: Engine,
            echo: Callable[[str], None] | None = None) -> list[ModelResult]:
    """Run the plan on `engine` (the module docstring); one result per step, in the plan's order."""
    planned = {step.model for step in plan.steps}
    results: dict[str, ModelResult] = {}
    pending = list(plan.steps)
    running: dict[Future, str] = {}
    stopped_at: str | None = None  # the failure that stopped an atomic build
    pool = ThreadPoolExecutor(engine.parallel, thread_name_prefix="build") if engine.parallel > 1 else None
    with pool or nullcontext():
        while pending or running:
            for step in list(pending):
                if any(p in planned and p not in results for p in project.parents[step.model]):
                    continue  # a parent is still to be settled
                settled = _settle_without_building(step, project, results, stopped_at)
                if settled is None and len(running) >= engine.parallel:
                    continue
                pending.remove(step)
                if settled is not None:
                    results[step.model] = settled
                    continue
                if echo:
                    echo(f"  building {step.model}{engine.label} ...")
                running[_start(pool, engine, project.models[step.model], step)] = step.model
            if not running:
                if pending:  # nothing running and nothing ready: cannot happen with a DAG
                    raise WarehouseError(f"cannot order the models {', '.join(s.model for s in pending)}")
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                result = results[running.pop(future)] = future.result()
                if result.status == Status.FAILED and engine.atomic and stopped_at is None:
                    stopped_at = result.name
                    engine.undo(result)
                    for earlier in results.values():
                        if earlier.status == Status.BUILT:
                            earlier.status = Status.ROLLED_BACK
    return [results[step.model] for step in plan.steps]


def _settle_without_building(step: Step, project: Project, results: dict[str, ModelResult],
                             stopped_at: str | None) -> ModelResult | None:
    """The step's result when it is not built (skipped or fresh); None when it is to be built."""
    name = step.model
    broken = [p for p in project.parents[name] if p in results and results[p].status in BREAKS_CHILDREN]
    if broken:
        return ModelResult(name, Status.SKIPPED, f"upstream {broken[0]} {results[broken[0]].status}")
    if step.action == Action.SKIP:
        return ModelResult(name, Status.SKIPPED, step.reason)
    if step.action == Action.FRESH:
        return ModelResult(name, Status.FRESH)
    if stopped_at is not None:
        return ModelResult(name, Status.SKIPPED, f"not built: the build stopped at {stopped_at}")
    return None


def _start(pool: ThreadPoolExecutor | None, engine: Engine, model: Model, step: Step) -> Future:
    """Build the model on the pool, or here and now when the engine builds one model at a time
    (an error or an interrupt then comes straight from the build)."""
    if pool is not None:
        return pool.submit(engine.build, model, step)
    future: Future = Future()
    future.set_result(engine.build(model, step))
    return future
