"""The project: the models, their DAG and their fingerprints, the same for every engine.

`load_project` discovers the model files (warehouse/models.py), checks their names and
references, orders them (a cycle is an error naming it) and fingerprints each from its
own definition and its parents' fingerprints. The planner decides from a Project, and
every engine builds one; nothing here touches a database or a file but the model files.

`Dag` is the one graph type: dependency order, cycle finding and the walks up and down
(`upstream`, `descendants`) are written here and nowhere else.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mementos.foundation import catalog
from mementos.foundation.errors import CycleError, ModelError
from mementos.foundation.storage import BASE_TABLES
from mementos.warehouse.models import Model, discover, fingerprint

BUILDS_TABLE = "model_builds"  # where the DuckDB engine records its builds (warehouse/engine.py)
ENGINE_TABLES = (BUILDS_TABLE,)  # tables an engine writes beside the models: no model may take their names
# The base views whose rows of a trace stay as they are while the trace keeps its run (traces, segments,
# parse_issues): what a trace-local model may read (the full config's views follow links between traces).
TRACE_KEYED = frozenset(catalog.trace_range_view_names())
# The base views whose rows of a full row stay as they are while the row keeps its run (full_traces,
# sentences, full_blocks), but their trace_id, which links it to a default trace: what a model of full
# rows (full_trace_id in its grain) may read to be kept up to date row by row.
FULL_KEYED = frozenset(catalog.FULL_RANGE_VIEW_NAMES)


@dataclass(frozen=True)
class Dag:
    """Which model reads which: `parents[name]` are the models `name` reads, `order` puts parents
    before children (ties by name)."""
    parents: dict[str, list[str]]
    children: dict[str, list[str]]
    order: list[str]

    @classmethod
    def of(cls, parents: dict[str, list[str]]) -> Dag:
        """The DAG of `parents` (every name a key); a cycle raises CycleError naming it."""
        children: dict[str, list[str]] = {name: [] for name in parents}
        for name in sorted(parents):
            for p in parents[name]:
                children[p].append(name)
        order = _topological(parents, children)
        return cls(parents, {name: sorted(c) for name, c in children.items()}, order)

    def descendants(self, name: str) -> set[str]:
        """Every model downstream of `name` (not itself)."""
        return _walk(self.children, [name])

    def upstream(self, names: Iterable[str]) -> set[str]:
        """The models `names` (those that are models) and every model they read, directly or not."""
        names = [n for n in names if n in self.parents]
        return set(names) | _walk(self.parents, names)

    def in_order(self, names: Iterable[str]) -> list[str]:
        """`names` in dependency order."""
        wanted = set(names)
        return [name for name in self.order if name in wanted]


def _topological(parents: dict[str, list[str]], children: dict[str, list[str]]) -> list[str]:
    waiting = {name: len(ps) for name, ps in parents.items()}
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
        raise CycleError(f"models depend on each other in a cycle: {' -> '.join(_cycle(parents, set(order)))}")
    return order


def _cycle(parents: dict[str, list[str]], done: set[str]) -> list[str]:
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


def _walk(edges: dict[str, list[str]], start: list[str]) -> set[str]:
    out: set[str] = set()
    stack = list(start)
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in out:
                out.add(nxt)
                stack.append(nxt)
    return out


@dataclass
class Project:
    models: dict[str, Model]
    dag: Dag
    base_refs: dict[str, list[str]]  # model -> non-model tables it reads
    fingerprints: dict[str, str]
    trace_local: frozenset[str] = frozenset()  # models whose rows of a trace come from that trace's rows alone

    @property
    def order(self) -> list[str]:
        """Dependency order: parents before children."""
        return self.dag.order

    @property
    def parents(self) -> dict[str, list[str]]:
        """Model -> the models it reads."""
        return self.dag.parents


def load_project(models_dir: str | Path | None = None, known_tables: set[str] | None = None) -> Project:
    """Discover the models and check them: names, references, cycles. Raises ModelError.
    `known_tables`: the tables a model may read besides the base tables and the other models."""
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
    dag = Dag.of(parents)
    fingerprints: dict[str, str] = {}
    for name in dag.order:
        fingerprints[name] = fingerprint(models[name], {p: fingerprints[p] for p in parents[name]})
    return Project(models, dag, base_refs, fingerprints, _trace_local(models, dag, base_refs))


def _trace_local(models: dict[str, Model], dag: Dag, base_refs: dict[str, list[str]]) -> frozenset[str]:
    """The models whose rows of a trace come from that trace's rows alone, so that they stay what they
    are while other traces come and go: an incremental model or a view with trace_id in its grain (the
    batched-model contract, warehouse/batches.py), reading only the base views whose rows are keyed by
    trace and run (traces, segments, parse_issues) and models of this kind."""
    local: set[str] = set()
    for name in dag.order:
        model = models[name]
        if (model.kind in ("incremental", "view") and "trace_id" in model.grain
                and set(base_refs[name]) <= TRACE_KEYED and set(dag.parents[name]) <= local):
            local.add(name)
    return frozenset(local)
