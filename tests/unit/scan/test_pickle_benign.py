"""Real files from real libraries give no finding at the default threshold (medium only for
genuinely unknown classes). Samples are built at test time and never loaded by the scanner."""

from __future__ import annotations

import importlib
import io
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mlsec.scan import Severity

from .conftest import ScanBytes, rules_of, worst


def _state_dict() -> dict[str, object]:
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    sd = net.state_dict()
    sd["extra"] = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)[:, 1:]  # a view: offset
    sd["int"] = torch.tensor([1, 2], dtype=torch.int64)
    sd["half"] = torch.zeros(3, dtype=torch.float16)
    return sd


def _zip_pickles(data: bytes) -> list[bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [zf.read(n) for n in zf.namelist() if n.endswith(".pkl")]


def test_torch_state_dict_zip_pickle_is_clean(scan_bytes: ScanBytes) -> None:
    buf = io.BytesIO()
    torch.save(_state_dict(), buf)
    for pkl in _zip_pickles(buf.getvalue()):
        report = scan_bytes(pkl, "data.pkl")
        assert report.findings == ()
        assert "torch._utils._rebuild_tensor_v2" in report.files[0].globals


def test_torch_parameters_and_optimizer_state_are_clean(scan_bytes: ScanBytes) -> None:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "p": net.weight}, buf)
    for pkl in _zip_pickles(buf.getvalue()):
        assert scan_bytes(pkl, "data.pkl").findings == ()


def test_torch_legacy_format_is_clean(scan_bytes: ScanBytes) -> None:
    buf = io.BytesIO()
    torch.save(_state_dict(), buf, _use_new_zipfile_serialization=False)
    report = scan_bytes(buf.getvalue(), "model.pt")
    assert report.files[0].format == "pickle"
    assert report.findings == ()


def test_torch_legacy_format_payload_in_main_stream_is_caught(scan_bytes: ScanBytes) -> None:
    import os

    from .samples import Reduce

    buf = io.BytesIO()
    torch.save(
        {"w": torch.zeros(2), "x": Reduce(os.system, "true")},
        buf,
        _use_new_zipfile_serialization=False,
    )
    assert worst(scan_bytes(buf.getvalue(), "model.pt")) == "critical"


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.LSTM(2, 2))


def test_whole_module_is_medium_for_its_own_class(scan_bytes: ScanBytes) -> None:
    buf = io.BytesIO()
    torch.save(TinyNet(), buf)
    sevs = set()
    for pkl in _zip_pickles(buf.getvalue()):
        report = scan_bytes(pkl, "data.pkl")
        sevs |= {f.severity for f in report.findings}
        assert any(__name__.rsplit(".", 1)[-1] in (f.symbol or "") for f in report.findings)
        assert not any("torch.nn" in (f.symbol or "") for f in report.findings)  # torch's layers
    assert sevs == {Severity.MEDIUM}


def _pipeline() -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import make_classification
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, y = make_classification(n_samples=80, n_features=6, random_state=0)
    x[:, 5] = (x[:, 5] > 0).astype(float)
    pipe = Pipeline(
        [
            ("cols", ColumnTransformer([("oh", OneHotEncoder(), [5])], remainder=StandardScaler())),
            ("pca", PCA(n_components=3)),
            ("clf", RandomForestClassifier(n_estimators=3, random_state=0)),
        ]
    ).fit(x, y)
    return [
        pipe,
        GradientBoostingClassifier(n_estimators=3).fit(x, y),
        LogisticRegression().fit(x, y),
    ]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_sklearn_pipeline_pickle_is_clean(scan_bytes: ScanBytes, protocol: int) -> None:
    report = scan_bytes(pickle.dumps(_pipeline(), protocol=protocol))
    assert report.findings == (), [f.message for f in report.findings]


def test_every_sklearn_estimator_pickle_is_clean(scan_bytes: ScanBytes) -> None:
    import warnings

    from sklearn.datasets import make_classification, make_regression
    from sklearn.utils import all_estimators

    x, y = make_classification(n_samples=40, n_features=5, random_state=0)
    xr, yr = make_regression(n_samples=40, n_features=5, random_state=0)
    blobs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _name, cls in all_estimators():
            try:
                est = cls()
            except TypeError:
                continue  # meta-estimators that need an estimator argument
            for xx, yy in ((x, y), (xr, yr)):
                try:
                    est.fit(np.abs(xx), yy)
                    break
                except Exception:
                    pass
            try:
                blobs.append(pickle.dumps(est, protocol=5))
            except Exception:
                continue
    assert len(blobs) > 150
    report = scan_bytes(pickle.dumps(blobs, protocol=5))  # the outer list only
    assert report.findings == ()
    bad = []
    for b in blobs:
        r = scan_bytes(b)
        bad += [f.symbol for f in r.findings]
    assert bad == []


