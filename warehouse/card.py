"""The published figures the report sets beside ours, read from the one place each is written:
the OpenMementos card's in the bundled model models/card_figures.sql (a view, so
sql/queries/card_comparison.sql joins it in the warehouse), the Memento paper's KV ratios in
models/paper_kv_figures.sql. Their SELECTs read no table: here they run in an in-memory DuckDB,
so the report has the figures without a built warehouse."""

from __future__ import annotations

from functools import lru_cache

import duckdb

from mementos.warehouse.models import MODELS_DIR, load_model

MODEL = "card_figures"
PAPER_MODEL = "paper_kv_figures"
RATIO_CHARS = "memento/block ratio (chars)"  # per domain: medians of the per-block ratios
TOKENS_PER_BLOCK = "tokens per block"  # the rest are over every trace (domain 'all'): averages ...
TOKENS_PER_MEMENTO = "tokens per memento"
BLOCK_TOKENS_PER_TRACE = "block tokens per trace"
MEMENTO_TOKENS_PER_TRACE = "memento tokens per trace"
TRACE_COMPRESSION = "trace-level compression (x)"  # ... and the ratio of the two per-trace averages
BLOCKS_PER_TRACE = "blocks per trace"  # per domain: medians over traces
BLOCK_CHARS = "block chars"  # per domain (math and science only): medians over blocks
# ranges across the card's domains, as (lowest, highest) of the per-domain medians
MEMENTO_CHARS_RANGE = ("memento chars, lowest domain", "memento chars, highest domain")
TRACES = "traces"  # counts, per domain and over every trace ('all')
SENTENCES_PER_TRACE = "sentences per trace"  # an average over the full config's rows
BLOCK_COMPRESSION_RANGE = ("block-level compression (x), lowest domain", "block-level compression (x), highest domain")


def _rows(model_name: str, columns: str) -> list[tuple]:
    """`columns` of the bundled model `model_name`, whose SELECT reads no table, in its order."""
    model = load_model(MODELS_DIR / f"{model_name}.sql")
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT {columns} FROM ({model.sql})").fetchall()
    finally:
        con.close()


@lru_cache(maxsize=1)
def figures() -> dict[tuple[str, str], float]:
    """(measure, domain) -> the card's figure, in the model's order."""
    return {(measure, domain): card for measure, domain, card in _rows(MODEL, "measure, domain, card")}


def per_domain(measure: str) -> dict[str, float]:
    """domain -> the card's figure of a per-domain `measure` (RATIO_CHARS, BLOCKS_PER_TRACE, BLOCK_CHARS)."""
    return {domain: card for (m, domain), card in figures().items() if m == measure and domain != "all"}


@lru_cache(maxsize=1)
def _paper_rows() -> tuple[tuple, ...]:
    return tuple(_rows(PAPER_MODEL, "model, benchmark, peak_ratio_vs_plain_cot, kv_area_ratio_vs_plain_cot"))


def paper_kv_figures() -> list[dict]:
    """The Memento paper's peak-KV and KV-area ratios to plain chain of thought, one dict per benchmark:
    measured on the models' own generations, not on a dataset's traces."""
    keys = ("model", "benchmark", "peak_ratio_vs_plain_cot", "kv_area_ratio_vs_plain_cot")
    return [dict(zip(keys, row)) for row in _paper_rows()]


def median_ratio_chars() -> dict[str, float]:
    """domain -> the card's median memento/block char ratio (math, code, science)."""
    return per_domain(RATIO_CHARS)


def overall(measure: str) -> float:
    """A figure the card gives over every trace (TOKENS_PER_BLOCK ... TRACE_COMPRESSION)."""
    return figures()[(measure, "all")]
