"""Output files: atomic writes with the user's permissions, and file digests. Imports nothing of the package, so
every layer may use it."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["WriteError", "atomic_write", "staged", "check_writable", "file_sha256", "umask_mode"]

WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
"""Failures of the writing itself (disk full, quota, file too large, read-only or failing disk)."""


class WriteError(OSError):
    """An output could not be written (one of :data:`WRITE_ERRNOS`); names the file, of which nothing was left."""

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}; nothing was written"


def write_error(e: OSError, path: str | Path) -> OSError:
    """``e`` as a :class:`WriteError` naming ``path`` when it is a failure to write (:data:`WRITE_ERRNOS`), else
    ``e`` itself. A :class:`WriteError` of a nested write (a temporary file written through another atomic write)
    is renamed after ``path`` as well."""
    if e.errno not in WRITE_ERRNOS or (isinstance(e, WriteError) and e.filename == str(path)):
        return e
    return WriteError(e.errno, os.strerror(e.errno), str(path))


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process umask: the permissions a plain ``open()`` or ``mkdir()`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@contextlib.contextmanager
def staged(path: str | Path, force: bool = True) -> Iterator[Path]:
    """A temporary file beside ``path`` that becomes ``path`` when the block ends normally.

    On any error or Ctrl-C inside the block the temporary file is removed, so nothing partial, and nothing that a
    later step in the block was still checking (the export's parity check), is left under ``path``. A failure to
    write (disk full, ...) comes out as a :class:`WriteError` naming ``path``. The result gets the umask's
    permissions (``mkstemp``'s 0600 is for the temporary file only)."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        err = write_error(e, path)
        if err is e:
            raise
        raise err from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        err = write_error(e, path) if isinstance(e, OSError) else e
        if err is e:
            raise
        raise err from None


def atomic_write(path: str | Path, write: Callable[[str], None], force: bool = True) -> Path:
    """Write through a temporary file in the target folder and rename (:func:`staged`), so a failure leaves no
    partial file."""
    with staged(path, force) as tmp:
        write(str(tmp))
    return Path(path)


def check_writable(path: str | Path, force: bool) -> None:
    """Fail before long work when ``path`` cannot be written: it exists (without ``force``), is a folder, or its
    folder is missing or read-only."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite")
    if path.is_dir():
        raise IsADirectoryError(21, "output is a directory", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(13, "output folder is not writable", str(path.parent))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
