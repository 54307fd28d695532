"""``mlsec encrypt``, ``mlsec decrypt``, ``mlsec age-keygen``: age v1 files, interoperable with
the ``age`` CLI. Parsing and rendering only; the work is in :mod:`mlsec.crypt`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlsec.cli.common import LazyProgress, format_size, info, read_passphrase
from mlsec.cli.text import escape
from mlsec.errors import CryptError, UsageError
from mlsec.ioutil import check_output_target

if TYPE_CHECKING:
    from mlsec.crypt import Identity, Recipient
    from mlsec.secrets import Passphrase


def register(app: typer.Typer) -> None:
    app.command("encrypt")(encrypt_cmd)
    app.command("decrypt")(decrypt_cmd)
    app.command("age-keygen")(age_keygen_cmd)


PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        metavar="FILE",
        help="Read the passphrase from FILE (first line); implies -p. "
        "Else MLSEC_PASSPHRASE, else a prompt.",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]


def _passphrase(file: Path | None, *, confirm: bool, what: str) -> Passphrase:
    return read_passphrase(file, confirm=confirm, what=what, unencrypted_flag=None)


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _recipients(recipient: list[str], recipients_file: list[Path]) -> list[Recipient]:
    from mlsec.crypt import load_recipients, parse_recipient

    out: list[Recipient] = [parse_recipient(r) for r in recipient]
    for f in recipients_file:
        out.extend(load_recipients(f))
    return out


def encrypt_cmd(
    path: Annotated[Path, typer.Argument(metavar="IN", help="File to encrypt.")],
    recipient: Annotated[
        list[str] | None,
        typer.Option(
            "--recipient", "-r", metavar="RECIPIENT", help="age1… public key (repeatable)."
        ),
    ] = None,
    recipients_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--recipients-file",
            "-R",
            metavar="FILE",
            help="File of age1… recipients, one per line (repeatable).",
        ),
    ] = None,
    passphrase: Annotated[
        bool, typer.Option("--passphrase", "-p", help="Encrypt with a passphrase (scrypt).")
    ] = False,
    passphrase_file: PassphraseFile = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT",
            help="Default: IN.age beside IN (DIR.tar.age beside DIR).",
        ),
    ] = None,
    armor: Annotated[
        bool, typer.Option("--armor", "-a", help="PEM-armored (ASCII) output.")
    ] = False,
    force: ForceOpt = False,
) -> int:
    """Encrypt a file to age recipients or a passphrase (age v1, readable by `age -d`).

    A directory becomes one deterministic tar inside the age file (default OUT: IN.tar.age);
    `mlsec decrypt --extract DIR` (or `age -d ... | tar x`) unpacks it.
    """
    from mlsec.crypt import encrypt_dir, encrypt_file

    use_passphrase = passphrase or passphrase_file is not None
    if use_passphrase and (recipient or recipients_file):
        raise UsageError("a passphrase (-p) cannot be combined with recipients (-r/-R)")
    if not use_passphrase and not (recipient or recipients_file):
        raise UsageError("give recipients (-r RECIPIENT / -R FILE) or a passphrase (-p)")
    is_dir = path.is_dir()
    from mlsec.crypt.archive import default_output

    out = output or default_output(path)
    check_output_target(out, overwrite=force)  # refuse before asking for a passphrase
    targets: list[Recipient] | Passphrase
    if use_passphrase:
        targets = _passphrase(passphrase_file, confirm=True, what=str(out))
        to = "a passphrase"
    else:
        targets = _recipients(recipient or [], recipients_file or [])
        to = f"{len(targets)} recipient{'s' if len(targets) > 1 else ''}"
    if is_dir:
        stats = encrypt_dir(
            path, out, targets, armor=armor, overwrite=force, progress=LazyProgress()
        )
        what = f"{_files(stats.files)}, {format_size(stats.bytes)}"
    else:
        size = encrypt_file(
            path, out, targets, armor=armor, overwrite=force, progress=LazyProgress()
        )
        what = format_size(size)
    print(escape(f"encrypted {path} ({what}) to {to} -> {out}"))
    return 0


def decrypt_cmd(
    path: Annotated[Path, typer.Argument(metavar="IN", help="age file (binary or armored).")],
    identity: Annotated[
        list[Path] | None,
        typer.Option(
            "--identity",
            "-i",
            metavar="FILE",
            help="Identity file (AGE-SECRET-KEY-1… lines; repeatable).",
        ),
    ] = None,
    passphrase: Annotated[
        bool, typer.Option("--passphrase", "-p", help="Decrypt with a passphrase.")
    ] = False,
    passphrase_file: PassphraseFile = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="OUT", help="Default: IN without .age."),
    ] = None,
    extract: Annotated[
        Path | None,
        typer.Option(
            "--extract",
            "-x",
            metavar="DIR",
            help="The file holds a tar (from encrypting a directory): extract it safely into "
            "the new directory DIR.",
        ),
    ] = None,
    force: ForceOpt = False,
) -> int:
    """Decrypt an age file. The output appears only once the whole file has authenticated."""
    from mlsec.crypt import decrypt_extract, decrypt_file, load_identities

    use_passphrase = passphrase or passphrase_file is not None
    if use_passphrase and identity:
        raise UsageError("a passphrase (-p) cannot be combined with identities (-i)")
    if not use_passphrase and not identity:
        raise UsageError("give an identity file (-i FILE) or a passphrase (-p)")
    if extract is not None and output is not None:
        raise UsageError("--extract and --output cannot be combined")
    if extract is not None:
        output = extract
    elif output is None:
        if path.suffix != ".age" or path.name == ".age":
            raise UsageError(f"{path}: does not end in .age; give the output file with -o")
        output = path.with_name(path.name[: -len(".age")])
    if not path.exists():
        raise CryptError(f"{path}: no such file")
    if extract is not None:
        if output.exists() and not force:
            raise CryptError(f"{output}: already exists (use --force to overwrite)")
    else:
        check_output_target(output, overwrite=force)  # refuse before asking for a passphrase
    keys: list[Identity] | Passphrase
    if use_passphrase:
        keys = _passphrase(passphrase_file, confirm=False, what=str(path))
    else:
        keys = [k for f in identity or [] for k in load_identities(f)]
    if extract is not None:
        stats = decrypt_extract(path, extract, keys, overwrite=force, progress=LazyProgress())
        total = format_size(stats.bytes)
        print(escape(f"decrypted {path} -> {extract}/ ({_files(stats.files)}, {total})"))
        return 0
    size = decrypt_file(path, output, keys, overwrite=force, progress=LazyProgress())
    print(escape(f"decrypted {path} -> {output} ({format_size(size)})"))
    return 0


def age_keygen_cmd(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write the identity here (mode 0600)."),
    ] = None,
    to_public: Annotated[
        Path | None,
        typer.Option(
            "-y", "--to-public", metavar="FILE", help="Print the recipients of an identity file."
        ),
    ] = None,
    force: ForceOpt = False,
) -> int:
    """Create an age X25519 identity (like age-keygen). With -o, prints its recipient."""
    from datetime import UTC, datetime

    from mlsec.crypt import generate_identity, load_identities

    if to_public is not None:
        if output is not None:
            raise UsageError("-y cannot be combined with -o")
        for ident in load_identities(to_public):
            print(ident.recipient())
        return 0
    identity, recipient = generate_identity()
    created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    if output is None:
        sys.stdout.write(text)
        return 0
    from mlsec.ioutil import write_output

    try:
        write_output(output, text.encode(), mode=0o600, overwrite=force)
    except OSError as exc:
        raise CryptError(f"{output}: cannot write: {exc.strerror or exc}") from None
    private = " (mode 0600)" if output.is_file() and not output.is_symlink() else ""
    info(f"wrote {output}{private}; public key: {recipient}")
    print(recipient)
    return 0
