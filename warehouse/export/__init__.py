"""`export`: training sets from the versioned export views (models/export_*.sql).

The views decide what the examples are: one row per example (per trace, or per
block for `summarize`) with its labels, status, content_hash, token count and
the spans of the response it is made of. They hold no text. One export
(`export(db, ExportSpec(...))`) is::

    build    the export view and what it reads, if any of them is stale (engine.build)
    plan     one query over the view into a Parquet file, keys only: every example gets a
             reason to be left out (LeftOut: flagged, domain, outlier, duplicate) or none; the
             counts come from it; kept traces are cut into chunks of at most CHUNK_CHARS
             response chars. A second writes the view's rows of the kept examples, unsorted
    stream   chunk by chunk, in (dataset, source_row[, block_idx]) order: the chunk's kept
             rows and its traces' problem and response, fetched as Arrow; the messages are
             laid out (texts cut out of the response at the spans, markup from
             ingest/parser.py); each example goes to its split (a hash of the seed and the
             whitespace-normalised problem, the smallest of its near-duplicate group's, found
             before the stream) and is appended to that split's file in the stage, a fresh
             directory beside DIR (output.Stage). Three stages overlap (pipeline.py): a thread
             reads the next chunk, this one is laid out and its tokens counted, a thread
             encodes and writes the slices before it, in order
    finish   fsync the split files, write README.md (the dataset card) and manifest.json into the
             stage (a full disk up to here is one line, disk.disk_full, and removes the stage),
             then swap the stage in for DIR with one rename and remove the old export

Why chunks and not one ORDER BY: in DuckDB a sort whose payload holds the
responses does not spill to disk, an ordered string_agg cannot spill either, and
a list lambda that reads the response is slow. Each chunk query only touches its
own rows, so memory stays flat (a chunk or two in flight, one Parquet row group per split, and
8 bytes per example for the token statistics) and the order is total: the same
warehouse, kind, filters and seed give byte-identical files. warehouse.md (Export)
has the kinds, the split rule and the manifest fields.

The modules, one job each: spec.py (what an export is asked for: ExportSpec, the
kinds, formats and reasons), run.py (the run: build, plan, stream, manifest,
swap), plan.py (the plan and chunk queries), records.py (the records' columns and
messages per kind), splits.py (which split, near-duplicate groups), tokens.py
(each record's exact n_tokens, max_tokens), files.py (the split writers, what the
directory may hold), json_lines.py (JSON lines too big for DuckDB's to_json),
card.py (README.md), result.py (what was written, the printed summary);
warehouse/output.py has the stage and its swap.
"""

import importlib

from mementos.warehouse.export.spec import DEFAULT_SPLITS, ExportFormat, ExportKind, ExportSpec, LeftOut, splits_text

# The rest loads on first use: the command line reads the names above at start-up, without DuckDB and Arrow.
_LAZY = {"CARD": "card", "MANIFEST": "files", "SUMMARIZE_INSTRUCTION": "records", "ExportResult": "result",
         "ensure_models": "run", "export": "run", "near_duplicate_groups": "splits", "normalize_problem": "splits",
         "problem_key": "splits", "split_of": "splits"}

__all__ = ["DEFAULT_SPLITS", "ExportFormat", "ExportKind", "ExportSpec", "LeftOut", "splits_text", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
