/*
name: trace_compression
version: 2
kind: incremental
grain: [trace_id]
batch_traces: 20000
description: >
  One row per analysed trace: its blocks, the total size of its blocks, of its
  mementos and of its answer, and the trace-level compression, total block
  tokens / total memento tokens (the card's ~6x: ~10,900 -> ~1,850 tokens).
  ratio_chars is the inverse view in chars: total memento chars / total block chars,
  ratio_words the same in words (the OpenMementos tutorial's per-trace ratios).
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  domain: the trace's domain; `(unknown)` when missing
  source: the trace's source dataset; `(unknown)` when missing
  difficulty: the trace's difficulty, as text; `(unknown)` when missing
  n_blocks: block/memento pairs of the trace
  block_chars: chars of all blocks
  memento_chars: chars of all mementos
  answer_chars: chars of the answer after `</think>`
  answer_words: words of the answer
  block_tokens: tokens of all blocks
  memento_tokens: tokens of all mementos
  answer_tokens: tokens of the answer
  max_block_chars: chars of the longest block
  max_block_tokens: tokens of the longest block
  mementos_longer_than_block: pairs whose memento has more chars than its block
  block_words: words of all blocks
  memento_words: words of all mementos
  compression_chars: block_chars / memento_chars
  compression_tokens: block_tokens / memento_tokens
  ratio_chars: memento_chars / block_chars over the whole trace
  ratio_words: memento_words / block_words over the whole trace
audits:
  - not_null: [n_blocks, block_chars, memento_chars, answer_chars, compression_chars]
  - accepted_range: {column: n_blocks, min: 1}
  - accepted_range: {column: compression_chars, min: 0}
  - custom:
      name: one_row_per_analysed_trace
      sql: >
        SELECT t.trace_id FROM analysed_traces AS t
        LEFT JOIN {this} AS c ON c.trace_id = t.trace_id WHERE c.trace_id IS NULL
*/
WITH per_trace AS (
    SELECT
        trace_id,
        count(*) AS n_blocks,
        CAST(sum(block_chars) AS BIGINT) AS block_chars,
        CAST(sum(memento_chars) AS BIGINT) AS memento_chars,
        CAST(sum(block_words) AS BIGINT) AS block_words,
        CAST(sum(memento_words) AS BIGINT) AS memento_words,
        CAST(sum(block_tokens) AS BIGINT) AS block_tokens,
        CAST(sum(memento_tokens) AS BIGINT) AS memento_tokens,
        max(block_chars) AS max_block_chars,
        max(block_tokens) AS max_block_tokens,
        CAST(sum(CASE WHEN memento_chars > block_chars THEN 1 ELSE 0 END) AS BIGINT) AS mementos_longer_than_block
    FROM block_pairs
    GROUP BY trace_id
),
answers AS (
    SELECT trace_id, n_chars AS answer_chars, n_words AS answer_words, n_tokens AS answer_tokens
    FROM segments
    WHERE kind = 'answer'
)
SELECT
    t.trace_id,
    t.dataset,
    t.domain,
    t.source,
    t.difficulty,
    p.n_blocks,
    p.block_chars,
    p.memento_chars,
    a.answer_chars,
    a.answer_words,
    p.block_tokens,
    p.memento_tokens,
    a.answer_tokens,
    p.max_block_chars,
    p.max_block_tokens,
    p.mementos_longer_than_block,
    p.block_words,
    p.memento_words,
    CAST(p.block_chars AS DOUBLE) / NULLIF(p.memento_chars, 0) AS compression_chars,
    CAST(p.block_tokens AS DOUBLE) / NULLIF(p.memento_tokens, 0) AS compression_tokens,
    CAST(p.memento_chars AS DOUBLE) / NULLIF(p.block_chars, 0) AS ratio_chars,
    CAST(p.memento_words AS DOUBLE) / NULLIF(p.block_words, 0) AS ratio_words
FROM analysed_traces AS t
JOIN per_trace AS p ON p.trace_id = t.trace_id
LEFT JOIN answers AS a ON a.trace_id = t.trace_id
