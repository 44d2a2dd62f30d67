"""The report's sections, each gathered from the models by its own function (its queries and its part of
the data, report_data.py): report.gather composes them."""

from __future__ import annotations

import duckdb

from mementos.foundation import catalog
from mementos.warehouse import card
from mementos.warehouse.report_data import (MAX_BLOCKS_BIN, RATIO_BIN, RATIO_MAX, CardComparison, CardRow, Outliers,
                                            Overview, PlotData, Retention)
from mementos.warehouse.trace_view import _dicts, _ratio, anchor_for

MAX_PLOT_DOMAINS = 6  # plots draw the largest domains; the tables list all of them
MIN_PLOT_SHARE = 0.01  # ... those with at least 1% of the analysed traces
MAX_DOMAIN_VIEWS = 8  # one typical trace per domain, for the largest domains
SCATTER_SAMPLE = 3000
LEAST_INFORMATIVE = 10  # mementos listed in the retention section
MIN_CONTENT_WORDS = 10  # blocks with fewer content words are too short to judge a memento's word recall


def _scalar_row(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> dict:
    rows = _dicts(con, sql, params)
    return rows[0] if rows else {}


# ---------------------------------------------------------------------------
# Overview


def overview(con: duckdb.DuckDBPyConnection, objects) -> Overview:
    """Traces per dataset, domain and status, the last ingest runs, parse issues per code, and how the two
    configs align (when full_alignment is among `objects`)."""
    # one pass over `traces` (all_traces, a view, would also join every trace's issue codes), from which the
    # totals, datasets and domains are summed
    counts = con.execute("SELECT dataset, coalesce(domain, '(unknown)') AS domain, status, count(*) FROM traces "
                         "GROUP BY ALL").fetchall()
    totals, datasets, domains = _trace_counts(counts)
    totals["blocks"] = con.execute("SELECT count(*) FROM block_pairs").fetchall()[0][0]
    for d in domains:
        d["share"] = d["traces"] / totals["traces"] if totals["traces"] else None
    runs = _dicts(con, f"""
        SELECT {', '.join(catalog.run_columns(con))},
               run_id IN (SELECT run_id FROM ({catalog.current_runs_sql(con)})) AS current
        FROM ingest_runs ORDER BY finished_at DESC LIMIT 50""")
    alignment = _alignment(con) if "full_alignment" in objects else None
    return Overview(totals, datasets, runs, domains, _issues(con), alignment)


def _issues(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Parse issues per config and code. One config at a time (the view's two, sql/views.sql): a query over both
    reads the Parquet metadata of the traces' and the full traces' files at once."""
    issues = []
    for config in ("default", "full"):
        issues += _dicts(con, """
            SELECT config, code, count(DISTINCT trace_id) AS traces, count(*) AS issues
            FROM parse_issues WHERE config = ? GROUP BY config, code""", [config])
    issues.sort(key=lambda r: (r["config"], -r["traces"], r["code"]))
    return issues


def _alignment(con: duckdb.DuckDBPyConnection) -> dict:
    return _scalar_row(con, """
        SELECT count(*) FILTER (WHERE link <> 'unlinked') AS linked,
               count(*) FILTER (WHERE link = 'hash') AS by_hash,
               count(*) FILTER (WHERE link = 'problem') AS by_problem,
               count(*) FILTER (WHERE aligned) AS aligned,
               count(*) FILTER (WHERE NOT aligned) AS disagreeing,
               count(*) FILTER (WHERE link = 'unlinked' AND full_trace_id IS NULL) AS unlinked_default,
               count(*) FILTER (WHERE link = 'unlinked' AND trace_id IS NULL) AS unlinked_full
        FROM full_alignment""")


def _trace_counts(counts: list[tuple]) -> tuple[dict, list[dict], list[dict]]:
    """(dataset, domain, status, traces) rows -> the totals, the datasets and the domains, each with its traces,
    ok, flagged and unsegmented, in the report's order (most traces first, then by name)."""
    def tally(rows) -> dict:
        return {"traces": sum(n for *_, n in rows), "ok": sum(n for *_, s, n in rows if s == "ok"),
                "flagged": sum(n for *_, s, n in rows if s == "flagged"),
                "unsegmented": sum(n for *_, s, n in rows if s == "unsegmented")}

    def grouped(position: int) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = {}
        for r in counts:
            out.setdefault(r[position], []).append(r)
        return out

    totals = tally(counts) | {"datasets": len(grouped(0))}
    datasets = [{"dataset": name, **tally(rows), "domains": len({r[1] for r in rows})}
                for name, rows in grouped(0).items()]
    domains = [{"domain": name, **tally(rows)} for name, rows in grouped(1).items()]
    datasets.sort(key=lambda d: (-d["traces"], d["dataset"]))
    domains.sort(key=lambda d: (-d["traces"], d["domain"]))
    return totals, datasets, domains


# ---------------------------------------------------------------------------
# Card comparison


def card_comparison(con: duckdb.DuckDBPyConnection) -> CardComparison:
    """This warehouse's figures beside the card's, each computed as the card states it."""
    ratios = dict(con.execute(
        "SELECT domain, median_ratio_chars FROM domain_compression WHERE NOT is_total").fetchall())
    # the tutorial's figure: the median over traces of each trace's memento/block ratio
    per_trace_ratios = {d: (c, w) for d, c, w in con.execute(
        "SELECT domain, median_trace_ratio_chars, median_trace_ratio_words FROM domain_compression "
        "WHERE NOT is_total").fetchall()}
    all_row = _scalar_row(con, "SELECT * FROM domain_compression WHERE is_total")
    per_block = _scalar_row(con, "SELECT avg(block_tokens) AS block, avg(memento_tokens) AS memento, "
                                 "count(block_tokens) AS with_tokens FROM block_pairs")
    per_trace = _scalar_row(con, "SELECT avg(block_tokens) AS block, avg(memento_tokens) AS memento "
                                 "FROM trace_compression")
    rows = []
    for domain, figure in card.median_ratio_chars().items():
        chars, words = per_trace_ratios.get(domain, (None, None))
        note = (f"median of per-trace ratios {chars:.3f} (chars), {words:.3f} (words)"
                if chars is not None and words is not None else "")
        rows.append(CardRow(f"memento/block ratio, {domain} (characters, per block)", "median", figure,
                            ratios.get(domain), note, 3))
    return CardComparison(rows + _length_rows(all_row, per_block, per_trace) + _distribution_rows(con),
                          bool(per_block.get("with_tokens")))


def _distribution_rows(con: duckdb.DuckDBPyConnection) -> list[CardRow]:
    """The card's medians per domain, its ranges across domains and its counts, beside this warehouse's."""
    medians = {d: (blocks, chars, memento, ratio) for d, blocks, chars, memento, ratio in con.execute(
        "SELECT domain, median_blocks_per_trace, median_block_chars, median_memento_chars, median_ratio_chars "
        "FROM domain_compression WHERE NOT is_total").fetchall()}
    rows = []
    for label, measure, column, digits in (("blocks per trace", card.BLOCKS_PER_TRACE, 0, 1),
                                           ("block size (characters)", card.BLOCK_CHARS, 1, 0)):
        for domain, figure in card.per_domain(measure).items():
            rows.append(CardRow(f"{label}, {domain}", "median", figure, medians.get(domain, (None,) * 4)[column],
                                "", digits))
    ours = [m for d, m in medians.items() if d in card.median_ratio_chars()]
    mementos = [m[2] for m in ours if m[2] is not None]
    compressions = [1 / m[3] for m in ours if m[3]]
    for label, names, values, digits in (("memento size (characters)", card.MEMENTO_CHARS_RANGE, mementos, 0),
                                         ("block-level compression (1 / median ratio, x)",
                                          card.BLOCK_COMPRESSION_RANGE, compressions, 2)):
        for end, name, pick in (("lowest", names[0], min), ("highest", names[1], max)):
            rows.append(CardRow(f"{label}, {end} domain", "median per domain", card.overall(name),
                                pick(values) if values else None, "the card gives a range across its domains",
                                digits))
    counts = dict(con.execute("SELECT coalesce(domain, 'all'), count(*) FROM all_traces "
                              "GROUP BY GROUPING SETS ((domain), ())").fetchall())
    rows += [CardRow(f"traces, {domain}", "count", figure, counts.get(domain), "every trace, flagged or not", 0)
             for (measure, domain), figure in card.figures().items() if measure == card.TRACES]
    # From the blocks' sentence ranges: counting the sentences lists reads every sentence's text, more than the
    # report's small pool holds and slow at full scale
    [(sentences,)] = con.execute("SELECT avg(n) FROM (SELECT max(sentence_end) + 1 AS n FROM full_blocks "
                                 "GROUP BY full_trace_id)").fetchall()
    rows.append(CardRow("sentences per trace", "average", card.overall(card.SENTENCES_PER_TRACE), sentences,
                        "full config rows, up to their last block's last sentence", 0))
    return rows


def _length_rows(all_row: dict, per_block: dict, per_trace: dict) -> list[CardRow]:
    """The card's token lengths (averages) and trace-level compression beside this warehouse's."""
    def med(col):
        v = all_row.get(col)
        return f"median {v:,.0f}" if v is not None else ""

    overall = card.overall
    return [
        CardRow("block length (tokens)", "average", overall(card.TOKENS_PER_BLOCK), per_block.get("block"),
                med("median_tokens_per_block"), 0),
        CardRow("memento length (tokens)", "average", overall(card.TOKENS_PER_MEMENTO), per_block.get("memento"),
                med("median_tokens_per_memento"), 0),
        CardRow("block tokens per trace", "average", overall(card.BLOCK_TOKENS_PER_TRACE), per_trace.get("block"),
                med("median_block_tokens_per_trace"), 0),
        CardRow("memento tokens per trace", "average", overall(card.MEMENTO_TOKENS_PER_TRACE),
                per_trace.get("memento"), med("median_memento_tokens_per_trace"), 0),
        CardRow("trace-level compression (block tokens / memento tokens, x)", "ratio of the averages",
                overall(card.TRACE_COMPRESSION), _ratio(per_trace.get("block"), per_trace.get("memento")),
                (f"median per trace {all_row['median_compression_tokens']:.2f}"
                 if all_row.get("median_compression_tokens") is not None else ""), 2),
    ]


# ---------------------------------------------------------------------------
# Plots


def plot_data(con: duckdb.DuckDBPyConnection, has_tokens: bool) -> PlotData:
    """What the plots draw, for the largest domains; the trace-level compression in tokens when there are
    token counts (`has_tokens`), else in characters."""
    domains = [r[0] for r in con.execute(
        "SELECT domain FROM trace_compression GROUP BY domain "
        "HAVING count(*) >= ? * (SELECT count(*) FROM trace_compression) "
        "ORDER BY count(*) DESC, domain LIMIT ?", [MIN_PLOT_SHARE, MAX_PLOT_DOMAINS]).fetchall()]
    unit = "tokens" if has_tokens else "chars"
    peaks = con.execute("SELECT domain, is_total, k, median_peak_no_eviction, median_peak_with_eviction, "
                        "median_peak_plain_cot FROM inference_summary ORDER BY k").fetchall()
    inference, inference_total = _by_domain_and_total([(d, t, k, tuple(v)) for d, t, k, *v in peaks], domains)
    positions, positions_total = _by_domain_and_total(con.execute(
        "SELECT domain, is_total, position_order, median_ratio_chars FROM compression_by_position").fetchall(),
        domains)
    savings = _dicts(con, """
        SELECT k, traces, median_peak_plain_cot, median_peak_no_eviction, median_peak_with_eviction,
               p90_peak_with_eviction, median_saved_fraction_vs_no_eviction, median_saved_fraction_vs_plain_cot,
               median_kv_saved_fraction_vs_plain_cot, share_fits_8k_plain_cot, share_fits_8k_with_eviction,
               share_fits_16k_plain_cot, share_fits_16k_with_eviction, share_fits_32k_plain_cot,
               share_fits_32k_with_eviction, median_peak_ratio_vs_plain_cot, median_kv_area_ratio_vs_plain_cot
        FROM inference_summary WHERE is_total AND median_peak_with_eviction IS NOT NULL ORDER BY k""")
    return PlotData(domains, _ratio_hist(con, domains), _blocks_hist(con, domains), _scatter(con),
                    _compression_box(con, domains, unit), unit, inference, inference_total, positions,
                    positions_total, savings, card.paper_kv_figures())


def _ratio_hist(con: duckdb.DuckDBPyConnection, domains: list[str]) -> dict[str, list[int]]:
    nbins = int(round(RATIO_MAX / RATIO_BIN)) + 1
    hist = {d: [0] * nbins for d in domains}
    for domain, b, n in con.execute(
            "SELECT domain, CAST(least(floor(ratio_chars / ?), ?) AS INTEGER) AS bin, count(*) FROM block_pairs "
            "GROUP BY ALL", [RATIO_BIN, nbins - 1]).fetchall():
        if domain in hist:
            hist[domain][b] += n
    return hist


def _blocks_hist(con: duckdb.DuckDBPyConnection, domains: list[str]) -> dict[str, dict[int, int]]:
    hist: dict[str, dict[int, int]] = {d: {} for d in domains}
    for domain, nb, n in con.execute(
            "SELECT domain, least(n_blocks, ?) AS nb, count(*) FROM trace_compression GROUP BY ALL ORDER BY nb",
            [MAX_BLOCKS_BIN]).fetchall():
        if domain in hist:
            hist[domain][nb] = hist[domain].get(nb, 0) + n
    return hist


def _scatter(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int]]:
    scatter = [tuple(r) for r in con.execute(
        f"SELECT domain, block_chars, memento_chars FROM block_pairs "
        f"USING SAMPLE reservoir({SCATTER_SAMPLE} ROWS) REPEATABLE (7)").fetchall()]
    scatter.sort(key=lambda r: (str(r[0]), r[1], r[2]))
    return scatter


def _compression_box(con: duckdb.DuckDBPyConnection, domains: list[str], unit: str) -> dict[str, dict]:
    box = {}
    for domain, qs, n in con.execute(
            f"SELECT domain, quantile_cont(compression_{unit}, [0.05, 0.25, 0.5, 0.75, 0.95]), "
            f"count(compression_{unit}) FROM trace_compression GROUP BY domain").fetchall():
        if domain in domains and n:
            box[domain] = dict(zip(("p5", "q1", "med", "q3", "p95"), qs), n=n)
    return box


def _by_domain_and_total(rows: list[tuple], domains: list[str]) -> tuple[dict[str, dict], dict]:
    """(domain, is_total, key, value) rows -> {domain: {key: value}} for `domains`, and {key: value} of the
    total row. The total is told by is_total, not by `domain == 'all'`: a domain may be called that."""
    by_domain: dict[str, dict] = {}
    total: dict = {}
    for domain, is_total, key, value in rows:
        if is_total:
            total[key] = value
        elif domain in domains:
            by_domain.setdefault(domain, {})[key] = value
    return by_domain, total


# ---------------------------------------------------------------------------
# Memento retention


def retention(con: duckdb.DuckDBPyConnection) -> Retention:
    """Per domain, how much of its block a memento keeps; and the least informative mementos."""
    summary = _dicts(con, """
        SELECT domain, pairs, pairs_with_numbers, median_numbers_kept_fraction, p10_numbers_kept_fraction,
               p90_numbers_kept_fraction, share_keeping_every_number, median_single_digits_kept_fraction,
               median_word_recall, p10_word_recall, p90_word_recall
        FROM retention_summary ORDER BY is_total, pairs DESC, domain""")
    least_informative = _dicts(con, """
        SELECT trace_id, block_idx, domain, block_chars, memento_chars, block_numbers, numbers_kept,
               block_content_words, content_words_kept, word_recall
        FROM memento_retention
        WHERE block_content_words >= ?
        ORDER BY word_recall, numbers_kept_fraction NULLS LAST, trace_id, block_idx
        LIMIT ?""", [MIN_CONTENT_WORDS, LEAST_INFORMATIVE])
    return Retention(summary, least_informative)


# ---------------------------------------------------------------------------
# Outliers and the traces shown


def outliers(con: duckdb.DuckDBPyConnection, listed: int) -> Outliers:
    """How many traces outlier_traces lists, by reason, and the top `listed` of them."""
    total = con.execute("SELECT count(*) FROM outlier_traces").fetchall()[0][0]
    reasons = _dicts(con, """
        SELECT reason, count(*) AS traces
        FROM (SELECT unnest(string_split(reasons, ',')) AS reason FROM outlier_traces)
        GROUP BY reason ORDER BY traces DESC, reason""")
    top = _dicts(con, """
        SELECT trace_id, dataset, domain, status, reasons, n_reasons, issue_codes, duplicate_of, n_blocks,
               ratio_chars, domain_median_ratio_chars, ratio_z, blocks_z, max_block_chars, max_block_z, answer_chars
        FROM outlier_traces
        ORDER BY n_reasons DESC,
                 greatest(coalesce(abs(ratio_z), 0), coalesce(abs(blocks_z), 0), coalesce(abs(max_block_z), 0)) DESC,
                 trace_id
        LIMIT ?""", [listed])
    for o in top:
        o["anchor"] = anchor_for(o["trace_id"])
        o["reasons"] = o["reasons"].split(",") if o["reasons"] else []
    return Outliers(total, reasons, top)


def traces_to_show(con: duckdb.DuckDBPyConnection, top: list[dict], chosen) -> dict[str, list[str]]:
    """The traces the report shows side by side, each with why: a typical trace of each of the largest
    domains (ratio closest to its median), the longest unsegmented trace (its reasoning, whole), each listed
    outlier (`top`), and those `chosen` with --trace."""
    typical = _dicts(con, """
        WITH ranked AS (
            SELECT trace_id, domain, ratio_chars,
                   quantile_cont(ratio_chars, 0.5) OVER (PARTITION BY domain) AS median_ratio,
                   count(*) OVER (PARTITION BY domain) AS traces
            FROM trace_compression
        )
        SELECT domain, trace_id, ratio_chars, median_ratio, traces FROM ranked
        QUALIFY row_number() OVER (PARTITION BY domain ORDER BY abs(ratio_chars - median_ratio), trace_id) = 1
        ORDER BY traces DESC, domain LIMIT ?""", [MAX_DOMAIN_VIEWS])
    why: dict[str, list[str]] = {}
    for t in typical:
        why.setdefault(t["trace_id"], []).append(
            f"typical {t['domain']} trace (memento/block ratio closest to the domain median)")
    # the compression figures leave unsegmented traces out: one is shown, so its reasoning is seen
    for (tid,) in con.execute("SELECT trace_id FROM all_traces WHERE status = 'unsegmented' "
                              "ORDER BY response_chars DESC, trace_id LIMIT 1").fetchall():
        why.setdefault(tid, []).append("the longest unsegmented trace (reasoning without mementos)")
    for o in top:
        why.setdefault(o["trace_id"], []).append("outlier: " + ", ".join(o["reasons"]))
    for tid in chosen:
        why.setdefault(tid, []).append("chosen with --trace")
    return why
