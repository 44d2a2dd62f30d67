/*
name: default_block_digests
version: 1
kind: view
grain: [trace_id, block_idx]
description: >
  The default side of the block comparison between the two configs: every block
  index of a trace's markup, whether it has a block and a memento, and the md5
  of each once it is the same text in ingest's sense: every run of whitespace
  (what Python's str.split() splits on: tabs, CR and LF, NBSP, U+2009, U+3000
  and the rest of Unicode's spaces) made one space, and none at either end.
  full_block_digests gives the full rows' side by the same rule; full_links and
  block_agreement compare the two.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  block_idx: 0-based position of the block in its trace; its memento shares it
  has_block: 1 when the markup has the block, else 0
  has_summary: 1 when the markup has its memento, else 0
  block_md5: md5 of the block's text, whitespace collapsed; NULL when absent
  summary_md5: md5 of the memento's text, whitespace collapsed; NULL when absent
*/
-- "Same text" (ingest/full_config.py, collapse): the texts' words, split on str.isspace's
-- characters, are the same. A text with none of them but single inner spaces is its own
-- normal form, so only the others pay for the replacement.
WITH digests AS (
    SELECT
        trace_id,
        block_idx,
        kind,
        CASE WHEN regexp_matches(text, '[\t\n\x0b\x0c\r\x1c-\x1f\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]|  |^ | $')
             THEN md5(trim(regexp_replace(text, '[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+', ' ', 'g'), ' '))
             ELSE md5(text) END AS text_md5
    FROM segments
    WHERE kind IN ('block', 'summary')
)
SELECT
    trace_id,
    block_idx,
    max(CASE WHEN kind = 'block' THEN 1 ELSE 0 END) AS has_block,
    max(CASE WHEN kind = 'summary' THEN 1 ELSE 0 END) AS has_summary,
    max(CASE WHEN kind = 'block' THEN text_md5 END) AS block_md5,
    max(CASE WHEN kind = 'summary' THEN text_md5 END) AS summary_md5
FROM digests
GROUP BY trace_id, block_idx
