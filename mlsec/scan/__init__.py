"""Static scanning of model artifacts for unsafe payloads. Nothing is ever loaded or executed.

Public API: :func:`scan` an opened :class:`~mlsec.artifact.Artifact` into a :class:`ScanReport`.
Extension point: an analyzer per format (:data:`mlsec.scan.base.Analyzer`), registered in
:mod:`mlsec.scan.registry`.
"""

from mlsec.scan.base import Blob, Limits, ScanContext, ScanOptions
from mlsec.scan.engine import scan, scan_file
from mlsec.scan.model import FileReport, Finding, ScanReport, Severity

__all__ = [
    "Blob",
    "FileReport",
    "Finding",
    "Limits",
    "ScanContext",
    "ScanOptions",
    "ScanReport",
    "Severity",
    "scan",
    "scan_file",
]
