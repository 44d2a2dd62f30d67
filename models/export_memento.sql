/*
name: export_memento
version: 2
kind: view
grain: [trace_id]
description: >
  Export kind `memento`, one example per trace: the problem as the user turn and
  the original response (traces.response, as ingested), with its full block and
  memento markup, as the assistant turn; the format that teaches a model to
  write its own mementos. n_tokens = cl100k tokens of all blocks + all mementos
  + the answer (markup and the problem not counted). blocks, mementos (lists of
  {block_idx, start, end}) and the answer's start and end are where the
  segments are in the response, which is the assistant turn as it is: the
  export's `spans`, the blocks a stage-2 attention mask hides once their memento
  is written. `mementos export memento` writes it; README.md (Export).
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  source_row: 0-based row of the trace in its input split
  domain: the trace's domain; `(unknown)` when missing
  source: the trace's source dataset; `(unknown)` when missing
  difficulty: the trace's difficulty, as text; `(unknown)` when missing
  status: "`ok`, or `flagged` when the response breaks the memento grammar"
  issue_codes: the trace's distinct parse issue codes (default config), sorted, comma-separated; NULL when none
  content_hash: "xxh3-128 of problem and response: equal hashes are exact duplicates"
  response_chars: characters of the response
  blocks: the non-empty blocks as a list of `{block_idx, start, end}` character offsets in the response, in block order
  mementos: the non-empty mementos as a list of `{block_idx, start, end}` character offsets in the response, in block order
  answer_start: where the answer starts in the response
  answer_end: where the answer ends (exclusive)
  n_tokens: tokens of the blocks, mementos and answer (the record's own count is made at export)
audits:
  - not_null: [dataset, source_row, domain, status, content_hash, response_chars]
*/
SELECT
    trace_id,
    dataset,
    source_row,
    domain,
    source,
    difficulty,
    status,
    issue_codes,
    content_hash,
    response_chars,
    blocks,
    mementos,
    answer_start,
    answer_end,
    block_tokens + memento_tokens + answer_tokens AS n_tokens
FROM export_base
