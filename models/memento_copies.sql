/*
name: memento_copies
version: 2
kind: incremental
grain: [trace_id, block_idx]
batch_traces: 20000
description: >
  The one definition of a memento that copies its block, for every block and
  memento (both non-empty) of any trace, flagged traces' recovered pairs too:
  memento_copies_block is true when the memento has at
  least 80% of its block's chars, and, lowercased with whitespace runs made
  one space, it is contained in its block or contains it. So a memento that is
  80% of its block verbatim, or the whole block in lower case, copies it.
  trace_text_checks counts these pairs for outlier_traces (reason
  memento_copies_block) and export_summarize marks them (memento_copies_block),
  which the export's `summarize` leaves out (reason `copied`: such a pair
  teaches nothing about compressing). docs/analyses.md has worked examples.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  block_idx: 0-based position of the block in its trace; its memento shares it
  block_chars: characters of the block
  memento_chars: characters of its memento
  memento_copies_block: "the memento copies its block: at least 80% of its chars, and (lowercased, whitespace runs one space) within the block or holding it"
audits:
  - not_null: [memento_copies_block]
  - accepted_range: {column: block_chars, min: 1}
  - accepted_range: {column: memento_chars, min: 1}
  - custom:
      name: a_copy_has_at_least_80_percent_of_the_block
      sql: SELECT * FROM {this} WHERE memento_copies_block AND 5 * memento_chars < 4 * block_chars
*/
WITH pairs AS (
    SELECT b.trace_id, b.block_idx, b.n_chars AS block_chars, m.n_chars AS memento_chars
    FROM segments AS b
    JOIN segments AS m ON m.trace_id = b.trace_id AND m.block_idx = b.block_idx AND m.kind = 'summary'
    WHERE b.kind = 'block' AND b.n_chars > 0 AND m.n_chars > 0
        AND b.trace_id IN (SELECT trace_id FROM all_traces)
),
texts AS (
    -- the texts of the pairs whose memento has at least 80% of its block's chars (or more): only these
    -- can copy it (a semi join: the plain join built its table from every segment's text)
    -- whitespace as segment_digests counts it (str.isspace's characters): the regular expressions'
    -- class shorthand and trim() differ between engines (Spark's trim strips the space alone, DuckDB's
    -- NBSP and U+2009 too)
    SELECT
        trace_id,
        block_idx,
        max(CASE WHEN kind = 'block' THEN normalised END) AS block_text,
        max(CASE WHEN kind = 'summary' THEN normalised END) AS memento_text
    FROM (
        SELECT s.trace_id, s.block_idx, s.kind,
               lower(trim(regexp_replace(s.text, '[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+', ' ', 'g'), ' ')) AS normalised
        FROM segments AS s
        SEMI JOIN (SELECT trace_id, block_idx FROM pairs WHERE 5 * memento_chars >= 4 * block_chars) AS c
            ON c.trace_id = s.trace_id AND c.block_idx = s.block_idx
        WHERE s.kind IN ('block', 'summary')
    )
    GROUP BY trace_id, block_idx
)
SELECT
    p.trace_id,
    p.block_idx,
    p.block_chars,
    p.memento_chars,
    -- the memento is within its block (or the block within it): copied, not compressed
    coalesce(strpos(t.block_text, t.memento_text) > 0 OR strpos(t.memento_text, t.block_text) > 0, FALSE)
        AS memento_copies_block
FROM pairs AS p
LEFT JOIN texts AS t ON t.trace_id = p.trace_id AND t.block_idx = p.block_idx
