"""``mlsec push`` and ``mlsec pull``: models to and from OCI registries and layout directories.

Parsing and rendering only; the work is in :mod:`mlsec.registry`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlsec.cli.common import LazyProgress, OutputFormat, emit_json, format_size, info
from mlsec.cli.text import escape
from mlsec.errors import UsageError
from mlsec.schemas import Schema, envelope

if TYPE_CHECKING:
    from mlsec.crypt import Identity, Recipient
    from mlsec.registry import Credentials, Reference, Store

PUSH_SCHEMA = Schema.PUSH
PULL_SCHEMA = Schema.PULL
PASSWORD_ENV = "MLSEC_REGISTRY_PASSWORD"  # noqa: S105 - the name of a variable, not a secret

REF_HELP = (
    "HOST[:PORT]/REPO[:TAG] (a registry), oci:DIR[:TAG] (an OCI layout directory), "
    "or NAME[:TAG] (the local store, $MLSEC_HOME/oci/NAME)."
)
FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", metavar="table|json", help="Output format.")
]
PlainHttpOpt = Annotated[
    bool,
    typer.Option("--plain-http", help="Use HTTP instead of HTTPS (always the case for localhost)."),
]
UsernameOpt = Annotated[
    str | None,
    typer.Option(
        "--username",
        "-u",
        metavar="USER",
        help=f"Registry user; the password comes from {PASSWORD_ENV} or --password-stdin. "
        "Without it, ~/.docker/config.json auths are used.",
    ),
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the registry password from stdin.")
]


def register(app: typer.Typer) -> None:
    app.command("push")(push_cmd)
    app.command("pull")(pull_cmd)


def _credentials(username: str | None, password_stdin: bool) -> Credentials | None:
    from mlsec.registry import Credentials

    if username is None:
        if password_stdin:
            raise UsageError("--password-stdin needs --username")
        return None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise UsageError(
            f"--username {username}: no password",
            hint=f"set {PASSWORD_ENV} or pipe it to --password-stdin",
        )
    return Credentials(username, password)


def _open(
    ref: str, plain_http: bool, username: str | None, password_stdin: bool
) -> tuple[Reference, Store]:
    from mlsec.registry import open_store, parse_reference

    reference = parse_reference(ref)
    creds = _credentials(username, password_stdin)
    return reference, open_store(reference, plain_http=plain_http, credentials=creds)


def _recipients(values: list[str]) -> list[Recipient]:
    from mlsec.crypt import parse_recipient

    return [parse_recipient(v) for v in values]


def _identities(files: list[Path]) -> list[Identity]:
    from mlsec.crypt import load_identities

    return [i for f in files for i in load_identities(f)]


def push_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Model file or directory.")],
    ref: Annotated[str, typer.Argument(metavar="REF", help=REF_HELP)],
    signature: Annotated[
        Path | None,
        typer.Option("--signature", metavar="SIG", help="Attach this signature bundle."),
    ] = None,
    sbom: Annotated[
        Path | None, typer.Option("--sbom", metavar="FILE", help="Attach this CycloneDX SBOM.")
    ] = None,
    attach_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--attach",
            metavar="ATT",
            help="Attach this attestation (mlsec attest) about the model; repeatable.",
        ),
    ] = None,
    plain_http: PlainHttpOpt = False,
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    fmt: FormatOpt = OutputFormat.TABLE,
    ignore: Annotated[
        list[str] | None,
        typer.Option("--ignore", metavar="PATTERN", help="Path or glob to leave out."),
    ] = None,
    allow_symlinks: Annotated[
        bool,
        typer.Option("--allow-symlinks", help="Follow symlinks that stay inside the artifact."),
    ] = False,
    encrypt_to: Annotated[
        list[str] | None,
        typer.Option(
            "--encrypt-to",
            metavar="RECIPIENT",
            help="Seal the model with age for this recipient (age1…); repeatable.",
        ),
    ] = None,
) -> int:
    """Push a model as an OCI artifact (one layer per file), with its signature and SBOM.

    REF is HOST[:PORT]/REPO[:TAG] (a registry; HTTPS except for localhost), oci:DIR[:TAG] (an
    OCI image-layout directory) or NAME[:TAG] (the local store, $MLSEC_HOME/oci/NAME).
    Exit 0 pushed, 2 any failure.
    """
    from mlsec.registry.publish import publish

    reference, store = _open(ref, plain_http, username, password_stdin)
    try:
        result = publish(
            path,
            reference,
            store=store,
            signature=signature,
            sbom=sbom,
            attestations=list(attach_files or []),
            ignore=list(ignore or []),
            allow_symlinks=allow_symlinks,
            recipients=_recipients(encrypt_to or []),
            progress=LazyProgress(),
        )
    finally:
        store.close()
    if fmt is OutputFormat.JSON:
        emit_json(envelope(PUSH_SCHEMA, result.to_dict()))
        return 0
    print(escape(f"pushed   {result.reference}"))
    print(f"digest   {result.digest}")
    print(
        f"layers   {result.layers} ({format_size(result.total_bytes)}; "
        f"{format_size(result.bytes_uploaded)} uploaded, "
        f"{result.blobs_skipped} blob(s) already there)"
    )
    for r in result.referrers:
        where = f" (tag {r.fallback_tag})" if r.fallback_tag else ""
        print(f"referrer {r.digest} {r.artifact_type}{where}")
    return 0


def pull_cmd(
    ref: Annotated[str, typer.Argument(metavar="REF", help=REF_HELP)],
    dest: Annotated[Path, typer.Argument(metavar="DEST", help="Directory to create.")],
    with_referrers: Annotated[
        bool,
        typer.Option(
            "--with-referrers",
            help="Also write attached signatures, SBOMs and attestations as DEST.sig,"
            " DEST.cdx.json and DEST.TYPE.att.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a non-empty DEST (after verification).")
    ] = False,
    plain_http: PlainHttpOpt = False,
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    fmt: FormatOpt = OutputFormat.TABLE,
    identity: Annotated[
        list[Path] | None,
        typer.Option(
            "--age-identity",
            "--identity",
            "-i",
            metavar="FILE",
            help="Open a model sealed with --encrypt-to (age identity file); repeatable.",
        ),
    ] = None,
) -> int:
    """Pull a model; every file's SHA-256 and size is verified before DEST appears.

    REF is HOST[:PORT]/REPO[:TAG|@sha256:HEX], oci:DIR[:TAG] or NAME[:TAG] (see push). DEST is a
    directory that must not exist or be empty (--force replaces it once all is verified); a
    failed pull leaves nothing behind. Exit 0 pulled, 2 any failure (digest mismatch included).
    """
    from mlsec.registry import pull

    keys = _identities(identity or [])
    reference, store = _open(ref, plain_http, username, password_stdin)
    try:
        if keys:
            from mlsec.registry.sealed import pull_decrypted

            result = pull_decrypted(
                reference,
                dest,
                keys,
                store=store,
                progress=LazyProgress(),
                force=force,
                with_referrers=with_referrers,
            )
        else:
            result = pull(
                reference,
                dest,
                store=store,
                progress=LazyProgress(),
                force=force,
                with_referrers=with_referrers,
            )
    finally:
        store.close()
    if fmt is OutputFormat.JSON:
        emit_json(envelope(PULL_SCHEMA, result.to_dict()))
        return 0
    print(escape(f"pulled   {result.reference}"))
    print(f"digest   {result.digest}")
    if result.extracted is None:
        n = len(result.files)
        print(
            escape(
                f"files    {n} file{'s' if n != 1 else ''} ({format_size(result.total_bytes)},"
                f" all digests verified) -> {result.dest}"
            )
        )
    else:
        n = len(result.extracted)
        size = format_size(sum(s for _, s in result.extracted))
        print(
            escape(
                f"sealed   1 layer ({format_size(result.total_bytes)}, digest verified,"
                f" authenticated) -> {n} file{'s' if n != 1 else ''} ({size}) in {result.dest}"
            )
        )
        for path, _ in result.extracted:
            print(escape(f"  {path}"))
    for p in result.referrer_files:
        print(escape(f"referrer {p}"))
    if with_referrers and not result.referrer_files:
        info("mlsec: no referrers attached to this model")
    return 0
