/*
name: block_pairs
version: 1
kind: incremental
grain: [trace_id, block_idx]
batch_traces: 20000
description: >
  Each block of an analysed trace with its memento (the summary written right
  after it): chars, words and tokens of both, and the memento/block ratio in
  chars and in tokens. Tokens are cl100k_base, NULL when ingested with --no-tokens.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  domain: the trace's domain; `(unknown)` when missing
  source: the trace's source dataset; `(unknown)` when missing
  difficulty: the trace's difficulty, as text; `(unknown)` when missing
  block_idx: 0-based position of the block in its trace; its memento shares it
  block_chars: characters of the block
  block_words: whitespace-separated words of the block
  block_tokens: cl100k_base tokens of the block; NULL without token counts
  memento_chars: characters of its memento
  memento_words: whitespace-separated words of its memento
  memento_tokens: cl100k_base tokens of its memento; NULL without token counts
  ratio_chars: memento_chars / block_chars
  ratio_tokens: memento_tokens / block_tokens
audits:
  - not_null: [dataset, domain, block_chars, memento_chars, ratio_chars]
  - accepted_range: {column: block_chars, min: 1}
  - accepted_range: {column: memento_chars, min: 1}
  - accepted_range: {column: ratio_chars, min: 0}
  - custom:
      name: every_block_has_its_memento
      sql: >
        SELECT t.trace_id, t.n_blocks, count(p.block_idx) AS pairs, max(p.block_idx) AS last_block_idx
        FROM analysed_traces AS t LEFT JOIN {this} AS p ON p.trace_id = t.trace_id
        GROUP BY t.trace_id, t.n_blocks
        HAVING count(p.block_idx) <> t.n_blocks OR max(p.block_idx) <> t.n_blocks - 1
*/
WITH blocks AS (
    SELECT trace_id, block_idx, n_chars, n_words, n_tokens
    FROM segments
    WHERE kind = 'block'
),
mementos AS (
    SELECT trace_id, block_idx, n_chars, n_words, n_tokens
    FROM segments
    WHERE kind = 'summary'
)
SELECT
    t.trace_id,
    t.dataset,
    t.domain,
    t.source,
    t.difficulty,
    b.block_idx,
    b.n_chars AS block_chars,
    b.n_words AS block_words,
    b.n_tokens AS block_tokens,
    m.n_chars AS memento_chars,
    m.n_words AS memento_words,
    m.n_tokens AS memento_tokens,
    CAST(m.n_chars AS DOUBLE) / NULLIF(b.n_chars, 0) AS ratio_chars,
    CAST(m.n_tokens AS DOUBLE) / NULLIF(b.n_tokens, 0) AS ratio_tokens
FROM analysed_traces AS t
JOIN blocks AS b ON b.trace_id = t.trace_id
JOIN mementos AS m ON m.trace_id = b.trace_id AND m.block_idx = b.block_idx
