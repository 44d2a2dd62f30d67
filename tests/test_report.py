"""The data the report is built from, on the hand-written golden corpus (tests/golden_models_data.py).

Every expected number is worked out by hand from that file's word counts
(n words = 2n - 1 chars = n tokens; blocks are "a a ...", mementos "b b ...").
Analysed traces: 0 1 2 3 5 6 7 8 9 10 (4 is flagged; 5 duplicates 2).

    block tokens     0: 100 200 50   1: 40 60   2: 80   3: 10 30   5: 80   6: 50 50
                     7: 3000   8: 51 50 (a newline costs a token)   9: 20 40 30   10: 12 x 10
      sum 4061 over 29 blocks
    memento tokens   0: 20 30 10   1: 10 6   2: 16   3: 12 3   5: 16   6: 5 20   7: 2
                     8: 10 10   9: 5 8 6   10: 12 x 2
      sum 213
"""

from __future__ import annotations

import re

import duckdb
import pytest
from click.testing import CliRunner
from rich.console import Console

from golden_models_data import ingest_golden
from report_fixtures import DATASET, PAYLOADS, RICH, hostile_rows, ingest_hostile
from mementos.foundation import storage
from mementos.warehouse import guard, report, report_sections, trace_view
from mementos.warehouse.card import median_ratio_chars
from mementos.foundation.errors import WarehouseError

APPROX = dict(rel=1e-9, abs=1e-12)


@pytest.fixture(scope="module")
def golden_db(tmp_path_factory):
    db = ingest_golden(tmp_path_factory.mktemp("report_golden"))
    seconds, con = report.ensure_built(db, guard.open_warehouse(db), echo=lambda _: None)
    con.close()
    assert seconds > 0  # the report's models, and their upstream
    return db


@pytest.fixture(scope="module")
def data(golden_db):
    with storage.connect(golden_db) as con:
        return report.gather(con, str(golden_db), extra_traces=["golden:0"], outliers=10)


def card(data, measure_start):
    [row] = [c for c in data.card.rows if c.measure.startswith(measure_start)]
    return row


def test_overview(data):
    assert data.overview.totals == {"traces": 11, "ok": 10, "flagged": 1, "unsegmented": 0, "datasets": 1, "blocks": 29}
    assert [(d["dataset"], d["traces"], d["ok"], d["flagged"], d["domains"]) for d in data.overview.datasets] == [
        ("golden", 11, 10, 1, 3)]
    assert [(r["dataset"], r["config"], r["rows_read"], r["default_rows"], r["full_rows"], r["current"])
            for r in data.overview.runs] == [("golden", "all", 22, 11, 11, True)]
    assert [(d["domain"], d["traces"], d["ok"], d["flagged"]) for d in data.overview.domains] == [
        ("math", 4, 3, 1), ("science", 4, 4, 0), ("code", 3, 3, 0)]
    assert data.overview.domains[0]["share"] == pytest.approx(4 / 11, **APPROX)
    # trace 4: block 1 never closed; full rows 3 (summary 1 differs) and 4 (block 1 missing) disagree with the markup
    assert [(i["config"], i["code"], i["traces"], i["issues"]) for i in data.overview.issues] == [
        ("default", "block_without_summary", 1, 1), ("default", "unclosed_block", 1, 1),
        ("full", "markup_mismatch", 2, 2)]
    # every trace is linked to its full row by hash (the duplicates 2 and 5 copy by copy); 3 and 4 disagree
    assert data.overview.alignment == {"linked": 11, "by_hash": 11, "by_problem": 0, "aligned": 9, "disagreeing": 2,
                              "unlinked_default": 0, "unlinked_full": 0}


def test_card_ratios_are_block_medians_per_domain(data):
    # math blocks (traces 0, 1, 7): 39/199 59/399 19/99 | 19/79 11/119 | 3/5999 -> middle two: 59/399, 19/99
    assert card(data, "memento/block ratio, math").ours == pytest.approx((59 / 399 + 19 / 99) / 2, **APPROX)
    # code blocks (2, 3, 5): 31/159 | 23/19 5/59 | 31/159 -> 5/59 < 31/159 = 31/159 < 23/19
    assert card(data, "memento/block ratio, code").ours == pytest.approx(31 / 159, **APPROX)
    # science: 19 blocks, 12 of them 3/19 (trace 10) in positions 2..13: the median (10th) is 3/19
    assert card(data, "memento/block ratio, science").ours == pytest.approx(3 / 19, **APPROX)
    c = card(data, "memento/block ratio, math")
    math = median_ratio_chars()["math"]  # the card's 0.16
    assert (c.card, c.statistic, c.diff) == (math, "median", pytest.approx(c.ours - math, **APPROX))


