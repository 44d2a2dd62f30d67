"""What a build does: which models it builds, which it leaves fresh, which it skips, and why.

One planner for every engine and every caller (warehouse.md, "Fingerprints and
freshness"): `build` on DuckDB and on Spark, and `report` and `export`, which ask
it what they need built. It is a pure function of

* the project (`project.load_project`: the models, their DAG, their fingerprints),
* a selection (`select`: `NAME`, `NAME+` for NAME and everything downstream, `+NAME` for NAME and
  everything it reads; or
  `Dag.upstream(...)` for what a command reads),
* what the engine has built (`State`: its last good build of each model, what
  exists, the data it would read now): `model_builds` on DuckDB, each model's
  `_build.json` on Spark,

and returns a `Plan`: every selected model in dependency order with its `Action`
(`build`, `incremental`, `fresh` or `skip`) and the reason. `incremental` is a build
of an incremental model that only adds the traces new since its last build and drops
the ones gone (how many, the engine finds when it executes the step). warehouse/executor.py executes the plan
on an engine; what only execution can tell (a model that fails, and what is
downstream of it) is the executor's.
Nothing here touches a database or a file.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mementos.foundation.errors import WarehouseError
from mementos.warehouse.project import FULL_KEYED, TRACE_KEYED, Project


class Action(StrEnum):
    """What the plan does with a model."""
    BUILD = "build"
    INCREMENTAL = "incremental"  # an incremental model: the traces added and removed since its last build
    FRESH = "fresh"  # left as it is: built from its current definition and data
    SKIP = "skip"  # cannot be built: something it reads is missing


BUILDS = (Action.BUILD, Action.INCREMENTAL)  # the actions that build a model


class Freshness(StrEnum):
    """A model's state in an engine, as `models` lists it."""
    FRESH = "fresh"
    STALE = "stale"
    NEVER_BUILT = "never built"


@dataclass
class LastBuild:
    """An engine's last successful build of a model."""
    version: str
    fingerprint: str
    data_version: str | None
    rows: int | None
    seconds: float
    built_at: datetime


@dataclass
class State:
    """What an engine has built.

    `present`: what exists now, model -> 'table' | 'view' (DuckDB: every table and view
    of the warehouse). `materialised`: every model is stored data whatever its kind
    (Spark writes views as Parquet too), so its kind is not checked and new data makes
    views stale as well as tables. `engine`: how messages name the engine ('' or ' on Spark')."""
    builds: dict[str, LastBuild]
    present: dict[str, str]
    data_version: str
    materialised: bool = False
    engine: str = ""


@dataclass
class ModelState:
    name: str
    state: Freshness
    reason: str  # why it is stale; '' when fresh or never built
    last: LastBuild | None


@dataclass(frozen=True)
class Step:
    model: str
    action: Action
    reason: str = ""  # why it is built or skipped; '' when fresh


@dataclass
class Plan:
    steps: list[Step]  # the selected models, in dependency order
    states: dict[str, ModelState] = field(default_factory=dict)  # every model of the project

    def names(self, action: Action) -> list[str]:
        return [s.model for s in self.steps if s.action == action]

    @property
    def to_build(self) -> list[str]:
        return [s.model for s in self.steps if s.action in BUILDS]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.model == name)


# ---------------------------------------------------------------------------
# Selection


def select(project: Project, spec: list[str] | tuple[str, ...] | str | None) -> set[str]:
    """`NAME` selects a model, `NAME+` the model and everything downstream of it, `+NAME` the model and
    everything it reads (dbt's graph operators; `+NAME+` both); names may be separated by commas or spaces; nothing selects every model. An unknown name is an error
    naming the closest models. The models upstream of a chosen one that read no data (views of
    constants, such as inference_settings) come with it: they wait for nothing, and without them
    their readers would be skipped."""
    if not spec:
        return set(project.models)
    if isinstance(spec, str):
        spec = [spec]
    chosen: set[str] = set()
    for item in spec:
        for part in item.replace(",", " ").split():
            name = part.strip("+").lower()
            if name not in project.models:
                close = difflib.get_close_matches(name, project.order, n=3)
                hint = f"did you mean {' or '.join(close)}? " if close else ""
                raise WarehouseError(f"--select {part}: no model named {name!r}; {hint}"
                                     f"models: {', '.join(project.order)}")
            chosen.add(name)
            if part.endswith("+"):
                chosen |= project.dag.descendants(name)
            if part.startswith("+"):
                chosen |= project.dag.upstream([name])
    return chosen | {p for p in project.dag.upstream(chosen) if not _reads_data(project, p)}


def default_selection(project: Project, state: State) -> set[str]:
    """What a build without --select builds: every model, except one `on_request` that was never built here
    (nor anything downstream of it). Once selected by name it is kept up to date like the others."""
    waiting = {name for name, model in project.models.items() if model.on_request and name not in state.builds}
    for name in list(waiting):
        waiting |= project.dag.descendants(name)
    return set(project.models) - waiting


# ---------------------------------------------------------------------------
# Freshness


