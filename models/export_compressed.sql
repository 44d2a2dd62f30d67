/*
name: export_compressed
version: 2
kind: view
grain: [trace_id]
description: >
  Export kind `compressed`, one example per trace: the problem as the user turn;
  as the assistant turn, what the context holds once every block has been
  evicted: each memento in its summary markup, in block order, then the answer.
  think_spans says where each non-empty memento is in the response ({block_idx,
  start, end}, block order); `mementos export` lays the texts out with the markup of
  ingest/parser.py, exactly: '<think>\n' + for each memento
  '<|summary_start|>\n' + memento + '\n<|summary_end|>\n' + '</think>\n\n' +
  answer ('' when there is none). A trace without a memento (only possible when
  flagged) has nothing to export. n_tokens = mementos + answer. warehouse.md (Export).
audits:
  - not_null: [dataset, source_row, domain, status, content_hash, think_spans]
  - custom:
      name: ok_traces_have_a_memento_per_block_and_an_answer
      sql: SELECT trace_id FROM {this} WHERE status = 'ok' AND (len(think_spans) <> n_blocks OR answer_start IS NULL)
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
    n_blocks,
    mementos AS think_spans,
    answer_start,
    answer_end,
    memento_tokens + answer_tokens AS n_tokens
FROM export_base
