"""File helpers: outputs appear only after success (see :mod:`mlsec.ioutil`), so a failed,
tampered or interrupted encryption or decryption leaves nothing behind and never clobbers an
existing file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mlsec.crypt.keys import MAX_SCRYPT_WORK_FACTOR, Identity, Recipient
from mlsec.crypt.stream import decrypt, encrypt
from mlsec.errors import CryptError, UsageError
from mlsec.ioutil import open_output
from mlsec.secrets import Passphrase

if TYPE_CHECKING:
    from mlsec.progress import Progress

__all__ = ["decrypt_file", "default_mode", "encrypt_file"]

_IO_BUFFER = 1 << 20


def default_mode() -> int:
    """The mode a new file gets from the umask, minus world-write (never world-writable)."""
    # Reading the umask means setting it; the moment in between errs on the private side.
    mask = os.umask(0o077)
    os.umask(mask)
    return 0o666 & ~mask & ~0o002


@contextlib.contextmanager
def _output(dest: Path, mode: int | None, overwrite: bool) -> Iterator[BinaryIO]:
    """Where an output goes, by :func:`mlsec.ioutil.open_output`'s rules: a new or replaced file
    appears only when the block succeeds (unnamed until then where the file system allows, so
    not even SIGKILL leaves a partial file); a FIFO or a device is written in place."""
    try:
        opened = open_output(dest, default_mode() if mode is None else mode, overwrite=overwrite)
        f = opened.__enter__()
    except UsageError as exc:  # a refused target: this library's error, same message
        raise CryptError(exc.message, hint=exc.hint) from None
    except OSError as exc:
        raise CryptError(f"{dest}: cannot write: {exc.strerror or exc}") from None
    try:
        yield f
    except BaseException as exc:
        opened.__exit__(type(exc), exc, exc.__traceback__)
        raise
    try:
        opened.__exit__(None, None, None)
    except UsageError as exc:
        raise CryptError(exc.message, hint=exc.hint) from None
    except OSError as exc:
        raise CryptError(f"{dest}: cannot write: {exc.strerror or exc}") from None


def _open_input(path: Path) -> BinaryIO:
    try:
        if path.is_dir():
            raise CryptError(f"{path}: is a directory")
        return open(path, "rb", buffering=_IO_BUFFER)
    except FileNotFoundError:
        raise CryptError(f"{path}: no such file") from None
    except OSError as exc:
        raise CryptError(f"{path}: cannot read: {exc.strerror or exc}") from None


def encrypt_file(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    recipients: Sequence[Recipient | str] | Passphrase,
    *,
    armor: bool = False,
    overwrite: bool = False,
    mode: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Encrypt the file ``in_path`` to ``out_path`` atomically; return the plaintext size.

    ``mode`` defaults to the umask's, never world-writable. Refuses to replace an existing
    ``out_path`` unless ``overwrite``.
    """
    src_path, dest = Path(in_path), Path(out_path)
    with _open_input(src_path) as src:
        if progress is not None:
            progress.start(f"encrypting {src_path.name}", os.fstat(src.fileno()).st_size)
        try:
            with _output(dest, mode, overwrite) as dst:
                return encrypt(src, dst, recipients, armor=armor, progress=progress)
        except CryptError as exc:
            raise _named(exc, src_path, dest) from None
        except OSError as exc:
            raise CryptError(f"{src_path} -> {dest}: I/O error: {exc.strerror or exc}") from None
        finally:
            if progress is not None:
                progress.finish()


def decrypt_file(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    identities: Sequence[Identity] | Passphrase,
    *,
    overwrite: bool = False,
    mode: int | None = None,
    progress: Progress | None = None,
    max_work_factor: int = MAX_SCRYPT_WORK_FACTOR,
) -> int:
    """Decrypt the age file ``in_path`` to ``out_path``; return the plaintext size.

    The plaintext goes to a temp file beside ``out_path`` that is moved into place only after
    the final chunk authenticates: on any error nothing is left behind and an existing
    ``out_path`` is untouched. Refuses to replace an existing ``out_path`` unless ``overwrite``.
    """
    src_path, dest = Path(in_path), Path(out_path)
    with _open_input(src_path) as src:
        if progress is not None:
            progress.start(f"decrypting {src_path.name}", os.fstat(src.fileno()).st_size)
        try:
            with _output(dest, mode, overwrite) as dst:
                return decrypt(
                    src, dst, identities, progress=progress, max_work_factor=max_work_factor
                )
        except CryptError as exc:
            raise _named(exc, src_path, dest) from None
        except OSError as exc:
            raise CryptError(f"{src_path} -> {dest}: I/O error: {exc.strerror or exc}") from None
        finally:
            if progress is not None:
                progress.finish()


def _named(exc: CryptError, src: Path, dest: Path) -> CryptError:
    """Prefix the input file's name unless the message already names a file."""
    if exc.message.startswith((f"{src}:", f"{dest}:")):
        return exc
    return CryptError(f"{src}: {exc.message}", hint=exc.hint)
