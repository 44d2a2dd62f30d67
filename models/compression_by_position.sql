/*
name: compression_by_position
version: 1
kind: table
grain: [domain, position_order, is_total]
description: >
  The memento/block ratio by where the block is in its trace, per domain and
  for 'all' (is_total true; a domain whose label is 'all' has is_total false):
  the first block, the middle blocks in ten deciles of their
  relative position j / (n - 1) (decile d holds (d - 1)/10 < j/(n - 1) <= d/10),
  and the last block; a trace of one block counts as 'only'. Per position:
  pairs, traces, and the median, p10 and p90 of ratio_chars, the median
  ratio_tokens and the median block and memento tokens.
columns:
  domain: the domain, or `all` on the total row
  position_order: 0 first, 1-10 the middle deciles, 11 last, 12 only (a one-block trace)
  is_total: true on the one row over all the group's rows (a label reading `all` is not the total)
  position: "the position's label: `first`, `middle 0-10%` ... `middle 90-100%`, `last`, `only`"
  blocks: pairs at this position
  traces: traces with a pair at this position
  median_ratio_chars: median memento/block chars
  p10_ratio_chars: 10th percentile of memento/block chars
  p90_ratio_chars: 90th percentile of memento/block chars
  median_ratio_tokens: median memento/block tokens
  median_block_tokens: median tokens of a block
  median_memento_tokens: median tokens of a memento
audits:
  - not_null: [is_total, position, blocks, traces]
  - accepted_range: {column: position_order, min: 0, max: 12}
*/
WITH placed AS (
    SELECT
        p.domain,
        p.trace_id,
        p.ratio_chars,
        p.ratio_tokens,
        p.block_tokens,
        p.memento_tokens,
        CAST(CASE
            WHEN c.n_blocks = 1 THEN 12
            WHEN p.block_idx = 0 THEN 0
            WHEN p.block_idx = c.n_blocks - 1 THEN 11
            ELSE ceil(CAST(10 * p.block_idx AS DOUBLE) / (c.n_blocks - 1))
        END AS INTEGER) AS position_order
    FROM block_pairs AS p
    JOIN trace_compression AS c ON c.trace_id = p.trace_id
)
SELECT
    CASE WHEN GROUPING(domain) = 1 THEN 'all' ELSE domain END AS domain,
    position_order,
    GROUPING(domain) = 1 AS is_total,
    CASE
        WHEN position_order = 0 THEN 'first'
        WHEN position_order = 11 THEN 'last'
        WHEN position_order = 12 THEN 'only'
        ELSE concat('middle ', CAST(10 * (position_order - 1) AS VARCHAR), '-',
                    CAST(10 * position_order AS VARCHAR), '%')
    END AS position,
    count(*) AS blocks,
    count(DISTINCT trace_id) AS traces,
    -- several quantiles of one column are one list-form call, indexed: DuckDB computes the identical
    -- calls once, where separate calls each hold a copy of the column
    quantile_cont(ratio_chars, [0.1, 0.5, 0.9])[2] AS median_ratio_chars,
    quantile_cont(ratio_chars, [0.1, 0.5, 0.9])[1] AS p10_ratio_chars,
    quantile_cont(ratio_chars, [0.1, 0.5, 0.9])[3] AS p90_ratio_chars,
    quantile_cont(ratio_tokens, 0.5) AS median_ratio_tokens,
    quantile_cont(block_tokens, 0.5) AS median_block_tokens,
    quantile_cont(memento_tokens, 0.5) AS median_memento_tokens
FROM placed
GROUP BY GROUPING SETS ((domain, position_order), (position_order))