def test_card_ratio_rows_give_the_tutorials_median_of_per_trace_ratios(data):
    # code traces 2, 3, 5: memento chars / block chars per trace 31/159, (23+5)/(19+59), 31/159 -> median 31/159
    note = card(data, "memento/block ratio, code").ours_note
    assert note.startswith(f"median of per-trace ratios {31 / 159:.3f} (chars), ") and note.endswith(" (words)")


def test_card_token_figures_are_averages_as_on_the_card(data):
    assert card(data, "block length").ours == pytest.approx(4061 / 29, **APPROX)
    assert card(data, "memento length").ours == pytest.approx(213 / 29, **APPROX)
    assert card(data, "block tokens per trace").ours == pytest.approx(4061 / 10, **APPROX)
    assert card(data, "memento tokens per trace").ours == pytest.approx(213 / 10, **APPROX)
    c = card(data, "trace-level compression")
    assert c.ours == pytest.approx(4061 / 213, **APPROX)
    assert c.diff_pct == pytest.approx(100 * (4061 / 213 - 6) / 6, **APPROX)
    # per-trace compression 350/60 100/16 80/16 40/15 80/16 100/25 1500 101/20 90/19 120/24:
    # sorted 2.67 4 4.74 5 5 5 5.05 5.83 6.25 1500 -> median (5 + 5) / 2
    assert c.ours_note == "median per trace 5.00"
    assert card(data, "block length").ours_note == "median 30"  # 15th of 29 sorted block token counts
    assert data.card.has_tokens


def test_plot_data(data):
    assert data.plot_data.domains == ["science", "code", "math"]  # by analysed traces (4, 3, 3), then name
    assert {d: sum(c) for d, c in data.plot_data.ratio_hist.items()} == {"science": 19, "math": 6, "code": 4}
    bins = data.plot_data.ratio_hist["code"]
    # code ratios 5/59 = 0.085 (bin 4), 31/159 = 0.195 twice (bin 9), 23/19 = 1.21 (clipped to the last bin, 50)
    assert {i: n for i, n in enumerate(bins) if n} == {4: 1, 9: 2, 50: 1}
    assert data.plot_data.blocks_hist == {"science": {2: 2, 3: 1, 12: 1}, "math": {1: 1, 2: 1, 3: 1}, "code": {1: 2, 2: 1}}
    assert len(data.plot_data.scatter) == 29 and sorted(b for _, b, _ in data.plot_data.scatter)[-1] == 5999
    assert data.plot_data.compression_unit == "tokens"
    math = data.plot_data.compression_box["math"]  # 350/60, 100/16 = 6.25, 1500
    assert (math["med"], math["n"]) == (pytest.approx(6.25, **APPROX), 3)
    # no eviction, peak = every block + memento + answer (440 117 106 60 106 133 3007 129 115 148) + markup,
    # one token per marker, 2 + 4 per pair (n = 3 2 1 2 1 2 1 2 3 12): 454 127 112 70 112 143 3013 139 129 198
    # -> median (129 + 139) / 2; plus the prompt, "problem N": 3 tokens
    assert set(data.plot_data.inference) == {"science", "math", "code"}
    assert sorted(data.plot_data.inference_total) == [1, 2, 4, 8]
    assert data.plot_data.inference_total[8][0] == pytest.approx(134 + 3, **APPROX)
    # trace 0 (the only math trace with 3 blocks) keeps everything for k >= 3; math medians over 0, 1, 7;
    # plain chain of thought of trace 0: 350 + 30 + 2 (+ 3)
    assert data.plot_data.inference["math"][1][0] == pytest.approx(454 + 3, **APPROX)
    assert data.plot_data.inference["math"][1][2] == pytest.approx(382 + 3, **APPROX)
    # the savings table: all domains, k = 4 keeps every block of traces with up to 3 blocks; only trace 10
    # (12 blocks) evicts: its saving 198 - 113 = 85 against no eviction, so the median over ten traces is 0
    by_k = {s["k"]: s for s in data.plot_data.savings}
    assert sorted(by_k) == [1, 2, 4, 8] and by_k[4]["traces"] == 10
    assert (by_k[4]["median_peak_no_eviction"], by_k[4]["median_saved_fraction_vs_no_eviction"]) == (137.0, 0.0)
    assert by_k[1]["share_fits_8k_with_eviction"] == 1.0


