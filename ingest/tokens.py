"""cl100k_base token counts: they live in foundation/tokens.py, since export counts its examples too.

Kept so that `from ingest.tokens import ...` goes on working.
"""

from foundation.tokens import ENCODING, _counter, _encoder, count_tokens, split_at_boundaries  # noqa: F401
