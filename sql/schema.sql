-- What `mementos ingest` stores: two Parquet tables per run, each text once (warehouse.md, "On disk").
-- The base tables users query (traces, segments, parse_issues, full_traces, sentences, full_blocks)
-- are views over these files, defined in sql/views.sql. Columns may be added, never renamed.

-- One row per input row of the default config: PATH.data/traces/<dataset-slug>/<run_id>/<shard's files>.parquet
CREATE TABLE IF NOT EXISTS stored_traces (
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
    content_hash   VARCHAR NOT NULL,   -- xxh3-128 of problem and response: equal hash = exact duplicate
    status         VARCHAR NOT NULL,   -- 'ok' | 'flagged' | 'unsegmented' (reasoning without memento markup)
    response_chars BIGINT  NOT NULL,   -- length(response), kept so sizes never decompress the text
    problem_tokens INTEGER,            -- cl100k_base tokens of the problem; NULL with --no-tokens
    -- The parser's segments: offsets into `response` (their text is derived, never stored).
    segments STRUCT(kind VARCHAR, block_idx INTEGER, char_start BIGINT, char_end BIGINT,
                    n_words INTEGER, n_tokens INTEGER)[] NOT NULL,
    issues   STRUCT(code VARCHAR, char_offset BIGINT, detail VARCHAR)[] NOT NULL,
    turn     INTEGER,                  -- a conversation's assistant turn (1, 2, ...) when it has several
    context  VARCHAR,                  -- JSON: the messages before the trace's user turn
    metadata VARCHAR                   -- JSON: the columns kept with --keep (and an export's trace_id)
);

-- One row per input row of the full config: PATH.data/full_traces/<dataset-slug>/<run_id>/<shard's files>.parquet
CREATE TABLE IF NOT EXISTS stored_full_traces (
    dataset         VARCHAR NOT NULL,
    full_trace_id   VARCHAR NOT NULL,  -- '<dataset>:full:<source_row>'
    run_id          VARCHAR NOT NULL,
    source_row      BIGINT  NOT NULL,  -- 0-based row index in the full split
    problem         VARCHAR,           -- as read (the full row's own; links rows whose responses differ)
    content_hash    VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,
    sentences       VARCHAR[],         -- as read
    blocks          BIGINT[][],        -- as read: inclusive [start, end] sentence ranges
    block_summaries VARCHAR[],         -- as read
    issues          STRUCT(code VARCHAR, detail VARCHAR)[] NOT NULL
);

-- One row per successful ingest run; the latest run of a dataset is its committed one.
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
    rows_unsegmented  BIGINT,             -- traces whose reasoning has no memento markup
    rows_rejected     BIGINT,             -- source rows that became no trace (listed in rejected_rows)
    rejected_reasons  VARCHAR,            -- JSON: rejected rows per reason code
    default_rows      BIGINT NOT NULL,
    full_rows         BIGINT NOT NULL,
    input_bytes       BIGINT NOT NULL,    -- UTF-8 bytes of response text read
    parser_version    VARCHAR NOT NULL,
    token_encoding    VARCHAR,            -- 'cl100k_base', or NULL with --no-tokens
    seconds           DOUBLE NOT NULL,
    run_seq           BIGINT,             -- 1, 2, ... in the order runs were committed: the latest of a dataset is its committed run
    -- What the run did to the dataset's shards (source files) and their rows; added after run_seq
    -- (ALTER TABLE in foundation/catalog.py), NULL in runs written before.
    full_refresh      BOOLEAN,            -- every shard re-read and numbered from 0 (--full-refresh, --limit, first run)
    shards_added      BIGINT,
    shards_replaced   BIGINT,
    shards_removed    BIGINT,
    shards_unchanged  BIGINT,
    rows_added        BIGINT,             -- rows of the added shards
    rows_replaced     BIGINT,             -- rows the replaced shards hold now
    rows_removed      BIGINT,             -- rows of the removed shards
    rows_unchanged    BIGINT              -- rows of the shards kept as they were
);

-- The shards (source files) each run's dataset holds: the rows of a run are the state after it,
-- so the committed run's rows are the live shards, which the base views read (foundation/catalog.py).
CREATE TABLE IF NOT EXISTS ingest_shards (
    run_id        VARCHAR NOT NULL,   -- the run whose state this row belongs to
    dataset       VARCHAR NOT NULL,
    config        VARCHAR NOT NULL,   -- 'default' | 'full'
    path          VARCHAR NOT NULL,   -- the source file, as resolved (absolute for a local file)
    size          BIGINT,             -- bytes
    content_hash  VARCHAR,            -- xxh3-128 of the file's bytes; NULL: read only in part (--limit)
    rows          BIGINT NOT NULL,
    first_row     BIGINT NOT NULL,    -- source_row of its first row; its rows are first_row .. first_row + rows - 1
    data_run_id   VARCHAR NOT NULL,   -- the run whose files hold its rows (the run_id in them)
    files         VARCHAR[] NOT NULL, -- its Parquet files, relative to PATH.data: <table>/<slug>/<data_run_id>/<file>
    traces        BIGINT              -- its rows that became traces (a chat row gives one per assistant turn)
);

-- Source rows that became no trace, by run; the view rejected_rows lists the committed runs' rows.
CREATE TABLE IF NOT EXISTS ingest_rejections (
    run_id       VARCHAR NOT NULL,
    dataset      VARCHAR NOT NULL,
    source_file  VARCHAR,
    source_row   BIGINT NOT NULL,      -- 0-based row index in its file's split, as stored_traces.source_row
    reason       VARCHAR NOT NULL      -- no_assistant_turn | empty_response | no_reasoning | unmapped_column
);