def test_positions_for_the_plot(data):
    # math: first blocks 39/199 and 19/79; 'only' (order 12, trace 7) is read too but not drawn
    assert data.plot_data.positions["math"][0] == pytest.approx((39 / 199 + 19 / 79) / 2, **APPROX)
    assert sorted(data.plot_data.positions["math"]) == [0, 5, 11, 12]
    assert sorted(data.plot_data.positions_total)[:2] == [0, 1]


def test_retention_section(data):
    # the golden texts are runs of one-letter words: no numbers, no content words, nothing to judge
    rows = {r["domain"]: r for r in data.retention.summary}
    assert (rows["all"]["pairs"], rows["all"]["pairs_with_numbers"], rows["all"]["median_word_recall"]) == (29, 0, None)
    assert [r["domain"] for r in data.retention.summary] == ["science", "math", "code", "all"]  # by pairs: 19, 6, 4
    assert data.retention.least_informative == []


def test_outliers_and_which_traces_are_shown(data):
    assert data.outliers.total == 7
    assert [o["trace_id"] for o in data.outliers.top][:1] == ["golden:10"]  # two reasons
    assert data.outliers.top[0]["reasons"] == ["too_many_blocks", "repeated_blocks"]
    assert {o["trace_id"] for o in data.outliers.top} == {"golden:7", "golden:10", "golden:5", "golden:3", "golden:4",
                                                     "golden:6", "golden:8"}
    assert {r["reason"]: r["traces"] for r in data.outliers.reasons}["flagged"] == 1
    shown = {v.trace_id: v.why for v in data.views}
    # typical math trace: ratios 117/697, 30/198, 3/5999 -> median 30/198: golden:1 (its answer "42" is no outlier)
    assert shown["golden:1"] == ["typical math trace (memento/block ratio closest to the domain median)"]
    # typical code trace: 31/159 (2 and its duplicate 5), 28/78 -> tie broken by trace id
    assert shown["golden:2"] == ["typical code trace (memento/block ratio closest to the domain median)"]
    assert shown["golden:0"] == ["chosen with --trace"]
    assert all(o["trace_id"] in shown for o in data.outliers.top)
    for o in data.outliers.top:
        assert re.fullmatch(r"trace-[a-z0-9-]+", o["anchor"])
    assert len({v.anchor for v in data.views}) == len(data.views)


def test_trace_view_of_a_clean_trace(data):
    [v] = [v for v in data.views if v.trace_id == "golden:3"]
    assert (v.dataset, v.domain, v.source, v.difficulty, v.status, v.issue_codes) == (
        "golden", "code", "beta", "3", "ok", [])
    assert v.problem == "problem 3" and v.answer == " ".join(["c"] * 5) and v.answer_tokens == 5
    assert [(p.block_idx, p.block, p.memento, p.block_tokens, p.memento_tokens) for p in v.pairs] == [
        (0, " ".join(["a"] * 10), " ".join(["b"] * 12), 10, 12), (1, " ".join(["a"] * 30), " ".join(["b"] * 3), 30, 3)]
    assert [p.ratio_tokens for p in v.pairs] == [12 / 10, 3 / 30]
    assert [p.ratio_chars for p in v.pairs] == [23 / 19, 5 / 59]
    assert (v.block_tokens, v.memento_tokens, v.compression_tokens) == (40, 15, 40 / 15)


