"""Atomic files: every file swarm writes goes through here (issue #17).

A temp file in the same directory is written, fsynced and renamed over the target, then the
directory is fsynced, so a reader (or the next run after a crash or a full disk) sees the old
file or the new one, never a torn or empty one. A failure to write is StoreUnavailable (exit 8)
naming the file and the reason, and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from swarm.core.errors import StoreUnavailable

_WHY = {
    errno.ENOSPC: "the disk is full; free some space and run it again",
    errno.EDQUOT: "the disk quota is used up; free some space and run it again",
    errno.EROFS: "the filesystem is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def write_failure(path: Path, exc: OSError) -> StoreUnavailable:
    """The StoreUnavailable for a failed write of path (raise it `from exc`)."""
    why = _WHY.get(exc.errno or 0, exc.strerror or str(exc))
    return StoreUnavailable(f"cannot write {path}: {why}; it was left as it was")


@contextlib.contextmanager
def atomic_open(
    path: Path, perms: int | None = None, exclusive: bool = False, binary: bool = False
) -> Iterator[IO[Any]]:
    """A file to write (UTF-8 text, or bytes when binary) that replaces path when the block ends
    without error, and vanishes otherwise.

    perms: the new file's mode (default: the old file's, else 0644). exclusive: never replace
    an existing path (FileExistsError if one appeared meanwhile), for files like the HTTP token
    that are created once. Raises StoreUnavailable on OSError.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        os.fchmod(fd, _mode(path) if perms is None else perms)
        handle: IO[Any] = (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        )
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            _link(tmp, path)
        else:
            os.replace(tmp, path)
            tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise write_failure(path, exc) from exc
    except _Exists as exc:
        raise FileExistsError(f"{path} already exists") from exc.__cause__
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


class _Exists(Exception):
    """Carries os.link's FileExistsError past the OSError handler."""


def _link(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)  # never replaces: an existing file wins
    except FileExistsError as exc:
        raise _Exists from exc


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o644


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a crash after it must not bring the old file back)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str, perms: int | None = None) -> None:
    """Replace path with text (UTF-8) atomically; raises StoreUnavailable."""
    with atomic_open(path, perms) as f:
        f.write(text)


def write_bytes(path: Path, data: bytes, perms: int | None = None) -> None:
    """Replace path with data atomically; raises StoreUnavailable."""
    with atomic_open(path, perms, binary=True) as f:
        f.write(data)


class PendingFile:
    """A file written a piece at a time (a log too large to build as one string) to a temp file
    beside path: `commit()` replaces path with it unless path already holds the same bytes,
    `discard()` drops it. Raises StoreUnavailable on OSError, leaving path as it was."""

    BUFFER = 1 << 20  # pieces are gathered and written a MiB at a time: a log has 100k lines

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.digest = hashlib.sha256()
        self.size = 0
        self.pending: list[str] = []
        self.held = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            self.tmp = Path(name)
            os.fchmod(fd, _mode(self.path))
            self.handle = os.fdopen(fd, "wb")
        except OSError as exc:
            raise write_failure(self.path, exc) from exc

    def write(self, text: str) -> None:
        self.pending.append(text)
        self.held += len(text)
        if self.held >= self.BUFFER:
            self._flush()

    def _flush(self) -> None:
        data = "".join(self.pending).encode("utf-8")
        self.pending, self.held = [], 0
        self.digest.update(data)
        self.size += len(data)
        try:
            self.handle.write(data)
        except OSError as exc:
            self.discard()
            raise write_failure(self.path, exc) from exc

    def _same(self) -> bool:
        try:
            if self.path.stat().st_size != self.size:
                return False
            with self.path.open("rb") as fh:
                return hashlib.file_digest(fh, "sha256").digest() == self.digest.digest()
        except OSError:
            return False  # missing or unreadable: write it

    def commit(self) -> bool:
        """Replace path unless it holds these bytes already; whether it was replaced."""
        self._flush()
        try:
            self.handle.flush()
            if self._same():
                self.discard()
                return False
            os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self.tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            self.discard()
            raise write_failure(self.path, exc) from exc
        return True

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        self.tmp.unlink(missing_ok=True)


def write_if_changed(path: Path, text: str) -> bool:
    """Write text atomically unless path already holds it; whether it was written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass  # missing or unreadable: write it
    write_text(path, text)
    return True
