-- Base tables written by `mementos ingest`. This is the contract the models read:
-- columns may be added, never renamed. warehouse.md documents grain and meaning.
-- Every table carries `dataset`, so that re-ingesting one dataset replaces exactly its rows.

CREATE TABLE IF NOT EXISTS traces (
    trace_id       VARCHAR NOT NULL,   -- '<dataset>:<source_row>', unique in the warehouse
    dataset        VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    source_row     BIGINT  NOT NULL,   -- 0-based row index in the input split, input order
    source_file    VARCHAR,
    problem        VARCHAR,
    response       VARCHAR,            -- exactly as read; segment offsets index into it
    domain         VARCHAR,
    source         VARCHAR,
    difficulty     VARCHAR,            -- kept as it comes (integers become their decimal text)
    content_hash   VARCHAR NOT NULL,   -- blake2b-128 of problem and response: equal hash = exact duplicate
    status         VARCHAR NOT NULL,   -- 'ok' | 'flagged'
    n_blocks       INTEGER NOT NULL,
    n_summaries    INTEGER NOT NULL,
    n_issues       INTEGER NOT NULL,
    response_chars BIGINT  NOT NULL
);

CREATE TABLE IF NOT EXISTS segments (
    dataset    VARCHAR NOT NULL,
    trace_id   VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL,       -- 'block' | 'summary' | 'answer'
    block_idx  INTEGER,                -- a block and its summary share it; NULL for the answer
    text       VARCHAR NOT NULL,       -- response[char_start:char_end]
    char_start BIGINT  NOT NULL,       -- 0-based, in characters (code points)
    char_end   BIGINT  NOT NULL,       -- exclusive
    n_chars    INTEGER NOT NULL,
    n_words    INTEGER NOT NULL,       -- whitespace-separated words
    n_tokens   INTEGER                 -- cl100k_base tokens; NULL when ingested with --no-tokens
);

CREATE TABLE IF NOT EXISTS parse_issues (
    dataset     VARCHAR NOT NULL,
    trace_id    VARCHAR NOT NULL,      -- traces.trace_id, or full_traces.full_trace_id when config = 'full'
    config      VARCHAR NOT NULL,      -- 'default' | 'full'
    code        VARCHAR NOT NULL,
    char_offset BIGINT,                -- offset into the response; NULL for structural issues of full rows
    detail      VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS full_traces (
    dataset       VARCHAR NOT NULL,
    full_trace_id VARCHAR NOT NULL,    -- '<dataset>:full:<source_row>'
    trace_id      VARCHAR,             -- default trace with the same problem and response, or NULL
    run_id        VARCHAR NOT NULL,
    source_row    BIGINT  NOT NULL,    -- 0-based row index in the full split
    content_hash  VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,
    n_sentences   INTEGER NOT NULL,
    n_blocks      INTEGER NOT NULL,
    n_summaries   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS sentences (
    dataset       VARCHAR NOT NULL,
    full_trace_id VARCHAR NOT NULL,
    trace_id      VARCHAR,
    sentence_idx  INTEGER NOT NULL,
    text          VARCHAR
);

CREATE TABLE IF NOT EXISTS full_blocks (
    dataset        VARCHAR NOT NULL,
    full_trace_id  VARCHAR NOT NULL,
    trace_id       VARCHAR,
    block_idx      INTEGER NOT NULL,
    sentence_start INTEGER,            -- inclusive
    sentence_end   INTEGER,            -- inclusive
    text           VARCHAR,            -- the sentences joined by one space; NULL when the range is invalid
    summary        VARCHAR             -- block_summaries[block_idx], NULL when missing
);

CREATE TABLE IF NOT EXISTS ingest_runs (
    run_id            VARCHAR NOT NULL,
    dataset           VARCHAR NOT NULL,
    source            VARCHAR NOT NULL,
    config            VARCHAR NOT NULL,   -- 'default' | 'full' | 'all'
    started_at        TIMESTAMP NOT NULL,
    finished_at       TIMESTAMP NOT NULL,
    rows_read         BIGINT NOT NULL,    -- default rows + full rows
    rows_ok           BIGINT NOT NULL,
    rows_flagged      BIGINT NOT NULL,
    default_rows      BIGINT NOT NULL,
    full_rows         BIGINT NOT NULL,
    input_bytes       BIGINT NOT NULL,    -- UTF-8 bytes of response text read
    parser_version    VARCHAR NOT NULL,
    token_encoding    VARCHAR,            -- 'cl100k_base', or NULL with --no-tokens
    seconds           DOUBLE NOT NULL
);
