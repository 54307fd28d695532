"""Callables that deserialise their argument (nested loaders): ``torch.storage._load_from_bytes``
is ``torch.load`` of embedded bytes, ``pickle.loads``/``dill.loads``/``marshal.loads`` run what
they are given, ``numpy.load``/``joblib.load``/``pandas.read_pickle``/``shelve.open`` open a path.

A loader given a constant bytes argument is recorded so the driver scans those bytes as what they
are (a pickle, a PyTorch zip, …) and reports what is inside; one given anything else (a computed
object, a path, a value built while loading) cannot be checked and is critical."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlsec.scan.model import Severity
from mlsec.scan.pickle.values import BytesRef, StreamResult, describe

if TYPE_CHECKING:
    from mlsec.scan.pickle.semantics import Reporter

__all__ = ["MAX_NESTED", "MAX_PAYLOADS", "on_loader"]

MAX_NESTED = 256 * 1024 * 1024  # bytes of one embedded payload materialised for scanning
MAX_PAYLOADS = 4096  # embedded payloads scanned per stream

WHY = "A loader called while unpickling runs a second deserialisation the outer scan cannot see."


def on_loader(
    rep: Reporter, q: str, argv: tuple[object, ...], offset: int, res: StreamResult
) -> None:
    """Judge a call of the nested loader ``q`` with arguments ``argv``."""
    a = argv[0] if argv else None
    if isinstance(a, bytes | bytearray | BytesRef):
        if len(res.nested) >= MAX_PAYLOADS:
            rep.add(
                "PICKLE-NESTED-LOADER",
                Severity.HIGH,
                f"more than {MAX_PAYLOADS} embedded payloads in one stream; {q} at offset "
                f"{offset} was not scanned",
                f"{q}@{offset}",
                offset,
                WHY,
            )
            return
        if isinstance(a, BytesRef) and a.n > MAX_NESTED:
            rep.add(
                "PICKLE-NESTED-LOADER",
                Severity.HIGH,
                f"{q} deserialises {a.n} embedded bytes, more than the {MAX_NESTED} scanned",
                f"{q}@{offset}",
                offset,
                WHY,
            )
            return
        # Large constants stay references into the data: the driver reads them one at a time.
        res.nested.append((offset, a if isinstance(a, BytesRef) else bytes(a), q))
        return
    what = "a file path" if isinstance(a, str) else describe(a)
    rep.add(
        "PICKLE-NESTED-LOADER",
        Severity.CRITICAL,
        f"{q} deserialises {what}, not bytes embedded in the file: what it loads cannot be "
        "checked statically",
        f"{q}({what})",
        offset,
        WHY,
    )
