"""Files written whole or not at all, and made to survive a crash: the primitives the snapshot writer
(foundation/snapshots.py) and a command's output (warehouse/output.py) share.

A new file is created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW): a file or symlink planted at its name is
never written through. A rename is durable only once the folder that holds the name is fsynced too.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_exclusive(path: Path, mode: int = 0o666) -> BinaryIO:
    """A new file at `path`, opened for writing in binary; fails if anything (even a symlink) is there.
    `mode` is narrowed by the umask, as for any new file."""
    return os.fdopen(os.open(path, _CREATE, mode), "wb")


def write_whole(path: Path, body: bytes, mode: int = 0o666) -> None:
    """Replace `path` with `body`, or leave it as it was: a temp file with a random name beside it,
    created exclusively, fsynced and renamed onto it; the temp file is removed on any failure."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with create_exclusive(tmp, mode) as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_file(path: Path) -> None:
    """Flush a file that was written and closed elsewhere to the disk."""
    _fsync(path, os.O_RDONLY | os.O_CLOEXEC)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to the disk: the renames and new names in it survive a crash."""
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
