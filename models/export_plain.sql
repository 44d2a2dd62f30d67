/*
name: export_plain
version: 3
kind: view
grain: [trace_id]
description: >
  Export kind `plain`, one example per trace: the problem as the user turn; as
  the assistant turn, the response with all memento markup and every memento
  removed: the raw chain of thought, put together from the block segments the
  parser found (not by editing the markup out of the response). think_spans
  says where each non-empty block is in the response ({block_idx, start, end},
  block order); `mementos export` lays the texts out, exactly: '<think>\n' + the block
  texts joined by '\n\n' + '\n</think>\n\n' + answer ('' when there is none). A
  trace without a block (only possible when flagged) has nothing to export.
  n_tokens = blocks + answer. The record carries the mementos' texts beside
  the training text (`mementos`, from memento_spans): ingest rebuilds the
  trace. README.md (Export).
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
  n_blocks: blocks the parser found in the response
  think_spans: the blocks as a list of `{block_idx, start, end}` character offsets in the response, in block order
  memento_spans: the mementos the assistant turn leaves out, as `{block_idx, start, end}` in the response, in block order; the record carries their texts (`mementos`) so ingest gets the whole trace back
  answer_start: where the answer starts in the response
  answer_end: where the answer ends (exclusive)
  n_tokens: tokens of the blocks and answer (the record's own count is made at export)
audits:
  - not_null: [dataset, source_row, domain, status, content_hash, think_spans]
  - custom:
      name: ok_traces_have_every_block_and_an_answer
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
    blocks AS think_spans,
    mementos AS memento_spans,
    answer_start,
    answer_end,
    block_tokens + answer_tokens AS n_tokens
FROM export_base
