"""The OpenMementos card's published figures, in one place: the report, its plots and the tests compare with them.

Source: huggingface.co/datasets/microsoft/OpenMementos, "Block & Summary Statistics". The
ratios are medians; the token lengths are averages; the trace-level figure is ~10,900 block
tokens -> ~1,850 memento tokens per trace, ~6x.
"""

CARD_MEDIAN_RATIO_CHARS = {"math": 0.16, "code": 0.18, "science": 0.23}
CARD_TOKENS_PER_BLOCK = 1150
CARD_TOKENS_PER_MEMENTO = 194
CARD_BLOCK_TOKENS_PER_TRACE = 10900
CARD_MEMENTO_TOKENS_PER_TRACE = 1850
CARD_TRACE_COMPRESSION = 6.0
