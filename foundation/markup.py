"""The six markup strings of the Memento format, the parser's only markup (ingest/parser.py).

The parser, the export's renderers and the sample generator all write or read
these; they are defined here once.
"""

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
BLOCK_START = "<|block_start|>"
BLOCK_END = "<|block_end|>"
SUMMARY_START = "<|summary_start|>"
SUMMARY_END = "<|summary_end|>"
MARKUP = (THINK_OPEN, THINK_CLOSE, BLOCK_START, BLOCK_END, SUMMARY_START, SUMMARY_END)
