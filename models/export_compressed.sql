/*
name: export_compressed
version: 1
kind: view
grain: [trace_id]
description: >
  Export kind `compressed`, one example per trace: the problem as the user turn;
  as the assistant turn, what the context holds once every block has been
  evicted: each memento in its summary markup, in block order, then the answer.
  Exactly: '<think>\n' + for each memento '<|summary_start|>\n' + memento +
  '\n<|summary_end|>\n' + '</think>\n\n' + answer ('' when there is none). Texts
  are the trimmed segment texts. NULL content when the trace has no memento
  (only possible for flagged traces). n_tokens = mementos + answer.
audits:
  - not_null: [dataset, source_row, domain, status, content_hash, messages]
  - custom:
      name: ok_traces_have_content_shorter_than_the_response
      sql: >
        SELECT e.trace_id FROM {this} AS e JOIN traces AS t ON t.trace_id = e.trace_id
        WHERE e.status = 'ok'
          AND (e.messages[2].content IS NULL OR length(e.messages[2].content) >= length(t.response))
*/
WITH mementos AS (
    SELECT
        trace_id,
        string_agg('<|summary_start|>' || chr(10) || text || chr(10) || '<|summary_end|>' || chr(10), ''
                   ORDER BY block_idx) AS think
    FROM segments
    WHERE kind = 'summary' AND n_chars > 0
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
        {'role': 'assistant', 'content': '<think>' || chr(10) || m.think || '</think>' || chr(10) || chr(10)
                                         || coalesce(b.answer, '')}
    ] AS messages,
    b.memento_tokens + b.answer_tokens AS n_tokens
FROM export_base AS b
LEFT JOIN mementos AS m ON m.trace_id = b.trace_id
