"""``make_sbom``: the one call behind ``mlsec sbom`` (and the SBOM evidence of ``admit``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlsec.artifact import Artifact, open_artifact
from mlsec.errors import SbomError
from mlsec.progress import Progress
from mlsec.sbom import SbomFormat
from mlsec.sbom.builder import Sbom, build_sbom
from mlsec.sbom.card import ModelCard, read_model_card

if TYPE_CHECKING:
    from mlsec.sbom.audit import Vulnerability

__all__ = ["SbomFormat", "make_sbom", "validate_sbom"]


def make_sbom(
    path: str | os.PathLike[str] | Artifact,
    *,
    requirements: Sequence[str | os.PathLike[str]] = (),
    discover: bool = True,
    audit: bool = False,
    vuln_service: str = "osv",
    osv_url: str | None = None,
    name: str | None = None,
    version: str | None = None,
    ignore: Sequence[str] = (),
    progress: Progress | None = None,
) -> Sbom:
    """Build the CycloneDX ML-BOM of the model at ``path``.

    Python dependencies come from each ``requirements`` file, plus (with ``discover``) what the
    model declares itself: a ``requirements.txt`` at its root and the ``transformers`` version in
    its ``config.json``. With ``audit``, the pinned ones are checked for known vulnerabilities with
    pip-audit (``vuln_service`` ``osv`` or ``pypi``; ``osv_url`` for a mirror); an audit that
    cannot run raises :class:`SbomError` rather than reporting "no vulnerabilities".

    >>> sbom = make_sbom("path/to/model")  # doctest: +SKIP
    >>> sbom.to_json()  # doctest: +SKIP
    """
    from mlsec.sbom.deps import Dependency, read_requirements
    from mlsec.sbom.deps import discover as discover_dependencies

    if isinstance(path, Artifact):
        artifact = path.with_digests(progress=progress)
    else:
        artifact = open_artifact(path, ignore=ignore, digests=True, progress=progress)
    card = read_model_card(artifact.root) if artifact.is_dir else ModelCard()
    deps: list[Dependency] = []
    for req in requirements:
        deps.extend(read_requirements(Path(req)))
    if discover and artifact.is_dir:
        deps.extend(discover_dependencies(artifact.root))
        if card.transformers_version:
            deps.append(
                Dependency(
                    name="transformers",
                    version=card.transformers_version,
                    specifier=f"=={card.transformers_version}",
                    extras=(),
                    marker=None,
                    source="config.json",
                )
            )
    unique: dict[str, Dependency] = {}
    for dep in deps:  # the first mention of a package wins (explicit files before discovery)
        unique.setdefault(dep.name, dep)
    vulns: tuple[Vulnerability, ...] = ()
    unauditable: dict[str, str] = {}
    if audit:
        from mlsec.sbom.audit import audit as run_audit

        result = run_audit(list(unique.values()), service=vuln_service, osv_url=osv_url)
        vulns = result.vulnerabilities
        unauditable = {d.name: reason for d, reason in result.unauditable}
    return build_sbom(
        artifact,
        card=card,
        dependencies=tuple(unique.values()),
        vulnerabilities=vulns,
        name=name,
        version=version,
        audited_by=vuln_service if audit else None,
        unauditable=unauditable,
    )


def validate_sbom(text: str, fmt: SbomFormat = SbomFormat.JSON) -> None:
    """Validate a CycloneDX 1.6 document against the official schema (an SPDX 3.0.1 one with
    SPDX's model bindings: :func:`mlsec.sbom.spdx3.validate_spdx3`); raise SbomError if not."""
    if fmt is SbomFormat.SPDX3_JSON:
        from mlsec.sbom.spdx3 import validate_spdx3

        validate_spdx3(text)
        return
    from cyclonedx.schema import SchemaVersion

    error: object = None
    try:
        if fmt is SbomFormat.JSON:
            from cyclonedx.validation.json import JsonStrictValidator

            error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
        else:
            from cyclonedx.validation.xml import XmlValidator

            error = XmlValidator(SchemaVersion.V1_6).validate_str(text)
    except ImportError as exc:  # validation extras missing
        raise SbomError(f"cannot validate the SBOM: {exc}") from None
    except Exception as exc:  # e.g. lxml's XMLSyntaxError: not even well-formed
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SbomError(f"the SBOM does not validate against CycloneDX 1.6: {detail}") from None
    if error is not None:
        detail = str(getattr(error, "data", error)).splitlines()[0]
        raise SbomError(f"the SBOM does not validate against CycloneDX 1.6: {detail}")
