/*
name: export_plain
version: 1
kind: view
grain: [trace_id]
description: >
  Export kind `plain`, one example per trace: the problem as the user turn; as
  the assistant turn, the response with all memento markup and every memento
  removed: the raw chain of thought, built from the block segments (not by
  editing the response). Exactly: '<think>\n' + the block texts joined by
  '\n\n' + '\n</think>\n\n' + answer ('' when there is none). Texts are the
  trimmed segment texts. NULL content when the trace has no block (only possible
  for flagged traces). n_tokens = blocks + answer.
audits:
  - not_null: [dataset, source_row, domain, status, content_hash, messages]
  - custom:
      name: ok_traces_have_no_memento_markup_left
      sql: >
        SELECT trace_id FROM {this}
        WHERE status = 'ok' AND (messages[2].content IS NULL
            OR contains(messages[2].content, '<|block_start|>') OR contains(messages[2].content, '<|block_end|>')
            OR contains(messages[2].content, '<|summary_start|>') OR contains(messages[2].content, '<|summary_end|>'))
*/
WITH blocks AS (
    SELECT
        trace_id,
        string_agg(text, chr(10) || chr(10) ORDER BY block_idx) AS think
    FROM segments
    WHERE kind = 'block' AND n_chars > 0
    GROUP BY trace_id
)
SELECT
    b.trace_id,
    b.dataset,
    b.source_row,
    b.domain,
    b.source,
    b.difficulty,
    b.status,
    b.content_hash,
    b.problem,
    [
        {'role': 'user', 'content': b.problem},
        {'role': 'assistant', 'content': '<think>' || chr(10) || k.think || chr(10) || '</think>' || chr(10) || chr(10)
                                         || coalesce(b.answer, '')}
    ] AS messages,
    b.block_tokens + b.answer_tokens AS n_tokens
FROM export_base AS b
LEFT JOIN blocks AS k ON k.trace_id = b.trace_id
