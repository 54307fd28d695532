"""``mlsec sbom``: a CycloneDX 1.6 ML-BOM (or SPDX 3.0.1 with the AI profile) of a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlsec.cli.common import IgnoreOpt, LazyProgress, emit_text, info, plural
from mlsec.sbom import SbomFormat


def register(app: typer.Typer) -> None:
    app.command("sbom")(sbom_cmd)


def sbom_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Model file or directory.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write the SBOM here (else stdout)."),
    ] = None,
    fmt: Annotated[
        SbomFormat,
        typer.Option(
            "--format",
            "-f",
            metavar="cyclonedx-json|cyclonedx-xml|spdx3-json",
            help="Output format.",
        ),
    ] = SbomFormat.JSON,
    requirements: Annotated[
        list[Path] | None,
        typer.Option(
            "--requirements",
            "-r",
            metavar="FILE",
            help="A pip requirements file of the model's Python dependencies; repeatable.",
        ),
    ] = None,
    no_discover: Annotated[
        bool,
        typer.Option(
            "--no-discover",
            help="Ignore the model's own requirements.txt and config.json transformers version.",
        ),
    ] = False,
    audit: Annotated[
        bool,
        typer.Option(
            "--audit",
            help="Add the known vulnerabilities of pinned dependencies (pip-audit; fails closed).",
        ),
    ] = False,
    vuln_service: Annotated[
        str,
        typer.Option("--vuln-service", metavar="osv|pypi", help="pip-audit's service for --audit."),
    ] = "osv",
    osv_url: Annotated[
        str | None,
        typer.Option("--osv-url", metavar="URL", help="An OSV-compatible service (a mirror)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The model's name (default: its card's).")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", metavar="VERSION", help="The model's version.")
    ] = None,
    ignore: IgnoreOpt = None,
    validate: Annotated[
        bool,
        typer.Option(
            "--validate",
            help=(
                "Also validate: CycloneDX against its official 1.6 schema, SPDX 3 with"
                " spdx-python-model."
            ),
        ),
    ] = False,
) -> int:
    """Write a CycloneDX 1.6 ML-BOM (or SPDX 3.0.1 with the AI profile): the model and its card,
    its files with SHA-256 digests, its datasets, and its Python dependencies with (--audit) their
    known vulnerabilities."""
    from mlsec.errors import UsageError
    from mlsec.sbom.api import make_sbom, validate_sbom

    if vuln_service not in ("osv", "pypi"):
        raise UsageError(f"--vuln-service: expected osv or pypi, got {vuln_service!r}")
    from mlsec.cli.common import local_target

    sbom = make_sbom(
        local_target(path),
        requirements=requirements or (),
        discover=not no_discover,
        audit=audit,
        vuln_service=vuln_service,
        osv_url=osv_url,
        name=name,
        version=model_version,
        ignore=ignore or (),
        progress=LazyProgress(),
    )
    if fmt is SbomFormat.SPDX3_JSON:
        from mlsec.sbom.spdx3 import to_spdx3_json

        text = to_spdx3_json(sbom)
    else:
        text = sbom.to_json() if fmt is SbomFormat.JSON else sbom.to_xml()
    if validate:
        validate_sbom(text, fmt)
    emit_text(text, output)
    summary = (
        f"sbom: {plural(sbom.file_count, 'file')}, {plural(len(sbom.card.datasets), 'dataset')}, "
        f"{plural(len(sbom.dependencies), 'dependency', 'dependencies')}"
    )
    if audit:
        summary += (
            f", {plural(len(sbom.vulnerabilities), 'known vulnerability', 'known vulnerabilities')}"
        )
    info(summary + (f" -> {output}" if output else ""))
    return 0
