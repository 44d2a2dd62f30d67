"""The executor (warehouse/executor.py): the statuses a plan ends in, on a fake engine and on both real ones.

The fake engine fails the models it is told to, so each rule of the executor is checked exactly:
what is skipped after a failure, what an atomic engine rolls back, what a non-atomic one goes on
building. tests/test_spark_parity.py executes one plan on DuckDB and on Spark and expects the same
status for every model.
"""

from __future__ import annotations

import pytest

from mementos.warehouse.executor import BuildReport, ModelResult, Status, execute
from mementos.warehouse.planner import Action, Plan, Step
from mementos.warehouse.project import Dag, Project


class FakeEngine:
    label = ""

    def __init__(self, atomic: bool, fails: set[str], parallel: int = 1):
        self.atomic, self.fails, self.parallel = atomic, fails, parallel
        self.built: list[str] = []
        self.undone: list[str] = []

    def build(self, model, step: Step) -> ModelResult:
        self.built.append(step.model)
        if step.model in self.fails:
            return ModelResult(step.model, Status.FAILED, step.reason, error="boom")
        return ModelResult(step.model, Status.BUILT, step.reason, rows=1)

    def undo(self, failed: ModelResult) -> None:
        self.undone.append(failed.name)


# a -> b -> c, and d on its own; e reads a and is fresh
TOY = Project({n: None for n in "abcde"}, Dag.of({"a": [], "b": ["a"], "c": ["b"], "d": [], "e": ["a"]}), {}, {})
PLAN = Plan([Step("a", Action.BUILD, "never built"), Step("b", Action.BUILD, "never built"),
             Step("c", Action.BUILD, "never built"), Step("d", Action.BUILD, "never built"),
             Step("e", Action.FRESH)])


def statuses(results: list[ModelResult]) -> list[tuple[str, str, str]]:
    return [(r.name, r.status, r.reason) for r in results]


def test_atomic_engine_stops_at_the_first_failure_and_rolls_back_what_it_built():
    engine = FakeEngine(atomic=True, fails={"b"})
    assert statuses(execute(TOY, PLAN, engine)) == [
        ("a", Status.ROLLED_BACK, "never built"), ("b", Status.FAILED, "never built"),
        ("c", Status.SKIPPED, "upstream b failed"), ("d", Status.SKIPPED, "not built: the build stopped at b"),
        ("e", Status.FRESH, "")]
    assert (engine.built, engine.undone) == (["a", "b"], ["b"])


@pytest.mark.parametrize("parallel", [1, 2])
def test_non_atomic_engine_goes_on_with_what_the_failure_does_not_reach(parallel):
    engine = FakeEngine(atomic=False, fails={"b"}, parallel=parallel)
    assert statuses(execute(TOY, PLAN, engine)) == [
        ("a", Status.BUILT, "never built"), ("b", Status.FAILED, "never built"),
        ("c", Status.SKIPPED, "upstream b failed"), ("d", Status.BUILT, "never built"), ("e", Status.FRESH, "")]
    assert sorted(engine.built) == ["a", "b", "d"] and engine.undone == []


def test_summary_and_json_counts_list_statuses_in_the_same_order():
    report = BuildReport("w.duckdb", execute(TOY, PLAN, FakeEngine(atomic=False, fails={"b"})), seconds=1.0)
    assert report.format().splitlines()[-1] == "build w.duckdb: 2 built, 1 failed, 1 skipped, 1 fresh in 1.0 s"
    assert report.to_dict()["counts"] == {"built": 2, "failed": 1, "rolled back": 0, "skipped": 1, "fresh": 1}
    words = [(text, status) for text, status in report.pieces() if status is not None]
    assert words == [("built", Status.BUILT), ("FAILED", Status.FAILED), ("skipped", Status.SKIPPED),
                     ("built", Status.BUILT), ("fresh", Status.FRESH)]


def test_an_incremental_step_is_built_by_the_engine_and_a_failure_after_it_rolls_it_back():
    plan = Plan([Step("a", Action.INCREMENTAL, "new data ingested since"), Step("b", Action.BUILD, "upstream a rebuilt"),
                 Step("c", Action.BUILD, "upstream b rebuilt"), Step("d", Action.FRESH), Step("e", Action.FRESH)])
    engine = FakeEngine(atomic=True, fails={"b"})
    assert statuses(execute(TOY, plan, engine)) == [
        ("a", Status.ROLLED_BACK, "new data ingested since"), ("b", Status.FAILED, "upstream a rebuilt"),
        ("c", Status.SKIPPED, "upstream b failed"), ("d", Status.FRESH, ""), ("e", Status.FRESH, "")]
    assert (engine.built, plan.to_build) == (["a", "b"], ["a", "b", "c"])
