/*
name: full_block_digests
version: 2
kind: incremental
grain: [full_trace_id, block_idx]
batch_traces: 20000
description: >
  The full side of the block comparison between the two configs: every block
  range of every full row, whether it has a block text and a summary, and the
  md5 of each once it is the same text in ingest's sense (segment_digests
  gives the rule and the default side). One pass over full_blocks; no text is
  kept. full_links compares the candidates of a problem link by it, and
  block_agreement each linked pair. Built a batch of full rows at a time and
  kept up to date row by row: a full row's digests come from that row alone.
columns:
  full_trace_id: the full row, `<dataset>:full:<source_row>`
  block_idx: 0-based position of the range in the full row's blocks
  has_block: 1 when the range gives a block text, else 0
  has_summary: 1 when the range has a summary, else 0
  block_md5: md5 of the whitespace-collapsed block text; NULL when absent
  summary_md5: md5 of the whitespace-collapsed summary; NULL when absent
audits:
  - not_null: [has_block, has_summary]
*/
-- The same expression as segment_digests', once for the block and once for the summary.
SELECT
    full_trace_id,
    block_idx,
    CASE WHEN text IS NULL THEN 0 ELSE 1 END AS has_block,
    CASE WHEN summary IS NULL THEN 0 ELSE 1 END AS has_summary,
    CASE WHEN regexp_matches(text, '[\t\n\x0b\x0c\r\x1c-\x1f\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]|  |^ | $')
         THEN md5(trim(regexp_replace(text, '[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+', ' ', 'g'), ' '))
         ELSE md5(text) END AS block_md5,
    CASE WHEN regexp_matches(summary, '[\t\n\x0b\x0c\r\x1c-\x1f\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]|  |^ | $')
         THEN md5(trim(regexp_replace(summary, '[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+', ' ', 'g'), ' '))
         ELSE md5(summary) END AS summary_md5
FROM full_blocks
