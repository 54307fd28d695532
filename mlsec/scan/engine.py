"""Dispatch: each artifact file (and each container member) to the analyzer of its format."""

from __future__ import annotations

import lzma
import struct
import time
import zipfile
import zlib
from collections.abc import Iterable, Sequence

from mlsec.artifact import Artifact, ArtifactFile
from mlsec.formats import Format
from mlsec.scan.base import Blob, ScanContext, ScanOptions
from mlsec.scan.model import FileReport, Finding, ScanReport, Severity
from mlsec.scan.registry import analyzer_for

__all__ = ["scan", "scan_file"]


def _dispatch(blob: Blob, ctx: ScanContext) -> Iterable[Finding]:
    found = list(_run(blob, ctx))
    if (
        ctx.format not in (Format.PICKLE, Format.NUMPY)
        and any(f.rule == "PARSE-ERROR" and f.member == ctx.member for f in found)
        and _could_be_pickle(blob)
    ):
        # Weak magic (a safetensors length, a .lzma header, "GGUF" = BINFLOAT…) can be matched
        # by a crafted pickle that then fails that format's parse: let the pickle engine judge
        # the same bytes too, as pickle.load would.
        found.extend(_run(blob, ctx.child("<as pickle>", Format.PICKLE)))
    return found


def _could_be_pickle(blob: Blob) -> bool:
    from mlsec.formats import is_pickle_prefix

    head = blob.head(64 * 1024)
    if head[:1] == b"\x80" and head[1:2] <= b"\x05":
        return True
    return is_pickle_prefix(head)


def _run(blob: Blob, ctx: ScanContext) -> Iterable[Finding]:
    analyzer = analyzer_for(ctx.format)
    if analyzer is None:
        return []
    found: list[Finding] = []
    try:
        # Collected one by one: findings made before a late parse error are kept.
        found.extend(analyzer(blob, ctx))
        return found
    except (MemoryError, RecursionError) as exc:
        reason = type(exc).__name__
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        OverflowError,
        struct.error,
        zlib.error,
        lzma.LZMAError,
    ) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    # Fail closed: what we cannot parse could hide a payload that runs before the loader errors.
    return [
        *found,
        ctx.finding(
            "PARSE-ERROR",
            Severity.HIGH,
            f"{ctx.member or ctx.file}: cannot be parsed as {ctx.format.value} ({reason})",
            why="What the scanner cannot parse may hide a payload; loaders are often more lenient.",
        ),
    ]


def scan_file(
    file: ArtifactFile, options: ScanOptions | None = None, *, label: str | None = None
) -> FileReport:
    """Scan one artifact file. ``label`` names it in the report (default: its path in the
    artifact)."""
    options = options or ScanOptions()
    name = label or file.path
    ctx = ScanContext(file=name, options=options, format=file.format, dispatch=_dispatch)
    blob = Blob(name, path=file.source, size=file.size)
    findings = list(_dispatch(blob, ctx))
    return FileReport(
        path=name,
        format=file.format.value,
        size=file.size,
        findings=tuple(findings),
        globals=tuple(sorted(ctx.globals_seen)),
        members_scanned=ctx.members_scanned,
    )


def _label(art: Artifact, path: str) -> str:
    return f"{art.root}/{path}" if art.is_dir else str(art.root)


ENGINES = ("mlsec", "modelscan")


def scan(
    artifacts: Artifact | Sequence[Artifact],
    options: ScanOptions | None = None,
    *,
    engines: Sequence[str] = ("mlsec",),
) -> ScanReport:
    """Scan one or more opened artifacts statically and return every finding.

    ``engines`` names the scanners to run: ``mlsec`` (this package's, the default) and/or
    ``modelscan`` (the optional second engine, run as a subprocess); their findings are merged
    per file, each marked with its engine.

    >>> from mlsec.artifact import open_artifact
    >>> report = scan(open_artifact("model.pt"))  # doctest: +SKIP
    >>> report.failed(Severity.MEDIUM)  # doctest: +SKIP
    """
    arts = [artifacts] if isinstance(artifacts, Artifact) else list(artifacts)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        from mlsec.errors import UsageError

        what = unknown[0] if unknown else "(none)"
        raise UsageError(f"unknown scan engine {what!r}: use {', '.join(ENGINES)}")
    start = time.perf_counter()
    reports: list[FileReport] = []
    if "mlsec" in engines:
        if len(arts) == 1:
            reports = [scan_file(f, options) for f in arts[0].files]
        else:  # several targets: a bare relative path ("model.pkl") could be in any of them
            reports = [
                scan_file(f, options, label=_label(art, f.path)) for art in arts for f in art.files
            ]
    report = ScanReport(
        targets=tuple(str(a.root) for a in arts),
        files=tuple(reports),
        duration_s=time.perf_counter() - start,
        engines=("mlsec",) if "mlsec" in engines else (),
    )
    if "modelscan" in engines:
        from mlsec.scan.modelscan_engine import run_modelscan

        report = _merge(report, run_modelscan([a.root for a in arts]), "modelscan")
    return report


def _merge(report: ScanReport, extra: Sequence[Finding], engine: str) -> ScanReport:
    """``report`` with another engine's findings added to their files' reports."""
    from dataclasses import replace

    files = list(report.files)
    index = {fr.path: i for i, fr in enumerate(files)}
    for f in extra:
        i = index.get(f.file)
        if i is None:
            index[f.file] = len(files)
            files.append(FileReport(path=f.file, format="unknown", size=0, findings=(f,)))
        else:
            files[i] = replace(files[i], findings=(*files[i].findings, f))
    return replace(report, files=tuple(files), engines=(*report.engines, engine))
