/*
name: compression_breakdown
version: 4
kind: table
grain: [dimension, value]
description: >
  The compression measures of the OpenMementos card for every domain, every
  source, every difficulty and for all analysed traces together (dimension
  'all', value 'all', and the only row with is_total true: a label that reads
  'all' is a value of its dimension, never the total): trace counts (analysed, flagged and unsegmented apart), then the
  median, p10 and p90 of blocks per trace, block and memento chars, the
  memento/block ratio in chars and in tokens (per block), tokens per block and
  per memento, and the trace-level compression (block tokens / memento tokens);
  and the averages of tokens per block, per memento and per trace (the card
  states its token figures as averages, its ratios as medians); and the
  OpenMementos tutorial's statistic: the median over traces of each trace's
  memento/block ratio (total memento / total block size), in chars and in words.
  value_order lists the values of a dimension: numbers (such as difficulties '3',
  '10') in numeric order first, then other labels alphabetically.
  domain_compression, compression_by_source and compression_by_difficulty are
  its slices. Quantiles are continuous (interpolated).
columns:
  dimension: "`domain`, `source`, `difficulty`, or `all` on the total row"
  value: the group's label (`all` on the total row)
  is_total: true on the one row over all the group's rows (a label reading `all` is not the total)
  value_order: "listing order within a dimension: numeric labels in numeric order, then the rest alphabetically; 1 on the total row"
  traces: analysed (ok) traces in the group
  flagged_traces: flagged traces in the group, left out of every other column
  unsegmented_traces: unsegmented traces (reasoning without memento markup) in the group, left out of every other column
  blocks: block/memento pairs in the group
  median_ratio_chars: median over pairs of memento chars / block chars (the card's ratio)
  median_ratio_tokens: median over pairs of memento tokens / block tokens
  median_tokens_per_block: median over pairs of a block's tokens
  median_tokens_per_memento: median over pairs of a memento's tokens
  median_compression_tokens: median over traces of block tokens / memento tokens
  median_block_tokens_per_trace: median over traces of a trace's block tokens
  median_memento_tokens_per_trace: median over traces of a trace's memento tokens
  median_blocks_per_trace: median over traces of block/memento pairs
  median_block_chars: median over pairs of a block's chars
  median_memento_chars: median over pairs of a memento's chars
  median_compression_chars: median over traces of block chars / memento chars
  median_trace_ratio_chars: median over traces of memento chars / block chars per trace (the tutorial's statistic)
  median_trace_ratio_words: median over traces of memento words / block words per trace (the tutorial's statistic)
  avg_tokens_per_block: average over pairs of a block's tokens (the card's statistic)
  avg_tokens_per_memento: average over pairs of a memento's tokens (the card's statistic)
  avg_block_tokens_per_trace: average over traces of a trace's block tokens (the card's statistic)
  avg_memento_tokens_per_trace: average over traces of a trace's memento tokens (the card's statistic)
  p10_ratio_chars: 10th percentile of memento/block chars over pairs
  p90_ratio_chars: 90th percentile of memento/block chars over pairs
  p10_ratio_tokens: 10th percentile of memento/block tokens over pairs
  p90_ratio_tokens: 90th percentile of memento/block tokens over pairs
  p10_tokens_per_block: 10th percentile of a block's tokens over pairs
  p90_tokens_per_block: 90th percentile of a block's tokens over pairs
  p10_tokens_per_memento: 10th percentile of a memento's tokens over pairs
  p90_tokens_per_memento: 90th percentile of a memento's tokens over pairs
  p10_compression_tokens: 10th percentile of block tokens / memento tokens over traces
  p90_compression_tokens: 90th percentile of block tokens / memento tokens over traces
  p10_blocks_per_trace: 10th percentile of pairs per trace over traces
  p90_blocks_per_trace: 90th percentile of pairs per trace over traces
  p10_block_chars: 10th percentile of a block's chars over pairs
  p90_block_chars: 90th percentile of a block's chars over pairs
  p10_memento_chars: 10th percentile of a memento's chars over pairs
  p90_memento_chars: 90th percentile of a memento's chars over pairs
audits:
  - not_null: [is_total, traces, flagged_traces, unsegmented_traces]
  - accepted_values: {column: dimension, values: [domain, source, difficulty, all]}
  - custom:
      name: one_total_row
      sql: >
        SELECT count(*) FILTER (WHERE is_total) AS total_rows,
               count(*) FILTER (WHERE is_total <> (dimension = 'all')) AS mislabelled
        FROM {this}
        HAVING count(*) FILTER (WHERE is_total) <> 1 OR count(*) FILTER (WHERE is_total <> (dimension = 'all')) > 0
  - accepted_range: {column: median_ratio_chars, min: 0}
  - custom:
      name: all_row_counts_every_trace
      sql: >
        SELECT a.traces + a.flagged_traces + a.unsegmented_traces AS counted, (SELECT count(*) FROM all_traces) AS ingested
        FROM {this} AS a
        WHERE a.is_total AND a.traces + a.flagged_traces + a.unsegmented_traces <> (SELECT count(*) FROM all_traces)
*/
-- Over every block in four groupings, quantile_cont holds each grouping's values in memory
-- and cannot spill: as separate calls these 18 held more than the build's memory. The ratios use one list-form call per column (DuckDB computes identical
-- calls once); the sizes, whole numbers with a few thousand distinct values, are counted
-- per value (an aggregate that spills) and their quantiles read off the running counts.
WITH block_level_ratios AS (
    SELECT
        CASE WHEN GROUPING(domain) = 0 THEN 'domain'
             WHEN GROUPING(source) = 0 THEN 'source'
             WHEN GROUPING(difficulty) = 0 THEN 'difficulty'
             ELSE 'all' END AS dimension,
        CASE WHEN GROUPING(domain) = 0 THEN domain
             WHEN GROUPING(source) = 0 THEN source
             WHEN GROUPING(difficulty) = 0 THEN difficulty
             ELSE 'all' END AS value,
        count(*) AS blocks,
        quantile_cont(ratio_chars, [0.1, 0.5, 0.9])[2] AS median_ratio_chars,
        quantile_cont(ratio_chars, [0.1, 0.5, 0.9])[1] AS p10_ratio_chars,
        quantile_cont(ratio_chars, [0.1, 0.5, 0.9])[3] AS p90_ratio_chars,
        quantile_cont(ratio_tokens, [0.1, 0.5, 0.9])[2] AS median_ratio_tokens,
        quantile_cont(ratio_tokens, [0.1, 0.5, 0.9])[1] AS p10_ratio_tokens,
        quantile_cont(ratio_tokens, [0.1, 0.5, 0.9])[3] AS p90_ratio_tokens,
        avg(block_tokens) AS avg_tokens_per_block,
        avg(memento_tokens) AS avg_tokens_per_memento
    FROM block_pairs
    GROUP BY GROUPING SETS ((domain), (source), (difficulty), ())
),
size_counts AS (
    -- how many blocks have each size, per grouping and measure
    SELECT dimension, value, measure, x, count(*) AS c
    FROM (
        SELECT
            g.dimension,
            CASE g.dimension WHEN 'domain' THEN p.domain WHEN 'source' THEN p.source
                             WHEN 'difficulty' THEN p.difficulty ELSE 'all' END AS value,
            m.measure,
            CASE m.measure
                        WHEN 'block_tokens' THEN p.block_tokens
                        WHEN 'memento_tokens' THEN p.memento_tokens
                        WHEN 'block_chars' THEN p.block_chars
                        WHEN 'memento_chars' THEN p.memento_chars
            END AS x
        FROM block_pairs AS p
        CROSS JOIN (SELECT 'domain' AS dimension UNION ALL SELECT 'source' UNION ALL SELECT 'difficulty'
                    UNION ALL SELECT 'all') AS g
        CROSS JOIN (SELECT 'block_tokens' AS measure UNION ALL SELECT 'memento_tokens'
                    UNION ALL SELECT 'block_chars' UNION ALL SELECT 'memento_chars') AS m
    )
    WHERE x IS NOT NULL
    GROUP BY dimension, value, measure, x
),
size_ranks AS (
    -- the sizes in ascending order: ranks below .. below + c - 1 (from 0) hold size x
    SELECT
        dimension, value, measure, CAST(x AS DOUBLE) AS x, c,
        sum(c) OVER (PARTITION BY dimension, value, measure ORDER BY x ROWS UNBOUNDED PRECEDING) - c AS below,
        sum(c) OVER (PARTITION BY dimension, value, measure) AS n
    FROM size_counts
),
size_positions AS (
    -- quantile_cont's definition: with rn = (n - 1) * p, the size at rank floor(rn) plus
    -- (rn - floor(rn)) times the step to the size at rank ceil(rn)
    SELECT DISTINCT
        k.dimension, k.value, k.measure, p.q,
        floor((k.n - 1) * p.q) AS lo,
        ceil((k.n - 1) * p.q) AS hi,
        (k.n - 1) * p.q - floor((k.n - 1) * p.q) AS frac
    FROM size_ranks AS k
    CROSS JOIN (SELECT CAST(0.1 AS DOUBLE) AS q UNION ALL SELECT CAST(0.5 AS DOUBLE)
                UNION ALL SELECT CAST(0.9 AS DOUBLE)) AS p
),
size_quantiles AS (
    SELECT
        s.dimension,
        s.value,
        s.measure,
        s.q,
        min(r.x) FILTER (WHERE r.below <= s.lo AND s.lo < r.below + r.c)
            + (min(r.x) FILTER (WHERE r.below <= s.hi AND s.hi < r.below + r.c)
               - min(r.x) FILTER (WHERE r.below <= s.lo AND s.lo < r.below + r.c)) * s.frac AS quantile
    FROM size_positions AS s
    JOIN size_ranks AS r
        ON r.dimension = s.dimension AND r.value IS NOT DISTINCT FROM s.value AND r.measure = s.measure
    GROUP BY s.dimension, s.value, s.measure, s.q, s.frac
),
block_level_sizes AS (
    SELECT
        dimension,
        value,
        max(CASE WHEN measure = 'block_tokens' AND q = CAST(0.1 AS DOUBLE) THEN quantile END) AS p10_tokens_per_block,
        max(CASE WHEN measure = 'block_tokens' AND q = CAST(0.5 AS DOUBLE) THEN quantile END) AS median_tokens_per_block,
        max(CASE WHEN measure = 'block_tokens' AND q = CAST(0.9 AS DOUBLE) THEN quantile END) AS p90_tokens_per_block,
        max(CASE WHEN measure = 'memento_tokens' AND q = CAST(0.1 AS DOUBLE) THEN quantile END) AS p10_tokens_per_memento,
        max(CASE WHEN measure = 'memento_tokens' AND q = CAST(0.5 AS DOUBLE) THEN quantile END) AS median_tokens_per_memento,
        max(CASE WHEN measure = 'memento_tokens' AND q = CAST(0.9 AS DOUBLE) THEN quantile END) AS p90_tokens_per_memento,
        max(CASE WHEN measure = 'block_chars' AND q = CAST(0.1 AS DOUBLE) THEN quantile END) AS p10_block_chars,
        max(CASE WHEN measure = 'block_chars' AND q = CAST(0.5 AS DOUBLE) THEN quantile END) AS median_block_chars,
        max(CASE WHEN measure = 'block_chars' AND q = CAST(0.9 AS DOUBLE) THEN quantile END) AS p90_block_chars,
        max(CASE WHEN measure = 'memento_chars' AND q = CAST(0.1 AS DOUBLE) THEN quantile END) AS p10_memento_chars,
        max(CASE WHEN measure = 'memento_chars' AND q = CAST(0.5 AS DOUBLE) THEN quantile END) AS median_memento_chars,
        max(CASE WHEN measure = 'memento_chars' AND q = CAST(0.9 AS DOUBLE) THEN quantile END) AS p90_memento_chars
    FROM size_quantiles
    GROUP BY dimension, value
),
block_level AS (
    SELECT r.*, s.p10_tokens_per_block, s.median_tokens_per_block, s.p90_tokens_per_block, s.p10_tokens_per_memento, s.median_tokens_per_memento, s.p90_tokens_per_memento, s.p10_block_chars, s.median_block_chars, s.p90_block_chars, s.p10_memento_chars, s.median_memento_chars, s.p90_memento_chars
    FROM block_level_ratios AS r
    LEFT JOIN block_level_sizes AS s ON s.dimension = r.dimension AND s.value IS NOT DISTINCT FROM r.value
),
trace_level AS (
    SELECT
        CASE WHEN GROUPING(t.domain) = 0 THEN 'domain'
             WHEN GROUPING(t.source) = 0 THEN 'source'
             WHEN GROUPING(t.difficulty) = 0 THEN 'difficulty'
             ELSE 'all' END AS dimension,
        CASE WHEN GROUPING(t.domain) = 0 THEN t.domain
             WHEN GROUPING(t.source) = 0 THEN t.source
             WHEN GROUPING(t.difficulty) = 0 THEN t.difficulty
             ELSE 'all' END AS value,
        -- coalesce: with no trace at all (only full rows ingested) the total row sums nothing, and is 0 traces
        coalesce(CAST(sum(CASE WHEN t.status = 'ok' THEN 1 ELSE 0 END) AS BIGINT), 0) AS traces,
        coalesce(CAST(sum(CASE WHEN t.status = 'flagged' THEN 1 ELSE 0 END) AS BIGINT), 0) AS flagged_traces,
        coalesce(CAST(sum(CASE WHEN t.status = 'unsegmented' THEN 1 ELSE 0 END) AS BIGINT), 0) AS unsegmented_traces,
        quantile_cont(c.n_blocks, [0.1, 0.5, 0.9])[2] AS median_blocks_per_trace,
        quantile_cont(c.n_blocks, [0.1, 0.5, 0.9])[1] AS p10_blocks_per_trace,
        quantile_cont(c.n_blocks, [0.1, 0.5, 0.9])[3] AS p90_blocks_per_trace,
        quantile_cont(c.compression_tokens, [0.1, 0.5, 0.9])[2] AS median_compression_tokens,
        quantile_cont(c.compression_tokens, [0.1, 0.5, 0.9])[1] AS p10_compression_tokens,
        quantile_cont(c.compression_tokens, [0.1, 0.5, 0.9])[3] AS p90_compression_tokens,
        quantile_cont(c.compression_chars, 0.5) AS median_compression_chars,
        quantile_cont(c.ratio_chars, 0.5) AS median_trace_ratio_chars,
        quantile_cont(c.ratio_words, 0.5) AS median_trace_ratio_words,
        quantile_cont(c.block_tokens, 0.5) AS median_block_tokens_per_trace,
        quantile_cont(c.memento_tokens, 0.5) AS median_memento_tokens_per_trace,
        avg(c.block_tokens) AS avg_block_tokens_per_trace,
        avg(c.memento_tokens) AS avg_memento_tokens_per_trace
    FROM all_traces AS t
    LEFT JOIN trace_compression AS c ON c.trace_id = t.trace_id
    GROUP BY GROUPING SETS ((t.domain), (t.source), (t.difficulty), ())
)
SELECT
    t.dimension,
    t.value,
    -- the dimension is the model's own word, never data: it tells the total row from a label 'all'
    t.dimension = 'all' AS is_total,
    -- where the value comes when its dimension is listed: numbers in numeric order, then labels
    CAST(row_number() OVER (PARTITION BY t.dimension ORDER BY
        CASE WHEN regexp_matches(t.value, '^-?[0-9]+(\.[0-9]+)?$') THEN 0 ELSE 1 END,
        CASE WHEN regexp_matches(t.value, '^-?[0-9]+(\.[0-9]+)?$') THEN CAST(t.value AS DOUBLE) END,
        t.value) AS INTEGER) AS value_order,
    t.traces,
    t.flagged_traces,
    t.unsegmented_traces,
    coalesce(b.blocks, 0) AS blocks,
    b.median_ratio_chars,
    b.median_ratio_tokens,
    b.median_tokens_per_block,
    b.median_tokens_per_memento,
    t.median_compression_tokens,
    t.median_block_tokens_per_trace,
    t.median_memento_tokens_per_trace,
    t.median_blocks_per_trace,
    b.median_block_chars,
    b.median_memento_chars,
    t.median_compression_chars,
    t.median_trace_ratio_chars,
    t.median_trace_ratio_words,
    b.avg_tokens_per_block,
    b.avg_tokens_per_memento,
    t.avg_block_tokens_per_trace,
    t.avg_memento_tokens_per_trace,
    b.p10_ratio_chars,
    b.p90_ratio_chars,
    b.p10_ratio_tokens,
    b.p90_ratio_tokens,
    b.p10_tokens_per_block,
    b.p90_tokens_per_block,
    b.p10_tokens_per_memento,
    b.p90_tokens_per_memento,
    t.p10_compression_tokens,
    t.p90_compression_tokens,
    t.p10_blocks_per_trace,
    t.p90_blocks_per_trace,
    b.p10_block_chars,
    b.p90_block_chars,
    b.p10_memento_chars,
    b.p90_memento_chars
FROM trace_level AS t
LEFT JOIN block_level AS b ON b.dimension = t.dimension AND b.value = t.value
