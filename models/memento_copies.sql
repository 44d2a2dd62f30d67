/*
name: memento_copies
version: 1
kind: incremental
grain: [trace_id, block_idx]
batch_traces: 20000
description: >
  The one definition of a memento that copies its block, one row per such
  pair of any trace (flagged traces' recovered pairs too): the memento has at
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
audits:
  - accepted_range: {column: block_chars, min: 1}
  - custom:
      name: at_least_80_percent_of_the_block
      sql: SELECT * FROM {this} WHERE 5 * memento_chars < 4 * block_chars
*/
WITH candidates AS (
    -- a memento of at least 80% of its block's chars (or longer): only these are compared by text
    SELECT b.trace_id, b.block_idx, b.n_chars AS block_chars, m.n_chars AS memento_chars
    FROM segments AS b
    JOIN segments AS m ON m.trace_id = b.trace_id AND m.block_idx = b.block_idx AND m.kind = 'summary'
    WHERE b.kind = 'block' AND b.n_chars > 0 AND m.n_chars > 0 AND 5 * m.n_chars >= 4 * b.n_chars
        AND b.trace_id IN (SELECT trace_id FROM all_traces)
),
texts AS (
    -- the candidates' texts only (a semi join: the plain join built its table from every segment's text)
    SELECT
        s.trace_id,
        s.block_idx,
        max(CASE WHEN s.kind = 'block' THEN lower(trim(regexp_replace(s.text, '\s+', ' ', 'g'))) END) AS block_text,
        max(CASE WHEN s.kind = 'summary' THEN lower(trim(regexp_replace(s.text, '\s+', ' ', 'g'))) END) AS memento_text
    FROM segments AS s
    SEMI JOIN candidates AS c ON c.trace_id = s.trace_id AND c.block_idx = s.block_idx
    WHERE s.kind IN ('block', 'summary')
    GROUP BY s.trace_id, s.block_idx
)
SELECT c.trace_id, c.block_idx, c.block_chars, c.memento_chars
FROM candidates AS c
JOIN texts AS t ON t.trace_id = c.trace_id AND t.block_idx = c.block_idx
-- the memento is within its block (or the block within it): copied, not compressed
WHERE strpos(t.block_text, t.memento_text) > 0 OR strpos(t.memento_text, t.block_text) > 0
