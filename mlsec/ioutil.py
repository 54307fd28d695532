"""Reading and writing the files a user names: one place for the rules.

**Writing** (:func:`open_output`, :func:`write_output`), by what is already at the path:

- nothing: a new regular file appears atomically, complete or not at all. Where the file system
  supports ``O_TMPFILE`` the data goes to an unnamed file that is linked into place at the end,
  so not even ``SIGKILL`` or a power cut leaves a partial file; elsewhere a hidden temp file
  beside the target is fsync'ed and renamed (removed on any error or interrupt).
- a regular file: replaced the same way (only with ``overwrite``).
- a character device or a FIFO (``/dev/null``, ``/dev/stdout`` on a pipe, a named pipe): written
  in place, never replaced, removed or truncated into a regular file.
- a directory, a socket or a block device: refused (:class:`~mlsec.errors.UsageError`, exit 2).
- a file descriptor link (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``): written in
  place through that descriptor, whatever it is open on (a pipe, a terminal, a file the shell
  opened for ``> out.json``), as a shell would.
- another symlink: followed to what it points at, and that target is handled by the rules above
  (a link to a regular file keeps being a link, to the new content).
  A dangling symlink is refused, and so is a symlink in a sticky world-writable directory (like
  ``/tmp``) that belongs to someone else, the case the kernel's ``protected_symlinks`` guards.

**Reading** (:func:`read_capped`): at most ``limit + 1`` bytes are ever read, whatever ``stat``
says, so ``/dev/zero``, a FIFO or a growing file cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mlsec.errors import MlsecError, UsageError

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "check_output_target",
    "open_output",
    "read_capped",
    "write_output",
]

_BUFFER = 1 << 20


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a special file"


def _in_place(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _resolve_link(path: Path) -> Path:
    """Where the symlink ``path`` leads, or a refusal by the module's rule."""
    parent = path.parent
    try:
        link_st, dir_st = os.lstat(path), os.stat(parent)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {_reason(exc)}") from None
    sticky_shared = dir_st.st_mode & stat.S_ISVTX and dir_st.st_mode & stat.S_IWOTH
    if sticky_shared and link_st.st_uid not in (os.geteuid(), dir_st.st_uid):
        raise UsageError(
            f"{path}: is a symlink owned by someone else in a shared directory; refusing to "
            "follow it"
        )
    if not os.path.exists(path):
        raise UsageError(f"{path}: is a dangling symlink; refusing to write through it")
    return Path(os.path.realpath(path))


_FD_DIR = re.compile(r"/proc/(\d+)(?:/task/\d+)?/fd")


def _fd_link(path: Path) -> tuple[int, int] | None:
    """(pid, fd) when ``path`` is, or leads through symlinks to, a file descriptor link
    (``/dev/stdout``, ``/dev/fd/3``, ``/proc/self/fd/1``). Those are the kernel's magic links:
    their targets (``pipe:[…]``, a terminal, a file the shell opened) are not paths to resolve."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on a symlink chain
        parent, name = os.path.split(current)
        match = _FD_DIR.fullmatch(os.path.realpath(parent))
        if match and name.isdigit():
            return int(match.group(1)), int(name)
        if not os.path.islink(current):
            return None
        current = os.path.join(parent, os.readlink(current))
    return None


def check_output_target(path: str | os.PathLike[str], *, overwrite: bool = True) -> None:
    """Raise now what :func:`open_output` would refuse (so a command fails before its work)."""
    _target(Path(path), overwrite)


def _target(path: Path, overwrite: bool) -> tuple[Path, os.stat_result | None]:
    """The path to write (a symlink followed) and what is there now (None: nothing)."""
    if str(path) == "" or path.name in ("", ".", ".."):
        raise UsageError(f"{path}: is a directory")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path, None
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {_reason(exc)}") from None
    if stat.S_ISLNK(st.st_mode) and _fd_link(path) is not None:
        return path, st  # a file descriptor: written in place, as a shell's `> /dev/stdout`
    if stat.S_ISLNK(st.st_mode):
        real = _resolve_link(path)
        try:
            st = os.stat(real)
        except OSError as exc:
            raise UsageError(f"{path}: cannot write: {_reason(exc)}") from None
        path = real
    if stat.S_ISREG(st.st_mode):
        if not overwrite:
            raise _exists(path)
        return path, st
    if _in_place(st.st_mode):
        return path, st
    raise UsageError(f"{path}: is {_kind(st.st_mode)}; refusing to write to it")


@contextlib.contextmanager
def open_output(
    path: str | os.PathLike[str], mode: int = 0o644, *, overwrite: bool = True
) -> Iterator[BinaryIO]:
    """A binary file to write the output for ``path`` into, by the rules in the module doc.

    On a clean exit of the block the output is in place; on any exception (an interrupt too) a
    new or replaced file is not, and an existing one is untouched. ``mode`` applies to a new
    regular file. Refusals are :class:`~mlsec.errors.UsageError`; I/O failures stay ``OSError``
    for the caller to name.
    """
    dest, st = _target(Path(path), overwrite)
    fd_link = _fd_link(dest) if st is not None and stat.S_ISLNK(st.st_mode) else None
    if fd_link is not None:
        pid, number = fd_link
        # Our own descriptor is written through a duplicate (keeping the shell's O_APPEND and
        # offset); another process's is reopened through /proc.
        fd = (
            os.dup(number)
            if pid == os.getpid()
            else os.open(dest, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        )
        with os.fdopen(fd, "wb", buffering=_BUFFER) as f:
            yield f
        return
    if st is not None and _in_place(st.st_mode):
        # O_NOCTTY: a terminal named as output must not become our controlling terminal.
        fd = os.open(dest, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "wb", buffering=_BUFFER) as f:
            yield f
        return
    with _new_file(dest, mode, overwrite=overwrite) as f:
        yield f


_HAS_PROC_FD = os.path.isdir("/proc/self/fd")


def _open_unnamed(directory: Path) -> int | None:
    """An unnamed file in ``directory`` (``O_TMPFILE``), or None where that is not supported."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not _HAS_PROC_FD:
        return None
    try:
        return os.open(directory, flag | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | NotADirectoryError):
            raise
        return None  # EOPNOTSUPP, EISDIR (kernel without it), EINVAL: use a named temp file


