/*
name: trace_vocabulary
version: 1
kind: table
grain: [word]
on_request: true  # the explorer's search index: built by `mementos build --select trace_words+`
description: >
  Every distinct word of trace_words and how many traces hold it. The explorer's
  text search finds here the words that contain, start or end with a word of the
  search (a scan of this small table, not of trace_words), then their traces in
  trace_words by equality, where DuckDB reads only those words' row groups.
columns:
  word: a maximal run of letters and digits of a problem or response, case kept (trace_words)
  traces: traces holding it
audits:
  - not_null: [traces]
  - accepted_range: {column: traces, min: 1}
*/
SELECT word, count(*) AS traces
FROM trace_words
GROUP BY word
