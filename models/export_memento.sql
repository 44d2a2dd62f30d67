/*
name: export_memento
version: 1
kind: view
grain: [trace_id]
description: >
  Export kind `memento`, one example per trace: the problem as the user turn and
  the original response, with its full block and memento markup, as the
  assistant turn; the format that teaches a model to write its own mementos.
  n_tokens = cl100k tokens of all blocks + all mementos + the answer (markup and
  the problem not counted). `mementos export memento` writes it; docs/export.md.
audits:
  - not_null: [dataset, source_row, domain, status, content_hash, messages]
  - custom:
      name: assistant_turn_is_the_response
      sql: >
        SELECT e.trace_id FROM {this} AS e JOIN traces AS t ON t.trace_id = e.trace_id
        WHERE e.messages[2].content IS DISTINCT FROM t.response OR e.messages[1].content IS DISTINCT FROM t.problem
*/
SELECT
    trace_id,
    dataset,
    source_row,
    domain,
    source,
    difficulty,
    status,
    content_hash,
    problem,
    [
        {'role': 'user', 'content': problem},
        {'role': 'assistant', 'content': response}
    ] AS messages,
    block_tokens + memento_tokens + answer_tokens AS n_tokens
FROM export_base
