/*
name: trace_text_checks
version: 3
kind: incremental
grain: [trace_id]
batch_traces: 20000
description: >
  The checks of outlier_traces that read the texts, for every analysed trace
  (every row of trace_compression): repeated_blocks (blocks whose text,
  lowercased with whitespace collapsed, repeats an earlier block of the trace),
  mementos_copying_block (memento_copies_block of memento_copies: the one definition,
  which the export's `summarize` also leaves out),
  answer_empty (no answer, or only
  whitespace and markup). Each trace's checks read its own texts only, so the
  model is built a batch of traces at a time; outlier_traces, which judges each
  trace against all the others, reads these counts and no text.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  repeated_blocks: block copies beyond the first (lowercased, whitespace collapsed)
  mementos_copying_block: pairs whose memento copies its block (memento_copies_block of memento_copies)
  answer_empty: the answer is missing or holds only whitespace and markup
audits:
  - not_null: [repeated_blocks, mementos_copying_block, answer_empty]
  - accepted_range: {column: repeated_blocks, min: 0}
  - accepted_range: {column: mementos_copying_block, min: 0}
*/
WITH repeat_candidates AS (
    -- only blocks that share their word count with another block of the trace can repeat one
    SELECT p.trace_id, p.block_idx
    FROM block_pairs AS p
    JOIN (
        SELECT trace_id, block_words FROM block_pairs GROUP BY trace_id, block_words HAVING count(*) > 1
    ) AS g ON g.trace_id = p.trace_id AND g.block_words = p.block_words
),
repeats AS (
    -- a semi join keeps the candidates' texts only: the plain join built its table from the
    -- segments side (every block text; DuckDB cannot estimate the view's rows)
    SELECT
        s.trace_id,
        -- whitespace as segment_digests counts it (str.isspace's characters): the regular expressions'
        -- class shorthand and trim() differ between engines (Spark's trim strips the space alone,
        -- DuckDB's NBSP and U+2009 too)
        count(*) - count(DISTINCT lower(trim(regexp_replace(s.text, '[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+', ' ', 'g'), ' '))) AS repeated_blocks
    FROM segments AS s
    SEMI JOIN repeat_candidates AS c ON c.trace_id = s.trace_id AND c.block_idx = s.block_idx
    WHERE s.kind = 'block'
    GROUP BY s.trace_id
),
copies AS (
    -- the one definition of a memento that copies its block, shared with the export
    SELECT trace_id, count(*) AS mementos_copying_block
    FROM memento_copies
    WHERE memento_copies_block
    GROUP BY trace_id
),
answers AS (
    -- the answer without the markup strings; empty when nothing but whitespace is left
    -- (computed as the texts stream past; the IN keeps the join's table to trace ids)
    SELECT
        trace_id,
        regexp_matches(
            replace(replace(replace(replace(replace(replace(text, '<think>', ''), '</think>', ''),
                '<|block_start|>', ''), '<|block_end|>', ''), '<|summary_start|>', ''), '<|summary_end|>', ''),
            '^[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]*$') AS bare_answer_empty
    FROM segments
    WHERE kind = 'answer' AND trace_id IN (SELECT trace_id FROM trace_compression)
)
SELECT
    c.trace_id,
    coalesce(r.repeated_blocks, 0) AS repeated_blocks,
    coalesce(cp.mementos_copying_block, 0) AS mementos_copying_block,
    coalesce(a.bare_answer_empty, TRUE) AS answer_empty
FROM trace_compression AS c
LEFT JOIN repeats AS r ON r.trace_id = c.trace_id
LEFT JOIN copies AS cp ON cp.trace_id = c.trace_id
LEFT JOIN answers AS a ON a.trace_id = c.trace_id