def test_trace_view_of_a_flagged_trace(data):
    [v] = [v for v in data.views if v.trace_id == "golden:4"]
    assert v.status == "flagged" and v.issue_codes == ["block_without_summary", "unclosed_block"]
    assert [(p.block_idx, p.block is not None, p.memento is not None) for p in v.pairs] == [(0, True, True),
                                                                                              (1, True, False)]
    assert v.pairs[1].ratio_tokens is None
    assert (v.block_tokens, v.memento_tokens) == (10, 3)  # complete pairs only
    assert v.answer == "c c c c"


def test_trace_views_agree_with_the_models(golden_db):
    with storage.connect(golden_db) as con:
        pairs = con.execute("SELECT trace_id, block_idx, block_tokens, memento_tokens, block_chars, memento_chars, "
                            "ratio_tokens, ratio_chars FROM block_pairs ORDER BY ALL").fetchall()
        compression = dict(con.execute("SELECT trace_id, compression_tokens FROM trace_compression").fetchall())
        views = trace_view.trace_views(con, sorted(compression))
    got = sorted((tid, p.block_idx, p.block_tokens, p.memento_tokens, p.block_chars, p.memento_chars,
                  p.ratio_tokens, p.ratio_chars) for tid, v in views.items() for p in v.pairs)
    assert got == pairs
    assert {tid: v.compression_tokens for tid, v in views.items()} == compression


def test_models_section(data):
    names = [m["name"] for m in data.models]
    assert set(report.REPORT_MODELS) <= set(names)
    assert names.index("block_pairs") < names.index("trace_compression")  # dependency order
    for m in data.models:
        assert m["state"] == "fresh" and re.fullmatch(r"[0-9a-f]{8,}", m["fingerprint"]) and m["built_at"]


def test_trace_counts_sum_the_dataset_domain_status_rows():
    """The overview's totals, datasets and domains from one (dataset, domain, status, traces) row per group: most
    traces first, ties by name; a dataset's domains are the distinct ones it has."""
    counts = [("b", "math", "ok", 3), ("b", "math", "flagged", 1), ("a", "code", "ok", 2),
              ("a", "math", "ok", 2), ("b", "(unknown)", "ok", 2)]
    totals, datasets, domains = report_sections._trace_counts(counts)
    counts.append(("a", "code", "unsegmented", 1))
    totals, datasets, domains = report_sections._trace_counts(counts)
    assert totals == {"traces": 11, "ok": 9, "flagged": 1, "unsegmented": 1, "datasets": 2}
    assert datasets == [{"dataset": "b", "traces": 6, "ok": 5, "flagged": 1, "unsegmented": 0, "domains": 2},
                        {"dataset": "a", "traces": 5, "ok": 4, "flagged": 0, "unsegmented": 1, "domains": 2}]
    assert domains == [{"domain": "math", "traces": 6, "ok": 5, "flagged": 1, "unsegmented": 0},
                       {"domain": "code", "traces": 3, "ok": 2, "flagged": 0, "unsegmented": 1},
                       {"domain": "(unknown)", "traces": 2, "ok": 2, "flagged": 0, "unsegmented": 0}]


def test_the_report_queries_run_in_a_small_pool_and_put_it_back(golden_db, monkeypatch):
    """DuckDB caches what it reads up to its pool: the report's queries get REPORT_MEMORY_LIMIT (64 MB), then the
    connection has the pool every command has again."""
    monkeypatch.delenv("MEMENTOS_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(storage, "MEMORY_LIMIT", "600MB")

    def limit(con):
        return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]

    with storage.connect(golden_db) as con:
        con.execute("SET memory_limit = '600MB'")
        with report._small_pool(con):
            during = limit(con)
        after = limit(con)
    assert (during, after) == ("61.0 MiB", "572.2 MiB")


