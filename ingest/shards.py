"""Which shards (source files) an ingest reads, and which it keeps as they are.

A dataset is the shards it was read from (ingest_shards). Re-ingesting it compares SOURCE's
files with them by config and path: a shard with the same size and content hash (xxh3-128 of
the file's bytes) is unchanged and is not read again, its rows and files kept; a new shard is
added; a changed one is read again and replaces exactly its rows; a shard no longer in SOURCE is
removed. New and changed shards are numbered from the first source row never used in the dataset
(catalog.next_row), so a trace id never names other content. A full refresh reads every shard
and numbers from 0, as the first ingest does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable

import xxhash

from mementos.foundation.catalog import Shard
from mementos.ingest.sources import SourceFile

HASH_CHUNK = 1 << 22  # bytes read at a time: the file is streamed, never held whole


def is_local(path: str) -> bool:
    return not path.startswith(("hf://", "http://", "https://"))


def content_hash(path: str) -> str:
    """xxh3-128 of the file's bytes, read in chunks."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ToRead:
    """A source file this run reads: `kind` says what it does to the dataset ('added' | 'replaced')."""

    source: SourceFile  # as SOURCE named it (its rows' source_file)
    path: str  # as recorded in ingest_shards: absolute, for a local file
    index: int  # its number among the run's shards of its config: names its Parquet files
    kind: str
    size: int | None
    content_hash: str | None  # None: a remote file, or --limit (never taken as unchanged later)

    @property
    def part(self) -> str:
        """The stem of its Parquet files (part-<part>-<worker>.parquet): config, number and source name."""
        name = os.path.basename(self.source.path.rstrip("/"))
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(name)[0])[:40]
        return f"{self.source.config}-{self.index:05d}-{stem}"


@dataclass
class ShardPlan:
    full_refresh: bool
    read: list[ToRead] = field(default_factory=list)  # in SOURCE's order
    unchanged: list[Shard] = field(default_factory=list)
    removed: list[Shard] = field(default_factory=list)
    why_full: str = ""  # why every shard is read ('' when incremental)

    def count(self, kind: str) -> int:
        return sum(1 for r in self.read if r.kind == kind)


def plan(files: list[SourceFile], previous: list[Shard], files_intact: Callable[[Shard], bool],
         full_refresh: bool = False, limit: int | None = None) -> ShardPlan:
    """What this run reads of `files`, given the shards the dataset holds now (`previous`).
    `files_intact(shard)`: its Parquet files are all there, as published (a damaged shard is read again)."""
    why_full = ("--full-refresh" if full_refresh else "--limit" if limit is not None
                else "no shards of the dataset recorded yet" if not previous
                else "SOURCE is remote" if not all(is_local(f.path) for f in files) else "")
    out = ShardPlan(full_refresh=bool(why_full), why_full=why_full)
    before = {(s.config, s.path): s for s in previous}
    numbers: dict[str, int] = {}
    for f in files:
        path = os.path.abspath(f.path) if is_local(f.path) else f.path
        size = os.path.getsize(path) if is_local(path) else None
        digest = content_hash(path) if is_local(path) and limit is None else None
        old = before.pop((f.config, path), None)
        if (not out.full_refresh and old is not None and digest is not None and old.size == size
                and old.content_hash == digest and files_intact(old)):
            out.unchanged.append(old)
            continue
        index = numbers[f.config] = numbers.get(f.config, -1) + 1
        out.read.append(ToRead(f, path, index, "added" if old is None else "replaced", size, digest))
    out.removed = list(before.values())
    return out
