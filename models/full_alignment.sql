/*
name: full_alignment
version: 3
kind: table
grain: [trace_id, full_trace_id]
description: >
  Every default trace of a dataset ingested with the full config, and every full
  row, linked one to one: by content hash (the n-th default copy of a hash with
  the n-th full copy, by source_row), else by the same problem with whitespace
  runs made one space (the nearest source row, chosen by both sides), else
  unlinked. For a linked pair: whether the full row's sentence-level blocks and
  summaries agree with the blocks and mementos of the default markup, compared
  by block_idx after collapsing whitespace; where they first disagree and what
  disagrees (block_text, summary_text, missing_in_full, missing_in_default,
  extra_summary: the full row has more summaries than block ranges,
  response_differs: every block agrees but the content hashes differ).
  Flagged rows of either config are included, with both statuses.
audits:
  - not_null: [dataset, link]
  - accepted_values: {column: link, values: [hash, problem, unlinked]}
  - accepted_values: {column: disagreement, values: [block_text, summary_text, missing_in_full, missing_in_default, extra_summary, response_differs]}
  - custom:
      name: linked_rows_have_both_sides
      sql: >
        SELECT * FROM {this}
        WHERE (link = 'unlinked') <> (trace_id IS NULL OR full_trace_id IS NULL)
           OR (trace_id IS NULL AND full_trace_id IS NULL)
  - custom:
      name: aligned_iff_linked_without_disagreement
      sql: >
        SELECT * FROM {this}
        WHERE (link = 'unlinked') <> (aligned IS NULL)
           OR aligned <> (disagreement IS NULL)
           OR (first_disagreeing_block IS NOT NULL AND disagreement IS NULL)
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
    SELECT d.trace_id, d.dataset, d.source_row, trim(regexp_replace(d.problem, '\s+', ' ', 'g')) AS problem_key
    FROM default_rows AS d
    LEFT JOIN hash_links AS h ON h.trace_id = d.trace_id
    WHERE h.trace_id IS NULL AND d.problem IS NOT NULL
),
full_left AS (
    SELECT f.full_trace_id, f.dataset, f.source_row, trim(regexp_replace(f.problem, '\s+', ' ', 'g')) AS problem_key
    FROM full_rows AS f
    LEFT JOIN hash_links AS h ON h.full_trace_id = f.full_trace_id
    WHERE h.full_trace_id IS NULL AND f.problem IS NOT NULL
),
problem_candidates AS (
    -- every same-problem pair left over, ranked from each side: nearest source row first, then the lower
    SELECT
        d.trace_id,
        f.full_trace_id,
        row_number() OVER (PARTITION BY f.full_trace_id
                           ORDER BY abs(d.source_row - f.source_row), d.source_row) AS rank_for_full,
        row_number() OVER (PARTITION BY d.trace_id
                           ORDER BY abs(d.source_row - f.source_row), f.source_row) AS rank_for_default
    FROM default_left AS d
    JOIN full_left AS f ON f.dataset = d.dataset AND f.problem_key = d.problem_key
),
links AS (
    SELECT trace_id, full_trace_id, 'hash' AS link FROM hash_links
    UNION ALL
    -- linked when each is the other's nearest: one to one, and no pair steals a closer one's partner
    SELECT trace_id, full_trace_id, 'problem' AS link
    FROM problem_candidates
    WHERE rank_for_full = 1 AND rank_for_default = 1
),
-- Texts are compared by the md5 of each with runs of whitespace made one space and
-- trimmed, computed as the texts stream past, so no join holds a text. A text with no
-- tab, newline, form feed or CR, no two spaces in a row and no space at either end is
-- its own normal form, so only the others go through the regex.
default_side AS (
    -- the default markup of each linked trace, one row per block index
    SELECT
        l.trace_id,
        s.block_idx,
        max(CASE WHEN s.kind = 'block' THEN 1 ELSE 0 END) AS has_block,
        max(CASE WHEN s.kind = 'summary' THEN 1 ELSE 0 END) AS has_summary,
        max(CASE WHEN s.kind = 'block' THEN
            CASE WHEN contains(s.text, '  ') OR contains(s.text, chr(9)) OR contains(s.text, chr(10)) OR contains(s.text, chr(12))
                  OR contains(s.text, chr(13)) OR starts_with(s.text, ' ') OR ends_with(s.text, ' ')
             THEN md5(trim(regexp_replace(s.text, '\s+', ' ', 'g'))) ELSE md5(s.text) END
        END) AS block_md5,
        max(CASE WHEN s.kind = 'summary' THEN
            CASE WHEN contains(s.text, '  ') OR contains(s.text, chr(9)) OR contains(s.text, chr(10)) OR contains(s.text, chr(12))
                  OR contains(s.text, chr(13)) OR starts_with(s.text, ' ') OR ends_with(s.text, ' ')
             THEN md5(trim(regexp_replace(s.text, '\s+', ' ', 'g'))) ELSE md5(s.text) END
        END) AS summary_md5
    FROM segments AS s
    JOIN links AS l ON l.trace_id = s.trace_id
    WHERE s.kind IN ('block', 'summary')
    GROUP BY l.trace_id, s.block_idx
),
full_side AS (
    SELECT
        l.trace_id,
        b.block_idx,
        CASE WHEN b.text IS NULL THEN 0 ELSE 1 END AS has_block,
        CASE WHEN b.summary IS NULL THEN 0 ELSE 1 END AS has_summary,
        CASE WHEN contains(b.text, '  ') OR contains(b.text, chr(9)) OR contains(b.text, chr(10)) OR contains(b.text, chr(12))
                  OR contains(b.text, chr(13)) OR starts_with(b.text, ' ') OR ends_with(b.text, ' ')
             THEN md5(trim(regexp_replace(b.text, '\s+', ' ', 'g'))) ELSE md5(b.text) END AS block_md5,
        CASE WHEN contains(b.summary, '  ') OR contains(b.summary, chr(9)) OR contains(b.summary, chr(10)) OR contains(b.summary, chr(12))
                  OR contains(b.summary, chr(13)) OR starts_with(b.summary, ' ') OR ends_with(b.summary, ' ')
             THEN md5(trim(regexp_replace(b.summary, '\s+', ' ', 'g'))) ELSE md5(b.summary) END AS summary_md5
    FROM full_blocks AS b
    JOIN links AS l ON l.full_trace_id = b.full_trace_id
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
),
linked AS (
    SELECT
        l.trace_id,
        l.full_trace_id,
        l.link,
        coalesce(c.blocks_compared, 0) AS blocks_compared,
        coalesce(c.blocks_agreeing, 0) AS blocks_agreeing,
        CASE
            WHEN fd.block_idx IS NOT NULL THEN fd.block_idx
            -- summaries beyond the last block range: the first of them
            WHEN f.n_summaries > f.n_blocks THEN f.n_blocks
        END AS first_disagreeing_block,
        CASE
            WHEN fd.block_idx IS NOT NULL THEN fd.disagreement
            WHEN f.n_summaries > f.n_blocks THEN 'extra_summary'
            WHEN d.content_hash <> f.content_hash THEN 'response_differs'
        END AS disagreement
    FROM links AS l
    JOIN default_rows AS d ON d.trace_id = l.trace_id
    JOIN full_rows AS f ON f.full_trace_id = l.full_trace_id
    LEFT JOIN counts AS c ON c.trace_id = l.trace_id
    LEFT JOIN first_disagreement AS fd ON fd.trace_id = l.trace_id AND fd.nth = 1
),
every_row AS (
    SELECT trace_id, full_trace_id, link, blocks_compared, blocks_agreeing, first_disagreeing_block, disagreement
    FROM linked
    UNION ALL
    SELECT d.trace_id, CAST(NULL AS VARCHAR), 'unlinked', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT),
           CAST(NULL AS INTEGER), CAST(NULL AS VARCHAR)
    FROM default_rows AS d
    LEFT JOIN links AS l ON l.trace_id = d.trace_id
    WHERE l.trace_id IS NULL
    UNION ALL
    SELECT CAST(NULL AS VARCHAR), f.full_trace_id, 'unlinked', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT),
           CAST(NULL AS INTEGER), CAST(NULL AS VARCHAR)
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
    r.blocks_compared,
    r.blocks_agreeing,
    CASE WHEN r.link = 'unlinked' THEN NULL ELSE r.disagreement IS NULL END AS aligned,
    r.first_disagreeing_block,
    r.disagreement
FROM every_row AS r
LEFT JOIN default_rows AS d ON d.trace_id = r.trace_id
LEFT JOIN full_rows AS f ON f.full_trace_id = r.full_trace_id