def test_out_of_memory_in_the_small_pool_names_its_limit(golden_db, tmp_path, monkeypatch):
    monkeypatch.delenv("MEMENTOS_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(report, "REPORT_MEMORY_LIMIT", "1MB")
    with pytest.raises(WarehouseError) as info:
        report.write_report(golden_db, tmp_path / "r.html", echo=lambda *_: None)
    assert str(info.value).endswith("; DuckDB may use 1MB here (MEMENTOS_MEMORY_LIMIT): set it higher, "
                                    "e.g. MEMENTOS_MEMORY_LIMIT=2GB, and run the command again")
    assert not (tmp_path / "r.html").exists()


def test_unknown_trace_is_an_error(golden_db):
    with storage.connect(golden_db) as con:
        with pytest.raises(WarehouseError, match="no trace 'golden:99'.*golden:0"):
            report.gather(con, str(golden_db), extra_traces=["golden:99"])


# ---------------------------------------------------------------------------
# The whole command on a warehouse with hostile text


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_hostile")
    db = tmp / "hostile.duckdb"
    ids = ingest_hostile(tmp / "src", db)
    return db, ids


def test_report_builds_stale_models_first_and_says_so(hostile_db, tmp_path):
    db, ids = hostile_db
    lines = []
    first = report.write_report(db, tmp_path / "r1.html", traces=ids, echo=lines.append)
    assert lines and lines[0].startswith("report: ") and "building first" in lines[0] and "never built" in lines[0]
    assert first.timings["build"] > 0
    lines.clear()
    second = report.write_report(db, tmp_path / "r2.html", traces=ids, echo=lines.append)
    assert lines == [] and second.timings["build"] == 0
    assert second.views >= len(ids)


def test_rendered_html_escapes_every_payload(hostile_db, tmp_path):
    db, ids = hostile_db
    out = report.write_report(db, tmp_path / "r.html", traces=ids, echo=lambda _: None).out
    html = out.read_text(encoding="utf-8")
    for payload in PAYLOADS:
        assert payload not in html or not re.search(r"[<>\"']", payload), payload  # plain text may stay as is
    for raw in ("<script", "<svg", "<iframe", "<img src=x", "onerror=\"", "onload=\"", "<b>hostile", "<b>0</b>"):
        assert raw not in html.lower(), raw
    assert "&lt;script&gt;window.__pwned = 1; alert(1)&lt;/script&gt;" in html
    hrefs = re.findall(r"href=\"([^\"]*)\"", html)
    assert hrefs and all(re.fullmatch(r"#[a-z0-9-]+", h) for h in hrefs), sorted(set(hrefs))
    srcs = re.findall(r"src=\"([^\"]*)\"", html)
    assert len(srcs) == 6 and all(s.startswith("data:image/png;base64,") for s in srcs)
    ids_in_page = re.findall(r"\sid=\"([^\"]*)\"", html)
    assert all(re.fullmatch(r"[a-z0-9-]+", i) for i in ids_in_page)
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    assert "{{ 7 * 7 }}" in html  # data is never evaluated as a template


def test_show_prints_the_texts_as_text(hostile_db):
    from mementos.warehouse.show import show

    db, ids = hostile_db
    console = Console(record=True, width=200, highlight=False, color_system=None)
    show(db, ids[0], console)
    out = console.export_text()
    row = hostile_rows()[0]
    assert "[bold red]not markup[/bold red]" in out  # rich markup in the data stays literal
    assert "\x1b" not in out and "\\x1b[31mESC" in out  # terminal escapes are shown, not sent
    assert "window.__pwned = 1; alert(1)" in out
    assert row["_answer"] in out.replace("\n", " ") or row["_answer"][:40] in out
    assert ids[0] in out and "memento 0.0:" in out


def test_cli_report_and_show(hostile_db, tmp_path):
    from mementos.cli import main

    db, ids = hostile_db
    runner = CliRunner()
    out = tmp_path / "cli.html"
    result = runner.invoke(main, ["report", "--db", str(db), "--out", str(out), "--trace", ids[1], "--outliers", "3"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and out.exists()
    result = runner.invoke(main, ["show", ids[1], "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "block 1.0:" in result.output
    result = runner.invoke(main, ["show", f"{DATASET}:99", "--db", str(db)])
    assert result.exit_code == 1 and "no trace" in result.output


# ---------------------------------------------------------------------------
# Edge cases: nothing analysed, no token counts


def _ingest(tmp_path, rows, with_tokens):
    from conftest import write_hub_dir
    from mementos.ingest.pipeline import run_ingest

    src = write_hub_dir(tmp_path / "src", rows)
    db = tmp_path / "w.duckdb"
    run_ingest(str(src), db, config="default", name="edge", with_tokens=with_tokens, workers=0, progress=False)
    return db


def test_report_of_a_warehouse_with_only_flagged_traces(tmp_path):
    from conftest import row

    db = _ingest(tmp_path, [row("<think> </think>42"), row("")], with_tokens=True)
    result = report.write_report(db, tmp_path / "r.html", echo=lambda _: None)
    with storage.connect(db) as con:
        data = report.gather(con, str(db))
    assert data.overview.totals == {"traces": 2, "ok": 0, "flagged": 2, "unsegmented": 0, "datasets": 1,
                                    "blocks": 0}
    # every figure is empty but the counts of traces (2, both flagged, both math)
    ours = {c.measure: c.ours for c in data.card.rows}
    assert (ours.pop("traces, all"), ours.pop("traces, math")) == (2, 2) and not data.card.has_tokens
    assert set(ours.values()) == {None}
    assert data.plot_data.domains == [] and data.plot_data.scatter == [] and data.plot_data.compression_box == {}
    assert {o["trace_id"] for o in data.outliers.top} == {"edge:0", "edge:1"}  # flagged: shown as outliers
    html = result.out.read_text()
    assert html.count('src="data:image/png;base64,') == 6  # every plot is an image, saying there is no data
    assert html.count('<details class="trace flagged">') == 2  # their views: raw response, no pairs
    assert html.count("no block/memento pairs recovered") == 2


def test_flagged_trace_shows_its_raw_response_with_each_issue_marked(tmp_path):
    from conftest import row

    response = "<think> </think>42"
    db = _ingest(tmp_path, [row(response)], with_tokens=False)
    view = trace_view.trace_view(db, "edge:0")
    assert view.response == response
    assert [(i.code, i.char_offset) for i in view.issues] == [("no_blocks", 0)]
    assert view.marked_response() == [("no_blocks", view.issues[0]), (response, None)]
    result = report.write_report(db, tmp_path / "r.html", echo=lambda _: None)
    html = result.out.read_text()
    assert ('<div class="text raw"><mark class="issue" title="no blocks or summaries: a raw chain of thought">'
            'no_blocks</mark>&lt;think&gt; &lt;/think&gt;42</div>') in html


def test_marks_go_at_their_offsets_in_order():
    view = trace_view.TraceView("d:0", "trace-d-0", "d", None, None, None, "flagged", [], None, [], None, None,
                                response="0123456789", issues=[trace_view.IssueMark("late", 8, "x"),
                                                               trace_view.IssueMark("early", 3, "y"),
                                                               trace_view.IssueMark("nowhere", None, "z"),
                                                               trace_view.IssueMark("past_end", 99, "w")])
    assert [(text, issue.code if issue else None) for text, issue in view.marked_response()] == [
        ("nowhere", "nowhere"), ("012", None), ("early", "early"), ("34567", None), ("late", "late"),
        ("89", None), ("past_end", "past_end")]


def test_show_of_a_flagged_trace_prints_the_raw_response_and_its_issues(tmp_path):
    from conftest import row
    from mementos.warehouse.show import show

    db = _ingest(tmp_path, [row("<think> </think>42")], with_tokens=False)
    console = Console(record=True, width=120, highlight=False, color_system=None)
    show(db, "edge:0", console)
    out = console.export_text()
    assert "no_blocks        0   no blocks or summaries: a raw chain of thought" in out
    assert "⟦no_blocks⟧<think> </think>42" in out
    assert "(no block/memento pairs recovered)" in out and "0 pairs" in out


def test_trace_views_are_collapsed_with_a_summary_line(data):
    from collections import defaultdict
    from dataclasses import replace

    html = report.render_html(replace(data, plots=defaultdict(lambda: "data:,")))
    [v] = [v for v in data.views if v.trace_id == "golden:3"]
    assert v.summary_line == "golden:3 · code · 2 blocks · 2.67× in tokens"
    assert f'<details class="trace">\n  <summary>{v.summary_line}</summary>' in html
    assert "<details open" not in html and "<section" not in html
    assert "@media print" in html and ".text { max-height: none; overflow: visible; }" in html


def test_report_without_token_counts_uses_chars(tmp_path):
    from conftest import memento, row

    rows = [row(memento([("a b c d e f g h", "a b"), ("c d e f g h i j k l", "c d e")]), domain=d)
            for d in ("math", "code")]
    db = _ingest(tmp_path, rows, with_tokens=False)
    report.write_report(db, tmp_path / "r.html", echo=lambda _: None)
    with storage.connect(db) as con:
        data = report.gather(con, str(db))
    assert not data.card.has_tokens and data.plot_data.compression_unit == "chars"
    assert card(data, "memento/block ratio, math").ours == pytest.approx((3 / 15 + 5 / 19) / 2, **APPROX)
    assert card(data, "block length").ours is None
    assert data.plot_data.compression_box["math"]["med"] == pytest.approx(34 / 8, **APPROX)  # (15 + 19) / (3 + 5) chars
    assert all(v == (None, None, None) for ks in [*data.plot_data.inference.values(), data.plot_data.inference_total] for v in ks.values())


def test_a_difference_that_rounds_to_zero_has_no_sign():
    signed = report._environment().filters["signed"]
    assert [signed(-0.0001, 1), signed(0.0001, 1), signed(-0.04, 1), signed(-0.06, 1), signed(1234.5, 0)] == [
        "0.0", "0.0", "0.0", "-0.1", "+1,234"]


def test_ratio_axis_ends_just_past_the_data():
    """Data ending near 0.5 gets an axis to 0.52, not to 1 (the card's medians, up to 0.23, are within)."""
    from mementos.warehouse import plots
    from mementos.warehouse.report_data import RATIO_BIN

    assert RATIO_BIN == 0.02
    counts = [0] * 51
    counts[24] = 5  # the bin [0.48, 0.50)
    assert plots.ratio_axis_end({"math": counts, "code": [0] * 51}) == pytest.approx(0.52)


@pytest.mark.parametrize("blocks, mementos", [
    ((12, 150, 2_000, 30_000, 400_000), (5, 60, 800, 9_000)),  # five decades
    ((2_100, 3_000, 4_400, 6_900), (410, 520, 700, 980)),  # within one decade: minor ticks get labels
])
def test_log_axis_labels_of_the_scatter_do_not_overlap(blocks, mementos):
    from mementos.warehouse import plots

    scatter = [("math", b, m) for b in blocks for m in mementos]
    sample = _plot_data(scatter=scatter, domains=["math"])
    fig = plots.block_vs_memento_figure(sample, "t")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for axis in (fig.axes[0].xaxis, fig.axes[0].yaxis):
        boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels(which="both")
                 if t.get_visible() and t.get_text()]
        assert len(boxes) >= 2
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def _plot_data(**values):
    from mementos.warehouse import plots

    data = plots.PlotData.__new__(plots.PlotData)
    data.__dict__.update(values)
    return data


@pytest.mark.parametrize("hist, xlabel, right", [
    ({1: 3, 30: 1}, "blocks per trace (count)", 30.5),  # the demo's longest trace has 30 blocks: no 40 bin
    ({1: 3, 40: 1}, "blocks per trace (count; the last point, 40, holds 40 or more)", 40.5),
])
def test_the_blocks_per_trace_axis_says_its_last_bin_holds_more_only_when_it_reaches_it(hist, xlabel, right):
    from mementos.warehouse import plots

    fig = plots.blocks_per_trace_figure(_plot_data(blocks_hist={"math": hist}, domains=["math"]))
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_xlim()) == (xlabel, (0.5, right))


def test_the_peak_context_legend_is_drawn_outside_the_lines():
    """Its 9 entries (3 for all domains, 2 per domain) sat inside the axes, over the lines below 4,000 tokens."""
    from mementos.warehouse import plots

    def by_k(no, with_, plain):
        return {k: (no, with_ * k, plain) for k in (1, 2, 4, 8)}

    data = _plot_data(domains=["math", "science", "code"], inference_total=by_k(9_900, 1_100, 8_000),
                      inference={"math": by_k(13_500, 1_300, 0), "science": by_k(5_900, 700, 0),
                                 "code": by_k(9_700, 1_000, 0)})
    fig = plots.peak_context_figure(data)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    [legend] = fig.legends
    assert fig.axes[0].get_legend() is None
    assert [t.get_text() for t in legend.get_texts()] == [
        "all domains", "math", "science", "code", "with eviction", "no eviction", "plain chain of thought (all domains)"]
    assert not legend.get_window_extent(renderer).overlaps(fig.axes[0].get_window_extent(renderer))