@contextlib.contextmanager
def _new_file(dest: Path, mode: int, *, overwrite: bool) -> Iterator[BinaryIO]:
    directory = dest.parent
    fd = _open_unnamed(directory)
    named: Path | None = None  # the temp file's name while it has one
    if fd is None:
        named = directory / f".{dest.name}.{os.urandom(6).hex()}.part"
        fd = os.open(named, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=_BUFFER) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
            if named is None:
                named = _link_unnamed(f.fileno(), dest, overwrite)
        if named is not None:
            _commit(named, dest, overwrite)
            named = None
        _fsync_dir(directory)
    except BaseException:
        if named is not None:
            with contextlib.suppress(OSError):
                os.unlink(named)
        raise


def _exists(dest: Path) -> UsageError:
    return UsageError(f"{dest}: already exists (use --force to overwrite)")


def _link_unnamed(fd: int, dest: Path, overwrite: bool) -> Path | None:
    """Give the unnamed file ``fd`` the name ``dest`` (None: done), or, when ``dest`` exists and
    may be replaced, a temp name beside it for :func:`_commit` to rename."""
    source = f"/proc/self/fd/{fd}"
    # A directory fd makes CPython call linkat() (plain link() would not follow the /proc link).
    dfd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.link(source, dest.name, dst_dir_fd=dfd, follow_symlinks=True)
            return None
        except FileExistsError:
            if not overwrite:
                raise _exists(dest) from None
        temp = f".{dest.name}.{os.urandom(6).hex()}.part"
        os.link(source, temp, dst_dir_fd=dfd, follow_symlinks=True)
        return dest.parent / temp
    finally:
        os.close(dfd)


def _commit(named: Path, dest: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(named, dest)
        return
    try:  # never clobbers a file created meanwhile
        os.link(named, dest)
    except FileExistsError:
        raise _exists(dest) from None
    except OSError:  # a file system without hard links
        if os.path.lexists(dest):
            raise _exists(dest) from None
        os.replace(named, dest)
        return
    os.unlink(named)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_output(
    path: str | os.PathLike[str], data: bytes, mode: int = 0o644, *, overwrite: bool = True
) -> None:
    """Write ``data`` as the output ``path`` (see :func:`open_output`)."""
    with open_output(path, mode, overwrite=overwrite) as f:
        f.write(data)


# The historical names: every writer goes through the same rules.
atomic_open = open_output
atomic_write_bytes = write_output


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def read_capped(
    path: str | os.PathLike[str],
    limit: int,
    *,
    what: str = "file",
    error: type[MlsecError] = MlsecError,
) -> bytes:
    """The content of the user-named file ``path``, refused (``error``, one line) if it holds
    more than ``limit`` bytes. Reads at most ``limit + 1`` bytes whatever ``stat`` says, so
    devices, FIFOs and files that grow cannot make it read without end.

    >>> read_capped("/dev/zero", 1024, what="key file")  # doctest: +SKIP
    MlsecError: /dev/zero: larger than 1 KiB, not a key file
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {_reason(exc)}") from None
    chunks: list[bytes] = []
    total = 0
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise error(f"{path}: is a directory, not a {what}")
        while total <= limit:
            block = os.read(fd, min(_BUFFER, limit + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
    except OSError as exc:
        raise error(f"{path}: cannot read: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if total > limit:
        raise error(f"{path}: larger than {_size(limit)}, not a {what}")
    return b"".join(chunks)
