"""Values training code really pickles (argparse/SimpleNamespace configs, paths, dates, numbers,
containers, masked arrays, NumPy scalars, harmless builtins, Python 2 names) scan clean at every
protocol; the lookalikes that reach code, files or internals do not. Also: every allowlist entry
carries a reason."""

from __future__ import annotations
import __future__

import argparse
import array
import collections
import collections.abc
import datetime
import decimal
import fractions
import pathlib
import pickle
import types
import typing
import uuid
import zoneinfo
from collections.abc import Callable

import numpy as np
import pytest

from mlsec.scan.model import Severity
from mlsec.scan.pickle.lists import ALLOWED, DENY_NAMES
from mlsec.scan.pickle.rules import judge_global

from .conftest import ScanBytes
from .samples import glob, proto, s, stack_glob

VALUES: dict[str, Callable[[], object]] = {
    "argparse_namespace": lambda: {"args": argparse.Namespace(lr=0.1, arch="t", layers=[1, 2])},
    "simple_namespace": lambda: types.SimpleNamespace(a=1, b="x"),
    "pure_paths": lambda: [pathlib.PurePosixPath("/a/b"), pathlib.PureWindowsPath("c:/x")],
    "paths": lambda: [pathlib.Path("/data/train"), pathlib.Path("relative/ckpt")],
    "datetimes": lambda: [
        datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        datetime.datetime(2020, 1, 2, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        datetime.date(2020, 1, 1),
        datetime.time(1, 2),
        datetime.timedelta(days=3),
    ],
    "decimal": lambda: [decimal.Decimal("1.5"), decimal.Context(prec=5)],
    "fraction": lambda: fractions.Fraction(1, 3),
    "array": lambda: array.array("i", [1, 2, 3]),
    "uuid": lambda: uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "collections": lambda: [
        collections.OrderedDict(a=1),
        collections.Counter("aab"),
        collections.defaultdict(list, a=[1]),
        collections.deque([1, 2], maxlen=5),
        collections.ChainMap({1: 2}),
        collections.UserDict(a=1),
    ],
    "collections_abc": lambda: [collections.abc.Mapping, collections.abc.Sequence],
    "masked_array": lambda: [np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]), np.ma.masked],
    "numpy_scalars": lambda: [
        np.float32(1),
        np.int64(2),
        np.bool_(True),
        np.datetime64("2020-01-01"),
        np.complex128(1j),
        np.str_("x"),
        np.dtype([("a", "<i4"), ("b", "<f8")]),
    ],
    "builtins": lambda: [len, abs, max, range(3), slice(1, 2), frozenset({1}), ValueError("x")],
    "future": lambda: [__future__.annotations, __future__.division],
    "typing": lambda: [typing.Any, typing.Optional, typing.List, typing.Dict],  # noqa: UP006
}


@pytest.mark.parametrize("kind", sorted(VALUES))
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_values_are_clean(scan_bytes: ScanBytes, kind: str, protocol: int) -> None:
    report = scan_bytes(pickle.dumps(VALUES[kind](), protocol=protocol))
    assert report.findings == (), [(f.rule, f.symbol) for f in report.findings]
    assert report.files[0].globals  # they were imports, judged and allowed


def test_cli_exits_0_on_values(tmp_path, cli) -> None:
    for kind, make in VALUES.items():
        (tmp_path / f"{kind}.pkl").write_bytes(pickle.dumps(make()))
    assert cli("scan", tmp_path, "--fail-on", "medium").exit_code == 0


@pytest.mark.parametrize("name", ["xrange", "unicode", "long", "basestring", "unichr"])
def test_python2_builtin_names_are_clean(scan_bytes: ScanBytes, name: str) -> None:
    assert scan_bytes(proto(2, glob("__builtin__", name) + b")R")).findings == ()


def test_python2_names_that_map_to_denied_callables_are_critical(scan_bytes: ScanBytes) -> None:
    # pickle maps __builtin__.reduce to functools.reduce (and intern to sys.intern)
    for name in ("reduce", "intern"):
        assert judge_global("__builtin__", name).severity is Severity.CRITICAL


def test_main_classes_stay_medium(scan_bytes: ScanBytes) -> None:
    report = scan_bytes(proto(4, stack_glob("__main__", "Net") + b")\x81."))
    assert report.max_severity is Severity.MEDIUM


def test_getattr_with_constants_is_judged_by_what_it_reaches(scan_bytes: ScanBytes) -> None:
    def getattr_call(mod: str, cls: str, attr: str) -> bytes:
        body = stack_glob("builtins", "getattr") + stack_glob(mod, cls) + s(attr) + b"\x86R"
        return proto(4, body + s("Europe/Paris") + b"\x85R")

    # what a ZoneInfo pickles as: allowed
    assert scan_bytes(getattr_call("zoneinfo", "ZoneInfo", "_unpickle")).findings == ()
    # path I/O reached through getattr: critical
    for attr in ("read_text", "write_text", "read_bytes", "unlink", "open"):
        report = scan_bytes(getattr_call("pathlib", "PosixPath", attr))
        assert report.max_severity is Severity.CRITICAL, attr
    # dunders: critical
    report = scan_bytes(getattr_call("collections", "OrderedDict", "__init__"))
    assert report.max_severity is Severity.CRITICAL


