"""age v1 file encryption (C2SP age spec), interoperable with the ``age`` CLI both ways:
X25519 recipients (``age1…``) and identities (``AGE-SECRET-KEY-1…``), scrypt passphrases,
ASCII armor, streaming STREAM payload of 64 KiB ChaCha20-Poly1305 chunks in constant memory.
A directory model is a deterministic tar inside one age file (:func:`encrypt_dir`,
:func:`decrypt_extract`).

>>> from mlsec.crypt import generate_identity, encrypt_file, decrypt_file, parse_identities
>>> identity, recipient = generate_identity()
>>> encrypt_file("model.bin", "model.bin.age", [recipient])  # doctest: +SKIP
>>> decrypt_file("model.bin.age", "model.bin", parse_identities(identity))  # doctest: +SKIP
"""

from __future__ import annotations

from mlsec.crypt.archive import ArchiveStats, decrypt_extract, encrypt_dir
from mlsec.crypt.files import decrypt_file, default_mode, encrypt_file
from mlsec.crypt.header import AgeHeader, Stanza
from mlsec.crypt.keys import (
    DEFAULT_SCRYPT_WORK_FACTOR,
    MAX_SCRYPT_WORK_FACTOR,
    Identity,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
    generate_identity,
    load_identities,
    load_recipients,
    parse_identities,
    parse_recipient,
    parse_recipients,
)
from mlsec.crypt.stream import CHUNK_SIZE, DecryptReader, EncryptWriter, decrypt, encrypt
from mlsec.secrets import Passphrase

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_SCRYPT_WORK_FACTOR",
    "MAX_SCRYPT_WORK_FACTOR",
    "AgeHeader",
    "ArchiveStats",
    "DecryptReader",
    "EncryptWriter",
    "Identity",
    "Passphrase",
    "Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "decrypt",
    "decrypt_extract",
    "decrypt_file",
    "default_mode",
    "encrypt",
    "encrypt_dir",
    "encrypt_file",
    "generate_identity",
    "load_identities",
    "load_recipients",
    "parse_identities",
    "parse_recipient",
    "parse_recipients",
]
