"""sql/queries/card_comparison.sql compares like with like: the card's ratios are medians of
per-block ratios, its token figures are averages (and ~6x is the ratio of two averages), so
the query uses the same statistic for each row, says which, and agrees with the report's card
table; domain_compression carries the averages it needs. Numbers from golden_models_data.py."""

from __future__ import annotations

import duckdb
from mementos.foundation import storage  # noqa: E402
from mementos.foundation.resources import resource_dir
import pytest

from golden_models_data import ingest_golden
from mementos.warehouse import card
from mementos.warehouse.engine import build
from mementos.warehouse.query import execute
from mementos.warehouse.report_sections import card_comparison

QUERY = resource_dir("queries") / "card_comparison.sql"
APPROX = dict(rel=1e-9, abs=1e-12)
STATISTICS = {
    "memento/block ratio (chars)": "median of per-block ratios",
    "tokens per block": "average over blocks",
    "tokens per memento": "average over blocks",
    "block tokens per trace": "average over traces",
    "memento tokens per trace": "average over traces",
    "trace-level compression (x)": "ratio of the averages per trace",
    "blocks per trace": "median over traces",
    "block chars": "median over blocks",
    "memento chars, lowest domain": "lowest of the per-domain medians over mementos",
    "memento chars, highest domain": "highest of the per-domain medians over mementos",
    "block-level compression (x), lowest domain":
        "lowest over domains of 1 / the median of per-block memento/block ratios (chars)",
    "block-level compression (x), highest domain":
        "highest over domains of 1 / the median of per-block memento/block ratios (chars)",
    "traces": "count",
    "sentences per trace": "average over traces (full config)",
}
TOKEN_MEASURES = {card.TOKENS_PER_BLOCK, card.TOKENS_PER_MEMENTO, card.BLOCK_TOKENS_PER_TRACE,
                  card.MEMENTO_TOKENS_PER_TRACE, card.TRACE_COMPRESSION}
RANGES = ("memento chars, lowest domain", "memento chars, highest domain",
          "block-level compression (x), lowest domain", "block-level compression (x), highest domain")
FIGURES = card.figures()  # the card's figures, from models/card_figures.sql
# the rows, in order: the ratio per domain (most traces first, then the total, which the card has no ratio
# for), then the figures over every trace; each with the card's figure
CARD = {**{(card.RATIO_CHARS, d): FIGURES.get((card.RATIO_CHARS, d)) for d in ("science", "code", "math", "all")},
        **{(m, "all"): FIGURES[m, "all"] for m in (card.TOKENS_PER_BLOCK, card.TOKENS_PER_MEMENTO,
                                                   card.BLOCK_TOKENS_PER_TRACE, card.MEMENTO_TOKENS_PER_TRACE,
                                                   card.TRACE_COMPRESSION)},
        # the medians per domain (analysed traces: science 4, code 3, math 3), the ranges across the card's
        # domains, then every trace per domain (math 4 with its flagged trace, science 4, code 3)
        **{(m, d): FIGURES.get((m, d)) for m in ("blocks per trace", "block chars")
           for d in ("science", "code", "math", "all")},
        **{(m, "all"): FIGURES[m, "all"] for m in RANGES},
        **{("traces", d): FIGURES["traces", d] for d in ("math", "science", "code", "all")},
        ("sentences per trace", "all"): FIGURES["sentences per trace", "all"]}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    db = ingest_golden(tmp_path_factory.mktemp("card"))
    assert build(db).ok
    return db


def comparison(db) -> dict[tuple[str, str], dict]:
    result = execute(db, QUERY.read_text())
    assert result.columns == ["measure", "domain", "statistic", "card", "warehouse", "difference",
                              "warehouse_median", "traces", "flagged_traces"]
    return {(r[0], r[1]): dict(zip(result.columns, r)) for r in result.rows}


def test_domain_compression_has_the_averages(golden):
    with storage.connect(golden) as con:
        result = con.execute("SELECT domain, avg_tokens_per_block, avg_tokens_per_memento, "
                             "avg_block_tokens_per_trace, avg_memento_tokens_per_trace FROM domain_compression")
        got = {r[0]: r[1:] for r in result.fetchall()}
    # math: blocks 100 200 50 | 40 60 | 3000, mementos 20 30 10 | 10 6 | 2 (the flagged trace 4 left out)
    assert got["math"] == pytest.approx((3450 / 6, 78 / 6, 3450 / 3, 78 / 3), **APPROX)
    # code: blocks 80 | 10 30 | 80 (trace 5 duplicates 2), mementos 16 | 12 3 | 16
    assert got["code"] == pytest.approx((200 / 4, 47 / 4, 200 / 3, 47 / 3), **APPROX)
    # all: 213 memento tokens (60 16 16 15 16 25 2 20 19 24) over 29 blocks and 10 traces
    assert got["all"][1] == pytest.approx(213 / 29, **APPROX) and got["all"][3] == pytest.approx(21.3, **APPROX)


