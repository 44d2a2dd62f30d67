/*
name: export_summarize
version: 2
kind: incremental
grain: [trace_id, block_idx]
batch_traces: 20000
description: >
  Export kind `summarize`, one example per block that has a non-empty memento:
  the user turn is a fixed instruction, a blank line and the block's text; the
  assistant turn is the memento's text; for training a memento writer. The
  spans say where the block and its memento are in the response (0-based,
  end-exclusive). The instruction (warehouse/export.py SUMMARIZE_INSTRUCTION)
  is exactly: 'Write the memento of this reasoning block: a short summary that
  keeps every result, value and decision needed to continue the reasoning
  without the block.' n_tokens = block + memento (the instruction not counted).
  Flagged traces contribute the complete pairs the parser recovered. A table
  built a batch of traces at a time (version 2; a view before, whose audits
  joined every block with its memento at once).
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  block_idx: 0-based position of the block in its trace; its memento shares it
  dataset: the dataset name given at ingest (`--name`)
  source_row: 0-based row of the trace in its input split
  domain: the trace's domain; `(unknown)` when missing
  source: the trace's source dataset; `(unknown)` when missing
  difficulty: the trace's difficulty, as text; `(unknown)` when missing
  status: "`ok`, or `flagged` when the response breaks the memento grammar"
  issue_codes: the trace's distinct parse issue codes (default config), sorted, comma-separated; NULL when none
  content_hash: "xxh3-128 of problem and response: equal hashes are exact duplicates"
  response_chars: characters of the response
  block_start: where the block starts in the response
  block_end: where the block ends (exclusive)
  memento_start: where its memento starts
  memento_end: where its memento ends (exclusive)
  n_tokens: tokens of the block and memento (the record's own count is made at export)
audits:
  - not_null: [dataset, source_row, domain, status, content_hash, block_start, memento_start]
  - accepted_range: {column: block_idx, min: 0}
  - custom:
      name: the_memento_follows_its_block
      sql: SELECT * FROM {this} WHERE status = 'ok' AND (memento_start < block_end OR block_start >= block_end)
*/
WITH blocks AS (
    SELECT trace_id, block_idx, char_start, char_end, n_tokens
    FROM segments
    WHERE kind = 'block' AND n_chars > 0
),
mementos AS (
    SELECT trace_id, block_idx, char_start, char_end, n_tokens
    FROM segments
    WHERE kind = 'summary' AND n_chars > 0
)
SELECT
    t.trace_id,
    b.block_idx,
    t.dataset,
    t.source_row,
    t.domain,
    t.source,
    t.difficulty,
    t.status,
    t.issue_codes,
    t.content_hash,
    t.response_chars,
    b.char_start AS block_start,
    b.char_end AS block_end,
    m.char_start AS memento_start,
    m.char_end AS memento_end,
    CAST(b.n_tokens + m.n_tokens AS BIGINT) AS n_tokens
FROM blocks AS b
JOIN mementos AS m ON m.trace_id = b.trace_id AND m.block_idx = b.block_idx
JOIN export_base AS t ON t.trace_id = b.trace_id
