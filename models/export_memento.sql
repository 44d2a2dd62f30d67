/*
name: export_memento
version: 1
kind: view
grain: [trace_id]
description: >
  Export kind `memento`, one example per trace: the problem as the user turn and
  the original response (traces.response, as ingested), with its full block and
  memento markup, as the assistant turn; the format that teaches a model to
  write its own mementos. n_tokens = cl100k tokens of all blocks + all mementos
  + the answer (markup and the problem not counted). `mementos export memento`
  writes it; warehouse.md (Export).
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
    block_tokens + memento_tokens + answer_tokens AS n_tokens
FROM export_base
