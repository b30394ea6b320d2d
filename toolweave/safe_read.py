"""Reading a file that input or a config names: regular files only, bounded in size and in time.

A FIFO, a device (`/dev/zero`, a tape, a terminal), a socket or a folder, given directly or behind
a symbolic link, is refused by name before a byte is read (opening a FIFO for reading would wait
for a writer forever, `/dev/zero` never ends). The whole read, `stat` and `open` included, runs in
a helper thread that the caller waits for at most `timeout_s`: a stuck network or FUSE filesystem
costs the caller that long, then an error, never a hang. A read still stuck there is abandoned
(a daemon thread; the process can still exit).

Errors are `UnreadableFile`, an OSError whose `strerror` says why and `filename` names the file, so
code that already turns OSError into "cannot read X: why" keeps doing so.
"""
from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT_S = 30.0
_CHUNK = 1 << 20


class UnreadableFile(OSError):
    """A file refused (not regular, too big) or not read in time."""

    def __init__(self, code: int, why: str, path: str | Path):
        super().__init__(code, why, str(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def not_regular(path: str | Path, mode: int) -> UnreadableFile:
    return UnreadableFile(errno.EINVAL, f"{file_kind(mode)}, not a regular file; not read", path)


def regular_file_problem(path: str | Path) -> str | None:
    """Why `path` (links followed) is no regular file to read, or None when it is one (or is
    missing: the read then says so). Only a `stat`, no open: safe on a FIFO or a device."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else not_regular(path, mode).strerror


def check_own_file(path: str | Path) -> None:
    """A file this process creates and reopens (a working copy in a shared temp dir) is absent or a
    regular file, not a link (its writes would land elsewhere) nor a FIFO (its open would block)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise UnreadableFile(errno.EINVAL, f"{file_kind(mode)}, not a regular file; not used (remove it)", path)


def _read(path: str | Path, max_bytes: int) -> bytes:
    mode = os.stat(path).st_mode  # before open: opening some devices acts (a tape rewinds)
    if not stat.S_ISREG(mode):
        raise not_regular(path, mode)
    # O_NONBLOCK: a FIFO swapped in after the stat opens without waiting for a writer; fstat then refuses it
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(path, st.st_mode)
        if st.st_size > max_bytes:
            raise UnreadableFile(errno.EFBIG, f"{st.st_size} bytes, over the limit of {max_bytes} bytes; not read",
                                 path)
        chunks, have = [], 0
        while chunk := os.read(fd, min(_CHUNK, max_bytes + 1 - have)):
            chunks.append(chunk)
            have += len(chunk)
            if have > max_bytes:  # grew while being read
                raise UnreadableFile(errno.EFBIG, f"over the limit of {max_bytes} bytes; not read", path)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_bytes(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
               timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
    """The whole content of the regular file `path`; UnreadableFile (or the OSError of the read,
    e.g. FileNotFoundError) otherwise."""
    box: dict[str, object] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["data"] = _read(path, max_bytes)
        except BaseException as e:  # handed to the caller
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, name="toolweave-safe-read", daemon=True).start()
    if not done.wait(max(timeout_s, 0.0)):
        raise UnreadableFile(errno.ETIMEDOUT, f"not read within {timeout_s:g} s (a stuck or slow filesystem?)",
                             path)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["data"]  # type: ignore[return-value]


def read_text(path: str | Path, *, encoding: str = "utf-8", max_bytes: int = DEFAULT_MAX_BYTES,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """`read_bytes` decoded (UnicodeDecodeError on bad text)."""
    return read_bytes(path, max_bytes=max_bytes, timeout_s=timeout_s).decode(encoding)
