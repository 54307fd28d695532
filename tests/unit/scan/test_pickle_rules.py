"""Allowlist, denylist, alias normalisation and user-allowed globals."""

from __future__ import annotations

import pytest

from mlsec.scan import Severity
from mlsec.scan.pickle.rules import judge_attribute, judge_global, normalise_module

CRIT = Severity.CRITICAL


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("posix", "os"),
        ("nt", "os"),
        ("_operator", "operator"),
        ("__builtin__", "builtins"),
        ("_io", "io"),
        ("copy_reg", "copyreg"),
        ("_pickle", "pickle"),
        ("numpy.core.multiarray", "numpy._core.multiarray"),
        ("os", "os"),
    ],
)
def test_aliases_are_normalised(alias: str, canonical: str) -> None:
    assert normalise_module(alias) == canonical


@pytest.mark.parametrize(
    "qual",
    [
        "os.system",
        "posix.system",
        "nt.system",
        "subprocess.Popen",
        "builtins.eval",
        "__builtin__.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "builtins.open",
        "builtins.compile",
        "builtins.breakpoint",
        "runpy._run_code",
        "pydoc.pipepager",
        "timeit.timeit",
        "cProfile.run",
        "profile.Profile.run",
        "pdb.run",
        "code.InteractiveInterpreter.runcode",
        "codeop.compile_command",
        "idlelib.pyshell.ModifiedInterpreter.runcode",
        "lib2to3.pgen2.grammar.Grammar.loads",
        "trace.Trace.run",
        "multiprocessing.util.spawnv_passfds",
        "asyncio.subprocess.create_subprocess_exec",
        "ctypes.CDLL",
        "numpy.testing._private.utils.runstring",
        "torch.hub.load",
        "torch.utils.collect_env.run",
        "pip._internal.main",
        "transformers.dynamic_module_utils.get_class_from_dynamic_module",
        "mlflow.pyfunc.load_model",
        "pandas.read_pickle",
        "pandas.io.pickle.read_pickle",
        "pkgutil.resolve_name",
        "importlib.import_module",
        "_operator.attrgetter",
        "operator.methodcaller",
        "shutil.rmtree",
        "socket.create_connection",
        "webbrowser.open",
        "sys.modules",
        "pickle.loads",
        "_pickle.loads",
        "ensurepip._run_pip",
        "types.CodeType",
        "torch.load",
        "numpy.load",
        "sqlite3.connect",
        "gzip.open",
        "_posixsubprocess.fork_exec",
        "_frozen_importlib.import_module",
        "imp.load_source",
        "signal.raise_signal",
        "operator.call",
    ],
)
def test_denylist(qual: str) -> None:
    module, _, name = qual.rpartition(".")
    # Nested qualnames (profile.Profile.run) are written as module + dotted name by pickle.
    for i in range(qual.count(".")):
        parts = qual.split(".")
        module, name = ".".join(parts[: i + 1]), ".".join(parts[i + 1 :])
        v = judge_global(module, name)
        if v.severity is CRIT:
            break
    assert v.severity is CRIT, qual


@pytest.mark.parametrize(
    "qual",
    [
        "torch._utils._rebuild_tensor_v2",
        "torch.FloatStorage",
        "torch.BFloat16Storage",
        "torch.float16",
        "torch.Size",
        "torch.serialization._get_layout",
        "torch.nn.parameter.Parameter",
        "collections.OrderedDict",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.float64",
        "builtins.set",
        "__builtin__.set",
        "_codecs.encode",
        "copy_reg._reconstructor",
        "sklearn.pipeline.Pipeline",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.some_future_module.SomeNewEstimator",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "xgboost.sklearn.XGBClassifier",
        "lightgbm.sklearn.LGBMClassifier",
    ],
)
def test_allowlist(qual: str) -> None:
    module, _, name = qual.rpartition(".")
    assert judge_global(module, name).severity is None, qual


@pytest.mark.parametrize(
    ("module", "name", "severity"),
    [
        ("sklearn.utils", "some_function", Severity.MEDIUM),  # functions never generalise
        ("sklearn.pipeline", "__builtins__", CRIT),  # dunders never allowed
        ("sklearn.utils._testing", "TempMemmap", Severity.MEDIUM),  # test helpers excluded
        ("mypackage.models", "Net", Severity.MEDIUM),
        ("__main__", "Net", Severity.MEDIUM),
        ("numpy", "__builtins__", CRIT),  # modelscan #89
        ("numpy", "prod.os.system", CRIT),  # attribute traversal to a denied callable
        ("numpy", "core._internal.sys.modules", CRIT),
        ("torch", "_utils.some_thing", Severity.HIGH),  # traversal, nothing known
        ("torch._utils", "_rebuild_tensor_v2.__globals__", CRIT),
        ("collections", "OrderedDict.__class__", CRIT),
        ("builtins", "dict.get", Severity.HIGH),
    ],
)
def test_judgement(module: str, name: str, severity: Severity) -> None:
    assert judge_global(module, name).severity is severity


def test_user_allow_list_extends_but_exact() -> None:
    assert (
        judge_global("mypackage.models", "Net", frozenset({"mypackage.models.Net"})).severity
        is None
    )
    assert (
        judge_global("mypackage.models", "Other", frozenset({"mypackage.models.Net"})).severity
        is Severity.MEDIUM
    )


def test_attribute_names() -> None:
    for a in ("__globals__", "__builtins__", "__class__", "__subclasses__", "system", "eval"):
        assert judge_attribute(a) is CRIT, a
    assert judge_attribute("weight") is None


def test_allow_global_names_are_checked_one_way() -> None:
    from mlsec.scan.model import is_global_name

    assert is_global_name("mypkg.layers.Block") and is_global_name("__main__.Net")
    for bad in ("Net", "a..b", ".a.b", "a.b.", "os.system x", "a.b c", "", "a.1b"):
        assert not is_global_name(bad), bad


def test_scan_engines_are_named_in_the_library(tmp_path) -> None:
    import pytest

    from mlsec.artifact import open_artifact
    from mlsec.errors import UsageError
    from mlsec.scan import scan

    p = tmp_path / "m.pkl"
    p.write_bytes(b"\x80\x04K\x01.")
    assert scan(open_artifact(p)).engines == ("mlsec",)
    with pytest.raises(UsageError, match="unknown scan engine 'other'"):
        scan(open_artifact(p), engines=("other",))
