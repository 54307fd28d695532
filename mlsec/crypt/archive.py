"""Directory models: a deterministic tar stream encrypted into one age file, and safe, atomic
extraction of it.

The archive is a plain POSIX (pax) tar, so ``age -d -i key model.tar.age | tar x`` works too.
It is deterministic: entries sorted by path, mtime 0, uid/gid 0, no owner names, modes reduced
to 0644/0755. Only regular files and directories are archived; a symlink or a special file in the
model is an error (an archive that silently drops or follows them would not be the model).

Extraction trusts nothing in the archive: no absolute paths, no ``..``, no links, devices or
sparse files, no duplicate paths, bounded member count and size. It goes into a fresh temp
directory beside the destination, which is renamed into place only after the whole age file has
authenticated (the last chunk included), so a failure leaves nothing behind.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, cast

from mlsec.crypt.files import _named, _open_input, _output, default_mode
from mlsec.crypt.keys import MAX_SCRYPT_WORK_FACTOR, Identity, Recipient
from mlsec.crypt.stream import DecryptReader, EncryptWriter
from mlsec.errors import CryptError
from mlsec.secrets import Passphrase

if TYPE_CHECKING:
    from mlsec.progress import Progress

__all__ = ["ArchiveStats", "decrypt_extract", "encrypt_dir"]

MAX_MEMBERS = 100_000
MAX_SIZE = 1 << 40  # 1 TiB of extracted data
_COPY = 1 << 20


@dataclass(frozen=True)
class ArchiveStats:
    """What went into (or came out of) an encrypted directory archive."""

    files: int
    dirs: int
    bytes: int


def _walk(root: Path) -> list[tuple[str, Path, os.stat_result]]:
    """Every entry under ``root`` as (archive name, path, lstat), sorted; refuses links and
    special files."""
    out: list[tuple[str, Path, os.stat_result]] = []
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise CryptError(f"{directory}: cannot read: {exc.strerror or exc}") from None
        subdirs = []
        for entry in entries:
            path = Path(entry.path)
            st = entry.stat(follow_symlinks=False)
            name = f"{prefix}{entry.name}"
            if stat.S_ISLNK(st.st_mode):
                raise CryptError(f"{path}: is a symlink; only regular files are archived")
            if stat.S_ISDIR(st.st_mode):
                out.append((name, path, st))
                subdirs.append((path, f"{name}/"))
            elif stat.S_ISREG(st.st_mode):
                out.append((name, path, st))
            else:
                raise CryptError(f"{path}: is a special file; only regular files are archived")
        pending.extend(reversed(subdirs))
    out.sort(key=lambda item: item[0])
    return out


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & 0o100 else 0o644
    return info


def default_output(path: str | os.PathLike[str]) -> Path:
    """Where ``encrypt PATH`` writes by default: ``PATH.age`` beside a file, ``DIR.tar.age`` beside
    a directory (never inside it, also for ``.`` or ``model/``)."""
    p = Path(path)
    is_dir = p.is_dir()
    if is_dir:
        p = p.resolve()
    if not p.name:
        raise CryptError(f"{path}: give an output file with -o")
    return p.with_name(p.name + (".tar.age" if is_dir else ".age"))


def encrypt_dir(
    root: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    recipients: Sequence[Recipient | str] | Passphrase,
    *,
    armor: bool = False,
    overwrite: bool = False,
    mode: int | None = None,
    progress: Progress | None = None,
) -> ArchiveStats:
    """Encrypt the directory ``root`` as a deterministic tar inside one age file ``out_path``
    (atomically, like :func:`encrypt_file`)."""
    src, dest = Path(root), Path(out_path)
    if not src.is_dir():
        raise CryptError(f"{src}: not a directory")
    if dest.resolve().is_relative_to(src.resolve()):
        # It would change the model it seals (a later verify fails on the extra file).
        raise CryptError(f"{dest}: the output is inside the directory being encrypted")
    entries = _walk(src)
    files = [e for e in entries if stat.S_ISREG(e[2].st_mode)]
    total = sum(e[2].st_size for e in files)
    if progress is not None:
        progress.start(f"encrypting {src.name}", total)
    try:
        with (
            _output(dest, mode, overwrite) as dst,
            EncryptWriter(dst, recipients, armor=armor) as w,
            tarfile.open(
                fileobj=cast(BinaryIO, w), mode="w|", format=tarfile.PAX_FORMAT, bufsize=_COPY
            ) as tar,
        ):
            for name, path, st in entries:
                info = _info(name, st)
                if info.isdir():
                    tar.addfile(info)
                    continue
                with _open_input(path) as f:
                    if os.fstat(f.fileno()).st_size != st.st_size:
                        raise CryptError(f"{path}: changed while being archived")
                    tar.addfile(info, f)
                if progress is not None:
                    progress.advance(st.st_size)
    except OSError as exc:
        raise CryptError(f"{src} -> {dest}: I/O error: {exc.strerror or exc}") from None
    finally:
        if progress is not None:
            progress.finish()
    return ArchiveStats(len(files), len(entries) - len(files), total)


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not path.parts or name.startswith("/") or "\\" in name or "\0" in name or ".." in path.parts:
        raise CryptError(f"unsafe path in archive: {name!r}")
    return path


def decrypt_extract(
    in_path: str | os.PathLike[str],
    dest_dir: str | os.PathLike[str],
    identities: Sequence[Identity] | Passphrase,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    max_work_factor: int = MAX_SCRYPT_WORK_FACTOR,
    max_members: int = MAX_MEMBERS,
    max_size: int = MAX_SIZE,
) -> ArchiveStats:
    """Decrypt an age file made by :func:`encrypt_dir` (or ``tar c | age``) and extract it safely
    into the new directory ``dest_dir``, atomically: it appears only once the whole file has
    authenticated. An existing ``dest_dir`` is refused unless ``overwrite`` (then replaced)."""
    src_path, dest = Path(in_path), Path(dest_dir)
    if dest.exists() and not overwrite:
        raise CryptError(f"{dest}: already exists (use --force to overwrite)")
    parent = dest.parent
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=parent))
    except OSError as exc:
        raise CryptError(f"{dest}: cannot create: {exc.strerror or exc}") from None
    try:
        with _open_input(src_path) as src:
            if progress is not None:
                progress.start(f"decrypting {src_path.name}", os.fstat(src.fileno()).st_size)
            try:
                stats = _extract(
                    src, tmp, identities, max_work_factor, max_members, max_size, progress
                )
            except CryptError as exc:
                raise _named(exc, src_path, dest) from None
            except OSError as exc:
                raise CryptError(
                    f"{src_path} -> {dest}: I/O error: {exc.strerror or exc}"
                ) from None
        os.chmod(tmp, 0o777 & default_mode() | (0o111 & ~_umask()))
        _move_into_place(tmp, dest, overwrite)
        return stats
    finally:
        if progress is not None:
            progress.finish()
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    # Reading the umask means setting it; the moment in between errs on the private side.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _move_into_place(tmp: Path, dest: Path, overwrite: bool) -> None:
    try:
        if not dest.exists():
            os.rename(tmp, dest)
            return
        if not overwrite:
            raise CryptError(f"{dest}: already exists (use --force to overwrite)")
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
        os.rename(dest, old / "x")
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise CryptError(f"{dest}: cannot move into place: {exc.strerror or exc}") from None


class _Tail:
    """Passes ``read`` through, remembering the last two blocks handed out, so that what tarfile
    read ahead past the end of the archive can still be checked."""

    def __init__(self, inner: io.BufferedReader[DecryptReader]) -> None:
        self._inner = inner
        self._prev = self._last = b""
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self._prev, self._last = self._last, data
        self.count += len(data)
        return data

    def zeros_after(self, offset: int) -> bool:
        """True if every byte from ``offset`` to the end of the stream is zero."""
        ahead = self.count - offset
        recent = self._prev + self._last
        if ahead < 0 or ahead > len(recent):
            return False
        if ahead and recent[-ahead:].count(0) != ahead:
            return False
        while block := self._inner.read(_COPY):
            if block.count(0) != len(block):
                return False
        return True


def _extract(
    src: BinaryIO,
    root: Path,
    identities: Sequence[Identity] | Passphrase,
    max_work_factor: int,
    max_members: int,
    max_size: int,
    progress: Progress | None,
) -> ArchiveStats:
    reader = _Tail(
        io.BufferedReader(
            DecryptReader(src, identities, max_work_factor=max_work_factor),
            buffer_size=_COPY,
        )
    )
    files = dirs = total = 0
    seen: set[PurePosixPath] = set()
    file_mode = default_mode()
    exec_bits = 0o111 & ~_umask()
    try:
        tar = tarfile.open(fileobj=cast(BinaryIO, reader), mode="r|", bufsize=_COPY)  # noqa: SIM115
        for member in tar:
            if files + dirs >= max_members:
                raise CryptError(f"archive has more than {max_members} entries")
            if member.isdir() and member.name.rstrip("/") in (".", ""):
                continue  # `tar -C DIR -c .` names the root itself
            name = _safe_name(member.name)
            if name in seen:
                raise CryptError(f"duplicate path in archive: {member.name!r}")
            seen.add(name)
            target = root.joinpath(*name.parts)
            if member.isdir():
                target.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(target, 0o777 & default_mode() | exec_bits)
                dirs += 1
                continue
            if not member.isreg() or member.issparse():
                raise CryptError(
                    f"archive entry {member.name!r} is not a regular file or directory"
                )
            total += member.size
            if total > max_size:
                raise CryptError(f"archive expands to more than {max_size} bytes")
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            data = tar.extractfile(member)
            assert data is not None
            mode = file_mode | (exec_bits if member.mode & 0o100 else 0)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            with os.fdopen(fd, "wb") as out:
                remaining = member.size
                while remaining:
                    block = data.read(min(_COPY, remaining))
                    if not block:
                        raise CryptError(f"archive entry {member.name!r} is truncated")
                    out.write(block)
                    remaining -= len(block)
                    if progress is not None:
                        progress.advance(len(block))
            files += 1
        # The tar end marker is not the end of the age file: read on so that the final chunk
        # authenticates, and refuse anything but tar's zero padding after the archive (some of
        # which tarfile has already read ahead).
        if not reader.zeros_after(tar.offset):
            raise CryptError("data after the end of the archive")
    except tarfile.TarError as exc:
        raise CryptError(f"malformed archive: {exc}") from None
    return ArchiveStats(files, dirs, total)
