"""Writing a command's output without harming what is already there.

* Temp files get random names and are created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW): a file or
  symlink planted at a predictable name (`r.html.tmp -> victim.txt`) is never written through.
* `write_file(out, body)`: a regular file at `out`, or nothing, is replaced atomically (a temp file in
  its folder, fsync, one rename). A character device or a named pipe (/dev/null, /dev/stdout, a FIFO)
  is written to directly: renaming over it would put a regular file where the device was. Anything
  else (a symlink to a file, a block device, a socket) is refused in one line.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from foundation import disk
from foundation.errors import WarehouseError

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_exclusive(path: Path):
    """A new file at `path`, opened for writing in binary; fails if anything (even a symlink) is there."""
    return os.fdopen(os.open(path, _CREATE, 0o666), "wb")


# ---------------------------------------------------------------------------
# One file


def _kind(mode: int) -> str:
    return ("a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a directory" if stat.S_ISDIR(mode) else "not a regular file")


def write_file(out: Path, body: bytes, option: str = "--out") -> None:
    """Write `body` to `out`: atomically over a regular file or nothing, directly into a character device
    or named pipe. On any failure a regular `out` is as it was and no temp file is left; a full disk is one
    line with the path and the size needed."""
    try:
        st = os.stat(out)  # follows links: /dev/stdout is a link to the pipe or terminal it writes to
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise WarehouseError(f"cannot write {out}: {exc.strerror}") from None
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        _write_through(out, body)
        return
    if out.is_symlink():
        # replacing the link would leave its target as it was; writing through it would write wherever
        # it points (a link planted in a shared folder): neither is what was asked
        raise WarehouseError(f"{option} {out} is a symbolic link to {os.readlink(out)}; give the path of the "
                             f"file itself")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise WarehouseError(f"{option} {out} is {_kind(st.st_mode)}; give a file name (or a character device "
                             f"or named pipe to write to)")
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
    try:
        with create_exclusive(tmp) as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and disk.is_disk_full(exc):
            raise disk.disk_full(out, len(body), done=f"{out} is unchanged") from None
        if isinstance(exc, OSError):
            raise WarehouseError(f"cannot write {out}: {exc.strerror or exc}") from None
        raise


def _write_through(out: Path, body: bytes) -> None:
    """A device or pipe: opened as it is (no create, no truncate, no rename) and written."""
    try:
        fd = os.open(out, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
    except OSError as exc:
        raise WarehouseError(f"cannot write {out}: {exc.strerror or exc}") from None
