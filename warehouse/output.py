"""Writing a command's output without harming what is already there: one file (the report) or one
directory (an export).

* Temp files and directories get random names and are created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW,
  mkdtemp): a file or symlink planted at a predictable name (`r.html.tmp -> victim.txt`) is never
  written through.
* `write_file(out, body)`: a regular file at `out`, or nothing, is replaced atomically (a temp file in
  its folder, fsync, one rename). A character device or a named pipe (/dev/null, /dev/stdout, a FIFO)
  is written to directly: renaming over it would put a regular file where the device was. Anything
  else (a symlink to a file, a block device, a socket) is refused in one line.
* `Stage(out)`: an export is written whole into a fresh directory beside `out`, then swapped in by one
  rename (renameat2 RENAME_EXCHANGE; where the filesystem has no exchange, two renames), so a kill at
  any point leaves `out` holding the old complete export or the new complete one. The stage holds a
  marker file; `remove_leftovers(out)` removes a killed export's stage only when it holds the marker.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from mementos.foundation import disk
from mementos.foundation.durable import create_exclusive, fsync_dir, write_whole
from mementos.foundation.errors import WarehouseError
from mementos.foundation.faults import checkpoint

TMP_SUFFIX = ".export-tmp"
MARKER = ".mementos-export-stage"  # in every stage: without it a directory is never removed as a leftover


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
    try:
        write_whole(out, body)
    except OSError as exc:
        if disk.is_disk_full(exc):
            raise disk.disk_full(out, len(body), done=f"{out} is unchanged") from None
        raise WarehouseError(f"cannot write {out}: {exc.strerror or exc}") from None


def _write_through(out: Path, body: bytes) -> None:
    """A device or pipe: opened as it is (no create, no truncate, no rename) and written."""
    try:
        fd = os.open(out, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
    except OSError as exc:
        raise WarehouseError(f"cannot write {out}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------
# One directory

_RENAME_EXCHANGE = 2  # linux/fs.h
_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap the two directory entries in one step (renameat2 RENAME_EXCHANGE); False where the C library or
    the filesystem has no such call."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        except (OSError, AttributeError):
            _libc = False
    if not _libc or not EXCHANGE:
        return False
    at_fdcwd = -100
    if _libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


EXCHANGE = True  # False: publish with two renames, as on a filesystem without RENAME_EXCHANGE (the tests use it)


def _marker_text(out: Path, pid: int) -> str:
    return f"mementos export of {out} by process {pid}: removed by the next export when that process is gone\n"


def _stage_re(out: Path) -> re.Pattern:
    return re.compile(r"^\." + re.escape(out.name) + r"\.(?P<pid>\d+)\.[A-Za-z0-9_]+" + re.escape(TMP_SUFFIX) + "$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Stage:
    """A fresh directory `.<name>.<pid>.<random>.export-tmp/` beside `out` (a resolved path): `new/` takes
    the export's files, `spill/` DuckDB's temp files and the plan; `publish()` swaps `new/` in for `out`."""

    def __init__(self, out: Path, shown: Path | None = None, option: str = "--out"):
        """`out`: the resolved directory to replace; `shown`: its name as given, for messages."""
        self.out, self.shown, self.option = out, shown or out, option
        try:
            self.root = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=TMP_SUFFIX,
                                              dir=out.parent))
        except OSError as exc:
            if disk.is_disk_full(exc):
                raise disk.disk_full(out.parent, 0) from None
            raise WarehouseError(f"{option} {self.shown}: cannot create the export's temp directory in {out.parent}: "
                                 f"{exc.strerror}; the export is written beside {out.name} and renamed into "
                                 f"place, so that folder must be writable") from None
        self.new = self.root / "new"
        self.spill = self.root / "spill"
        try:
            with create_exclusive(self.root / MARKER) as f:
                f.write(_marker_text(out, os.getpid()).encode())
            self.new.mkdir()  # mode 0777 & ~umask, like any directory: the stage itself (0700) is not published
            self.spill.mkdir()
        except BaseException as exc:
            shutil.rmtree(self.root, ignore_errors=True)
            if isinstance(exc, OSError) and disk.is_disk_full(exc):
                raise disk.disk_full(self.shown, done="nothing was replaced and no temporary file is left") from None
            raise

    def public(self, path: Path) -> Path:
        """The name a user knows for a path in the stage: DIR/NAME for a file of the export, DIR for anything
        else in the stage (DuckDB's spill files); any other path as it is."""
        if path.parent == self.new:
            return self.shown / path.name
        return self.shown if self.root in path.parents or path == self.root else path

    def publish(self) -> None:
        """Swap the complete export in for `out`; then remove the old one. Atomic where the filesystem can
        exchange two names; otherwise `out` is missing between two renames, and `remove_leftovers` puts
        the old export back if the process is killed there."""
        fsync_dir(self.new)
        try:
            if self.out.is_dir() and not self.out.is_symlink():
                os.chmod(self.new, stat.S_IMODE(self.out.stat().st_mode))  # the directory keeps its permissions
                if not _exchange(self.new, self.out):
                    os.rename(self.out, self.root / "old")
                    checkpoint("export.between_renames")
                    os.rename(self.new, self.out)
            else:
                os.rename(self.new, self.out)
        except OSError as exc:
            if disk.is_disk_full(exc):
                raise
            raise WarehouseError(f"{self.option} {self.shown}: cannot rename the finished export into place: "
                                 f"{exc.strerror}; nothing was replaced (the export replaces the directory whole "
                                 f"by a rename, so it cannot be a mount point)") from None
        fsync_dir(self.out.parent)
        checkpoint("export.after_swap")
        self.discard()

    def discard(self) -> None:
        _remove_stage(self.root, self.out)


def _remove_stage(root: Path, out: Path) -> None:
    """Remove a stage, the marker last (a kill half-way leaves a stage that is still known as one). An old
    export set aside by the two-rename publish goes back to `out` if nothing is there."""
    old = root / "old"
    if old.is_dir() and not os.path.lexists(out):
        os.rename(old, out)
    for child in sorted(root.iterdir()):
        if child.name != MARKER:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    (root / MARKER).unlink(missing_ok=True)
    root.rmdir()


def remove_leftovers(out: Path) -> list[Path]:
    """The stages of exports into `out` whose process is gone, removed; only directories that hold the
    marker that process wrote (anything else with a similar name is someone's, and stays)."""
    removed = []
    pattern = _stage_re(out)
    for path in sorted(out.parent.iterdir()) if out.parent.is_dir() else ():
        m = pattern.match(path.name)
        if not m or int(m["pid"]) == os.getpid() or _pid_alive(int(m["pid"])):
            continue
        if path.is_symlink() or not path.is_dir():
            continue
        marker = path / MARKER
        try:
            if marker.is_symlink() or marker.read_text(encoding="utf-8") != _marker_text(out, int(m["pid"])):
                continue
        except (OSError, UnicodeDecodeError):
            continue
        try:
            _remove_stage(path, out)
        except OSError:  # not ours to fix here (permissions, a busy mount): it stays for a later export
            continue
        removed.append(path)
    return removed
