/*
name: full_links
version: 2
kind: table
grain: [trace_id, full_trace_id]
description: >
  The link half of full_alignment: every default trace of a dataset ingested
  with the full config, and every full row, linked one to one: by content hash
  (the n-th default copy of a hash with the n-th full copy, by source_row), else
  by the same problem with whitespace runs made one space (of a problem's
  candidates, the one whose blocks agree most, then the nearest source row,
  chosen by both sides: a pair links when each is the other's first), else
  unlinked; with both rows' source row, status
  and counts, and whether their content hashes are equal (NULL when unlinked).
  Flagged rows of either config are included, with both statuses.
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
  full_run_id: the ingest run that wrote the full row (block_agreement recomputes a trace whose partner's changes)
  same_content_hash: both sides have the same content hash; NULL when unlinked
audits:
  - not_null: [dataset, link]
  - accepted_values: {column: link, values: [hash, problem, unlinked]}
  - custom:
      name: linked_rows_have_both_sides
      sql: >
        SELECT * FROM {this}
        WHERE (link = 'unlinked') <> (trace_id IS NULL OR full_trace_id IS NULL)
           OR (trace_id IS NULL AND full_trace_id IS NULL)
  - custom:
      name: each_side_once
      sql: >
        SELECT trace_id, count(*) AS n_rows FROM {this} WHERE trace_id IS NOT NULL GROUP BY trace_id HAVING count(*) > 1
        UNION ALL
        SELECT full_trace_id, count(*) FROM {this} WHERE full_trace_id IS NOT NULL GROUP BY full_trace_id HAVING count(*) > 1
*/
WITH default_rows AS (
    -- default traces of the datasets that have full rows
    SELECT
        trace_id,
        dataset,
        source_row,
        content_hash,
        problem,
        status,
        n_blocks,
        row_number() OVER (PARTITION BY dataset, content_hash ORDER BY source_row) AS hash_nth
    FROM traces
    WHERE dataset IN (SELECT dataset FROM full_traces)
),
full_rows AS (
    SELECT
        full_trace_id,
        dataset,
        source_row,
        content_hash,
        problem,
        status,
        n_blocks,
        n_summaries,
        run_id,
        row_number() OVER (PARTITION BY dataset, content_hash ORDER BY source_row) AS hash_nth
    FROM full_traces
),
hash_links AS (
    SELECT d.trace_id, f.full_trace_id
    FROM default_rows AS d
    JOIN full_rows AS f
        ON f.dataset = d.dataset AND f.content_hash = d.content_hash AND f.hash_nth = d.hash_nth
),
default_left AS (
    -- whitespace as segment_digests counts it: runs made one space, none at either end
    SELECT d.trace_id, d.dataset, d.source_row,
           trim(regexp_replace(d.problem, '[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+', ' ', 'g'), ' ') AS problem_key
    FROM default_rows AS d
    LEFT JOIN hash_links AS h ON h.trace_id = d.trace_id
    WHERE h.trace_id IS NULL AND d.problem IS NOT NULL
),
full_left AS (
    SELECT f.full_trace_id, f.dataset, f.source_row,
           trim(regexp_replace(f.problem, '[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+', ' ', 'g'), ' ') AS problem_key
    FROM full_rows AS f
    LEFT JOIN hash_links AS h ON h.full_trace_id = f.full_trace_id
    WHERE h.full_trace_id IS NULL AND f.problem IS NOT NULL
),
problem_pairs AS (
    SELECT d.trace_id, f.full_trace_id, d.source_row AS default_row, f.source_row AS full_row
    FROM default_left AS d
    JOIN full_left AS f ON f.dataset = d.dataset AND f.problem_key = d.problem_key
),
candidate_segments AS (
    -- segment_digests of the candidates' traces alone: a semi join DuckDB pushes down to their segments
    SELECT s.* FROM segment_digests AS s SEMI JOIN problem_pairs AS c ON c.trace_id = s.trace_id
),
pair_agreement AS (
    -- block indexes where the default side has the block or its memento and both sides have the same
    -- block and the same memento (or neither): where block_agreement finds no disagreement
    SELECT p.trace_id, p.full_trace_id, count(*) AS agreeing
    FROM problem_pairs AS p
    JOIN full_block_digests AS f ON f.full_trace_id = p.full_trace_id
    LEFT JOIN candidate_segments AS b ON b.trace_id = p.trace_id AND b.block_idx = f.block_idx AND b.kind = 'block'
    LEFT JOIN candidate_segments AS m
        ON m.trace_id = p.trace_id AND m.block_idx = f.block_idx AND m.kind = 'summary'
    WHERE (b.trace_id IS NOT NULL OR m.trace_id IS NOT NULL)
      AND b.text_md5 IS NOT DISTINCT FROM f.block_md5 AND m.text_md5 IS NOT DISTINCT FROM f.summary_md5
    GROUP BY p.trace_id, p.full_trace_id
),
problem_candidates AS (
    -- every same-problem pair left over, ranked from each side by one order: most blocks agreeing,
    -- then the nearest source row, then the lower rows
    SELECT
        p.trace_id,
        p.full_trace_id,
        row_number() OVER (PARTITION BY p.full_trace_id
                           ORDER BY coalesce(a.agreeing, 0) DESC, abs(p.default_row - p.full_row), p.default_row)
            AS rank_for_full,
        row_number() OVER (PARTITION BY p.trace_id
                           ORDER BY coalesce(a.agreeing, 0) DESC, abs(p.default_row - p.full_row), p.full_row)
            AS rank_for_default
    FROM problem_pairs AS p
    LEFT JOIN pair_agreement AS a ON a.trace_id = p.trace_id AND a.full_trace_id = p.full_trace_id
),
links AS (
    SELECT trace_id, full_trace_id, 'hash' AS link FROM hash_links
    UNION ALL
    -- linked when each is the other's first: one to one, and no pair steals a better one's partner
    SELECT trace_id, full_trace_id, 'problem' AS link
    FROM problem_candidates
    WHERE rank_for_full = 1 AND rank_for_default = 1
),
every_row AS (
    SELECT trace_id, full_trace_id, link
    FROM links
    UNION ALL
    SELECT d.trace_id, CAST(NULL AS VARCHAR), 'unlinked'
    FROM default_rows AS d
    LEFT JOIN links AS l ON l.trace_id = d.trace_id
    WHERE l.trace_id IS NULL
    UNION ALL
    SELECT CAST(NULL AS VARCHAR), f.full_trace_id, 'unlinked'
    FROM full_rows AS f
    LEFT JOIN links AS l ON l.full_trace_id = f.full_trace_id
    WHERE l.full_trace_id IS NULL
)
SELECT
    r.trace_id,
    r.full_trace_id,
    coalesce(d.dataset, f.dataset) AS dataset,
    r.link,
    d.source_row AS default_source_row,
    f.source_row AS full_source_row,
    d.status AS default_status,
    f.status AS full_status,
    d.n_blocks AS default_blocks,
    f.n_blocks AS full_blocks,
    f.n_summaries AS full_summaries,
    f.run_id AS full_run_id,
    CASE WHEN r.link <> 'unlinked' THEN d.content_hash = f.content_hash END AS same_content_hash
FROM every_row AS r
LEFT JOIN default_rows AS d ON d.trace_id = r.trace_id
LEFT JOIN full_rows AS f ON f.full_trace_id = r.full_trace_id
