"""A full disk, in one line: what was being written, the space it needed, the space free now.

Used by every command that writes (ingest, build, report, export), so it lives below them.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import duckdb

from mementos.foundation.errors import WarehouseError
from mementos.foundation.formatting import size

_DUCKDB_ENOSPC = ("no space left on device", "disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, duckdb.Error) and any(s in str(exc).lower() for s in _DUCKDB_ENOSPC)


def failed_path(exc: BaseException, default: Path) -> Path:
    """The file a disk-full error was writing: OSError.filename, the file DuckDB names, else `default`."""
    if isinstance(exc, OSError) and exc.filename:
        return Path(os.fsdecode(exc.filename))
    m = re.search(r'(?:write|writing|create|open)[a-z ]* file "([^"]+)"', str(exc))
    return Path(m.group(1)) if m else default


def free_bytes(path: Path) -> int | None:
    """Free space on the filesystem holding `path` (or its nearest existing ancestor)."""
    for p in [path, *path.parents]:
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def raise_if_full(exc: BaseException, path: Path, free_before: int | None, done: str) -> None:
    """In an `except` block: when `exc` is a full disk, raise the one-line `disk_full` error instead
    (`path`: where the command wrote, when the error does not name a file); otherwise return."""
    if is_disk_full(exc):
        raise disk_full(failed_path(exc, path), free_before=free_before, done=done) from None


def disk_full(path: str | Path, needed: int | None = None, free_before: int | None = None,
              done: str = "") -> WarehouseError:
    """The one-line error for a full disk: the path, the space needed, the space free, what was undone.

    `needed`: the exact size, when known (a report); otherwise `free_before`, the space that was
    free when the command started, is what it needed more than."""
    path = Path(path)
    if needed:
        need = f"needs {size(needed)}"
    elif free_before is not None:
        need = f"needs more than the {size(free_before)} that were free when it started"
    else:
        need = "needs more space"
    free = free_bytes(path)
    free_text = f" ({size(free)} free now)" if free is not None else ""
    return WarehouseError(f"disk full writing {path}: {need}{free_text}; "
                          f"{done + '; ' if done else ''}free some space and run the command again")
