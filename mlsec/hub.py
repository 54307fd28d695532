"""Models where they live: ``hf://ORG/NAME[@REVISION]`` on the Hugging Face Hub.

:func:`download` resolves the revision to a commit, lists the repository's files at that commit,
downloads each one with ``huggingface_hub`` into a private temporary directory, and checks every
file against what the Hub states for it: the LFS SHA-256 for LFS files, the git blob id (SHA-1 of
``blob <size>\\0<content>``) for the others, and the size for both. Only then does it hand back a
plain directory holding exactly the repository's files. Nothing is loaded.

The temporary directory is removed when the ``with`` block ends, on errors and on interrupts
alike (the CLI turns SIGTERM into an exception, see :class:`mlsec.cli.common.Interrupts`).

``huggingface_hub`` is imported only here, only when an ``hf://`` target is given. Tokens come
from where ``huggingface_hub`` looks for them (``HF_TOKEN``, its token file); ``HF_ENDPOINT``
points it at a mirror. Example::

    with download("hf://openai-community/gpt2@main") as model:
        report = scan([open_artifact(model.path)])
        print(model.source.target)   # hf://openai-community/gpt2@<40 hex digits>
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from mlsec.errors import MlsecError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

__all__ = [
    "SCHEME",
    "HubError",
    "HubFile",
    "HubModel",
    "HubSource",
    "download",
    "is_hub_target",
    "parse_target",
]

SCHEME = "hf://"
MAX_FILES = 100_000
_CHUNK = 1 << 20
_WORKERS = 8
# A Hub repository id: an owner and a name, each of letters, digits and ``-_.`` (no ``..``, not
# starting or ending with ``-`` or ``.``: huggingface_hub's own rule).
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"{_PART}/{_PART}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class HubError(MlsecError):
    """An ``hf://`` model cannot be had: malformed target, unknown repository or revision, the Hub
    cannot be reached, or a downloaded file differs from what the Hub states (exit 2)."""


@dataclass(frozen=True)
class HubSource:
    """Where a model came from: the repository, the revision asked for and the commit it named."""

    repo_id: str
    revision: str
    commit: str
    endpoint: str

    @property
    def target(self) -> str:
        """``hf://ORG/NAME@<commit>``: names exactly the bytes that were judged."""
        return f"{SCHEME}{self.repo_id}@{self.commit}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "huggingface",
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "endpoint": self.endpoint,
            "target": self.target,
        }


@dataclass(frozen=True)
class HubFile:
    """One file of the repository as the Hub states it."""

    path: str
    size: int
    blob_id: str  # git object id (of the LFS pointer, for LFS files)
    lfs_sha256: str | None


@dataclass(frozen=True)
class HubModel:
    """A downloaded, verified model: ``path`` is a directory holding the repository's files."""

    path: Path
    source: HubSource
    files: tuple[HubFile, ...]


def is_hub_target(target: str | os.PathLike[str]) -> bool:
    """True for ``hf://…``. Also for ``hf:/…``: what :class:`pathlib.Path` makes of ``hf://…``."""
    return os.fspath(target).startswith("hf:/")


