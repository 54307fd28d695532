"""``mlsec attest``: signed statements about a model (scan verdict, SBOM, SLSA provenance).

Parsing and rendering only; the work is in :mod:`mlsec.attest`. ``verify --attestation`` (in
:mod:`mlsec.cli.sign`) calls :func:`verify_attestation_cmd` here.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlsec.cli.common import (
    FormatOpt,
    IgnoreFileOpt,
    IgnoreOpt,
    LazyProgress,
    OutputFormat,
    emit_json,
    info,
    plural,
)
from mlsec.cli.scan import FailOn
from mlsec.cli.sign import Method, PassphraseFile, _signer, _write
from mlsec.cli.text import escape
from mlsec.errors import UsageError, VerificationError
from mlsec.schemas import Schema, envelope

if TYPE_CHECKING:
    from mlsec.artifact import Artifact
    from mlsec.attest import AttestationCheck
    from mlsec.signing import Verifier

ATTEST_SCHEMA = Schema.ATTEST


class AttestType(StrEnum):
    """--type values (the same as :class:`mlsec.attest.Kind`)."""

    SCAN = "scan"
    SBOM = "sbom"
    PROVENANCE = "provenance"


def register(app: typer.Typer) -> None:
    app.command("attest")(attest_cmd)


def _open(path: Path, ignore: list[str], own: list[Path]) -> Artifact:
    from mlsec.artifact import open_artifact

    # An attestation (or an SBOM) kept inside the model cannot describe itself: leave it out.
    excluded = [*ignore, *(os.path.abspath(p) for p in own)]
    return open_artifact(path, ignore=excluded, digests=True, progress=LazyProgress())


def attest_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Model file or directory.")],
    kind: Annotated[
        AttestType,
        typer.Option(
            "--type", "-t", metavar="scan|sbom|provenance", help="What the attestation says."
        ),
    ],
    key: Annotated[
        Path | None, typer.Option("--key", "-k", metavar="KEY", help="PEM EC private key.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Attestation file (default: PATH.TYPE.att)."
        ),
    ] = None,
    method: Annotated[Method, typer.Option("--method", help="Signing method.")] = Method.KEY,
    signing_certificate: Annotated[
        Path | None,
        typer.Option("--signing-certificate", metavar="PEM", help="Leaf certificate of --key."),
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate-chain", metavar="PEM", help="Intermediate/root certs (repeatable)."
        ),
    ] = None,
    identity_token: Annotated[
        str | None,
        typer.Option("--identity-token", metavar="JWT", help="OIDC token for --method sigstore."),
    ] = None,
    trust_config: Annotated[
        Path | None,
        typer.Option("--trust-config", metavar="JSON", help="Sigstore ClientTrustConfig."),
    ] = None,
    passphrase_file: PassphraseFile = None,
    ignore: IgnoreOpt = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(
            "--fail-on",
            metavar="critical|high|medium|low",
            help="scan: the verdict fails (exit 1) when a finding reaches this severity.",
        ),
    ] = FailOn.MEDIUM,
    allow_global: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-global", metavar="MODULE.NAME", help="scan: also trust this pickle global."
        ),
    ] = None,
    ignorefile: IgnoreFileOpt = None,
    sbom: Annotated[
        Path | None,
        typer.Option("--sbom", metavar="BOM", help="sbom: this CycloneDX JSON (default: built)."),
    ] = None,
    predicate: Annotated[
        Path | None,
        typer.Option("--predicate", metavar="JSON", help="provenance: a SLSA v1 predicate file."),
    ] = None,
    builder_id: Annotated[
        str | None,
        typer.Option("--builder-id", metavar="URI", help="provenance: who built the model."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", metavar="URI", help="provenance: the training code."),
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            metavar="URI[@sha256:HEX]",
            help="provenance: a training dataset (repeatable).",
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> int:
    """Sign a statement about a model: its scan verdict, its SBOM or its SLSA provenance.

    The subject is the model's root digest (as `mlsec sign` computes it) and each file's
    SHA-256. --type scan runs the scan itself and writes the attestation even when the verdict
    fails, then exits 1. Exit 0 written, 1 scan verdict failed, 2 could not attest.
    """
    from mlsec.attest import Kind, attest, default_attestation_path, predicate_type

    k = Kind(kind.value)
    _check_flags(k, sbom, predicate, builder_id, source, dataset, allow_global)
    if output is None and str(path).startswith("hf:/"):
        raise UsageError("an hf:// model has no directory to write beside: give -o FILE")
    out = output or Path(default_attestation_path(str(path), k))
    from mlsec.cli.common import local_target

    signer = _signer(
        method,
        key,
        passphrase_file,
        signing_certificate,
        certificate_chain or [],
        identity_token,
        trust_config,
    )
    path = local_target(path)  # downloaded only once the signer is usable
    art = _open(path, ignore or [], [out, *([sbom] if sbom else [])])
    failed = False
    match k:
        case Kind.SCAN:
            body, failed = _scan_predicate(art, fail_on, allow_global or [], ignorefile)
        case Kind.SBOM:
            body = _sbom_predicate(art, sbom)
        case Kind.PROVENANCE:
            from mlsec.attest import load_provenance, provenance_predicate

            if predicate is not None:
                body = load_provenance(predicate)
            else:
                assert builder_id is not None
                body = provenance_predicate(builder_id, source=source, datasets=dataset or [])
    ptype = predicate_type(k)
    attested = attest(art, ptype, body, signer)
    _write(out, attested.bundle.to_json())
    if fmt is OutputFormat.JSON:
        from mlsec.attest import summarize

        emit_json(
            envelope(
                ATTEST_SCHEMA,
                {
                    "model": str(path),
                    "attestation": str(out),
                    "type": k.value,
                    "predicate_type": ptype,
                    "method": method.value,
                    "root_digest": f"sha256:{attested.statement.root_digest}",
                    "files": len(attested.statement.files),
                    "summary": summarize(ptype, body),
                },
            )
        )
    else:
        what = f"{k.value} attestation"
        if k is Kind.SCAN:
            what += f" (verdict {'FAIL' if failed else 'pass'} at --fail-on {fail_on.value})"
        print(
            escape(
                f"wrote {what} for {path}: root sha256:{attested.statement.root_digest} -> {out}"
            )
        )
    return 1 if failed else 0


def _check_flags(
    k: object,
    sbom: Path | None,
    predicate: Path | None,
    builder_id: str | None,
    source: str | None,
    dataset: list[str] | None,
    allow_global: list[str] | None,
) -> None:
    from mlsec.attest import Kind

    given = {
        "--sbom": (sbom is not None, Kind.SBOM),
        "--predicate": (predicate is not None, Kind.PROVENANCE),
        "--builder-id": (builder_id is not None, Kind.PROVENANCE),
        "--source": (source is not None, Kind.PROVENANCE),
        "--dataset": (bool(dataset), Kind.PROVENANCE),
        "--allow-global": (bool(allow_global), Kind.SCAN),
    }
    for flag, (present, owner) in given.items():
        if present and owner is not k:
            raise UsageError(f"{flag} applies to --type {owner.value}, not --type {k}")
    if k is Kind.PROVENANCE:
        if predicate is not None and (builder_id or source or dataset):
            raise UsageError("--predicate and --builder-id/--source/--dataset exclude each other")
        if predicate is None and not builder_id:
            raise UsageError(
                "--type provenance needs --predicate FILE or --builder-id URI",
                hint="e.g. --builder-id https://github.com/ORG/REPO/.github/workflows/train.yml",
            )
    for name in allow_global or ():
        if "." not in name.strip(".") or any(c.isspace() for c in name):
            raise UsageError(f"--allow-global {name!r}: expected an exact module.name")


def _scan_predicate(
    art: Artifact, fail_on: FailOn, allow_global: list[str], ignorefile: Path | None
) -> tuple[dict[str, object], bool]:
    from mlsec.attest import scan_predicate
    from mlsec.cli.scan import _apply_ignore
    from mlsec.scan import ScanOptions, Severity, scan

    allowed = frozenset(allow_global)
    report = _apply_ignore(scan(art, ScanOptions(allow_globals=allowed)), [art], ignorefile)
    threshold = Severity(fail_on.value)
    failed = report.failed(threshold)
    if failed:
        counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
        info(f"mlsec: scan verdict FAILS at --fail-on {fail_on.value}: {counts}")
    return scan_predicate(report, threshold, allow_globals=allowed), failed


def _sbom_predicate(art: Artifact, sbom: Path | None) -> dict[str, object]:
    from mlsec.errors import SigningError
    from mlsec.signing.sbom import compare_files, load_bom

    if sbom is None:
        from mlsec.sbom.api import make_sbom

        return make_sbom(art).document
    bom = load_bom(sbom)
    diffs = compare_files(bom, art)
    if diffs:
        raise SigningError(
            f"{sbom}: does not describe {art.root}: " + "; ".join(d.line() for d in diffs[:5]),
            hint="regenerate the SBOM for this model (mlsec sbom)",
        )
    return bom


def verify_attestation_cmd(
    path: Path,
    attestation: Path,
    verifier: Verifier,
    ignore: list[str],
    fmt: OutputFormat,
    output: Path | None,
) -> int:
    """``mlsec verify PATH --attestation A``: signature, then subjects against the model."""
    from mlsec.attest import AttestationCheck, verify_attestation
    from mlsec.cli.sign import _read_bundle

    bundle = _read_bundle(attestation)
    art = _open(path, ignore, [attestation])
    try:
        result = verify_attestation(art, bundle, verifier, model=str(path))
    except VerificationError as exc:
        if isinstance(exc.result, AttestationCheck):
            _render(exc.result, fmt, output)
        elif fmt is OutputFormat.JSON:
            doc = {"ok": False, "model": str(path), "error": exc.message}
            emit_json(envelope(Schema.VERIFY_ATTESTATION, doc), output)
        raise
    _render(result, fmt, output)
    return 0


def _render(result: AttestationCheck, fmt: OutputFormat, output: Path | None) -> None:
    if fmt is OutputFormat.JSON:
        emit_json(result.to_dict(), output)
        return
    if not result.ok:
        print(
            escape(
                f"FAILED {result.model}: attestation {result.predicate_type} is not about"
                f" this model ({result.signer}):"
            )
        )
        for d in result.differences:
            print(f"  {escape(d.line())}")
        return
    print(escape(result.line()))
    s = result.summary
    if "verdict" in s:
        counts = ", ".join(f"{n} {k}" for k, n in s["findings"].items() if n) or "no findings"
        print(
            escape(
                f"  scan verdict {s['verdict']} at threshold {s['threshold']}: {counts}"
                f" ({s['engine']}, {s['scanned_at']})"
            )
        )
    elif "builder" in s:
        print(escape(f"  provenance: builder {s['builder']}, build type {s['build_type']}"))
    elif "spec_version" in s:
        print(escape(f"  SBOM: CycloneDX {s['spec_version']}, {plural(s['files'], 'file')}"))
