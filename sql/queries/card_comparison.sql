-- The warehouse's compression figures beside the OpenMementos card's.
-- The model card_figures holds them, each computed with the statistic the card
-- states (the `statistic` column says which):
--   * memento/block char ratio per domain: medians of the per-block ratios
--     (median_ratio_chars);
--   * tokens per block and per memento: averages over all blocks;
--   * block and memento tokens per trace: averages over traces;
--   * trace-level compression: the ratio of those two averages, not the median of
--     the per-trace compressions;
--   * blocks per trace and block chars per domain: medians (median_blocks_per_trace,
--     median_block_chars);
--   * memento chars and block-level compression, which the card gives as a range across
--     its domains (math, code, science): the lowest and the highest of the per-domain
--     medians (block-level compression: 1 / median_ratio_chars);
--   * traces: every trace, flagged or not, per domain; sentences per trace: the average
--     over the full config's rows (NULL without it).
-- `warehouse_median` is the warehouse's median of the same measure (for the compression:
-- the median per trace), shown beside it: token counts are skewed, so their averages sit
-- above their medians. The card's token figures are overall (the `all` row, is_total: a domain
-- that is itself called 'all' is listed with the domains, before it); domains the
-- card does not list get a NULL card figure. `traces` and `flagged_traces` say what each
-- figure covers (flagged traces are left out of every figure). Token figures are NULL in a
-- warehouse ingested with --no-tokens.
WITH card_domains AS (
    SELECT d.*
    FROM domain_compression AS d
    WHERE NOT d.is_total AND d.domain IN (SELECT domain FROM card_figures WHERE measure = 'memento/block ratio (chars)')
),
figures AS (
    SELECT
        1 AS row_order,
        'memento/block ratio (chars)' AS measure,
        d.domain,
        d.median_ratio_chars AS warehouse,
        d.median_ratio_chars AS warehouse_median,
        3 AS digits,
        d.traces,
        d.flagged_traces,
        d.is_total
    FROM domain_compression AS d
    UNION ALL
    SELECT 2, 'tokens per block', domain,
           avg_tokens_per_block, median_tokens_per_block, 0, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
    UNION ALL
    SELECT 3, 'tokens per memento', domain,
           avg_tokens_per_memento, median_tokens_per_memento, 0, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
    UNION ALL
    SELECT 4, 'block tokens per trace', domain,
           avg_block_tokens_per_trace, median_block_tokens_per_trace, 0, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
    UNION ALL
    SELECT 5, 'memento tokens per trace', domain,
           avg_memento_tokens_per_trace, median_memento_tokens_per_trace, 0, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
    UNION ALL
    SELECT 6, 'trace-level compression (x)', domain,
           CAST(avg_block_tokens_per_trace AS DOUBLE) / NULLIF(avg_memento_tokens_per_trace, 0),
           median_compression_tokens, 2, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
    UNION ALL
    SELECT 7, 'blocks per trace', domain, median_blocks_per_trace, median_blocks_per_trace, 1, traces,
           flagged_traces, is_total
    FROM domain_compression
    UNION ALL
    SELECT 8, 'block chars', domain, median_block_chars, median_block_chars, 0, traces, flagged_traces, is_total
    FROM domain_compression
    UNION ALL
    SELECT 9, 'memento chars, lowest domain', 'all', min(median_memento_chars), min(median_memento_chars), 0,
           sum(traces), sum(flagged_traces), true
    FROM card_domains
    UNION ALL
    SELECT 10, 'memento chars, highest domain', 'all', max(median_memento_chars), max(median_memento_chars), 0,
           sum(traces), sum(flagged_traces), true
    FROM card_domains
    UNION ALL
    SELECT 11, 'block-level compression (x), lowest domain', 'all', min(1 / median_ratio_chars),
           min(1 / median_ratio_chars), 2, sum(traces), sum(flagged_traces), true
    FROM card_domains
    UNION ALL
    SELECT 12, 'block-level compression (x), highest domain', 'all', max(1 / median_ratio_chars),
           max(1 / median_ratio_chars), 2, sum(traces), sum(flagged_traces), true
    FROM card_domains
    UNION ALL
    SELECT 13, 'traces', coalesce(domain, 'all'), count(*), NULL, 0, count(*), count(*) FILTER (WHERE status = 'flagged'),
           GROUPING(domain) = 1
    FROM all_traces
    GROUP BY GROUPING SETS ((domain), ())
    UNION ALL
    SELECT 14, 'sentences per trace', 'all', avg(n_sentences), median(n_sentences), 0, count(*), NULL, true
    FROM full_traces
)
SELECT
    f.measure,
    f.domain,
    s.statistic,
    c.card,
    round(f.warehouse, f.digits) AS warehouse,
    round(f.warehouse - c.card, f.digits) AS difference,
    round(f.warehouse_median, f.digits) AS warehouse_median,
    f.traces,
    f.flagged_traces
FROM figures AS f
JOIN (SELECT DISTINCT measure, statistic FROM card_figures) AS s ON s.measure = f.measure
-- the per-domain figures beside each domain's row; the overall ones beside the total row
-- (a domain whose label is 'all' is not the total: is_total tells them apart)
LEFT JOIN card_figures AS c ON c.measure = f.measure AND c.domain = f.domain AND f.is_total = (c.domain = 'all')
ORDER BY f.row_order, f.is_total, f.traces DESC, f.domain;
