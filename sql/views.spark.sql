-- The base views of sql/views.sql, in Spark SQL: the same columns and rows over the same files
-- (`stored_traces` and `stored_full_traces` are temp views over the committed runs' Parquet).
-- Spark's arrays are 0-based under [], its substring counts characters as DuckDB's does.

-- view: traces
SELECT trace_id, dataset, run_id, source_row, source_file, problem, response, domain, source, difficulty,
       content_hash, status,
       CAST(size(filter(segments, s -> s.kind = 'block')) AS INT) AS n_blocks,
       CAST(size(filter(segments, s -> s.kind = 'summary')) AS INT) AS n_summaries,
       CAST(size(issues) AS INT) AS n_issues,
       response_chars, problem_tokens, turn, context, metadata
FROM stored_traces;

-- view: segments
-- Spark's substring walks a string's characters from its start, so cutting every segment from the
-- response cost time in the square of its length. A response of one byte per character (ASCII) is
-- cut as bytes instead: its character offsets are its byte offsets.
SELECT dataset, trace_id, s.kind, s.block_idx,
       CASE WHEN one_byte_chars
            THEN CAST(substring(response_bytes, s.char_start + 1, s.char_end - s.char_start) AS STRING)
            ELSE substring(response, s.char_start + 1, s.char_end - s.char_start) END AS text,
       s.char_start, s.char_end, CAST(s.char_end - s.char_start AS INT) AS n_chars, s.n_words, s.n_tokens
FROM (SELECT dataset, trace_id, response, segments, CAST(response AS BINARY) AS response_bytes,
             octet_length(response) = char_length(response) AS one_byte_chars
      FROM stored_traces) LATERAL VIEW explode(segments) e AS s;

-- view: parse_issues
SELECT dataset, trace_id, 'default' AS config, i.code, i.char_offset, i.detail
FROM stored_traces LATERAL VIEW explode(issues) e AS i
UNION ALL
SELECT dataset, full_trace_id AS trace_id, 'full' AS config, i.code, CAST(NULL AS BIGINT) AS char_offset, i.detail
FROM stored_full_traces LATERAL VIEW explode(issues) e AS i;

-- view: full_traces
SELECT dataset, full_trace_id, trace_id, run_id, source_row, content_hash, status,
       CAST(CASE WHEN sentences IS NULL THEN 0 ELSE size(sentences) END AS INT) AS n_sentences,
       CAST(CASE WHEN blocks IS NULL THEN 0 ELSE size(blocks) END AS INT) AS n_blocks,
       CAST(CASE WHEN block_summaries IS NULL THEN 0 ELSE size(block_summaries) END AS INT) AS n_summaries,
       problem
FROM linked_full_traces;

-- view: sentences
SELECT dataset, full_trace_id, trace_id, CAST(sentence_idx AS INT) AS sentence_idx, text
FROM linked_full_traces LATERAL VIEW posexplode(sentences) e AS sentence_idx, text;

-- view: full_blocks
SELECT dataset, full_trace_id, trace_id, block_idx, sentence_start, sentence_end,
       CASE WHEN 0 <= sentence_start AND sentence_start <= sentence_end
                 AND sentence_end < CASE WHEN sentences IS NULL THEN 0 ELSE size(sentences) END
            THEN array_join(transform(slice(sentences, sentence_start + 1, sentence_end - sentence_start + 1),
                                      x -> coalesce(x, '')), ' ')
       END AS text,
       try_element_at(block_summaries, block_idx + 1) AS summary
FROM (
    SELECT dataset, full_trace_id, trace_id, sentences, block_summaries, CAST(block_idx AS INT) AS block_idx,
           CASE WHEN size(pair) = 2 AND pair[0] IS NOT NULL AND pair[1] IS NOT NULL
                THEN try_cast(pair[0] AS INT) END AS sentence_start,
           CASE WHEN size(pair) = 2 AND pair[0] IS NOT NULL AND pair[1] IS NOT NULL
                THEN try_cast(pair[1] AS INT) END AS sentence_end
    FROM linked_full_traces LATERAL VIEW posexplode(blocks) e AS block_idx, pair
);
