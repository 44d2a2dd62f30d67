"""The build planner (warehouse/planner.py) on a toy project, without a database: exact plans.

The toy project: a (table, reads traces) -> b (table) -> c (view); d (table, reads traces).
The state is written by hand, as an engine would report it (model_builds on DuckDB,
_build.json on Spark)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mementos.warehouse import planner
from mementos.warehouse.planner import Action, LastBuild, State, Step
from mementos.warehouse.project import load_project

BUILD, FRESH, SKIP = Action.BUILD, Action.FRESH, Action.SKIP
from mementos.foundation.errors import WarehouseError


def header(name, kind="table", grain="trace_id"):
    return f"/*\nname: {name}\nversion: 1\nkind: {kind}\ngrain: [{grain}]\ndescription: toy model {name}\n*/\n"


TOY = {
    "a": header("a") + "SELECT trace_id, n_blocks FROM traces",
    "b": header("b") + "SELECT trace_id, n_blocks * 2 AS x FROM a",
    "c": header("c", kind="view") + "SELECT trace_id FROM b",
    "d": header("d") + "SELECT trace_id FROM traces WHERE n_blocks > 0",
}
T0 = datetime(2026, 1, 1, 12, 0, 0)


def project_of(tmp_path: Path, models: dict[str, str], name: str = "models"):
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    for name, text in models.items():
        (directory / f"{name}.sql").write_text(text)
    return load_project(directory)


def state_after_build(project, data="run-1", **overrides) -> State:
    """Every model built once, in order, a second apart, on `data`; overrides: name -> LastBuild."""
    builds = {name: LastBuild("1", project.fingerprints[name], data, 3, 0.1, T0 + timedelta(seconds=i))
              for i, name in enumerate(project.order)}
    builds.update(overrides)
    present = {name: project.models[name].kind for name in project.order}
    return State(builds, present, data)


@pytest.fixture
def toy(tmp_path):
    return project_of(tmp_path, TOY)


def test_fresh_models_are_not_built(toy):
    plan = planner.plan(toy, state_after_build(toy))
    assert plan.steps == [Step("a", FRESH), Step("b", FRESH), Step("c", FRESH), Step("d", FRESH)]


def test_never_built_project_builds_everything_parents_first(toy):
    plan = planner.plan(toy, State({}, {}, "run-1"))
    assert plan.steps == [Step("a", BUILD, "never built"), Step("b", BUILD, "never built"),
                          Step("c", BUILD, "never built"), Step("d", BUILD, "never built")]


def test_changed_sql_is_rebuilt_and_so_is_everything_downstream(tmp_path, toy):
    before = state_after_build(toy)
    edited = project_of(tmp_path, {**TOY, "a": TOY["a"].replace("n_blocks FROM", "n_blocks + 0 AS n_blocks FROM")})
    plan = planner.plan(edited, before)
    assert plan.steps == [Step("a", BUILD, "definition changed"), Step("b", BUILD, "upstream a is stale"),
                          Step("c", BUILD, "upstream b is stale"), Step("d", FRESH)]


def test_layout_only_edit_changes_nothing(tmp_path, toy):
    before = state_after_build(toy)
    relaid = project_of(tmp_path, {**TOY, "d": TOY["d"].replace("SELECT trace_id", "select\n    trace_id  -- kept\n")})
    assert planner.plan(relaid, before).to_build == []


def test_downstream_of_a_model_rebuilt_since_is_rebuilt(toy):
    later = LastBuild("1", toy.fingerprints["a"], "run-1", 3, 0.1, T0 + timedelta(hours=1))  # a alone, after b
    plan = planner.plan(toy, state_after_build(toy, a=later))
    assert plan.steps == [Step("a", FRESH), Step("b", BUILD, "upstream a was rebuilt since"),
                          Step("c", BUILD, "upstream b is stale"), Step("d", FRESH)]


def test_new_data_makes_tables_that_read_base_tables_stale_and_views_only_where_they_are_stored(tmp_path, toy):
    duckdb_state = state_after_build(toy)
    duckdb_state.data_version = "run-2"
    assert planner.plan(toy, duckdb_state).steps == [
        Step("a", BUILD, "new data ingested since"), Step("b", BUILD, "upstream a is stale"),
        Step("c", BUILD, "upstream b is stale"), Step("d", BUILD, "new data ingested since")]
    views = project_of(tmp_path, {"v": header("v", kind="view") + "SELECT trace_id FROM traces"}, "views")
    on_duckdb = state_after_build(views)
    on_duckdb.data_version = "run-2"
    on_spark = State(on_duckdb.builds, {"v": "table"}, "run-2", materialised=True, engine=" on Spark")
    assert planner.plan(views, on_duckdb).steps == [Step("v", FRESH)]
    assert planner.plan(views, on_spark).steps == [Step("v", BUILD, "new data ingested since")]


def test_missing_table_is_rebuilt(toy):
    state = state_after_build(toy)
    del state.present["d"]
    assert planner.plan(toy, state).step("d") == Step("d", BUILD, "the table is missing from the warehouse")


def test_version_bump_says_so(tmp_path, toy):
    before = state_after_build(toy)
    bumped = project_of(tmp_path, {**TOY, "d": TOY["d"].replace("version: 1", "version: 2")})
    assert planner.plan(bumped, before).step("d") == Step("d", BUILD, "version 1 -> 2")


def test_name_plus_selects_the_model_and_everything_downstream(toy):
    assert planner.select(toy, ["a+"]) == {"a", "b", "c"}
    assert planner.select(toy, "b+, d") == {"b", "c", "d"}
    assert planner.select(toy, None) == {"a", "b", "c", "d"}


def test_plus_name_selects_the_model_and_everything_it_reads(toy):
    assert planner.select(toy, ["+c"]) == {"a", "b", "c"}
    assert planner.select(toy, "+b+") == {"a", "b", "c"}
    assert planner.select(toy, "+d") == {"d"}


def test_selected_model_whose_unselected_parent_was_never_built_is_skipped(toy):
    plan = planner.plan(toy, State({}, {}, "run-1"), planner.select(toy, ["b+"]))
    assert plan.steps == [Step("b", SKIP, "upstream a was never built; select a+ or build everything"),
                          Step("c", SKIP, "upstream b skipped")]


def test_full_refresh_builds_every_selected_model(toy):
    plan = planner.plan(toy, state_after_build(toy), planner.select(toy, ["b+"]), full_refresh=True)
    assert plan.steps == [Step("b", BUILD, "--full-refresh"), Step("c", BUILD, "--full-refresh")]


def test_upstream_is_what_a_command_reading_a_model_needs(toy):
    assert toy.dag.upstream(["c"]) == {"a", "b", "c"}
    assert toy.dag.upstream(["c", "not_a_model"]) == {"a", "b", "c"}


def test_unknown_name_is_an_error_naming_the_closest_models(toy):
    with pytest.raises(WarehouseError) as caught:
        planner.select(toy, ["bb+"])
    assert str(caught.value) == "--select bb+: no model named 'bb'; did you mean b? models: a, b, c, d"


# ---------------------------------------------------------------------------
# Incremental models: only new data, a current definition, and inputs that keep each old trace's rows

INCR = Action.INCREMENTAL


def incremental(name):
    return header(name, kind="incremental").replace("grain:", "batch_traces: 10\ngrain:")


INCREMENTAL_TOY = {
    "p": incremental("p") + "SELECT trace_id, n_blocks FROM traces",
    "q": incremental("q") + "SELECT trace_id, n_blocks + 1 AS m FROM p",
    "agg": header("agg", grain="top") + "SELECT max(n_blocks) AS top FROM traces",  # over all traces: not trace-local
    "r": incremental("r") + "SELECT trace_id, n_blocks = top AS longest FROM traces, agg",
    "v": header("v", kind="view") + "SELECT trace_id, n_blocks FROM traces",
    "w": incremental("w") + "SELECT trace_id FROM v",
}


@pytest.fixture
def incr(tmp_path):
    return project_of(tmp_path, INCREMENTAL_TOY)


def test_new_data_builds_trace_local_incremental_models_incrementally(incr):
    plan = planner.plan(incr, State(state_after_build(incr).builds, {n: incr.models[n].relation for n in incr.order},
                                    "run-2"))
    assert [(s.model, s.action, s.reason) for s in plan.steps] == [
        ("agg", BUILD, "new data ingested since"), ("p", INCR, "new data ingested since"),
        ("q", INCR, "upstream p is stale"), ("r", BUILD, "upstream agg is stale"),
        ("v", FRESH, ""), ("w", INCR, "new data ingested since")]
    assert plan.to_build == ["agg", "p", "q", "r", "w"]


def test_full_refresh_and_a_changed_definition_build_incremental_models_whole(tmp_path, incr):
    before = State(state_after_build(incr).builds, {n: incr.models[n].relation for n in incr.order}, "run-2")
    assert {s.action for s in planner.plan(incr, before, {"p", "q"}, full_refresh=True).steps} == {BUILD}
    edited = project_of(tmp_path, {**INCREMENTAL_TOY, "p": INCREMENTAL_TOY["p"].replace("n_blocks FROM",
                                                                                        "n_blocks + 0 AS n_blocks FROM")},
                        name="edited")
    plan = planner.plan(edited, before, {"p", "q"})
    assert plan.steps == [Step("p", BUILD, "definition changed"),
                          Step("q", BUILD, "upstream p is stale")]


def test_a_missing_incremental_table_is_built_whole_and_its_children_stay_incremental(incr):
    present = {n: incr.models[n].relation for n in incr.order if n != "p"}
    plan = planner.plan(incr, State(state_after_build(incr, data="run-2").builds, present, "run-2"), {"p", "q"})
    assert plan.steps == [Step("p", BUILD, "the table is missing from the warehouse"),
                          Step("q", INCR, "upstream p is stale")]


def test_a_parent_over_all_traces_rebuilt_since_makes_the_next_build_whole(incr):
    builds = state_after_build(incr, data="run-2").builds
    builds["agg"] = LastBuild("1", incr.fingerprints["agg"], "run-2", 1, 0.1, T0 + timedelta(hours=1))
    plan = planner.plan(incr, State(builds, {n: incr.models[n].relation for n in incr.order}, "run-2"), {"r"})
    assert plan.steps == [Step("r", BUILD, "upstream agg was rebuilt since")]


def test_on_spark_a_stored_trace_local_view_rebuilt_keeps_its_children_incremental(incr):
    on_spark = State(state_after_build(incr).builds, dict.fromkeys(incr.order, "table"), "run-2",
                     materialised=True, engine=" on Spark")
    plan = planner.plan(incr, on_spark, {"v", "w"})
    assert plan.steps == [Step("v", BUILD, "new data ingested since"), Step("w", INCR, "upstream v is stale")]


def test_a_selection_brings_the_constant_models_it_reads():
    """inference_settings reads no data: `trace_compression+` selects inference_simulation, which reads it,
    so it comes along (else inference_simulation would be skipped on a fresh warehouse); card_figures, which
    no selected model reads, does not."""
    chosen = planner.select(load_project(), ["trace_compression+"])
    assert {"inference_simulation", "inference_settings"} <= chosen and "card_figures" not in chosen


def test_a_model_on_request_waits_until_selected_once_then_is_kept_up_to_date(tmp_path):
    on_request = header("index").replace("description:", "on_request: true\ndescription:")
    project = project_of(tmp_path, {**TOY, "index": on_request + "SELECT trace_id FROM d",
                                    "index_counts": header("index_counts") + "SELECT trace_id FROM index"})
    assert [s.model for s in planner.plan(project, State({}, {}, "run-1")).steps] == ["a", "b", "c", "d"]
    everything = state_after_build(project)
    toy_only = State({m: b for m, b in everything.builds.items() if m in TOY}, everything.present, "run-1")
    assert planner.plan(project, toy_only).steps == [Step(m, FRESH) for m in "abcd"]
    assert planner.plan(project, toy_only, planner.select(project, "index+")).to_build == ["index", "index_counts"]
    assert planner.plan(project, State(everything.builds, everything.present, "run-2")).to_build == [
        "a", "b", "c", "d", "index", "index_counts"]
