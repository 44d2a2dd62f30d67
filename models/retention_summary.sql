/*
name: retention_summary
version: 3
kind: table
grain: [domain, is_total]
description: >
  memento_retention per domain, with an 'all' row for every pair (is_total
  true; a domain whose label is 'all' has is_total false): pairs, pairs whose block has
  numbers, the median, p10 and p90 of numbers_kept_fraction and of word_recall,
  the share of the pairs with numbers whose memento keeps every one, and the
  median of single_digits_kept_fraction (single-digit integers, counted apart:
  a memento mentions 2 or 3 by chance). Version 3: memento_retention version 2's
  numbers (docs/analyses.md).
columns:
  domain: the domain, or `all` on the total row
  is_total: true on the one row over all the group's rows (a label reading `all` is not the total)
  pairs: block/memento pairs
  pairs_with_numbers: pairs whose block has at least one number other than a single-digit integer
  median_numbers_kept_fraction: median share of a block's numbers its memento keeps
  p10_numbers_kept_fraction: 10th percentile of that share
  p90_numbers_kept_fraction: 90th percentile of that share
  share_keeping_every_number: share of the pairs with numbers whose memento keeps every one
  median_single_digits_kept_fraction: median share of a block's single-digit integers its memento keeps
  median_word_recall: median share of a block's content words its memento uses
  p10_word_recall: 10th percentile of word recall
  p90_word_recall: 90th percentile of word recall
audits:
  - not_null: [is_total, pairs]
*/
SELECT
    CASE WHEN GROUPING(domain) = 1 THEN 'all' ELSE domain END AS domain,
    GROUPING(domain) = 1 AS is_total,
    count(*) AS pairs,
    count(numbers_kept_fraction) AS pairs_with_numbers,
    -- several quantiles of one column are one list-form call, indexed: DuckDB computes the identical
    -- calls once, where separate calls each hold a copy of the column
    quantile_cont(numbers_kept_fraction, [0.1, 0.5, 0.9])[2] AS median_numbers_kept_fraction,
    quantile_cont(numbers_kept_fraction, [0.1, 0.5, 0.9])[1] AS p10_numbers_kept_fraction,
    quantile_cont(numbers_kept_fraction, [0.1, 0.5, 0.9])[3] AS p90_numbers_kept_fraction,
    avg(CASE WHEN numbers_kept_fraction = 1 THEN 1 WHEN numbers_kept_fraction < 1 THEN 0 END)
        AS share_keeping_every_number,
    quantile_cont(single_digits_kept_fraction, 0.5) AS median_single_digits_kept_fraction,
    quantile_cont(word_recall, [0.1, 0.5, 0.9])[2] AS median_word_recall,
    quantile_cont(word_recall, [0.1, 0.5, 0.9])[1] AS p10_word_recall,
    quantile_cont(word_recall, [0.1, 0.5, 0.9])[3] AS p90_word_recall
FROM memento_retention
GROUP BY GROUPING SETS ((domain), ())
