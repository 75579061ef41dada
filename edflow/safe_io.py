"""Every file the runner writes goes through here, so that a failed write (a full disk, a lost mount, a read-only
folder) ends the run with one line naming the path and the error, leaves no temporary file behind, and never
touches the files written before it.
"""
from __future__ import annotations

import errno
import os
import shutil


class WriteError(OSError):
    """A write that failed; ``str()`` is one line: the path, the error and, for a full disk, the bytes needed."""

    def __init__(self, path: str, error: OSError, nbytes: int | None = None):
        super().__init__(error.errno, describe(path, error, nbytes))
        self.path = path

    def __str__(self) -> str:
        return self.strerror


def describe(path: str, error: OSError, nbytes: int | None = None) -> str:
    reason = error.strerror or str(error)
    text = f"cannot write {path}: {reason}" + (f" (errno {error.errno})" if error.errno else "")
    if error.errno in (errno.ENOSPC, errno.EDQUOT) and nbytes is not None:
        free = free_bytes(path)
        text += f"; the write needed {nbytes} bytes" + (f", {free} bytes are free there" if free is not None else "")
    return text


def free_bytes(path: str) -> int | None:
    folder = os.path.dirname(os.path.abspath(path))
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def makedirs(folder: str) -> None:
    try:
        os.makedirs(folder or ".", exist_ok=True)
    except OSError as error:
        raise WriteError(folder, error, 0) from error


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def write_bytes(path: str, data: bytes, *, durable: bool = False) -> None:
    """Write through a temporary file beside ``path`` and rename it: ``path`` is either the old or the new file.
    ``durable`` also flushes the bytes to the disk before the rename (checkpoints)."""
    makedirs(os.path.dirname(path))
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        raise WriteError(path, error, len(data)) from error
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: str, text: str, *, durable: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), durable=durable)


def append_text(path: str, text: str) -> None:
    """Append to a log (metrics.jsonl); a failed append is cut back off, so the log never ends in half a line."""
    data = text.encode("utf-8")
    makedirs(os.path.dirname(path))
    size = os.path.getsize(path) if os.path.exists(path) else 0
    try:
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
    except OSError as error:
        try:
            os.truncate(path, size)
        except OSError:
            pass
        raise WriteError(path, error, len(data)) from error


def copy_file(source: str, target: str) -> None:
    """``target`` replaced by a copy of ``source`` in one rename (streamed: checkpoints may be large)."""
    makedirs(os.path.dirname(target))
    tmp = f"{target}.tmp-{os.getpid()}"
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    except OSError as error:
        _remove(tmp)
        raise WriteError(target, error, os.path.getsize(source) if os.path.isfile(source) else None) from error
    except BaseException:
        _remove(tmp)
        raise
