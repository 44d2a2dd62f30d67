/*
name: block_agreement
version: 2
kind: incremental
grain: [trace_id]
batch_traces: 20000
# a trace's row depends on its run, the full row it is linked to and that row's run: full_links is
# rebuilt whole on new data, and a trace whose link changed is recomputed
trace_inputs: >
  SELECT t.trace_id, t.run_id, l.full_trace_id, l.full_run_id
  FROM traces AS t LEFT JOIN full_links AS l ON l.trace_id = t.trace_id AND l.link <> 'unlinked'
description: >
  The comparison half of full_alignment: for every default trace linked to a
  full row (full_links) that has a block or a summary on either side, the blocks
  of its markup (segment_digests) against the full row's
  (full_block_digests), by block_idx, the same text in ingest's sense (runs of
  whitespace made one space, none at either end): how many block indexes were compared and agree, the
  first that disagrees and how (block_text, summary_text, missing_in_full,
  missing_in_default). Batched: each trace's row comes from its own rows and its full row's; kept
  up to date trace by trace, a trace recomputed when its run, its link or its full row's run changes.
columns:
  trace_id: a linked default trace with a block or summary on either side
  blocks_compared: block indexes present on either side
  blocks_agreeing: block indexes whose block and summary agree on both sides (whitespace collapsed)
  first_disagreeing_block: the lowest block_idx that disagrees; NULL when none does
  disagreement: "what differs at first_disagreeing_block: `missing_in_full`, `missing_in_default`, `block_text` or `summary_text`"
audits:
  - not_null: [blocks_compared, blocks_agreeing]
  - accepted_values: {column: disagreement, values: [block_text, summary_text, missing_in_full, missing_in_default]}
*/
WITH links AS (
    SELECT trace_id, full_trace_id FROM full_links WHERE link <> 'unlinked'
),
default_side AS (
    -- the default markup of each linked trace, one row per block index
    SELECT
        s.trace_id,
        s.block_idx,
        max(CASE WHEN s.kind = 'block' THEN 1 ELSE 0 END) AS has_block,
        max(CASE WHEN s.kind = 'summary' THEN 1 ELSE 0 END) AS has_summary,
        max(CASE WHEN s.kind = 'block' THEN s.text_md5 END) AS block_md5,
        max(CASE WHEN s.kind = 'summary' THEN s.text_md5 END) AS summary_md5
    FROM segment_digests AS s
    SEMI JOIN links AS l ON l.trace_id = s.trace_id
    GROUP BY s.trace_id, s.block_idx
),
full_side AS (
    SELECT l.trace_id, f.block_idx, f.has_block, f.has_summary, f.block_md5, f.summary_md5
    FROM full_block_digests AS f
    JOIN links AS l ON l.full_trace_id = f.full_trace_id
),
compared AS (
    SELECT
        coalesce(d.trace_id, f.trace_id) AS trace_id,
        coalesce(d.block_idx, f.block_idx) AS block_idx,
        CASE
            WHEN f.trace_id IS NULL THEN 'missing_in_full'
            WHEN d.trace_id IS NULL THEN 'missing_in_default'
            WHEN NOT (d.has_block = 0 AND f.has_block = 0) AND coalesce(d.block_md5 = f.block_md5, FALSE) = FALSE
                THEN 'block_text'
            WHEN NOT (d.has_summary = 0 AND f.has_summary = 0) AND coalesce(d.summary_md5 = f.summary_md5, FALSE) = FALSE
                THEN 'summary_text'
        END AS disagreement
    FROM default_side AS d
    FULL OUTER JOIN full_side AS f ON f.trace_id = d.trace_id AND f.block_idx = d.block_idx
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
    c.trace_id,
    c.blocks_compared,
    c.blocks_agreeing,
    fd.block_idx AS first_disagreeing_block,
    fd.disagreement
FROM counts AS c
LEFT JOIN first_disagreement AS fd ON fd.trace_id = c.trace_id AND fd.nth = 1
