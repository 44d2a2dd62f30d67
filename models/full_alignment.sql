/*
name: full_alignment
version: 2
kind: table
grain: [trace_id]
description: >
  For every trace ingested from both configs (a full row whose problem and
  response equal a default trace's), whether the sentence-level blocks and
  summaries of `full` agree with the blocks and mementos found in the markup
  of `default`, compared by block_idx after collapsing runs of whitespace to one
  space; and where they first disagree: first_disagreeing_block and what
  differs there (block_text, summary_text, missing_in_full, missing_in_default).
  Flagged traces of either config are included, with both statuses.
audits:
  - not_null: [full_trace_id, aligned, default_blocks, full_blocks, full_rows]
  - accepted_values: {column: disagreement, values: [block_text, summary_text, missing_in_full, missing_in_default]}
  - custom:
      name: aligned_iff_no_disagreement
      sql: SELECT * FROM {this} WHERE aligned <> (first_disagreeing_block IS NULL)
*/
WITH matched AS (
    -- the first full row of each default trace, and how many full rows match it
    SELECT
        trace_id,
        full_trace_id,
        status AS full_status,
        n_blocks AS full_blocks,
        count(*) OVER (PARTITION BY trace_id) AS full_rows,
        row_number() OVER (PARTITION BY trace_id ORDER BY source_row) AS nth
    FROM full_traces
    WHERE trace_id IS NOT NULL
),
default_keys AS (
    -- which block indexes the default markup has, and whether each has a block and a memento
    SELECT
        s.trace_id,
        s.block_idx,
        max(CASE WHEN s.kind = 'block' THEN 1 ELSE 0 END) AS has_block,
        max(CASE WHEN s.kind = 'summary' THEN 1 ELSE 0 END) AS has_summary
    FROM segments AS s
    JOIN matched AS m ON m.trace_id = s.trace_id AND m.nth = 1
    WHERE s.kind IN ('block', 'summary')
    GROUP BY s.trace_id, s.block_idx
),
full_keys AS (
    SELECT
        m.trace_id,
        b.block_idx,
        CASE WHEN b.text IS NULL THEN 0 ELSE 1 END AS has_block,
        CASE WHEN b.summary IS NULL THEN 0 ELSE 1 END AS has_summary
    FROM full_blocks AS b
    JOIN matched AS m ON m.full_trace_id = b.full_trace_id AND m.nth = 1
),
-- Texts are compared by the md5 of each with runs of whitespace made one space,
-- computed as the texts stream past, so no text is held in a join's hash table
-- (joining the texts took 1.7 GB at 20,000 traces). A text with no tab, newline,
-- form feed or CR, no two spaces in a row and no space at either end is its own
-- normal form, so only the others go through the regex (99.9% of the sample's
-- blocks need none; the regex on every text made the model most of a build).
default_texts AS (
    SELECT s.trace_id, s.block_idx, s.kind, CASE WHEN contains(s.text, '  ') OR contains(s.text, chr(9)) OR contains(s.text, chr(10)) OR contains(s.text, chr(12)) OR contains(s.text, chr(13)) OR starts_with(s.text, ' ') OR ends_with(s.text, ' ') THEN md5(trim(regexp_replace(s.text, '\s+', ' ', 'g'))) ELSE md5(s.text) END AS text_md5
    FROM segments AS s
    JOIN matched AS m ON m.trace_id = s.trace_id AND m.nth = 1
    WHERE s.kind IN ('block', 'summary')
),
full_texts AS (
    SELECT m.trace_id, b.block_idx, CASE WHEN contains(b.text, '  ') OR contains(b.text, chr(9)) OR contains(b.text, chr(10)) OR contains(b.text, chr(12)) OR contains(b.text, chr(13)) OR starts_with(b.text, ' ') OR ends_with(b.text, ' ') THEN md5(trim(regexp_replace(b.text, '\s+', ' ', 'g'))) ELSE md5(b.text) END AS block_md5, CASE WHEN contains(b.summary, '  ') OR contains(b.summary, chr(9)) OR contains(b.summary, chr(10)) OR contains(b.summary, chr(12)) OR contains(b.summary, chr(13)) OR starts_with(b.summary, ' ') OR ends_with(b.summary, ' ') THEN md5(trim(regexp_replace(b.summary, '\s+', ' ', 'g'))) ELSE md5(b.summary) END AS summary_md5
    FROM full_blocks AS b
    JOIN matched AS m ON m.full_trace_id = b.full_trace_id AND m.nth = 1
),
checks AS (
    SELECT d.trace_id, d.block_idx, d.kind,
           CASE WHEN d.text_md5 = CASE WHEN d.kind = 'block' THEN f.block_md5 ELSE f.summary_md5 END
                THEN 1 ELSE 0 END AS same
    FROM default_texts AS d
    JOIN full_texts AS f ON f.trace_id = d.trace_id AND f.block_idx = d.block_idx
    WHERE CASE WHEN d.kind = 'block' THEN f.block_md5 ELSE f.summary_md5 END IS NOT NULL
),
block_checks AS (
    SELECT trace_id, block_idx, same FROM checks WHERE kind = 'block'
),
summary_checks AS (
    SELECT trace_id, block_idx, same FROM checks WHERE kind = 'summary'
),
compared AS (
    SELECT
        coalesce(d.trace_id, f.trace_id) AS trace_id,
        coalesce(d.block_idx, f.block_idx) AS block_idx,
        CASE
            WHEN f.trace_id IS NULL THEN 'missing_in_full'
            WHEN d.trace_id IS NULL THEN 'missing_in_default'
            WHEN NOT (d.has_block = 0 AND f.has_block = 0) AND coalesce(bc.same, 0) = 0 THEN 'block_text'
            WHEN NOT (d.has_summary = 0 AND f.has_summary = 0) AND coalesce(sc.same, 0) = 0 THEN 'summary_text'
        END AS disagreement
    FROM default_keys AS d
    FULL OUTER JOIN full_keys AS f ON f.trace_id = d.trace_id AND f.block_idx = d.block_idx
    LEFT JOIN block_checks AS bc ON bc.trace_id = d.trace_id AND bc.block_idx = d.block_idx
    LEFT JOIN summary_checks AS sc ON sc.trace_id = d.trace_id AND sc.block_idx = d.block_idx
),
first_disagreement AS (
    SELECT
        trace_id,
        block_idx,
        disagreement,
        row_number() OVER (PARTITION BY trace_id ORDER BY block_idx) AS nth
    FROM compared
    WHERE disagreement IS NOT NULL
),
counts AS (
    SELECT
        trace_id,
        count(*) AS blocks_compared,
        CAST(sum(CASE WHEN disagreement IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS blocks_agreeing
    FROM compared
    GROUP BY trace_id
)
SELECT
    t.trace_id,
    t.dataset,
    m.full_trace_id,
    m.full_rows,
    t.status AS default_status,
    m.full_status,
    t.n_blocks AS default_blocks,
    m.full_blocks,
    coalesce(c.blocks_compared, 0) AS blocks_compared,
    coalesce(c.blocks_agreeing, 0) AS blocks_agreeing,
    fd.block_idx IS NULL AS aligned,
    fd.block_idx AS first_disagreeing_block,
    fd.disagreement
FROM matched AS m
JOIN traces AS t ON t.trace_id = m.trace_id
LEFT JOIN counts AS c ON c.trace_id = m.trace_id
LEFT JOIN first_disagreement AS fd ON fd.trace_id = m.trace_id AND fd.nth = 1
WHERE m.nth = 1
