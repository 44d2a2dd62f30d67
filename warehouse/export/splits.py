"""Which split an export example goes to: the split fractions, a hash of the seed and the normalised
problem, and near-duplicate problems grouped so that a group goes to one split (warehouse.md, Splits)."""

from __future__ import annotations

import functools
import hashlib
import re
import time
from array import array
from typing import Mapping

def normalize_problem(problem: str | None) -> str:
    """The problem with every run of whitespace (as str.split sees it) made one space, ends trimmed."""
    return " ".join((problem or "").split())


def split_point(problem: str | None, seed: int) -> float:
    """Where a problem falls in [0, 1): blake2b-64 of "<seed>\\0<normalised problem>" (UTF-8) / 2**64."""
    key = f"{seed}\x00{normalize_problem(problem)}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def problem_key(problem: str | None, seed: int) -> int:
    """blake2b-64 of "<seed>\\0<normalised problem>" (UTF-8) as an unsigned integer: split_point * 2**64."""
    key = f"{seed}\x00{normalize_problem(problem)}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def split_of(problem: str | None, seed: int, splits: Mapping[str, float], groups: dict[int, int] | None = None) -> str:
    """The split a problem goes to: the first whose cumulative fraction exceeds its split point. With `groups`
    (near_duplicate_groups), the point is the smallest of its near-duplicate group's, so the group stays together."""
    key = problem_key(problem, seed)
    return _split_at((groups or {}).get(key, key) / 2**64, splits)


def _split_at(point: float, splits: Mapping[str, float]) -> str:
    cumulative = 0.0
    for name, fraction in splits.items():
        cumulative += fraction
        if point < cumulative:
            return name
    return [name for name, fraction in splits.items() if fraction > 0][-1]  # float rounding at the top end


# ---------------------------------------------------------------------------
# Near-duplicate problems: one split per group
#
# Two problems are near-duplicates when they have the same numbers (as a multiset: `\d+` runs) and their sets
# of word bigrams (lowercased `\w+` words) are similar: MinHash with LSH (datasketch), Jaccard threshold
# NEAR_DUP_THRESHOLD. The numbers are part of each LSH bucket's key, so a template filled with other numbers is
# another problem while a rewording that keeps them (or swaps them) is not. Groups are the connected components
# of "share a bucket"; a group goes to the split of its smallest split point. warehouse.md (Splits) has the
# measurements behind the threshold.

NEAR_DUP_THRESHOLD = 0.6
NEAR_DUP_PERMUTATIONS = 128
NEAR_DUP_SHINGLE_WORDS = 2
_WORD_RE = re.compile(r"\w+")
_NUMBER_RE = re.compile(r"\d+")
GROUP_BATCH_ROWS = 8192


def near_duplicate_method() -> dict:
    bands, rows = _bands_and_rows()
    return {"method": "MinHash LSH over lowercased word bigrams, within problems of the same numbers (datasketch)",
            "threshold": NEAR_DUP_THRESHOLD, "permutations": NEAR_DUP_PERMUTATIONS,
            "shingle_words": NEAR_DUP_SHINGLE_WORDS, "bands": bands, "rows_per_band": rows}


@functools.cache
def _bands_and_rows() -> tuple[int, int]:
    """datasketch's bands and rows for the threshold: it integrates for them (scipy) on every MinHashLSH,
    which was a fixed cost of every export."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=NEAR_DUP_THRESHOLD, num_perm=NEAR_DUP_PERMUTATIONS)
    return lsh.b, lsh.r


def _lsh_buckets(normalised: str, base, bands: int, rows: int) -> list[int]:
    """The LSH bucket of each band of the problem's MinHash, keyed by its numbers too."""
    from datasketch import MinHash

    words = _WORD_RE.findall(normalised.lower())
    k = NEAR_DUP_SHINGLE_WORDS
    shingles = [" ".join(words[i:i + k]).encode("utf-8") for i in range(max(1, len(words) - k + 1))]
    m = MinHash(num_perm=NEAR_DUP_PERMUTATIONS, seed=1, permutations=base.permutations, scheme=base.scheme)
    m.update_batch(shingles)
    values = m.hashvalues
    numbers = " ".join(sorted(_NUMBER_RE.findall(normalised))).encode("ascii")
    return [int.from_bytes(hashlib.blake2b(numbers + b"\x00" + band.to_bytes(2, "big")
                                           + values[band * rows:(band + 1) * rows].tobytes(),
                                           digest_size=8).digest(), "big")
            for band in range(bands)]


def near_duplicate_groups(batches, seed: int) -> tuple[dict[int, int], dict]:
    """{problem_key: the smallest problem_key of its group} for the problems in a group of two or more, and
    what it found; `batches` yields lists of problems (any order, repeats allowed). Memory: 8 bytes per
    distinct problem and band (148 bytes a problem with 18 bands), then the groups."""
    import numpy as np
    from datasketch import MinHash

    started = time.monotonic()
    method = near_duplicate_method()
    bands, rows = method["bands"], method["rows_per_band"]
    base = MinHash(num_perm=NEAR_DUP_PERMUTATIONS, seed=1)
    seen: set[int] = set()
    keys, buckets = array("Q"), array("Q")  # per distinct problem: its key, and its bucket in each band
    for problems in batches:
        for problem in problems:
            normalised = normalize_problem(problem)
            key = problem_key(normalised, seed)
            if key in seen:
                continue
            seen.add(key)
            keys.append(key)
            buckets.extend(_lsh_buckets(normalised, base, bands, rows))
    del seen
    keys_np = np.frombuffer(keys, np.uint64)
    by_band = np.frombuffer(buckets, np.uint64).reshape(-1, bands)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    for band in range(bands):  # one band at a time: a few bytes per problem beyond the buckets themselves
        order = np.argsort(by_band[:, band], kind="stable")
        sorted_buckets = by_band[order, band]
        same = np.nonzero(sorted_buckets[1:] == sorted_buckets[:-1])[0]  # neighbours in one bucket: one group
        for x, y in zip(keys_np[order[same]].tolist(), keys_np[order[same + 1]].tolist()):
            x, y = find(x), find(y)
            if x != y:
                parent[max(x, y)] = min(x, y)  # the root is the smallest key: the group's split point
    groups = {x: find(x) for x in parent} | {find(x): find(x) for x in parent}
    sizes: dict[int, int] = {}
    for root in groups.values():
        sizes[root] = sizes.get(root, 0) + 1
    stats = method | {"problems": len(keys), "groups_merged": len(sizes), "problems_in_them": len(groups),
                      "largest_group": max(sizes.values(), default=1),
                      "seconds": round(time.monotonic() - started, 2)}
    return groups, stats
