/*
name: outlier_traces
version: 4
kind: table
grain: [trace_id]
description: >
  Traces a data curator should look at, each with its reasons (comma-separated,
  in this order): ratio_high / ratio_low (the trace's memento/block char ratio
  is far from its group's), memento_longer_than_block, memento_copies_block (a
  memento that is its block, or nearly all of it), too_many_blocks /
  too_few_blocks, very_long_block (the trace's longest block against the
  longest blocks of the other traces of its group), repeated_blocks (a block
  whose text, lowercased with whitespace collapsed, repeats an earlier block of
  the trace), empty_answer (no answer, or only whitespace and markup),
  duplicate (same content hash as an earlier trace, named in duplicate_of), and
  flagged (every flagged trace, with its parse issue codes). A group is a
  dataset and domain. "Far" is robust: |z| > 3.5 on the log scale, z = (x -
  median) / scale, scale = 1.4826 * MAD, or IQR / 1.349 when the MAD is 0, and
  never below ln(2) / 3.5 (with no spread, far means more than twice or less
  than half the median).
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  domain: the trace's domain; `(unknown)` when missing
  status: "`ok`, or `flagged` when the response breaks the memento grammar"
  reasons: why the trace is listed, comma-separated in a fixed order
  n_reasons: how many reasons
  issue_codes: parse issue codes of a flagged trace
  duplicate_of: the first trace with the same content hash, when this one is a later copy
  n_blocks: block/memento pairs; NULL for flagged traces
  ratio_chars: memento/block chars over the trace; NULL for flagged traces
  domain_median_ratio_chars: median ratio_chars of the analysed traces of the trace's group (dataset and domain), a flagged trace's too; NULL only when the group has no analysed trace
  ratio_z: robust z-score of log ratio_chars within the group
  blocks_z: robust z-score of log n_blocks within the group
  max_block_chars: chars of the longest block; NULL for flagged traces
  max_block_z: robust z-score of log max_block_chars within the group
  answer_chars: chars of the answer; NULL for flagged traces
  mementos_longer_than_block: pairs whose memento has more chars than its block
  mementos_copying_block: pairs whose memento copies its block (from trace_text_checks)
  repeated_blocks: block copies beyond the first (from trace_text_checks)
audits:
  - not_null: [reasons, status]
  - accepted_range: {column: n_reasons, min: 1}
  - custom:
      name: every_flagged_trace_is_listed
      sql: >
        SELECT t.trace_id FROM all_traces AS t LEFT JOIN {this} AS o ON o.trace_id = t.trace_id
        WHERE t.status = 'flagged' AND (o.trace_id IS NULL OR o.issue_codes IS NULL)
*/
WITH measures AS (
    -- the three measures that are judged against the trace's group, on the log scale
    SELECT trace_id, dataset, domain, 'ratio' AS measure, ln(ratio_chars) AS x FROM trace_compression
    UNION ALL
    SELECT trace_id, dataset, domain, 'blocks' AS measure, ln(n_blocks) AS x FROM trace_compression
    UNION ALL
    SELECT trace_id, dataset, domain, 'max_block' AS measure, ln(max_block_chars) AS x FROM trace_compression
),
centres AS (
    SELECT
        dataset,
        domain,
        measure,
    -- several quantiles of one column are one list-form call, indexed: DuckDB computes the identical
    -- calls once, where separate calls each hold a copy of the column
        quantile_cont(x, [0.25, 0.5, 0.75])[2] AS med,
        quantile_cont(x, [0.25, 0.5, 0.75])[3] - quantile_cont(x, [0.25, 0.5, 0.75])[1] AS iqr
    FROM measures
    GROUP BY dataset, domain, measure
),
spreads AS (
    SELECT m.dataset, m.domain, m.measure, quantile_cont(abs(m.x - c.med), 0.5) AS mad
    FROM measures AS m
    JOIN centres AS c ON c.dataset = m.dataset AND c.domain = m.domain AND c.measure = m.measure
    GROUP BY m.dataset, m.domain, m.measure
),
scales AS (
    SELECT
        c.dataset,
        c.domain,
        c.measure,
        c.med,
        greatest(
            CASE WHEN s.mad > 0 THEN 1.4826 * s.mad WHEN c.iqr > 0 THEN c.iqr / 1.349 ELSE 0 END,
            ln(2) / 3.5
        ) AS scale
    FROM centres AS c
    JOIN spreads AS s ON s.dataset = c.dataset AND s.domain = c.domain AND s.measure = c.measure
),
z_scores AS (
    SELECT
        m.trace_id,
        max(CASE WHEN m.measure = 'ratio' THEN (m.x - s.med) / s.scale END) AS ratio_z,
        max(CASE WHEN m.measure = 'blocks' THEN (m.x - s.med) / s.scale END) AS blocks_z,
        max(CASE WHEN m.measure = 'max_block' THEN (m.x - s.med) / s.scale END) AS max_block_z
    FROM measures AS m
    JOIN scales AS s ON s.dataset = m.dataset AND s.domain = m.domain AND s.measure = m.measure
    GROUP BY m.trace_id
),
group_ratios AS (
    SELECT dataset, domain, quantile_cont(ratio_chars, 0.5) AS median_ratio_chars
    FROM trace_compression
    GROUP BY dataset, domain
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
        c.n_blocks,
        c.ratio_chars,
        g.median_ratio_chars AS group_median_ratio_chars,
        z.ratio_z,
        z.blocks_z,
        c.max_block_chars,
        z.max_block_z,
        c.answer_chars,
        c.mementos_longer_than_block,
        x.mementos_copying_block,
        x.repeated_blocks,
        CASE WHEN z.ratio_z > 3.5 THEN 1 ELSE 0 END AS f_ratio_high,
        CASE WHEN z.ratio_z < -3.5 THEN 1 ELSE 0 END AS f_ratio_low,
        CASE WHEN c.mementos_longer_than_block > 0 THEN 1 ELSE 0 END AS f_memento_longer,
        CASE WHEN x.mementos_copying_block > 0 THEN 1 ELSE 0 END AS f_memento_copies,
        CASE WHEN z.blocks_z > 3.5 THEN 1 ELSE 0 END AS f_many_blocks,
        CASE WHEN z.blocks_z < -3.5 THEN 1 ELSE 0 END AS f_few_blocks,
        CASE WHEN z.max_block_z > 3.5 THEN 1 ELSE 0 END AS f_long_block,
        CASE WHEN x.repeated_blocks > 0 THEN 1 ELSE 0 END AS f_repeated,
        CASE WHEN x.answer_empty THEN 1 ELSE 0 END AS f_empty_answer,
        CASE WHEN dup.copy_number > 1 THEN 1 ELSE 0 END AS f_duplicate,
        CASE WHEN t.status = 'flagged' THEN 1 ELSE 0 END AS f_flagged
    FROM all_traces AS t
    JOIN duplicates AS dup ON dup.trace_id = t.trace_id
    LEFT JOIN trace_compression AS c ON c.trace_id = t.trace_id
    LEFT JOIN z_scores AS z ON z.trace_id = t.trace_id
    -- by the trace's own labels, so a flagged trace (no trace_compression row) is shown its group's median
    LEFT JOIN group_ratios AS g ON g.dataset = t.dataset AND g.domain = t.domain
    -- the checks that read texts, one row per analysed trace (a batched model)
    LEFT JOIN trace_text_checks AS x ON x.trace_id = t.trace_id
),
listed AS (
    SELECT
        *,
        f_ratio_high + f_ratio_low + f_memento_longer + f_memento_copies + f_many_blocks + f_few_blocks
            + f_long_block + f_repeated + f_empty_answer + f_duplicate + f_flagged AS n_reasons
    FROM flags
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
        CASE WHEN f_memento_copies = 1 THEN 'memento_copies_block' END,
        CASE WHEN f_many_blocks = 1 THEN 'too_many_blocks' END,
        CASE WHEN f_few_blocks = 1 THEN 'too_few_blocks' END,
        CASE WHEN f_long_block = 1 THEN 'very_long_block' END,
        CASE WHEN f_repeated = 1 THEN 'repeated_blocks' END,
        CASE WHEN f_empty_answer = 1 THEN 'empty_answer' END,
        CASE WHEN f_duplicate = 1 THEN 'duplicate' END,
        CASE WHEN f_flagged = 1 THEN 'flagged' END
    ) AS reasons,
    n_reasons,
    issue_codes,
    duplicate_of,
    n_blocks,
    ratio_chars,
    group_median_ratio_chars AS domain_median_ratio_chars,
    ratio_z,
    blocks_z,
    max_block_chars,
    max_block_z,
    answer_chars,
    mementos_longer_than_block,
    mementos_copying_block,
    repeated_blocks
FROM listed
WHERE n_reasons > 0
