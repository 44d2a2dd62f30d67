"""The total row of the breakdown models (compression_breakdown, domain_compression, ...): flagged by
is_total, never confused with a label literally called 'all', read by the report as the total, and
counting 0 traces in a warehouse with nothing to analyse."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import full_row, ingest_hub, invoke, memento, row, write_hub_dir
from mementos.foundation import storage


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """A domain, a source and a difficulty literally called 'all', one literally '(unknown)', one missing."""
    from mementos.warehouse.engine import build

    pairs = [("a b c d e f g h", "a b"), ("c d e f g h i j k l", "c d e")]
    long_pairs = [(" ".join(["reasoning"] * 40), "short")]  # so the label 'all' has other figures than the total
    rows = [row(memento(long_pairs), domain="all", source="all", difficulty="all"),
            row(memento(pairs), domain="(unknown)", source="(unknown)", difficulty="(unknown)"),
            row(memento(pairs), domain=None, source=None, difficulty=None),
            row(memento(pairs), domain="math", source="unit", difficulty="3")]
    db = ingest_hub(tmp_path_factory.mktemp("labels"), rows, name="h", with_tokens=True)
    result = build(db)
    assert result.ok, result.format()
    return db


def q(db: Path, sql: str) -> list[tuple]:
    with storage.connect(db) as con:
        return con.execute(sql).fetchall()


def test_a_label_called_all_is_a_value_and_the_total_row_is_flagged(labelled):
    assert q(labelled, "SELECT dimension, value, is_total, traces FROM compression_breakdown "
                       "WHERE value = 'all' ORDER BY ALL") == [
        ("all", "all", True, 4), ("difficulty", "all", False, 1), ("domain", "all", False, 1),
        ("source", "all", False, 1)]
    assert q(labelled, "SELECT domain, is_total, traces FROM domain_compression ORDER BY ALL") == [
        ("(unknown)", False, 2), ("all", False, 1), ("all", True, 4), ("math", False, 1)]
    assert q(labelled, "SELECT source, is_total, traces FROM compression_by_source WHERE source = 'all' "
                       "ORDER BY ALL") == [("all", False, 1), ("all", True, 4)]
    assert q(labelled, "SELECT difficulty, is_total, traces FROM compression_by_difficulty WHERE difficulty = 'all' "
                       "ORDER BY ALL") == [("all", False, 1), ("all", True, 4)]
    assert q(labelled, "SELECT domain, is_total, traces FROM inference_summary WHERE k = 1 ORDER BY ALL") == [
        ("(unknown)", False, 2), ("all", False, 1), ("all", True, 4), ("math", False, 1)]


def test_the_report_reads_the_total_row_not_the_domain_called_all(labelled, tmp_path):
    from mementos.warehouse import report

    report.write_report(labelled, tmp_path / "r.html", echo=lambda _: None)
    with storage.connect(labelled) as con:
        data = report.gather(con, str(labelled))
    [(total_median,)] = q(labelled, "SELECT median_tokens_per_block FROM domain_compression WHERE is_total")
    [(domain_median,)] = q(labelled, "SELECT median_tokens_per_block FROM domain_compression "
                                     "WHERE domain = 'all' AND NOT is_total")
    assert total_median != domain_median
    [block_length] = [c for c in data.card.rows if c.measure == "block length (tokens)"]
    assert block_length.ours_note == f"median {total_median:,.0f}"
    [(total_peak,)] = q(labelled, "SELECT median_peak_no_eviction FROM inference_summary WHERE is_total AND k = 1")
    [(domain_peak,)] = q(labelled, "SELECT median_peak_no_eviction FROM inference_summary "
                                   "WHERE domain = 'all' AND NOT is_total AND k = 1")
    assert total_peak != domain_peak
    assert data.plot_data.inference_total[1][0] == total_peak and data.plot_data.inference["all"][1][0] == domain_peak



# ---------------------------------------------------------------------------
# Nothing to analyse


def _full_only(tmp_path: Path) -> Path:
    from mementos.ingest.pipeline import run_ingest

    rows = [full_row([["One step.", "Two steps."], ["Three."]], ["a", "b"], problem=f"Q{i}?") for i in range(3)]
    src = write_hub_dir(tmp_path / "src", rows, full_rows=rows)
    db = tmp_path / "w.duckdb"
    run_ingest(str(src), db, config="full", name="f", with_tokens=False, workers=0, progress=False)
    return db


# An ingest that wrote nothing left an empty warehouse once; now a failed first ingest publishes
# none (tests/test_snapshots.py: test_a_failed_first_ingest_leaves_nothing_behind), and a source
# without rows is refused, so a full-config-only warehouse is the one left to test.
@pytest.mark.parametrize("make, how", [(_full_only, "its ingest runs read the full config only")])
def test_a_warehouse_without_default_traces_builds_and_reports_nothing_to_analyse(tmp_path, make, how):
    """compression_breakdown's total row summed no trace to NULL, failing its not_null audit, so build and
    report failed. Now every model builds empty (the total row counts 0 traces) and the report says why."""
    from mementos.warehouse.engine import build
    from mementos.warehouse.query import execute

    db = make(tmp_path)
    result = build(db)
    assert result.ok and not result.by_status("failed"), result.format()
    assert execute(db, "SELECT dimension, traces, flagged_traces, blocks FROM compression_breakdown").rows == \
        [("all", 0, 0, 0)]
    out = tmp_path / "r.html"
    result = invoke("report", "--db", db, "--out", out)
    assert result.exit_code == 0, result.output
    reason = (f"This warehouse holds no traces of the default config ({how}); ingest the responses with "
              f"`mementos ingest SOURCE --config default` (or --config all).")
    assert result.output.startswith(f"report: nothing to analyse: {reason}\nwrote {out} ")
    assert (f'<p class="nothing" id="nothing-to-analyse"><strong>Nothing to analyse.</strong> {reason} The figures, '
            f'plots and tables below are empty.</p>') in out.read_text()
