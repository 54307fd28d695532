"""Nested loaders: callables that deserialise their argument while the outer pickle loads.
Malicious payloads are built with a harmless command and never loaded."""

from __future__ import annotations

import io
import os
import pickle

import pytest

from mlsec.scan.pickle.rules import LOADS_LIKE

from .conftest import ScanBytes, by_rule, rules_of, worst
from .samples import Reduce, binbytes, call1, glob, proto, s

torch = pytest.importorskip("torch")

EVIL = Reduce(os.system, "touch /tmp/mlsec-nested-should-not-exist")


def _torch_bytes(obj: object, zip_format: bool) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=zip_format)
    return buf.getvalue()


@pytest.mark.parametrize("zip_format", [True, False])
@pytest.mark.parametrize("protocol", [2, 4])
def test_load_from_bytes_of_a_malicious_torch_file_is_caught(
    scan_bytes: ScanBytes, zip_format: bool, protocol: int
) -> None:
    payload = _torch_bytes(EVIL, zip_format)
    data = pickle.dumps(Reduce(torch.storage._load_from_bytes, payload), protocol=protocol)
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert any(f.symbol in {"posix.system", "os.system"} for f in report.findings)


def test_load_from_bytes_of_an_embedded_pickle_names_the_loader(scan_bytes: ScanBytes) -> None:
    payload = _torch_bytes(EVIL, False)
    data = proto(2, glob("torch.storage", "_load_from_bytes") + binbytes(payload) + b"\x85R")
    report = scan_bytes(data)
    loader = by_rule(report, "PICKLE-NESTED-LOADER")
    assert loader and loader[0].severity.value == "high"
    assert loader[0].symbol == "torch.storage._load_from_bytes"


def test_loader_of_a_computed_argument_is_critical(scan_bytes: ScanBytes) -> None:
    # _load_from_bytes(base64.b64decode("...")): what it loads is built while loading.
    computed = call1(glob("base64", "b64decode"), s("AAAA"))
    data = proto(2, glob("torch.storage", "_load_from_bytes") + computed + b"\x85R")
    report = scan_bytes(data)
    loader = by_rule(report, "PICKLE-NESTED-LOADER")
    assert loader and loader[0].severity.value == "critical"


def test_plainly_pickled_tensors_are_not_a_false_alarm(scan_bytes: ScanBytes) -> None:
    # pickle.dump of tensors: each storage is torch.storage._load_from_bytes(<legacy torch.save>).
    data = pickle.dumps({"w": torch.randn(4, 4), "b": torch.zeros(3000)}, protocol=4)
    report = scan_bytes(data)
    assert worst(report) == "low"
    notes = by_rule(report, "PICKLE-NESTED-LOADER")
    assert notes and all(f.severity.value == "low" for f in notes)


@pytest.mark.parametrize(
    "loader",
    [
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("dill", "loads"),
        ("cloudpickle", "loads"),
        ("marshal", "loads"),
        ("numpy", "loads"),
        ("pandas.compat.pickle_compat", "loads"),
        ("jsonpickle", "decode"),
    ],
)
def test_every_surveyed_loader_scans_its_embedded_payload(
    scan_bytes: ScanBytes, loader: tuple[str, str]
) -> None:
    inner = pickle.dumps(EVIL, protocol=2)
    data = proto(2, glob(*loader) + binbytes(inner) + b"\x85R")
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert "PICKLE-NESTED-LOADER" in rules_of(report)


def test_survey_covers_the_loaders_of_each_library() -> None:
    for name in (
        "torch.load",
        "torch.storage._load_from_bytes",
        "torch.serialization._legacy_load",
        "numpy.load",
        "numpy.loads",
        "joblib.load",
        "dill.loads",
        "cloudpickle.loads",
        "marshal.loads",
        "shelve.open",
        "pandas.read_pickle",
        "pickle.loads",
    ):
        assert name in LOADS_LIKE


def test_nested_pickles_are_bounded_in_depth(scan_bytes: ScanBytes) -> None:
    data = pickle.dumps(EVIL, protocol=2)
    for _ in range(12):
        data = proto(2, glob("pickle", "loads") + binbytes(data) + b"\x85R")
    report = scan_bytes(data)
    assert "CONTAINER-DEPTH" in rules_of(report)
    assert worst(report) == "critical"


def test_protocol2_pickled_large_tensor_is_scanned_not_critical(scan_bytes: ScanBytes) -> None:
    # Protocol 2 spells bytes as _codecs.encode(<str>, "latin1"); a storage over 64 KiB is a long
    # string the VM only references, and must still reach the nested scan.
    data = pickle.dumps(torch.zeros(100_000), protocol=2)
    report = scan_bytes(data)
    assert worst(report) == "low"
    assert by_rule(report, "PICKLE-NESTED-LOADER")


def test_protocol2_large_malicious_payload_is_caught(scan_bytes: ScanBytes) -> None:
    payload = pickle.dumps([b"x" * 100_000, EVIL], protocol=2)
    data = pickle.dumps(Reduce(torch.storage._load_from_bytes, payload), protocol=2)
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert any(f.symbol in {"posix.system", "os.system"} for f in report.findings)