@pytest.mark.parametrize("compress", [0, 3])
def test_sklearn_joblib_is_clean(scan_bytes: ScanBytes, tmp_path: Path, compress: int) -> None:
    import joblib

    obj = {"models": _pipeline(), "arrays": [np.arange(10.0), np.array(["a", None], dtype=object)]}
    p = tmp_path / "m.joblib"
    joblib.dump(obj, p, compress=compress)
    data = p.read_bytes()
    if compress:
        # joblib's zlib container: the decompression analyzer hands the inner bytes to us.
        data = zlib.decompress(data)
    report = scan_bytes(data, "m.joblib")
    assert report.findings == (), [f.message for f in report.findings]


def test_joblib_uncompressed_raw_arrays_are_skipped_not_parsed(
    scan_bytes: ScanBytes, tmp_path: Path
) -> None:
    import joblib

    # Array bytes that happen to look like opcodes (0x63 'c' = GLOBAL) are not decoded as joblib.
    arr = np.frombuffer(b"ccollections\nOrderedDict\n" * 100, dtype=np.uint8).copy()
    p = tmp_path / "a.joblib"
    joblib.dump({"a": arr, "b": arr.astype(np.float32), "c": np.zeros((3, 0))}, p)
    assert scan_bytes(p.read_bytes(), "a.joblib").findings == ()


def test_joblib_object_array_payload_is_caught(scan_bytes: ScanBytes, tmp_path: Path) -> None:
    import os

    import joblib

    from .samples import Reduce

    p = tmp_path / "a.joblib"
    joblib.dump({"a": np.array([Reduce(os.system, "true")], dtype=object)}, p)
    assert worst(scan_bytes(p.read_bytes(), "a.joblib")) == "critical"


def test_payload_after_joblib_array_is_caught(scan_bytes: ScanBytes, tmp_path: Path) -> None:
    import joblib

    from .samples import call1, glob, proto, s

    p = tmp_path / "a.joblib"
    joblib.dump({"a": np.arange(5.0)}, p)
    data = p.read_bytes() + proto(2, call1(glob("os", "system"), s("id")))
    assert "PICKLE-DANGEROUS-GLOBAL" in rules_of(scan_bytes(data, "a.joblib"))


def test_numpy_pickled_arrays_are_clean(scan_bytes: ScanBytes) -> None:
    objs = [
        np.arange(12.0).reshape(3, 4),
        np.float32(1.5),
        np.array(["x", 1], dtype=object),
        np.random.default_rng(0),
        np.random.RandomState(0),
        np.zeros(3, dtype=[("a", "<i4")]),
    ]
    for p in (2, 5):
        assert scan_bytes(pickle.dumps(objs, protocol=p)).findings == ()


def test_demo_training_state_is_clean(example_model: Path) -> None:
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    assert scan(open_artifact(example_model)).findings == ()


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"# README\n\nSome text. cos\nsystem\n", "README.md"),
        (b"Some words, then a dot.\n", "notes.txt"),
        (bytes(range(256)) * 64, "weights.bin"),
        (b"\x00" * 4096, "zeros.bin"),
        (b"\xff\xfe" + "é".encode() * 100, "utf16.txt"),
    ],
)
def test_text_and_unknown_files_are_clean(scan_bytes: ScanBytes, data: bytes, name: str) -> None:
    assert scan_bytes(data, name).findings == ()


def test_torch_legacy_storage_bytes_are_not_parsed(scan_bytes: ScanBytes) -> None:
    # Raw storage bytes after the 5 legacy streams are data, even when they look like a pickle.
    t = torch.frombuffer(
        bytearray(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."), dtype=torch.uint8
    )
    buf = io.BytesIO()
    torch.save({"t": t.clone()}, buf, _use_new_zipfile_serialization=False)
    assert b"cos\nsystem" in buf.getvalue()
    assert scan_bytes(buf.getvalue(), "legacy.pt").findings == ()


def test_two_streams_both_scanned(scan_bytes: ScanBytes) -> None:
    from .samples import call1, glob, proto, s

    first = pickle.dumps({"a": 1}, protocol=2)
    report = scan_bytes(first + proto(2, call1(glob("os", "system"), s("id"))))
    (f,) = report.findings
    assert f.symbol == "os.system" and f.offset is not None and f.offset > len(first)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_gradient_boosting_libraries_are_clean(scan_bytes: ScanBytes, lib: str) -> None:
    from sklearn.datasets import make_classification

    mod = importlib.import_module(lib)  # both are test dependencies: a missing one fails
    x, y = make_classification(n_samples=60, n_features=4, random_state=0)
    if lib == "xgboost":
        objs = [mod.XGBClassifier(n_estimators=2).fit(x, y), mod.train({}, mod.DMatrix(x, y), 2)]
    else:
        objs = [mod.LGBMClassifier(n_estimators=2, verbose=-1).fit(x, y)]
        objs.append(mod.train({"verbose": -1}, mod.Dataset(x, y), 2))
    for p in (2, 5):
        report = scan_bytes(pickle.dumps(objs, protocol=p))
        assert report.findings == (), [f.symbol for f in report.findings]
