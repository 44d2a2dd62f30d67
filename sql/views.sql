-- The base tables: views over the Parquet files ingest stores (sql/schema.sql). Models, queries
-- and exports read these names. `{stored_traces}` and `{stored_full_traces}` stand for the
-- committed runs' files (read_parquet over PATH.data/...), filled in when a run is committed.
-- Each text is stored once: a segment's text is cut out of its response by its offsets, a full
-- block's text is its sentences joined by one space, and counts are list lengths.

-- view: traces
SELECT trace_id, dataset, run_id, source_row, source_file, problem, response, domain, source, difficulty,
       content_hash, status,
       CAST(len(list_filter(segments, lambda s: s.kind = 'block')) AS INTEGER) AS n_blocks,
       CAST(len(list_filter(segments, lambda s: s.kind = 'summary')) AS INTEGER) AS n_summaries,
       CAST(len(issues) AS INTEGER) AS n_issues,
       response_chars, problem_tokens, turn, context, metadata
FROM {stored_traces};

-- view: segments
-- DuckDB's substring walks the response's characters from the nearer end (a negative start counts
-- from the end), so a segment in the second half is cut from the end: half the walking. Slicing
-- the bytes instead (decode(encode(response)[a:b])) walks nothing but copies the whole response
-- for every segment row before cutting, outside DuckDB's pool, on any pass over the texts
-- (every row of a vector holds its response's copy).
SELECT dataset, trace_id, s.kind, s.block_idx,
       CASE WHEN 2 * s.char_start < response_chars
            THEN substring(response, s.char_start + 1, s.char_end - s.char_start)
            ELSE substring(response, s.char_start - response_chars, s.char_end - s.char_start)
       END AS text,
       s.char_start, s.char_end, CAST(s.char_end - s.char_start AS INTEGER) AS n_chars, s.n_words, s.n_tokens
FROM (SELECT dataset, trace_id, response, response_chars, unnest(segments) AS s FROM {stored_traces});

-- view: parse_issues
SELECT dataset, trace_id, 'default' AS config, i.code, i.char_offset, i.detail
FROM (SELECT dataset, trace_id, unnest(issues) AS i FROM {stored_traces})
UNION ALL
SELECT dataset, full_trace_id AS trace_id, 'full' AS config, i.code, CAST(NULL AS BIGINT) AS char_offset, i.detail
FROM (SELECT dataset, full_trace_id, unnest(issues) AS i FROM {stored_full_traces});

-- view: full_traces
SELECT dataset, full_trace_id, trace_id, run_id, source_row, content_hash, status,
       CAST(coalesce(len(sentences), 0) AS INTEGER) AS n_sentences,
       CAST(coalesce(len(blocks), 0) AS INTEGER) AS n_blocks,
       CAST(coalesce(len(block_summaries), 0) AS INTEGER) AS n_summaries,
       problem
FROM {linked_full_traces};

-- view: sentences
SELECT dataset, full_trace_id, trace_id, CAST(generate_subscripts(sentences, 1) - 1 AS INTEGER) AS sentence_idx,
       unnest(sentences) AS text
FROM {linked_full_traces};

-- view: full_blocks
-- The range's sentences are picked one by one (sentences[i]): a list slice (sentences[a:b]) copies
-- the row's whole list, every sentence of the trace for each of its blocks, before cutting it.
SELECT dataset, full_trace_id, trace_id, block_idx, sentence_start, sentence_end,
       CASE WHEN 0 <= sentence_start AND sentence_start <= sentence_end AND sentence_end < coalesce(len(sentences), 0)
            THEN array_to_string(list_transform(range(sentence_start, sentence_end + 1),
                                                lambda i: coalesce(sentences[i + 1], '')), ' ')
       END AS text,
       block_summaries[block_idx + 1] AS summary
FROM (
    SELECT dataset, full_trace_id, trace_id, sentences, block_summaries, block_idx,
           CASE WHEN len(pair) = 2 AND pair[1] IS NOT NULL AND pair[2] IS NOT NULL
                THEN TRY_CAST(pair[1] AS INTEGER) END AS sentence_start,
           CASE WHEN len(pair) = 2 AND pair[1] IS NOT NULL AND pair[2] IS NOT NULL
                THEN TRY_CAST(pair[2] AS INTEGER) END AS sentence_end
    FROM (SELECT dataset, full_trace_id, trace_id, sentences, block_summaries,
                 unnest(blocks) AS pair, CAST(generate_subscripts(blocks, 1) - 1 AS INTEGER) AS block_idx
          FROM {linked_full_traces})
);
