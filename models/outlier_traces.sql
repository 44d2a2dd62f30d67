/*
name: outlier_traces
version: 1
kind: table
grain: [trace_id]
description: >
  Traces a data curator should look at, each with its reasons (comma-separated,
  in this order): ratio_high / ratio_low (the trace's memento/block char ratio
  is far from its domain's), memento_longer_than_block, too_many_blocks /
  too_few_blocks, very_long_block, empty_answer (under 3 chars), duplicate
  (same content hash as an earlier trace, named in duplicate_of), and flagged
  (every flagged trace, with its parse issue codes). "Far" is robust and within
  the domain: |robust z| > 3.5, where robust z = (x - median) / (1.4826 * MAD)
  on the log scale; no z (NULL) when the domain's MAD is 0.
audits:
  - not_null: [reasons, status]
  - accepted_range: {column: n_reasons, min: 1}
  - custom:
      name: every_flagged_trace_is_listed
      sql: >
        SELECT t.trace_id FROM all_traces AS t LEFT JOIN {this} AS o ON o.trace_id = t.trace_id
        WHERE t.status = 'flagged' AND (o.trace_id IS NULL OR o.issue_codes IS NULL)
*/
WITH trace_measures AS (
    SELECT
        trace_id,
        domain,
        n_blocks,
        ratio_chars,
        max_block_chars,
        answer_chars,
        mementos_longer_than_block,
        ln(ratio_chars) AS log_ratio,
        ln(n_blocks) AS log_blocks,
        ln(max_block_chars) AS log_max_block
    FROM trace_compression
),
domain_medians AS (
    SELECT
        domain,
        quantile_cont(ratio_chars, 0.5) AS median_ratio_chars,
        quantile_cont(log_ratio, 0.5) AS med_log_ratio,
        quantile_cont(log_blocks, 0.5) AS med_log_blocks
    FROM trace_measures
    GROUP BY domain
),
domain_mads AS (
    SELECT
        m.domain,
        quantile_cont(abs(m.log_ratio - d.med_log_ratio), 0.5) AS mad_log_ratio,
        quantile_cont(abs(m.log_blocks - d.med_log_blocks), 0.5) AS mad_log_blocks
    FROM trace_measures AS m
    JOIN domain_medians AS d ON d.domain = m.domain
    GROUP BY m.domain
),
block_medians AS (
    SELECT domain, quantile_cont(ln(block_chars), 0.5) AS med_log_block
    FROM block_pairs
    GROUP BY domain
),
block_mads AS (
    SELECT p.domain, quantile_cont(abs(ln(p.block_chars) - b.med_log_block), 0.5) AS mad_log_block
    FROM block_pairs AS p
    JOIN block_medians AS b ON b.domain = p.domain
    GROUP BY p.domain
),
scored AS (
    SELECT
        m.trace_id,
        m.n_blocks,
        m.ratio_chars,
        d.median_ratio_chars AS domain_median_ratio_chars,
        m.max_block_chars,
        m.answer_chars,
        m.mementos_longer_than_block,
        (m.log_ratio - d.med_log_ratio) / NULLIF(1.4826 * x.mad_log_ratio, 0) AS ratio_z,
        (m.log_blocks - d.med_log_blocks) / NULLIF(1.4826 * x.mad_log_blocks, 0) AS blocks_z,
        (m.log_max_block - bm.med_log_block) / NULLIF(1.4826 * bx.mad_log_block, 0) AS max_block_z
    FROM trace_measures AS m
    JOIN domain_medians AS d ON d.domain = m.domain
    JOIN domain_mads AS x ON x.domain = m.domain
    JOIN block_medians AS bm ON bm.domain = m.domain
    JOIN block_mads AS bx ON bx.domain = m.domain
),
duplicates AS (
    SELECT
        trace_id,
        first_value(trace_id) OVER (PARTITION BY content_hash ORDER BY dataset, source_row) AS first_trace_id,
        row_number() OVER (PARTITION BY content_hash ORDER BY dataset, source_row) AS copy_number
    FROM all_traces
),
flags AS (
    SELECT
        t.trace_id,
        t.dataset,
        t.domain,
        t.status,
        t.issue_codes,
        CASE WHEN dup.copy_number > 1 THEN dup.first_trace_id END AS duplicate_of,
        s.n_blocks,
        s.ratio_chars,
        s.domain_median_ratio_chars,
        s.ratio_z,
        s.blocks_z,
        s.max_block_chars,
        s.max_block_z,
        s.answer_chars,
        s.mementos_longer_than_block,
        CASE WHEN s.ratio_z > 3.5 THEN 1 ELSE 0 END AS f_ratio_high,
        CASE WHEN s.ratio_z < -3.5 THEN 1 ELSE 0 END AS f_ratio_low,
        CASE WHEN s.mementos_longer_than_block > 0 THEN 1 ELSE 0 END AS f_memento_longer,
        CASE WHEN s.blocks_z > 3.5 THEN 1 ELSE 0 END AS f_many_blocks,
        CASE WHEN s.blocks_z < -3.5 THEN 1 ELSE 0 END AS f_few_blocks,
        CASE WHEN s.max_block_z > 3.5 THEN 1 ELSE 0 END AS f_long_block,
        CASE WHEN s.answer_chars < 3 THEN 1 ELSE 0 END AS f_empty_answer,
        CASE WHEN dup.copy_number > 1 THEN 1 ELSE 0 END AS f_duplicate,
        CASE WHEN t.status = 'flagged' THEN 1 ELSE 0 END AS f_flagged
    FROM all_traces AS t
    JOIN duplicates AS dup ON dup.trace_id = t.trace_id
    LEFT JOIN scored AS s ON s.trace_id = t.trace_id
)
SELECT
    trace_id,
    dataset,
    domain,
    status,
    concat_ws(',',
        CASE WHEN f_ratio_high = 1 THEN 'ratio_high' END,
        CASE WHEN f_ratio_low = 1 THEN 'ratio_low' END,
        CASE WHEN f_memento_longer = 1 THEN 'memento_longer_than_block' END,
        CASE WHEN f_many_blocks = 1 THEN 'too_many_blocks' END,
        CASE WHEN f_few_blocks = 1 THEN 'too_few_blocks' END,
        CASE WHEN f_long_block = 1 THEN 'very_long_block' END,
        CASE WHEN f_empty_answer = 1 THEN 'empty_answer' END,
        CASE WHEN f_duplicate = 1 THEN 'duplicate' END,
        CASE WHEN f_flagged = 1 THEN 'flagged' END
    ) AS reasons,
    f_ratio_high + f_ratio_low + f_memento_longer + f_many_blocks + f_few_blocks
        + f_long_block + f_empty_answer + f_duplicate + f_flagged AS n_reasons,
    issue_codes,
    duplicate_of,
    n_blocks,
    ratio_chars,
    domain_median_ratio_chars,
    ratio_z,
    blocks_z,
    max_block_chars,
    max_block_z,
    answer_chars,
    mementos_longer_than_block
FROM flags
WHERE f_ratio_high + f_ratio_low + f_memento_longer + f_many_blocks + f_few_blocks
    + f_long_block + f_empty_answer + f_duplicate + f_flagged > 0
