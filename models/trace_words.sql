/*
name: trace_words
version: 1
kind: incremental
grain: [trace_id, word]
batch_traces: 20000
on_request: true  # the explorer's search index: built by `mementos build --select trace_words+`
description: >
  The words of every trace, as written (case kept): each distinct maximal run of
  letters and digits (Unicode categories L and N) in its problem or its
  response, one row per trace and word. The explorer's text search reads it
  instead of the texts: a search for letters and digits only is contained in a
  text exactly when it is contained in one of its words, and a search with
  spaces or punctuation needs its inner words whole, its first word at the end
  of a word and its last at the start of one, so only the traces holding all of
  them have their texts read. Sorted by word within each batch, so that DuckDB
  skips the row groups of other words when it looks one up.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  word: a maximal run of letters and digits of its problem or response, case kept
audits:
  - not_null: [word]
*/
SELECT DISTINCT
    trace_id,
    unnest(regexp_extract_all(concat_ws(' ', problem, response), '[\p{L}\p{N}]+', 0)) AS word
FROM traces
ORDER BY word, trace_id
