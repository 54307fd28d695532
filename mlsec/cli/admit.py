"""``mlsec admit``: the deployment gate: allow or deny a model under a policy, with reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlsec.cli.common import (
    ChainOpt,
    FormatOpt,
    IdentityOpt,
    IgnoreFileOpt,
    IssuerOpt,
    LazyProgress,
    OutputFormat,
    PublicKeyOpt,
    emit_json,
    emit_text,
    load_ignore,
    render_text,
)
from mlsec.cli.registry import PasswordStdinOpt, PlainHttpOpt, UsernameOpt

HELP_POLICY = "Policy file (YAML/JSON) or preset: default, strict, permissive."


def register(app: typer.Typer) -> None:
    app.command("admit")(admit_cmd)


def admit_cmd(
    path: Annotated[
        str,
        typer.Argument(
            metavar="PATH|REF",
            help="Model file or directory, or a registry/OCI-layout reference (see pull).",
        ),
    ],
    policy: Annotated[str, typer.Option("--policy", "-p", metavar="POLICY", help=HELP_POLICY)] = (
        "default"
    ),
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature",
            "-s",
            metavar="SIG",
            help="Model signature (default: PATH.sig when it exists and trust is given).",
        ),
    ] = None,
    key: PublicKeyOpt = None,
    certificate_chain: ChainOpt = None,
    identity: IdentityOpt = None,
    issuer: IssuerOpt = None,
    sbom: Annotated[
        Path | None,
        typer.Option("--sbom", metavar="BOM", help="CycloneDX SBOM of the model (JSON)."),
    ] = None,
    audit: Annotated[
        bool,
        typer.Option(
            "--audit",
            help="Without --sbom: audit the model's declared dependencies now (pip-audit).",
        ),
    ] = False,
    osv_url: Annotated[
        str | None, typer.Option("--osv-url", metavar="URL", help="An OSV-compatible service.")
    ] = None,
    age_identity: Annotated[
        list[Path] | None,
        typer.Option(
            "--age-identity", metavar="FILE", help="A REF sealed with age: identity file(s)."
        ),
    ] = None,
    plain_http: PlainHttpOpt = False,
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    ignorefile: IgnoreFileOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write the decision here."),
    ] = None,
) -> int:
    """Allow or deny a model under a policy: scan, signature, SBOM, vulnerabilities, formats,
    licences. Exit 0 allow, 1 deny (every reason is printed), 2 could not decide.

    A REF is pulled (every blob verified) with its attached signature and SBOM, then judged.
    """
    from mlsec.errors import UsageError
    from mlsec.policy.api import NO_TRUST, admit, policy_verifier, resolve_target
    from mlsec.policy.model import load_policy
    from mlsec.signing import default_signature_path

    pol = load_policy(policy)
    ignore = load_ignore(ignorefile)
    verifier = None
    if key or certificate_chain or identity or issuer:
        from mlsec.cli.sign import _verifier

        verifier = _verifier(key, certificate_chain or [], identity, issuer, None, False)
    elif signature is not None or pol.signature_required:
        verifier = policy_verifier(pol)
    if signature is not None and verifier is None:
        raise UsageError(NO_TRUST)
    from mlsec.cli.common import local_target

    path = local_target(path)
    target = resolve_target(path)
    if isinstance(target, Path):
        if signature is None and verifier is not None:
            implicit = default_signature_path(path)
            signature = implicit if implicit.is_file() else None
        decision = admit(
            target,
            pol,
            signature=signature,
            verifier=verifier,
            sbom=sbom,
            audit=audit,
            osv_url=osv_url,
            progress=LazyProgress(),
            ignore=ignore,
        )
    else:
        from mlsec.cli.registry import _identities, _open
        from mlsec.policy.api import admit_reference

        _, store = _open(path, plain_http, username, password_stdin)
        try:
            decision = admit_reference(
                path,
                pol,
                store=store,
                identities=_identities(age_identity or []),
                signature=signature,
                verifier=verifier,
                sbom=sbom,
                audit=audit,
                osv_url=osv_url,
                progress=LazyProgress(),
                ignore=ignore,
            )
        finally:
            store.close()
    if fmt is OutputFormat.JSON:
        emit_json(decision.to_dict(), output)
    else:
        from rich.table import Table

        verdict = "ALLOW" if decision.allowed else "DENY"
        from mlsec.cli.text import cell

        table = Table(title=cell(f"{verdict}: {path} under policy {pol.name!r}"))
        table.add_column("rule")
        table.add_column("result")
        table.add_column("reason")
        for c in decision.checks:
            table.add_row(cell(c.rule), "pass" if c.passed else "DENY", cell(c.message))
        if not decision.checks:
            table.add_row("-", "pass", "the policy sets no rule")
        text = render_text(table)
        emit_text(text, output)
    return 0 if decision.allowed else 1
