"""What a build does: which models it builds, which it leaves fresh, which it skips, and why.

One planner for every engine and every caller (warehouse.md, "Fingerprints and
freshness"): `build` on DuckDB and on Spark, and `report` and `export`, which ask
it what they need built. It is a pure function of

* the project (`engine.load_project`: the models, their dependencies parsed with
  sqlglot, their fingerprints, in dependency order),
* a selection (`select`: `NAME`, `NAME+` for NAME and everything downstream; or
  `upstream(...)` for what a command reads),
* what the engine has built (`State`: its last good build of each model, what
  exists, the data it would read now): `model_builds` on DuckDB, each model's
  `_build.json` on Spark,

and returns a `Plan`: every selected model in dependency order with its action
(`build`, `fresh` or `skip`) and the reason. Engines execute the plan; what only
execution can tell (a model that fails, and what is downstream of it) is theirs.
Nothing here touches a database or a file.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Protocol

from mementos.foundation.errors import WarehouseError

BUILD, FRESH, SKIP = "build", "fresh", "skip"


class Project(Protocol):
    """What the planner reads of a project (engine.Project, from engine.load_project)."""
    models: dict  # name -> models.Model (its kind and version)
    order: list[str]  # dependency order: parents before children
    parents: dict[str, list[str]]  # model -> models it reads
    children: dict[str, list[str]]
    base_refs: dict[str, list[str]]  # model -> non-model tables it reads
    fingerprints: dict[str, str]


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
    state: str  # 'fresh' | 'stale' | 'never built'
    reason: str  # why it is stale; '' when fresh or never built
    last: LastBuild | None


@dataclass(frozen=True)
class Step:
    model: str
    action: str  # BUILD | FRESH | SKIP
    reason: str = ""  # why it is built or skipped; '' when fresh


@dataclass
class Plan:
    steps: list[Step]  # the selected models, in dependency order
    states: dict[str, ModelState] = field(default_factory=dict)  # every model of the project

    def names(self, action: str) -> list[str]:
        return [s.model for s in self.steps if s.action == action]

    @property
    def to_build(self) -> list[str]:
        return self.names(BUILD)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.model == name)


# ---------------------------------------------------------------------------
# Selection


def descendants(project: Project, name: str) -> set[str]:
    """Every model downstream of `name` (not itself)."""
    return _walk(project.children, [name])


def upstream(project: Project, names: Iterable[str]) -> set[str]:
    """The models `names` and every model they read, directly or not: what a command reading them needs."""
    names = [n for n in names if n in project.models]
    return set(names) | _walk(project.parents, names)


def _walk(edges: dict[str, list[str]], start: list[str]) -> set[str]:
    out: set[str] = set()
    stack = list(start)
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in out:
                out.add(nxt)
                stack.append(nxt)
    return out


def select(project: Project, spec: list[str] | tuple[str, ...] | str | None) -> set[str]:
    """`NAME` selects a model, `NAME+` the model and everything downstream of it; names may be
    separated by commas or spaces; nothing selects every model. An unknown name is an error
    naming the closest models."""
    if not spec:
        return set(project.models)
    if isinstance(spec, str):
        spec = [spec]
    chosen: set[str] = set()
    for item in spec:
        for part in item.replace(",", " ").split():
            name = part.rstrip("+").lower()
            if name not in project.models:
                close = difflib.get_close_matches(name, project.order, n=3)
                hint = f"did you mean {' or '.join(close)}? " if close else ""
                raise WarehouseError(f"--select {part}: no model named {name!r}; {hint}"
                                     f"models: {', '.join(project.order)}")
            chosen.add(name)
            if part.endswith("+"):
                chosen |= descendants(project, name)
    return chosen


# ---------------------------------------------------------------------------
# Freshness


def model_states(project: Project, state: State) -> dict[str, ModelState]:
    """Every model's state: fresh, stale (with the first reason that applies) or never built."""
    states: dict[str, ModelState] = {}
    for name in project.order:
        model = project.models[name]
        last = state.builds.get(name)
        status, reason = "stale", ""
        stale_parents = [p for p in project.parents[name] if states[p].state != "fresh"]
        missing = name not in state.present if state.materialised else state.present.get(name) != model.kind
        reads_data = bool(project.base_refs[name]) and (model.kind == "table" or state.materialised)
        if last is None:
            status = "never built"
        elif missing:
            reason = f"the {model.kind} is missing from the warehouse{state.engine}"
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
                status = "fresh"
        states[name] = ModelState(name, status, reason, last)
    return states


# ---------------------------------------------------------------------------
# The plan


def plan(project: Project, state: State, selected: set[str] | None = None, full_refresh: bool = False) -> Plan:
    """The selected models (default: all) in dependency order, each to build, fresh or to skip.

    Built: every selected model that is stale or never built, or downstream of one built
    here; with `full_refresh`, every selected model. Skipped: a model whose parent is not
    selected and was never built (nothing to read), and what is downstream of a skipped one."""
    selected = set(project.models) if selected is None else selected
    states = model_states(project, state)
    steps: list[Step] = []
    action: dict[str, str] = {}
    for name in project.order:
        if name not in selected:
            continue
        parents = project.parents[name]
        skipped = [p for p in parents if action.get(p) == SKIP]
        rebuilt = [p for p in parents if action.get(p) == BUILD]
        absent = [p for p in parents if p not in selected and states[p].state == "never built"]
        s = states[name]
        if skipped:
            step = Step(name, SKIP, f"upstream {skipped[0]} skipped")
        elif absent:
            step = Step(name, SKIP, f"upstream {absent[0]} was never built{state.engine}; "
                                    f"select {absent[0]}+ or build everything")
        elif full_refresh:
            step = Step(name, BUILD, "--full-refresh")
        elif s.state != "fresh":
            step = Step(name, BUILD, s.reason or s.state)
        elif rebuilt:
            step = Step(name, BUILD, f"upstream {rebuilt[0]} rebuilt")
        else:
            step = Step(name, FRESH)
        action[name] = step.action
        steps.append(step)
    return Plan(steps, states)
