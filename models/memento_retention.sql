/*
name: memento_retention
version: 2
kind: incremental
grain: [trace_id, block_idx]
batch_traces: 20000
description: >
  Is a memento "sufficiently informative"? For every block/memento pair of an
  analysed trace: the distinct numbers of the block, compared by value
  (docs/analyses.md has the definitions with worked examples). A number is a
  run of digits with its decimals, its thousands separators (`1,000`) and its
  sign (`-7`, `−7`; a minus right after a letter, a digit or a closing
  bracket is a subtraction, not a sign), or a fraction `a/b` or `\frac{a}{b}`
  (also `\dfrac`, `\tfrac`), which is one number, its quotient: so `2.50` is
  `2.5`, `1,000` is `1000`, `1/2` is `0.5`, and `x = 3` holds the one number
  3. Single-digit integers (-9 to 9) are counted apart (a memento mentions 2 or
  3 by chance), so numbers_kept_fraction is over the other numbers. word_recall
  is the share of the block's distinct content words (lowercased runs of 4 or
  more ASCII letters, less a short list of function words; a LaTeX command
  such as `\approx` or `\alpha` is no word) that the memento also uses.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  domain: the trace's domain; `(unknown)` when missing
  block_idx: 0-based position of the block in its trace; its memento shares it
  block_chars: characters of the block
  memento_chars: characters of its memento
  block_numbers: distinct numbers of the block (by value) other than single-digit integers
  numbers_kept: how many of them the memento contains
  numbers_kept_fraction: numbers_kept / block_numbers; NULL when the block has none
  block_single_digits: distinct single-digit integers (-9 to 9) of the block
  single_digits_kept: how many of them the memento contains
  single_digits_kept_fraction: single_digits_kept / block_single_digits; NULL when the block has none
  block_content_words: distinct content words of the block (4+ letters, less function words; LaTeX commands are no words)
  content_words_kept: how many of them the memento also uses
  word_recall: content_words_kept / block_content_words; NULL when the block has none
audits:
  - not_null: [dataset, domain, block_numbers, numbers_kept, block_single_digits, single_digits_kept, block_content_words, content_words_kept]
  - accepted_range: {column: numbers_kept_fraction, min: 0, max: 1}
  - accepted_range: {column: single_digits_kept_fraction, min: 0, max: 1}
  - accepted_range: {column: word_recall, min: 0, max: 1}
  - custom:
      name: kept_at_most_all
      sql: >
        SELECT * FROM {this} WHERE numbers_kept > block_numbers OR single_digits_kept > block_single_digits
        OR content_words_kept > block_content_words
*/
WITH function_words AS (
    -- left out of the content words
    SELECT [
        'that', 'this', 'with', 'from', 'have', 'then', 'than', 'there', 'their', 'them', 'they', 'what',
        'when', 'where', 'which', 'while', 'will', 'would', 'could', 'should', 'must', 'these', 'those',
        'also', 'into', 'been', 'were', 'some', 'such', 'each', 'only', 'over', 'more', 'most', 'very',
        'just', 'like', 'here', 'does', 'because', 'since', 'about', 'after', 'before', 'both', 'other',
        'same', 'again', 'still', 'need', 'know', 'think', 'wait', 'okay', 'maybe', 'actually', 'really',
        'being', 'your', 'make', 'made', 'using', 'used', 'gives', 'give', 'thus', 'hence', 'therefore'
    ] AS words
),
-- The numbers and words of each text are taken as the text streams past, one regular expression
-- each over the text, and only those lists are kept: a join that held the texts held all of them.
segment_values AS (
    -- Number tokens, in the order tried: a letter or closing bracket with the minus after it (a
    -- subtraction's, dropped), a LaTeX fraction, a number with its sign, its thousands groups, its
    -- decimals and a `/b` denominator; the minus after a number is taken with it, so that `5-3`
    -- reads 5 and 3, not 5 and -3. Each distinct token becomes its value, each value kept once
    -- (`+ 0.0` makes -0 the 0 it equals): a plain number is cast as it is; the others are first
    -- written `[-]digits[.digits][/digits[.digits]]` (`}{` of \frac made `/`, the Unicode minus `-`,
    -- separators, braces, the command and the minus after the number dropped), a fraction then its
    -- quotient. Words: a LaTeX command is matched whole, and dropped, so its name is no word.
    SELECT
        trace_id,
        block_idx,
        kind,
        list_filter(array_distinct(list_transform(list_filter(array_distinct(regexp_extract_all(text,
            '[A-Za-z_)\]}]-|[-−]?\\[dt]?frac\{[-−]?[0-9]+(?:\.[0-9]+)?\}\{[0-9]+(?:\.[0-9]+)?\}|[-−]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?:/[0-9]+(?:\.[0-9]+)?)?-?',
            0)),
            -- what the first alternative took (a letter or bracket and a minus) is no number
            lambda t: contains('0123456789-−\', left(t, 1))),
            lambda t: CASE
                WHEN contains(t, '/') OR contains(t, '}') THEN
                    CAST(split_part(rtrim(translate(replace(t, '}{', '/'), '−,{}\dfract', '-'), '-'), '/', 1) AS DOUBLE)
                    / nullif(CAST(split_part(rtrim(translate(replace(t, '}{', '/'), '−,{}\dfract', '-'), '-'), '/', 2)
                        AS DOUBLE), 0)
                WHEN contains(t, ',') OR contains(t, '−') OR t LIKE '%-' THEN
                    CAST(rtrim(translate(t, '−,', '-'), '-') AS DOUBLE)
                ELSE CAST(t AS DOUBLE)
            END + 0.0)), lambda v: v IS NOT NULL) AS vals,
        list_filter(array_distinct(regexp_extract_all(lower(text), '\\[a-z]+|[a-z]{4,}', 0)),
            lambda w: NOT starts_with(w, '\')) AS words
    FROM segments
    WHERE kind IN ('block', 'summary')
),
segment_items AS (
    -- single-digit integers apart from the other numbers
    SELECT
        trace_id,
        block_idx,
        kind,
        list_filter(vals, lambda v: NOT (v = floor(v) AND abs(v) <= 9)) AS numbers,
        list_filter(vals, lambda v: v = floor(v) AND abs(v) <= 9) AS digits,
        words
    FROM segment_values
),
items AS (
    SELECT
        p.trace_id,
        p.dataset,
        p.domain,
        p.block_idx,
        p.block_chars,
        p.memento_chars,
        b.numbers AS block_items,
        b.digits AS block_digits,
        m.vals AS memento_items,
        b.words AS block_words,
        m.words AS memento_words
    FROM block_pairs AS p
    JOIN segment_items AS b ON b.trace_id = p.trace_id AND b.block_idx = p.block_idx AND b.kind = 'block'
    JOIN segment_values AS m ON m.trace_id = p.trace_id AND m.block_idx = p.block_idx AND m.kind = 'summary'
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
        array_length(block_digits) AS block_single_digits,
        array_length(array_intersect(block_digits, memento_items)) AS single_digits_kept,
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
    block_single_digits,
    single_digits_kept,
    CAST(single_digits_kept AS DOUBLE) / NULLIF(block_single_digits, 0) AS single_digits_kept_fraction,
    block_content_words,
    content_words_kept,
    CAST(content_words_kept AS DOUBLE) / NULLIF(block_content_words, 0) AS word_recall
FROM counted
