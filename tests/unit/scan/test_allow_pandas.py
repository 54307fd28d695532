"""pandas objects written by pandas itself (DataFrame.to_pickle, pickle.dump, joblib.dump) scan
clean: the pairs pandas' __reduce__/__setstate__ write are on the allowlist, with reasons."""

from __future__ import annotations

import datetime
import pickle
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import ScanReport, scan
from mlsec.scan.model import Severity
from mlsec.scan.pickle.rules import judge_global

pd = pytest.importorskip("pandas")

OBJECTS: dict[str, Callable[[], object]] = {
    "dataframe": lambda: pd.DataFrame({"a": [1, 2], "b": [1.0, 2.0], "c": ["x", "y"]}),
    "series": lambda: pd.Series([1, 2, 3], name="s"),
    "object_series": lambda: pd.Series(["a", 1, None]),
    "index": lambda: pd.Index(["a", "b"]),
    "int_index": lambda: pd.Index([1, 2, 3]),
    "range_index": lambda: pd.RangeIndex(5),
    "multi_index": lambda: pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["x", "y"]),
    "categorical": lambda: pd.Categorical(["a", "b", "a"], ordered=True),
    "categorical_index": lambda: pd.CategoricalIndex(["a", "b"]),
    "string_array": lambda: pd.array(["a", None], dtype="string"),
    "datetime_array": lambda: pd.array(pd.date_range("2020", periods=3)),
    "datetime_index_utc": lambda: pd.date_range("2020", periods=3, tz="UTC"),
    "datetime_index_named_tz": lambda: pd.date_range("2020", periods=3, tz="Europe/Paris"),
    "datetime_index_zoneinfo": lambda: pd.date_range(
        "2020", periods=3, tz=zoneinfo.ZoneInfo("America/New_York")
    ),
    "datetime_index_fixed": lambda: pd.date_range(
        "2020", periods=3, tz=datetime.timezone(datetime.timedelta(hours=2))
    ),
    "timedelta_array": lambda: pd.array(pd.timedelta_range("1D", periods=3)),
    "timedelta_index": lambda: pd.timedelta_range("1D", periods=3),
    "timestamp": lambda: pd.Timestamp("2020-01-01", tz="UTC"),
    "timedelta": lambda: pd.Timedelta("1D"),
    "period": lambda: pd.Period("2020-01", freq="M"),
    "period_index": lambda: pd.period_range("2020", periods=3, freq="M"),
    "interval_index": lambda: pd.interval_range(0, 3),
    "nullable": lambda: pd.DataFrame(
        {
            "i": pd.array([1, None], dtype="Int64"),
            "f": pd.array([1.0, None], dtype="Float32"),
            "b": pd.array([True, None], dtype="boolean"),
        }
    ),
    "sparse": lambda: pd.arrays.SparseArray([0, 0, 1]),
    "nat_na": lambda: [pd.NaT, pd.NA],
    "offsets": lambda: [pd.offsets.Day(2), pd.offsets.BusinessDay(), pd.offsets.MonthEnd()],
    "mixed_frame": lambda: pd.DataFrame(
        {
            "d": pd.date_range("2020", periods=2),
            "t": pd.to_timedelta([1, 2], unit="s"),
            "c": pd.Categorical(["a", "b"]),
            "s": pd.array(["a", None], dtype="string"),
            "p": pd.period_range("2020", periods=2, freq="D"),
            "z": pd.date_range("2020", periods=2, tz="UTC"),
            "w": np.arange(2.0),
        },
        index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")]),
    ),
}


def _scan(p: Path) -> ScanReport:
    return scan(open_artifact(p))


def _assert_clean(report: ScanReport) -> None:
    bad = [f for f in report.findings if f.severity >= Severity.MEDIUM]
    assert bad == [], [(f.rule, f.symbol) for f in bad]


@pytest.mark.parametrize("kind", sorted(OBJECTS))
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_dump_of_pandas_objects_is_clean(tmp_path: Path, kind: str, protocol: int) -> None:
    p = tmp_path / f"{kind}.pkl"
    with p.open("wb") as f:
        pickle.dump(OBJECTS[kind](), f, protocol=protocol)
    report = _scan(p)
    _assert_clean(report)
    assert any(g.startswith("pandas") for g in report.files[0].globals)


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_joblib_dump_of_pandas_objects_is_clean(tmp_path: Path, kind: str) -> None:
    p = tmp_path / f"{kind}.joblib"
    joblib.dump(OBJECTS[kind](), p)
    _assert_clean(_scan(p))


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_to_pickle_is_clean(tmp_path: Path, compression: str | None) -> None:
    frame = OBJECTS["mixed_frame"]()
    assert isinstance(frame, pd.DataFrame)
    p = tmp_path / "frame.pkl"
    frame.to_pickle(p, compression=compression)
    report = _scan(p)
    _assert_clean(report)
    if compression is None:
        assert "pandas._libs.internals._unpickle_block" in report.files[0].globals


def test_cli_exits_0_on_a_directory_of_pandas_pickles(tmp_path: Path, cli) -> None:
    for kind, make in OBJECTS.items():
        obj = make()
        (tmp_path / f"{kind}.pkl").write_bytes(pickle.dumps(obj))
        joblib.dump(obj, tmp_path / f"{kind}.joblib")
        if isinstance(obj, pd.DataFrame | pd.Series):
            obj.to_pickle(tmp_path / f"{kind}.df.pkl")
    r = cli("scan", tmp_path, "--fail-on", "medium")
    assert r.exit_code == 0, r.stdout


def test_index_helpers_still_check_what_they_call(scan_bytes) -> None:
    # _new_Index(cls, d) runs cls.__new__(cls, **d): a computed cls is an indirect call, and a
    # denied cls is the denied global.
    from .samples import proto, stack_glob

    helper = stack_glob("pandas.core.indexes.base", "_new_Index")
    computed = stack_glob("functools", "partial") + stack_glob("pandas", "Index") + b"\x85R"
    body = helper + computed + b"}\x86R"
    report = scan_bytes(proto(4, body))
    assert "PICKLE-INDIRECT-CALL" in {f.rule for f in report.findings}
    denied = helper + stack_glob("subprocess", "Popen") + b"}\x86R"
    assert scan_bytes(proto(4, denied)).max_severity is Severity.CRITICAL


def test_dateutil_tzfile_is_not_allowed() -> None:
    # tzfile("any/path") opens and reads that path: it stays "needs trust".
    assert judge_global("dateutil.tz.tz", "tzfile").severity is Severity.MEDIUM