def parse_target(target: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``hf://ORG/NAME[@REVISION]`` → (``ORG/NAME``, ``REVISION`` or None).

    >>> parse_target("hf://org/name@v1.0")
    ('org/name', 'v1.0')
    """
    text = os.fspath(target)
    if not is_hub_target(text):
        raise HubError(f"{text}: not an hf:// target")
    rest = text[len("hf:/") :].lstrip("/")
    repo, sep, revision = rest.partition("@")
    repo = repo.rstrip("/")
    if not _REPO_ID.fullmatch(repo) or ".." in repo or "--" in repo:
        raise HubError(
            f"{text}: expected hf://ORG/NAME[@REVISION]",
            hint="only model repositories are supported, e.g. hf://openai-community/gpt2@main",
        )
    if sep and (not revision or any(c.isspace() or ord(c) < 32 for c in revision)):
        raise HubError(f"{text}: empty or malformed revision after '@'")
    return repo, (revision if sep else None)


@contextlib.contextmanager
def download(
    target: str | os.PathLike[str],
    *,
    endpoint: str | None = None,
    token: str | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> Iterator[HubModel]:
    """Download and verify ``hf://ORG/NAME[@REVISION]``; the directory lives as long as the block.

    ``endpoint`` defaults to ``HF_ENDPOINT`` (read now, not at import) or the public Hub; ``token``
    to what ``huggingface_hub`` finds. Raises :class:`HubError` on any failure, removing what was
    written.
    """
    repo_id, revision = parse_target(target)
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise HubError(
            f"{os.fspath(target)}: hf:// targets need huggingface_hub",
            hint="pip install 'mlsec[hf]'",
        ) from None
    work = Path(tempfile.mkdtemp(prefix="mlsec-hf-", dir=tmp_dir))
    try:
        model = _fetch(repo_id, revision, endpoint, token, work)
        yield model
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch(
    repo_id: str, revision: str | None, endpoint: str | None, token: str | None, work: Path
) -> HubModel:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    where = f"{SCHEME}{repo_id}" + (f"@{revision}" if revision else "")
    with _hub_errors(where):
        info = api.model_info(repo_id, revision=revision)
    commit = info.sha
    if not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
        raise HubError(f"{where}: the Hub did not resolve the revision to a commit ({commit!r})")
    source = HubSource(
        repo_id=repo_id, revision=revision or "main", commit=commit, endpoint=_public(api.endpoint)
    )
    files = _list_files(api, repo_id, commit, where)
    cache = work / "cache"
    model_dir = work / repo_id.split("/")[1]
    model_dir.mkdir()
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        futures = [
            pool.submit(
                _get_one,
                repo_id,
                commit,
                f,
                cache,
                storage,
                model_dir,
                endpoint,
                token,
                where,
                cancel,
            )
            for f in files
        ]
        try:
            for fut in futures:
                fut.result()
        except BaseException:
            # Ctrl-C, SIGTERM or a failed file: start nothing more, and stop what is in flight at
            # its next chunk; the caller removes the directory once every worker has stopped.
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    shutil.rmtree(cache, ignore_errors=True)
    return HubModel(path=model_dir, source=source, files=files)


def _public(url: str) -> str:
    """The endpoint without any ``user:password@`` in it: it goes into results."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _list_files(api: HfApi, repo_id: str, commit: str, where: str) -> tuple[HubFile, ...]:
    from huggingface_hub.hf_api import RepoFile

    out: list[HubFile] = []
    seen: set[str] = set()
    with _hub_errors(where):
        for entry in api.list_repo_tree(repo_id, revision=commit, recursive=True):
            if not isinstance(entry, RepoFile):
                continue
            if len(out) >= MAX_FILES:
                raise HubError(f"{where}: more than {MAX_FILES} files")
            path = entry.path
            if not isinstance(path, str) or not _safe_relative(path) or path in seen:
                raise HubError(f"{where}: the Hub lists an unsafe or duplicate path {path!r}")
            seen.add(path)
            lfs = entry.lfs.sha256 if entry.lfs is not None else None
            size = entry.lfs.size if entry.lfs is not None else entry.size
            if (
                not isinstance(size, int)
                or size < 0
                or not isinstance(entry.blob_id, str)
                or not _COMMIT.fullmatch(entry.blob_id)
                or (lfs is not None and not (isinstance(lfs, str) and _SHA256.fullmatch(lfs)))
            ):
                raise HubError(f"{where}: {path}: the Hub states no usable digest or size for it")
            out.append(HubFile(path=path, size=size, blob_id=entry.blob_id, lfs_sha256=lfs))
    if not out:
        raise HubError(f"{where}: the repository has no files at commit {commit}")
    return tuple(out)


def _safe_relative(path: str) -> bool:
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _get_one(
    repo_id: str,
    commit: str,
    f: HubFile,
    cache: Path,
    storage: Path,
    model_dir: Path,
    endpoint: str | None,
    token: str | None,
    where: str,
    cancel: threading.Event,
) -> None:
    from huggingface_hub import hf_hub_download

    if cancel.is_set():
        return
    with _hub_errors(f"{where}: {f.path}"):
        got = hf_hub_download(
            repo_id,
            f.path,
            revision=commit,
            cache_dir=cache,
            endpoint=endpoint,
            token=token,
            tqdm_class=_silent_tqdm(cancel),
        )
    # The pointer hf_hub_download returns is named after the commit the server says it served.
    expected = storage / "snapshots" / commit / Path(*f.path.split("/"))
    if Path(got) != expected:
        raise HubError(f"{where}: {f.path}: served from another commit than {commit}")
    real = Path(os.path.realpath(got))
    if not real.is_relative_to(os.path.realpath(cache)) or not real.is_file():
        raise HubError(f"{where}: {f.path}: the download is not a regular file in the cache")
    _check(real, f, where)
    dest = model_dir.joinpath(*f.path.split("/"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A hard link keeps the verified bytes when the cache goes (one blob may back several paths).
    try:
        os.link(real, dest)
    except OSError:
        shutil.copyfile(real, dest)


def _check(path: Path, f: HubFile, where: str) -> None:
    """The file's size, and its LFS SHA-256 or git blob id, must be what the Hub states."""
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(f"blob {f.size}\0".encode(), usedforsecurity=False)
    read = 0
    with path.open("rb") as fh:
        while chunk := fh.read(min(_CHUNK, f.size + 1 - read)):
            read += len(chunk)
            if read > f.size:
                break
            sha256.update(chunk)
            blob.update(chunk)
    if read != f.size:
        raise HubError(f"{where}: {f.path}: size differs from the Hub's ({f.size} bytes)")
    if f.lfs_sha256 is not None:
        if sha256.hexdigest() != f.lfs_sha256:
            raise HubError(f"{where}: {f.path}: SHA-256 differs from the Hub's LFS digest")
    elif blob.hexdigest() != f.blob_id:
        raise HubError(f"{where}: {f.path}: content differs from the Hub's git blob id")


@contextlib.contextmanager
def _hub_errors(where: str) -> Iterator[None]:
    """huggingface_hub's and the network's errors as one-line :class:`HubError`."""
    from huggingface_hub import errors

    try:
        yield
    except MlsecError:
        raise
    except errors.GatedRepoError:
        raise HubError(f"{where}: gated repository", hint=_TOKEN_HINT) from None
    except errors.RepositoryNotFoundError:
        raise HubError(f"{where}: repository not found", hint=_TOKEN_HINT) from None
    except errors.RevisionNotFoundError:
        raise HubError(f"{where}: revision not found") from None
    except errors.EntryNotFoundError:
        raise HubError(f"{where}: file not found on the Hub") from None
    except Exception as exc:  # network, HTTP, cache: anything huggingface_hub raises
        raise HubError(f"{where}: download failed: {_first_line(exc)}") from None


_TOKEN_HINT = "a private or gated model needs a token: set HF_TOKEN or run `hf auth login`"  # noqa: S105


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _Cancelled(Exception):
    """Raised inside a worker's download to stop it (the run was interrupted or failed)."""


def _silent_tqdm(cancel: threading.Event) -> type[Any]:
    """A tqdm that draws nothing (the library never prints) and that stops the download it
    counts once ``cancel`` is set: huggingface_hub calls ``update`` after every chunk."""
    from huggingface_hub.utils.tqdm import tqdm

    class Silent(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

        def update(self, n: float | None = 1) -> bool | None:
            if cancel.is_set():
                raise _Cancelled
            return super().update(n)  # type: ignore[no-any-return]

    return Silent
