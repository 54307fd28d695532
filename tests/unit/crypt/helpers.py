"""Shared helpers for the crypt tests: the real `age` CLI (also through a pseudo-terminal, since
age reads passphrases only from a terminal) and small age files made at test time."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import time
from pathlib import Path

from mlsec.crypt import Passphrase, decrypt, encrypt, generate_identity, parse_identities


def age(
    *args: str | os.PathLike[str], input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["age", *map(str, args)], input=input, capture_output=True, timeout=60, check=False
    )


def age_keygen(path: Path) -> str:
    """Write an identity with the real age-keygen; return its recipient."""
    subprocess.run(["age-keygen", "-o", str(path)], capture_output=True, check=True, timeout=30)
    proc = subprocess.run(
        ["age-keygen", "-y", str(path)], capture_output=True, text=True, check=True, timeout=30
    )
    return proc.stdout.strip()


def age_with_tty(argv: list[str], passphrase: bytes, timeout: float = 30) -> tuple[int, bytes]:
    """Run age in a pseudo-terminal, answering every passphrase prompt with ``passphrase``."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    seen = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            seen += data
            prompts = seen.lower().count(b"passphrase")
            while answered < prompts:
                os.write(fd, passphrase + b"\n")
                answered += 1
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


class Keys:
    """One X25519 key pair, as strings and parsed."""

    def __init__(self) -> None:
        self.identity, self.recipient = generate_identity()
        self.identities = parse_identities(self.identity)

    def write(self, path: Path) -> Path:
        path.write_text(f"# test key\n{self.identity}\n")
        return path


def seal(data: bytes, recipients: list[str] | Passphrase, armor: bool = False) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(data), out, recipients, armor=armor)
    return out.getvalue()


def unseal(blob: bytes, identities: object) -> bytes:
    out = io.BytesIO()
    decrypt(io.BytesIO(blob), out, identities)  # type: ignore[arg-type]
    return out.getvalue()


def header_end(blob: bytes) -> int:
    """Offset of the first byte after the header's MAC line (where the nonce starts)."""
    mac = blob.index(b"\n--- ") + 1
    return blob.index(b"\n", mac) + 1