def model_states(project: Project, state: State) -> dict[str, ModelState]:
    """Every model's state: fresh, stale (with the first reason that applies) or never built."""
    states: dict[str, ModelState] = {}
    for name in project.order:
        model = project.models[name]
        last = state.builds.get(name)
        status, reason = Freshness.STALE, ""
        stale_parents = [p for p in project.parents[name] if states[p].state != Freshness.FRESH]
        missing = _missing(model.name, model.relation, state)
        reads_data = _reads_data(project, name) and (model.relation == "table" or state.materialised)
        if last is None:
            status = Freshness.NEVER_BUILT
        elif missing:
            reason = f"the {model.relation} is missing from the warehouse{state.engine}"
        elif stale_parents:
            reason = f"upstream {stale_parents[0]} is {states[stale_parents[0]].state}"
        elif last.fingerprint != project.fingerprints[name]:
            # parents are fresh here, so their fingerprints are the recorded ones: the change is this model's
            reason = (f"version {last.version} -> {model.version}" if last.version != model.version
                      else "definition changed")
        elif reads_data and last.data_version != state.data_version:
            reason = "new data ingested since"
        else:
            newer = [p for p in project.parents[name] if states[p].last and states[p].last.built_at > last.built_at]
            if newer:
                reason = f"upstream {newer[0]} was rebuilt since"
            else:
                status = Freshness.FRESH
        states[name] = ModelState(name, status, reason, last)
    return states


def _reads_data(project: Project, name: str) -> bool:
    """Whether the model reads base tables, itself or through the views it reads (which store nothing)."""
    return bool(project.base_refs[name]) or any(project.models[p].kind == "view" and _reads_data(project, p)
                                                for p in project.parents[name])


def _missing(name: str, relation: str, state: State) -> bool:
    return name not in state.present if state.materialised else state.present.get(name) != relation


# ---------------------------------------------------------------------------
# The plan


def plan(project: Project, state: State, selected: set[str] | None = None, full_refresh: bool = False) -> Plan:
    """The selected models (default: default_selection) in dependency order, each to build, fresh or to skip.

    Built: every selected model that is stale or never built, or downstream of one built
    here; with `full_refresh`, every selected model. An incremental model is built `incremental`
    when only the traces it reads changed (`_incremental`), whole otherwise. Skipped: a model whose parent is not
    selected and was never built (nothing to read), and what is downstream of a skipped one."""
    selected = default_selection(project, state) if selected is None else selected
    states = model_states(project, state)
    steps: list[Step] = []
    action: dict[str, Action] = {}
    kept: set[str] = set()  # models whose rows of the traces they held before are the same after this build
    for name in project.order:
        if name not in selected:
            kept.add(name)
            continue
        parents = project.parents[name]
        skipped = [p for p in parents if action.get(p) == Action.SKIP]
        rebuilt = [p for p in parents if action.get(p) in BUILDS]
        absent = [p for p in parents if p not in selected and states[p].state == Freshness.NEVER_BUILT]
        s = states[name]
        how = Action.INCREMENTAL if _incremental(project, state, states, kept, name) else Action.BUILD
        if skipped:
            step = Step(name, Action.SKIP, f"upstream {skipped[0]} skipped")
        elif absent:
            step = Step(name, Action.SKIP, f"upstream {absent[0]} was never built{state.engine}; "
                                    f"select {absent[0]}+ or build everything")
        elif full_refresh:
            step = Step(name, Action.BUILD, "--full-refresh")
        elif s.state != Freshness.FRESH:
            step = Step(name, how, s.reason or str(s.state))
        elif rebuilt:
            step = Step(name, how, f"upstream {rebuilt[0]} rebuilt")
        else:
            step = Step(name, Action.FRESH)
        action[name] = step.action
        if step.action in (Action.FRESH, Action.INCREMENTAL) or (step.action == Action.BUILD
                                                                and name in project.trace_local):
            kept.add(name)
        steps.append(step)
    return Plan(steps, states)


def _incremental(project: Project, state: State, states: dict[str, ModelState], kept: set[str], name: str) -> bool:
    """Whether an incremental model can be brought up to date trace by trace: it was built from its
    current definition and is still there, reads no base view but those keyed by trace and run, and
    every model it reads gives the traces it holds the rows they had when it was built (a parent
    trace-local, or neither rebuilt now nor since), or the model names its own trace_inputs (what
    else a trace's rows depend on: a trace whose inputs changed is recomputed, models.Model)."""
    model, last = project.models[name], states[name].last
    if model.kind != "incremental" or last is None or _missing(name, model.relation, state):
        return False
    # a model of full rows (full_trace_id in its grain, no trace_id) reads the views over the full rows
    keyed = TRACE_KEYED if "trace_id" in model.grain else FULL_KEYED
    if last.fingerprint != project.fingerprints[name] or not set(project.base_refs[name]) <= keyed:
        return False
    if model.trace_inputs:
        return True
    for parent in project.parents[name]:
        before = states[parent].last
        if parent not in kept:
            return False
        if parent not in project.trace_local and (before is None or before.built_at > last.built_at):
            return False
    return True
