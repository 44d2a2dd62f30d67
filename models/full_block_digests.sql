/*
name: full_block_digests
version: 1
kind: table
grain: [trace_id, block_idx]
description: >
  The full side of full_alignment's comparison: every block range of a full row
  linked to a default trace (full_links), under that trace's trace_id: whether
  it has a block text and a summary, and the md5 of each with runs of whitespace
  made one space and trimmed. One pass over full_blocks; no text is kept.
columns:
  trace_id: the default trace the full row is linked to
  block_idx: 0-based position of the range in the full row's blocks
  has_block: 1 when the range gives a block text, else 0
  has_summary: 1 when the range has a summary, else 0
  block_md5: md5 of the whitespace-collapsed block text; NULL when absent
  summary_md5: md5 of the whitespace-collapsed summary; NULL when absent
audits:
  - not_null: [has_block, has_summary]
*/
-- Texts are compared by the md5 of each with runs of whitespace made one space and
-- trimmed, computed as the texts stream past, so no join holds a text. A text with no
-- tab, newline, form feed or CR, no two spaces in a row and no space at either end is
-- its own normal form, so only the others go through the regex.
WITH links AS (
    SELECT trace_id, full_trace_id FROM full_links WHERE link <> 'unlinked'
)
SELECT
    l.trace_id,
    b.block_idx,
    CASE WHEN b.text IS NULL THEN 0 ELSE 1 END AS has_block,
    CASE WHEN b.summary IS NULL THEN 0 ELSE 1 END AS has_summary,
    CASE WHEN contains(b.text, '  ') OR contains(b.text, chr(9)) OR contains(b.text, chr(10)) OR contains(b.text, chr(12))
              OR contains(b.text, chr(13)) OR starts_with(b.text, ' ') OR ends_with(b.text, ' ')
         THEN md5(trim(regexp_replace(b.text, '\s+', ' ', 'g'))) ELSE md5(b.text) END AS block_md5,
    CASE WHEN contains(b.summary, '  ') OR contains(b.summary, chr(9)) OR contains(b.summary, chr(10)) OR contains(b.summary, chr(12))
              OR contains(b.summary, chr(13)) OR starts_with(b.summary, ' ') OR ends_with(b.summary, ' ')
         THEN md5(trim(regexp_replace(b.summary, '\s+', ' ', 'g'))) ELSE md5(b.summary) END AS summary_md5
FROM full_blocks AS b
JOIN links AS l ON l.full_trace_id = b.full_trace_id
