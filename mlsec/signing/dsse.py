"""DSSE v1: the pre-authentication encoding (PAE) that signatures cover, and its v0.2 bug twin."""

from __future__ import annotations

__all__ = ["IN_TOTO_PAYLOAD_TYPE", "pae", "pae_compat"]

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> bytes:
    """``DSSEv1 <len(type)> <type> <len(payload)> <payload>`` with decimal byte lengths.

    >>> pae(b"{}")
    b'DSSEv1 28 application/vnd.in-toto+json 2 {}'
    """
    ptype = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)


def pae_compat(payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> bytes:
    """The encoding ``model_signing`` 0.2 signed by mistake (``DSSEV1`` and the bytes' ``repr``).

    Only ever used to *verify* 2024 bundles, never to sign.
    """
    return f"DSSEV1 {len(payload_type)} {payload_type} {len(payload)} {payload!r}".encode()
