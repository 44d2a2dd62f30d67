"""The OpenMementos card's published figures, read from the one place they are written:
the bundled model models/card_figures.sql (a view, so sql/queries/card_comparison.sql joins
it in the warehouse). Its SELECT reads no table: here it runs in an in-memory DuckDB, so the
report's card table and plots have the figures without a built warehouse."""

from __future__ import annotations

from functools import lru_cache

import duckdb

from mementos.warehouse.models import MODELS_DIR, load_model

MODEL = "card_figures"
RATIO_CHARS = "memento/block ratio (chars)"  # per domain: medians of the per-block ratios
TOKENS_PER_BLOCK = "tokens per block"  # the rest are over every trace (domain 'all'): averages ...
TOKENS_PER_MEMENTO = "tokens per memento"
BLOCK_TOKENS_PER_TRACE = "block tokens per trace"
MEMENTO_TOKENS_PER_TRACE = "memento tokens per trace"
TRACE_COMPRESSION = "trace-level compression (x)"  # ... and the ratio of the two per-trace averages


@lru_cache(maxsize=1)
def figures() -> dict[tuple[str, str], float]:
    """(measure, domain) -> the card's figure, in the model's order."""
    model = load_model(MODELS_DIR / f"{MODEL}.sql")
    con = duckdb.connect()
    try:
        rows = con.execute(f"SELECT measure, domain, card FROM ({model.sql})").fetchall()
    finally:
        con.close()
    return {(measure, domain): card for measure, domain, card in rows}


def median_ratio_chars() -> dict[str, float]:
    """domain -> the card's median memento/block char ratio (math, code, science)."""
    return {domain: card for (measure, domain), card in figures().items() if measure == RATIO_CHARS}


def overall(measure: str) -> float:
    """A figure the card gives over every trace (TOKENS_PER_BLOCK ... TRACE_COMPRESSION)."""
    return figures()[(measure, "all")]
