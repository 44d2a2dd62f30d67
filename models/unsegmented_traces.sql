/*
name: unsegmented_traces
version: 2
kind: incremental
grain: [trace_id]
batch_traces: 20000
description: >
  Every unsegmented trace (status 'unsegmented': reasoning without memento
  markup, left out of the compression models, which count them in
  compression_breakdown.unsegmented_traces) with its sizes and the checks that
  need no blocks: the reasoning's chars, words and tokens, the answer's tokens,
  its paragraphs (split at blank lines) and how many repeat an earlier one
  (lowercased, whitespace collapsed: the loop a degenerate chain of thought
  falls into), and whether the answer is empty.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  domain: the trace's domain; `(unknown)` when missing
  source: the trace's source dataset; `(unknown)` when missing
  difficulty: the trace's difficulty, as text; `(unknown)` when missing
  reasoning_chars: characters of the reasoning (the think section, trimmed)
  reasoning_words: words of the reasoning
  reasoning_tokens: cl100k_base tokens of the reasoning; NULL when ingested with --no-tokens
  answer_tokens: tokens of the answer; NULL when there is no answer or with --no-tokens
  paragraphs: non-blank paragraphs of the reasoning (split at blank lines)
  repeated_paragraphs: paragraph copies beyond the first (lowercased, whitespace collapsed)
  answer_empty: the answer is missing or holds only whitespace
audits:
  - not_null: [trace_id, reasoning_chars, paragraphs, repeated_paragraphs, answer_empty]
  - accepted_range: {column: repeated_paragraphs, min: 0}
*/
WITH unsegmented AS (
    SELECT trace_id, dataset, domain, source, difficulty FROM all_traces WHERE status = 'unsegmented'
),
texts AS (
    SELECT s.trace_id, s.kind, s.text, s.n_chars, s.n_words, s.n_tokens
    FROM segments AS s
    SEMI JOIN unsegmented AS u ON u.trace_id = s.trace_id
),
paragraphs AS (
    -- whitespace as segment_digests counts it (str.isspace's characters), on both engines alike; a
    -- paragraph of whitespace alone collapses to ''
    SELECT trace_id, paragraph
    FROM (SELECT trace_id, lower(trim(regexp_replace(raw, '[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+', ' ', 'g'), ' ')) AS paragraph
          FROM (SELECT trace_id, unnest(string_split_regex(text, '\n[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]*\n')) AS raw
                FROM texts WHERE kind = 'reasoning'))
    WHERE paragraph <> ''
),
repeats AS (
    SELECT trace_id, count(*) AS paragraphs, count(*) - count(DISTINCT paragraph) AS repeated_paragraphs
    FROM paragraphs
    GROUP BY trace_id
)
SELECT
    u.trace_id,
    u.dataset,
    u.domain,
    u.source,
    u.difficulty,
    r.n_chars AS reasoning_chars,
    r.n_words AS reasoning_words,
    r.n_tokens AS reasoning_tokens,
    a.n_tokens AS answer_tokens,
    coalesce(p.paragraphs, 0) AS paragraphs,
    coalesce(p.repeated_paragraphs, 0) AS repeated_paragraphs,
    coalesce(trim(a.text) = '', true) AS answer_empty
FROM unsegmented AS u
JOIN texts AS r ON r.trace_id = u.trace_id AND r.kind = 'reasoning'
LEFT JOIN texts AS a ON a.trace_id = u.trace_id AND a.kind = 'answer'
LEFT JOIN repeats AS p ON p.trace_id = u.trace_id
