/*
name: segment_digests
version: 1
kind: view
grain: [trace_id, kind, block_idx]
description: >
  The default side of the block comparison between the two configs: every block
  and memento of a trace's markup with the md5 of its text once it is the same
  text in ingest's sense: every run of whitespace (what Python's str.split()
  splits on: tabs, CR and LF, NBSP, U+2009, U+3000 and the rest of Unicode's
  spaces) made one space, and none at either end. full_block_digests gives the
  full rows' side by the same rule; full_links and block_agreement compare the
  two. One row per segment, so that a join with a few traces is pushed down to
  their segments.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  kind: "`block` or `summary` (the memento)"
  block_idx: 0-based position of the block in its trace; its memento shares it
  text_md5: md5 of the text, whitespace collapsed
*/
-- "Same text" (ingest/full_config.py, collapse): the texts' words, split on str.isspace's
-- characters, are the same. A text with none of them but single inner spaces is its own
-- normal form, so only the others pay for the replacement.
SELECT
    trace_id,
    kind,
    block_idx,
    CASE WHEN regexp_matches(text, '[\t\n\x0b\x0c\r\x1c-\x1f\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]|  |^ | $')
         THEN md5(trim(regexp_replace(text, '[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+', ' ', 'g'), ' '))
         ELSE md5(text) END AS text_md5
FROM segments
WHERE kind IN ('block', 'summary')
