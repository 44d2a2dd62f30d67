-- The warehouse's compression figures beside the OpenMementos card's, each computed
-- with the statistic the card states (the `statistic` column says which):
--   * memento/block char ratio per domain, math 0.16, code 0.18, science 0.23: medians
--     of the per-block ratios (median_ratio_chars);
--   * ~1,150 tokens per block and ~194 per memento: averages over all blocks;
--   * ~10,900 block tokens -> ~1,850 memento tokens per trace: averages over traces;
--   * ~6x trace-level compression: the ratio of those two averages (10,900 / 1,850),
--     not the median of the per-trace compressions.
-- `warehouse_median` is the warehouse's median of the same measure (for the compression:
-- the median per trace), shown beside it: token counts are skewed, so their averages sit
-- above their medians. The card's token figures are overall (the `all` row, is_total: a domain
-- that is itself called 'all' is listed with the domains, before it); domains the
-- card does not list get a NULL card figure. `traces` and `flagged_traces` say what each
-- figure covers (flagged traces are left out of every figure). Token figures are NULL in a
-- warehouse ingested with --no-tokens.
WITH card_ratio AS (
    SELECT 'math' AS domain, 0.16 AS card
    UNION ALL SELECT 'code', 0.18
    UNION ALL SELECT 'science', 0.23
),
figures AS (
    SELECT
        1 AS row_order,
        'memento/block ratio (chars)' AS measure,
        d.domain,
        'median of per-block ratios' AS statistic,
        CAST(c.card AS DOUBLE) AS card,
        d.median_ratio_chars AS warehouse,
        d.median_ratio_chars AS warehouse_median,
        3 AS digits,
        d.traces,
        d.flagged_traces,
        d.is_total
    FROM domain_compression AS d
    LEFT JOIN card_ratio AS c ON c.domain = d.domain AND NOT d.is_total
    UNION ALL
    SELECT 2, 'tokens per block', domain, 'average over blocks', 1150,
           avg_tokens_per_block, median_tokens_per_block, 0, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
    UNION ALL
    SELECT 3, 'tokens per memento', domain, 'average over blocks', 194,
           avg_tokens_per_memento, median_tokens_per_memento, 0, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
    UNION ALL
    SELECT 4, 'block tokens per trace', domain, 'average over traces', 10900,
           avg_block_tokens_per_trace, median_block_tokens_per_trace, 0, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
    UNION ALL
    SELECT 5, 'memento tokens per trace', domain, 'average over traces', 1850,
           avg_memento_tokens_per_trace, median_memento_tokens_per_trace, 0, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
    UNION ALL
    SELECT 6, 'trace-level compression (x)', domain, 'ratio of the averages per trace', 6.0,
           CAST(avg_block_tokens_per_trace AS DOUBLE) / NULLIF(avg_memento_tokens_per_trace, 0),
           median_compression_tokens, 2, traces, flagged_traces, is_total
    FROM domain_compression WHERE is_total
)
SELECT
    measure,
    domain,
    statistic,
    card,
    round(warehouse, digits) AS warehouse,
    round(warehouse - card, digits) AS difference,
    round(warehouse_median, digits) AS warehouse_median,
    traces,
    flagged_traces
FROM figures
ORDER BY row_order, is_total, traces DESC, domain;