def test_each_row_uses_the_cards_statistic_and_says_so(golden):
    rows = comparison(golden)
    assert list(rows) == list(CARD)  # ratios by domain (most traces first, 'all' last), then the token figures
    for key, row in rows.items():
        assert row["statistic"] == STATISTICS[key[0]], key
        assert row["card"] == CARD[key], key
    with storage.connect(golden) as con:
        medians = dict(con.execute("SELECT domain, median_ratio_chars FROM domain_compression").fetchall())
        [all_row] = con.execute("SELECT traces, flagged_traces, median_tokens_per_block, median_compression_tokens "
                                "FROM domain_compression WHERE domain = 'all'").fetchall()
        report = {r.measure: r for r in card_comparison(con).rows}
    # ratios: medians, as the card states them; math (59/399 + 19/99) / 2 = 0.1699
    assert rows["memento/block ratio (chars)", "math"]["warehouse"] == 0.17
    assert rows["memento/block ratio (chars)", "math"]["difference"] == round((59 / 399 + 19 / 99) / 2 - CARD[
        "memento/block ratio (chars)", "math"], 3)
    for domain, median in medians.items():
        row = rows["memento/block ratio (chars)", domain]
        assert row["warehouse"] == row["warehouse_median"] == round(median, 3)
    # token figures: averages (213 memento tokens over 29 blocks and 10 traces), the median beside them
    assert rows["tokens per memento", "all"]["warehouse"] == round(213 / 29) == 7
    assert rows["memento tokens per trace", "all"]["warehouse"] == round(21.3) == 21
    assert rows["memento tokens per trace", "all"]["difference"] == 21 - CARD["memento tokens per trace", "all"]
    assert rows["tokens per block", "all"]["warehouse_median"] == round(all_row[2])
    # the same figures as the report's card table, which compares averages too
    for measure, report_measure in [("tokens per block", "block length (tokens)"),
                                    ("tokens per memento", "memento length (tokens)"),
                                    ("block tokens per trace", "block tokens per trace"),
                                    ("memento tokens per trace", "memento tokens per trace")]:
        assert report[report_measure].statistic == "average"
        assert rows[measure, "all"]["warehouse"] == round(report[report_measure].ours), measure
    compression = rows["trace-level compression (x)", "all"]
    assert compression["warehouse"] == round(report["trace-level compression (block tokens / memento tokens, x)"]
                                             .ours, 2)
    assert compression["warehouse_median"] == round(all_row[3], 2)
    assert {(r["traces"], r["flagged_traces"]) for k, r in rows.items()
            if k[1] == "all" and k[0] in STATISTICS and k[0] not in ("traces", "sentences per trace")} == {all_row[:2]}


def test_the_cards_medians_and_ranges_beside_ours(golden):
    """Blocks per trace: math 3, 2, 1; science 2, 2, 3, 12. Block chars (2n - 1 for n words): math 199, 399, 99,
    79, 119, 5,999. The ranges are the lowest and highest of the three domains' medians."""
    rows = comparison(golden)
    assert (rows["blocks per trace", "math"]["warehouse"], rows["blocks per trace", "science"]["warehouse"]) == (2, 2.5)
    assert rows["block chars", "math"]["warehouse"] == (119 + 199) / 2
    assert rows["block chars", "code"]["card"] is None  # the card names science and math only
    with storage.connect(golden) as con:
        medians = con.execute("SELECT median_memento_chars, 1 / median_ratio_chars FROM domain_compression "
                              "WHERE domain IN ('math', 'code', 'science')").fetchall()
    chars, compression = [m[0] for m in medians], [m[1] for m in medians]
    assert rows["memento chars, lowest domain", "all"]["warehouse"] == round(min(chars))
    assert rows["memento chars, highest domain", "all"]["warehouse"] == round(max(chars))
    assert rows["block-level compression (x), lowest domain", "all"]["warehouse"] == round(min(compression), 2)
    assert rows["block-level compression (x), highest domain", "all"]["warehouse"] == round(max(compression), 2)
    assert [rows["traces", d]["warehouse"] for d in ("math", "science", "code", "all")] == [4, 4, 3, 11]


def test_without_tokens_the_token_figures_are_null(tmp_path):
    db = ingest_golden(tmp_path, with_tokens=False)
    assert build(db).ok
    rows = comparison(db)
    assert list(rows) == list(CARD)
    assert rows["memento/block ratio (chars)", "math"]["warehouse"] == 0.17
    for (measure, _), row in rows.items():
        if measure in TOKEN_MEASURES:
            assert (row["warehouse"], row["difference"], row["warehouse_median"]) == (None, None, None), measure
