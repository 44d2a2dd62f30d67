/*
name: memento_retention
version: 1
kind: incremental
grain: [trace_id, block_idx]
batch_traces: 20000
description: >
  Is a memento "sufficiently informative"? For every block/memento pair of an
  analysed trace: the distinct numbers and simple results of the block
  (block_numbers: every run of digits with its decimals, so integers, decimals,
  both parts of a fraction or of a LaTeX \frac, indices and exponents; and
  every `x = 3`-style result: a name, `=` or ` = `, a number, written `x=3`),
  how many of them the memento contains (numbers_kept, numbers_kept_fraction; NULL when the
  block has none), and word_recall: the share of the block's distinct content
  words (lowercased runs of 4 or more ASCII letters, except a short list of
  function words and LaTeX command names) that the memento also uses.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  domain: the trace's domain; `(unknown)` when missing
  block_idx: 0-based position of the block in its trace; its memento shares it
  block_chars: characters of the block
  memento_chars: characters of its memento
  block_numbers: distinct numbers and `x = 3`-style results in the block
  numbers_kept: how many of them the memento contains
  numbers_kept_fraction: numbers_kept / block_numbers; NULL when the block has none
  block_content_words: distinct content words of the block (4+ letters, less function words and LaTeX commands)
  content_words_kept: how many of them the memento also uses
  word_recall: content_words_kept / block_content_words; NULL when the block has none
audits:
  - not_null: [dataset, domain, block_numbers, numbers_kept, block_content_words, content_words_kept]
  - accepted_range: {column: numbers_kept_fraction, min: 0, max: 1}
  - accepted_range: {column: word_recall, min: 0, max: 1}
  - custom:
      name: kept_at_most_all
      sql: SELECT * FROM {this} WHERE numbers_kept > block_numbers OR content_words_kept > block_content_words
*/
WITH function_words AS (
    -- left out of the content words
    SELECT [
        'that', 'this', 'with', 'from', 'have', 'then', 'than', 'there', 'their', 'them', 'they', 'what',
        'when', 'where', 'which', 'while', 'will', 'would', 'could', 'should', 'must', 'these', 'those',
        'also', 'into', 'been', 'were', 'some', 'such', 'each', 'only', 'over', 'more', 'most', 'very',
        'just', 'like', 'here', 'does', 'because', 'since', 'about', 'after', 'before', 'both', 'other',
        'same', 'again', 'still', 'need', 'know', 'think', 'wait', 'okay', 'maybe', 'actually', 'really',
        'being', 'your', 'make', 'made', 'using', 'used', 'gives', 'give', 'thus', 'hence', 'therefore',
        -- LaTeX command names
        'frac', 'dfrac', 'tfrac', 'cdot', 'times', 'sqrt', 'binom', 'equiv', 'pmod', 'left', 'right', 'text',
        'mathrm', 'mathbf', 'boxed', 'quad', 'infty', 'lfloor', 'rfloor', 'lceil', 'rceil', 'angle', 'circ'
    ] AS words
),
-- The numbers and words of each text are taken as the text streams past, and only those
-- lists are joined: a join that held the texts held all of them at once.
block_items AS (
    SELECT
        trace_id,
        block_idx,
        array_distinct(list_concat(
            regexp_extract_all(text, '[0-9]+(\.[0-9]+)?', 0),
            regexp_extract_all(replace(text, ' = ', '='), '[A-Za-z][A-Za-z0-9]*=[0-9]+(\.[0-9]+)?', 0)
        )) AS items,
        array_distinct(regexp_extract_all(lower(text), '[a-z]{4,}', 0)) AS words
    FROM segments
    WHERE kind = 'block'
),
memento_items AS (
    SELECT
        trace_id,
        block_idx,
        array_distinct(list_concat(
            regexp_extract_all(text, '[0-9]+(\.[0-9]+)?', 0),
            regexp_extract_all(replace(text, ' = ', '='), '[A-Za-z][A-Za-z0-9]*=[0-9]+(\.[0-9]+)?', 0)
        )) AS items,
        array_distinct(regexp_extract_all(lower(text), '[a-z]{4,}', 0)) AS words
    FROM segments
    WHERE kind = 'summary'
),
items AS (
    SELECT
        p.trace_id,
        p.dataset,
        p.domain,
        p.block_idx,
        p.block_chars,
        p.memento_chars,
        b.items AS block_items,
        m.items AS memento_items,
        b.words AS block_words,
        m.words AS memento_words
    FROM block_pairs AS p
    JOIN block_items AS b ON b.trace_id = p.trace_id AND b.block_idx = p.block_idx
    JOIN memento_items AS m ON m.trace_id = p.trace_id AND m.block_idx = p.block_idx
),
counted AS (
    SELECT
        trace_id,
        dataset,
        domain,
        block_idx,
        block_chars,
        memento_chars,
        array_length(block_items) AS block_numbers,
        array_length(array_intersect(block_items, memento_items)) AS numbers_kept,
        -- content words: the distinct words minus the function words among them
        array_length(block_words) - array_length(array_intersect(block_words, f.words)) AS block_content_words,
        array_length(array_intersect(block_words, memento_words))
            - array_length(array_intersect(array_intersect(block_words, memento_words), f.words)) AS content_words_kept
    FROM items
    CROSS JOIN function_words AS f
)
SELECT
    trace_id,
    dataset,
    domain,
    block_idx,
    block_chars,
    memento_chars,
    block_numbers,
    numbers_kept,
    CAST(numbers_kept AS DOUBLE) / NULLIF(block_numbers, 0) AS numbers_kept_fraction,
    block_content_words,
    content_words_kept,
    CAST(content_words_kept AS DOUBLE) / NULLIF(block_content_words, 0) AS word_recall
FROM counted
