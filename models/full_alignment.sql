/*
name: full_alignment
version: 5
kind: table
grain: [trace_id, full_trace_id]
description: >
  Every default trace of a dataset ingested with the full config, and every full
  row, linked one to one: by content hash (the n-th default copy of a hash with
  the n-th full copy, by source_row), else by the same problem with whitespace
  runs made one space (of a problem's candidates, the one whose blocks agree
  most, then the nearest source row, chosen by both sides), else unlinked. For a
  linked pair: whether the full row's sentence-level blocks and summaries agree
  with the blocks and mementos of the default markup, compared by block_idx as
  the same text in ingest's sense (runs of whitespace, Unicode's spaces
  included, made one space and none at either end); where they first disagree and what
  disagrees (block_text, summary_text, missing_in_full, missing_in_default,
  extra_summary: the full row has more summaries than block ranges,
  response_differs: every block agrees but the content hashes differ).
  Flagged rows of either config are included, with both statuses. Its rows are
  full_links' (audited there: linked_rows_have_both_sides, each_side_once).
columns:
  trace_id: the default trace; NULL for a full row left unlinked
  full_trace_id: the full row, `<dataset>:full:<source_row>`; NULL for a default trace left unlinked
  dataset: the dataset name given at ingest (`--name`)
  link: "`hash` (same content hash), `problem` (same whitespace-collapsed problem) or `unlinked`"
  default_source_row: the default trace's row in its split
  full_source_row: the full row's row in its split
  default_status: the default trace's status (`ok` or `flagged`)
  full_status: the full row's status (`ok` or `flagged`)
  default_blocks: blocks in the default trace's markup
  full_blocks: block ranges of the full row
  full_summaries: summaries of the full row
  blocks_compared: block indexes present on either side
  blocks_agreeing: block indexes whose block and summary agree on both sides (whitespace collapsed)
  aligned: linked and no disagreement; NULL when unlinked
  first_disagreeing_block: the lowest block_idx that disagrees; NULL when none does
  disagreement: "the first that applies: `missing_in_full`, `missing_in_default`, `block_text`, `summary_text`, `extra_summary`, `response_differs`"
audits:
  - not_null: [dataset, link]
  - accepted_values: {column: link, values: [hash, problem, unlinked]}
  - accepted_values: {column: disagreement, values: [block_text, summary_text, missing_in_full, missing_in_default, extra_summary, response_differs]}
  - custom:
      name: aligned_iff_linked_without_disagreement
      sql: >
        SELECT * FROM {this}
        WHERE (link = 'unlinked') <> (aligned IS NULL)
           OR aligned <> (disagreement IS NULL)
           OR (first_disagreeing_block IS NOT NULL AND disagreement IS NULL)
*/
-- Linking (full_links) and comparing (block_agreement, built a batch of traces at a time over
-- full_block_digests) are their own models: this one puts them together.
WITH joined AS (
    SELECT
        l.*,
        CASE WHEN l.link <> 'unlinked' THEN coalesce(a.blocks_compared, 0) END AS blocks_compared,
        CASE WHEN l.link <> 'unlinked' THEN coalesce(a.blocks_agreeing, 0) END AS blocks_agreeing,
        CASE
            WHEN l.link = 'unlinked' THEN NULL
            WHEN a.first_disagreeing_block IS NOT NULL THEN a.first_disagreeing_block
            -- summaries beyond the last block range: the first of them
            WHEN l.full_summaries > l.full_blocks THEN l.full_blocks
        END AS first_disagreeing_block,
        CASE
            WHEN l.link = 'unlinked' THEN NULL
            WHEN a.first_disagreeing_block IS NOT NULL THEN a.disagreement
            WHEN l.full_summaries > l.full_blocks THEN 'extra_summary'
            WHEN NOT l.same_content_hash THEN 'response_differs'
        END AS disagreement
    FROM full_links AS l
    LEFT JOIN block_agreement AS a ON a.trace_id = l.trace_id AND l.link <> 'unlinked'
)
SELECT
    trace_id,
    full_trace_id,
    dataset,
    link,
    default_source_row,
    full_source_row,
    default_status,
    full_status,
    default_blocks,
    full_blocks,
    full_summaries,
    blocks_compared,
    blocks_agreeing,
    CASE WHEN link = 'unlinked' THEN NULL ELSE disagreement IS NULL END AS aligned,
    first_disagreeing_block,
    disagreement
FROM joined
