"""CycloneDX 1.6 ML-BOM (and SPDX 3.0.1 with the AI profile) of a model artifact: the model with
its model card, its files with their digests, its datasets, and its Python dependencies with their
known vulnerabilities.

The entry point is :func:`mlsec.sbom.api.make_sbom`; this package module stays light so that the
CLI can start without importing cyclonedx-python-lib.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SbomFormat"]


class SbomFormat(StrEnum):
    """Serialisations ``mlsec sbom`` writes."""

    JSON = "cyclonedx-json"
    XML = "cyclonedx-xml"
    SPDX3_JSON = "spdx3-json"