def test_getattr_without_constants_stays_critical(scan_bytes: ScanBytes) -> None:
    # computed name
    name = stack_glob("builtins", "str") + s("system") + b"\x85R"
    body = stack_glob("builtins", "getattr") + stack_glob("argparse", "Namespace") + name
    assert scan_bytes(proto(4, body + b"\x86R")).max_severity is Severity.CRITICAL
    # computed target
    target = stack_glob("argparse", "Namespace") + b")R"
    body = stack_glob("builtins", "getattr") + target + s("x") + b"\x86R"
    assert scan_bytes(proto(4, body)).max_severity is Severity.CRITICAL
    # handed to a helper that calls it
    body = stack_glob("functools", "partial") + stack_glob("builtins", "getattr") + b"\x85R"
    assert scan_bytes(proto(4, body)).max_severity is Severity.CRITICAL


def test_getattr_reused_from_the_memo_is_judged_at_each_call(scan_bytes: ScanBytes) -> None:
    safe = stack_glob("zoneinfo", "ZoneInfo") + s("_unpickle") + b"\x86R0"
    computed = stack_glob("argparse", "Namespace") + b")R" + s("x") + b"\x86R"
    body = stack_glob("builtins", "getattr") + b"\x94" + safe + b"h\x00" + computed
    report = scan_bytes(proto(4, body))
    assert report.max_severity is Severity.CRITICAL
    assert "builtins.getattr" in {f.symbol for f in report.findings}


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("pathlib", "Path.read_text"),
        ("pathlib", "PosixPath.write_bytes"),
        ("pathlib", "Path.unlink"),
        ("pathlib._local", "PosixPath.open"),
    ],
)
def test_path_methods_as_globals_are_critical(module: str, name: str) -> None:
    assert judge_global(module, name).severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("builtins", "type"),
        ("builtins", "map"),
        ("builtins", "iter"),
        ("collections", "namedtuple"),
    ],
)
def test_builtins_that_build_classes_or_call_arguments_are_not_allowed(
    module: str, name: str
) -> None:
    assert judge_global(module, name).severity is not None


def test_every_allowed_pair_has_a_reason_and_is_not_denied() -> None:
    for (module, name), reason in ALLOWED.items():
        assert len(reason) > 10, (module, name)
        assert f"{module}.{name}" not in DENY_NAMES, (module, name)
        assert judge_global(module, name).severity is None, (module, name)


def test_whole_module_with_functional_activation_is_clean(tmp_path) -> None:
    import torch

    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    layer = torch.nn.Sequential(
        torch.nn.TransformerEncoderLayer(8, 2),
        torch.nn.TransformerEncoderLayer(8, 2, activation="gelu"),
    )
    path = tmp_path / "whole.pt"
    torch.save(layer, path)
    report = scan(open_artifact(path))
    assert [f for f in report.findings if f.severity.rank >= 2] == []


def test_lightning_style_checkpoint_with_omegaconf_hparams_is_clean(tmp_path) -> None:
    import torch
    from omegaconf import OmegaConf

    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    hp = OmegaConf.create({"lr": 0.1, "model": {"layers": [1, 2]}, "name": "x", "ref": "${lr}"})
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": hp, "epoch": 1}, path)
    report = scan(open_artifact(path))
    assert [f for f in report.findings if f.severity.rank >= 2] == []


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_typing_generic_aliases_are_clean(tmp_path, proto) -> None:
    import typing

    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    p = tmp_path / "hints.pkl"
    # what old-style hints pickle as (the point of the test)
    value = {
        "a": typing.List[int],  # noqa: UP006
        "b": typing.Dict[str, typing.Any],  # noqa: UP006
        "c": typing.Union[int, str],  # noqa: UP007
    }
    p.write_bytes(pickle.dumps(value, protocol=proto))
    report = scan(open_artifact(p))
    assert [f for f in report.findings if f.severity.rank >= 2] == []


def test_getitem_on_anything_else_keeps_its_verdict(tmp_path) -> None:
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    # operator.getitem(builtins.getattr, ...) / of a computed object: not a typing subscript
    evil = b"\x80\x04c_operator\ngetitem\ncos\nenviron\nX\x04\x00\x00\x00HOME\x86R."
    p = tmp_path / "evil.pkl"
    p.write_bytes(evil)
    assert any(f.severity.value == "critical" for f in scan(open_artifact(p)).findings)
