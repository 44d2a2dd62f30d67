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
  is written. `mementos export memento` writes it; warehouse.md (Export).
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
