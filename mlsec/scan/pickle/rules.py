"""What a pickle may import: an allowlist of exact ``module.name`` pairs, a denylist of callables
that reach code execution, the OS, files, the network or the import machinery, and the judgement
that combines them.

Design rules (DESIGN.md, "allowlist, not only denylist"):

* A global is safe only if it is on the allowlist, as an *exact* pair. The only generalisation is
  for classes of libraries whose estimators are classes (``sklearn``, ``xgboost``…): a CamelCase
  class name directly under a public module of that package. Never a whole module, never a prefix
  that could match a function, never a dunder.
* Module names are normalised first (``posix``/``nt`` → ``os``, ``_operator`` → ``operator``,
  ``__builtin__`` → ``builtins``, Python 2 names…), so a renamed module does not evade the list.
* A dotted name (``prod.os.system``) is attribute traversal from the module: any dunder component is
  critical, and every suffix is checked against the denylist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from mlsec.scan.model import Severity

__all__ = [
    "CALLS_ARGUMENTS",
    "LOADS_LIKE",
    "REFLECTIVE_ATTRS",
    "RESOLVERS",
    "Verdict",
    "is_dunder",
    "judge_attribute",
    "judge_global",
    "normalise_module",
]

# Module aliases: the unpickler imports them under another name, or they are the C twin of a
# Python module (same functions). Python 2 names come from _compat_pickle, like pickle itself.
_ALIASES: dict[str, str] = {
    "posix": "os",
    "nt": "os",
    "_posixsubprocess": "subprocess",
    "_operator": "operator",
    "__builtin__": "builtins",
    "__builtins__": "builtins",
    "exceptions": "builtins",
    "_io": "io",
    "_pyio": "io",
    "_pickle": "pickle",
    "cPickle": "pickle",
    "_compat_pickle": "pickle",
    "copy_reg": "copyreg",
    "_functools": "functools",
    "_collections": "collections",
    "_thread": "threading",
    "thread": "threading",
    "_socket": "socket",
    "_ssl": "ssl",
    "_ctypes": "ctypes",
    "_imp": "importlib",
    "imp": "importlib",
    "_frozen_importlib": "importlib",
    "_frozen_importlib_external": "importlib",
    "_signal": "signal",
    "_winapi": "subprocess",
    "_subprocess": "subprocess",
    "commands": "subprocess",
    "popen2": "subprocess",
    "_codecs": "codecs",
    "numpy.core": "numpy._core",
    "sklearn.externals.joblib": "joblib",
}


@lru_cache(maxsize=4096)
def normalise_module(module: str) -> str:
    """The canonical name of ``module`` (aliases and C twins folded, Python 2 names mapped)."""
    from _compat_pickle import IMPORT_MAPPING

    module = IMPORT_MAPPING.get(module, module)
    if module in _ALIASES:
        return _ALIASES[module]
    for alias, target in _ALIASES.items():
        if module.startswith(alias + "."):
            return target + module[len(alias) :]
    return module


def is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and len(name) > 4


# Attribute names that reach interpreter internals (modelscan #330/#89: numpy.__builtins__,
# f.__globals__['os'], ().__class__.__base__.__subclasses__()).
REFLECTIVE_ATTRS = frozenset(
    {
        "__builtins__",
        "__globals__",
        "__dict__",
        "__class__",
        "__subclasses__",
        "__base__",
        "__bases__",
        "__mro__",
        "__code__",
        "__closure__",
        "__func__",
        "__self__",
        "__module__",
        "__loader__",
        "__spec__",
        "__import__",
        "__getattribute__",
        "__getattr__",
        "__setattr__",
        "__init__",
        "__new__",
        "__call__",
        "__reduce__",
        "__reduce_ex__",
        "__setstate__",
        "__init_subclass__",
        "f_globals",
        "f_locals",
        "f_back",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "tb_frame",
        "func_globals",
        "modules",  # sys.modules reached from any module that imported sys
    }
)

# Whole modules (and their submodules) whose callables reach code execution, processes, files,
# the network, the import machinery or the interpreter. Normalised names.
_DENY_MODULES = frozenset(
    {
        "os",
        "subprocess",
        "sys",
        "shutil",
        "socket",
        "socketserver",
        "ssl",
        "select",
        "selectors",
        "signal",
        "pty",
        "tty",
        "runpy",
        "pydoc",
        "timeit",
        "cProfile",
        "profile",
        "pstats",
        "pdb",
        "bdb",
        "trace",
        "tracemalloc",
        "code",
        "codeop",
        "compileall",
        "py_compile",
        "doctest",
        "idlelib",
        "lib2to3",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "ctypes",
        "cffi",
        "importlib",
        "zipimport",
        "pkgutil",
        "site",
        "sysconfig",
        "ensurepip",
        "venv",
        "pip",
        "setuptools",
        "distutils",
        "pkg_resources",
        "webbrowser",
        "http",
        "urllib",
        "urllib2",
        "urllib3",
        "httplib",
        "ftplib",
        "smtplib",
        "smtpd",
        "telnetlib",
        "imaplib",
        "poplib",
        "nntplib",
        "xmlrpc",
        "requests",
        "httpx",
        "aiohttp",
        "pickle",
        "dill",
        "cloudpickle",
        "marshal",
        "shelve",
        "dbm",
        "tempfile",
        "glob",
        "fileinput",
        "linecache",
        "tarfile",
        "zipfile",
        "gc",
        "inspect",
        "platform",
        "_aix_support",
        "_osx_support",
        "_pyrepl",
        "rlcompleter",
        "readline",
        "test",
        "builtins.__import__",
        "IPython",
        "jinja2",
        "mako",
        "numpy.testing",
        "numpy.f2py",
        "numpy.distutils",
        "numpy.ctypeslib",
        "torch.hub",
        "torch.utils.collect_env",
        "torch.utils.cpp_extension",
        "torch.utils.bottleneck",
        "torch.utils._config_module",
        "torch._inductor",
        "torch._dynamo",
        "torch.fx",
        "torch.jit",
        "torch.package",
        "torch.ops",
        "torch._ops",
        "torch.library",
        "torch.serialization",
        "torch.distributed",
        "transformers.dynamic_module_utils",
        "keras.src.saving",
        "tensorflow.io",
        "tensorflow.python.ops.script_ops",
        "mlflow",
        "pandas.io",
        "pandas.core.computation",
        "yaml",
        "ruamel",
        "logging.config",
        "sqlite3",
        "asyncore",
        "asynchat",
        "winreg",
        "_winreg",
        "msvcrt",
        "mailbox",
    }
)

# Exact callables (normalised module.name) outside those modules.
_DENY_NAMES = frozenset(
    {
        "builtins.eval",
        "builtins.exec",
        "builtins.execfile",
        "builtins.compile",
        "builtins.open",
        "builtins.file",
        "builtins.input",
        "builtins.raw_input",
        "builtins.breakpoint",
        "builtins.help",
        "builtins.exit",
        "builtins.quit",
        "builtins.reload",
        "builtins.apply",
        "builtins.__import__",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.globals",
        "builtins.locals",
        "builtins.vars",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.itemgetter",
        "operator.getitem",
        "operator.setitem",
        "operator.delitem",
        "operator.call",
        "functools.reduce",
        "typing.get_type_hints",
        "typing._eval_type",
        "typing.ForwardRef",
        "dataclasses._create_fn",
        "string.Formatter",
        "functools.partialmethod",
        "functools.singledispatch",
        "codecs.open",
        "gzip.open",
        "gzip.GzipFile",
        "bz2.open",
        "bz2.BZ2File",
        "lzma.open",
        "lzma.LZMAFile",
        "codecs.EncodedFile",
        "io.open",
        "io.open_code",
        "io.FileIO",
        "io.BufferedReader",
        "io.BufferedWriter",
        "io.BufferedRandom",
        "io.TextIOWrapper",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "types.CodeType",
        "types.FunctionType",
        "types.LambdaType",
        "types.MethodType",
        "types.ModuleType",
        "types.new_class",
        "logging.FileHandler",
        "logging.handlers.SocketHandler",
        "logging.handlers.SysLogHandler",
        "logging.handlers.HTTPHandler",
        "logging.handlers.SMTPHandler",
        "copyreg._inverted_registry",
        "copyreg.add_extension",
        "numpy.load",
        "numpy.loadtxt",
        "numpy.genfromtxt",
        "numpy.fromfile",
        "numpy.save",
        "numpy.savetxt",
        "numpy.memmap",
        "numpy.lib.npyio.load",
        "numpy.lib._npyio_impl.load",
        "numpy.lib.format.read_array",
        "numpy.lib.utils.runstring",
        "torch.load",
        "torch.save",
        "torch.from_file",
        "torch.classes.load_library",
        "torch.storage.UntypedStorage.from_file",
        "joblib.load",
        "joblib.dump",
        "joblib.numpy_pickle.load",
        "pandas.read_pickle",
        "pandas.read_csv",
        "pandas.read_table",
        "pandas.read_json",
        "pandas.read_html",
        "pandas.read_xml",
        "pandas.read_sql",
        "pandas.read_sql_query",
        "pandas.read_parquet",
        "pandas.read_feather",
        "pandas.read_excel",
        "pandas.read_hdf",
        "pandas.read_fwf",
        "pandas.read_clipboard",
        "pandas.read_orc",
        "pandas.read_sas",
        "pandas.read_spss",
        "pandas.read_stata",
        "pandas.eval",
        "pandas.DataFrame.query",
        "pandas.DataFrame.eval",
        "pandas.DataFrame.to_pickle",
        "pandas.DataFrame.to_csv",
        "keras.models.load_model",
        "keras.saving.load_model",
        "tensorflow.keras.models.load_model",
        "uuid._get_command_stdout",
        "uuid._popen",
        "sklearn.utils._testing.assert_run_python_script",
        "sklearn.utils._testing.assert_run_python_script_without_output",
    }
)

# Callables whose job is to deserialise bytes: a bytes argument is a nested payload to scan.
LOADS_LIKE = frozenset(
    {
        "pickle.loads",
        "pickle._loads",
        "pickle.load",
        "pickle.Unpickler",
        "dill.loads",
        "cloudpickle.loads",
        "marshal.loads",
        "torch.load",
        "torch.serialization.load",
        "torch.serialization._load",
        "joblib.load",
        "numpy.load",
        "pandas.read_pickle",
        "shelve.open",
        "torch.storage._load_from_bytes",
    }
)

# Allowed callables that import by name: resolver(module, name) returns module.name. A call with
# constant strings is judged as that global; with computed strings it cannot be checked.
RESOLVERS = frozenset({"numpy._core._ufunc_reconstruct", "numpy.core._ufunc_reconstruct"})

# Allowed callables that call (or instantiate) some of their arguments: those arguments must be
# imported globals (judged on their own), not objects computed while loading.
CALLS_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "torch._tensor._rebuild_from_type": (0,),
    "torch._tensor._rebuild_from_type_v2": (0,),
    "copyreg._reconstructor": (0, 1),
    "copyreg.__newobj__": (0,),
    "copyreg.__newobj_ex__": (0,),
    "functools.partial": (0,),
}

# Exact pairs known safe: what PyTorch's weights_only unpickler accepts, NumPy reconstruction,
# plain containers, and the helpers scikit-learn / XGBoost / LightGBM / joblib pickles reference.
_ALLOW_EXACT = frozenset(
    {
        # builtins: containers and scalars only
        "builtins.set",
        "builtins.frozenset",
        "builtins.list",
        "builtins.dict",
        "builtins.tuple",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.complex",
        "builtins.bool",
        "builtins.slice",
        "builtins.range",
        "builtins.object",
        "builtins.NoneType",
        "builtins.Ellipsis",
        "builtins.NotImplemented",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "codecs.encode",  # bytes in protocol <3 pickles: _codecs.encode(str, 'latin1')
        "collections.OrderedDict",
        "collections.Counter",
        "collections.defaultdict",
        "collections.deque",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "enum.Enum",
        "re._compile",
        "functools.partial",
        # numpy
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.ma.core._mareconstruct",
        "numpy.ma.core.MaskedArray",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy._core.numeric._frombuffer",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random.bit_generator.SeedSequence",
        # joblib
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "joblib.numpy_pickle.NDArrayWrapper",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
        # scipy sparse matrices (sklearn vectorisers)
        "scipy.sparse._csr.csr_matrix",
        "scipy.sparse._csc.csc_matrix",
        "scipy.sparse._coo.coo_matrix",
        "scipy.sparse._csr.csr_array",
        "scipy.sparse._csc.csc_array",
        "scipy.sparse.csr.csr_matrix",
        "scipy.sparse.csc.csc_matrix",
        "scipy.interpolate._bsplines.BSpline",
        # scikit-learn functions referenced by fitted estimators (derived by pickling them)
        "sklearn.metrics._dist_metrics.newObj",
        "sklearn.neighbors._kd_tree.newObj",
        "sklearn.neighbors._ball_tree.newObj",
        "sklearn.tree._tree.Tree",
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.f_regression",
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.metrics._scorer._passthrough_scorer",
        "sklearn._loss.link.Interval",
        "sklearn.cluster._kmeans._kmeans_single_lloyd",
        "sklearn.cluster._kmeans._kmeans_single_elkan",
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
        # numpy reductions used as estimator parameters (FeatureAgglomeration(pooling_func=…))
        "numpy.mean",
        "numpy.median",
        "numpy.sum",
        "numpy.max",
        "numpy.min",
        "numpy.amax",
        "numpy.amin",
        "numpy.std",
        "numpy.var",
        "numpy.nanmean",
        "numpy.nanmedian",
        # ufuncs (FunctionTransformer(func=numpy.log1p), losses), pickled by name
        *(
            f"numpy.{u}"
            for u in [
                "log",
                "exp",
                "log1p",
                "expm1",
                "log2",
                "log10",
                "exp2",
                "sqrt",
                "square",
                "abs",
                "absolute",
                "negative",
                "sign",
                "reciprocal",
                "add",
                "subtract",
                "multiply",
                "divide",
                "true_divide",
                "floor_divide",
                "power",
                "maximum",
                "minimum",
                "fmax",
                "fmin",
                "sin",
                "cos",
                "tan",
                "tanh",
                "sinh",
                "cosh",
                "arctan",
                "arcsin",
                "arccos",
                "arctanh",
                "clip",
                "round",
                "floor",
                "ceil",
                "rint",
                "trunc",
                "isnan",
                "isfinite",
                "isinf",
                "logical_and",
                "logical_or",
                "logical_not",
            ]
        ),
        "numpy._core._ufunc_reconstruct",  # a resolver: its calls are judged by what they name
        # XGBoost / LightGBM scikit-learn wrappers and boosters
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.sklearn.XGBRanker",
        "xgboost.sklearn.XGBRFClassifier",
        "xgboost.sklearn.XGBRFRegressor",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.sklearn.LGBMRanker",
        "lightgbm.sklearn.LGBMModel",
    }
)

# dtypes and numpy scalar types are referenced by name (numpy.float64, numpy.int64…).
_NUMPY_SCALARS = re.compile(
    r"numpy\.(?:float(?:16|32|64|128)|u?int(?:8|16|32|64)|complex(?:64|128|256)|bool_?|"
    r"longdouble|clongdouble|intc|uintc|intp|uintp|longlong|ulonglong|half|single|double|"
    r"str_|bytes_|void|object_|datetime64|timedelta64|dtypes\.\w+DType)"
)

# Libraries whose pickles reference their own *classes* (estimators, transformers, trees, kernels,
# losses, torch.nn layers in a whole-module save): a CamelCase class name in a public module under
# these packages is allowed. Functions (lower-case names) and dunders never match; private test
# helpers are excluded.
_CLASS_PACKAGES = ("sklearn.", "xgboost.", "lightgbm.", "torch.nn.modules.")
_CLASS_NAME = re.compile(r"_?[A-Z][A-Za-z0-9]*")
_CLASS_EXCLUDED_PARTS = frozenset({"_testing", "tests", "conftest", "externals", "_build_utils"})

# torch: the exact classes/functions of the weights_only unpickler, plus dtype/layout/storage names.
_TORCH_ALLOW = frozenset(
    {
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.dtype",
        "torch.layout",
        "torch.memory_format",
        "torch.strided",
        "torch.sparse_coo",
        "torch.sparse_csr",
        "torch.sparse_csc",
        "torch.sparse_bsr",
        "torch.sparse_bsc",
        "torch._mkldnn",
        "torch.contiguous_format",
        "torch.channels_last",
        "torch.channels_last_3d",
        "torch.preserve_format",
        "torch._tensor._rebuild_from_type",
        "torch._tensor._rebuild_from_type_v2",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_nested_tensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_wrapper_subclass",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch.serialization._get_layout",
        "torch.nn.parameter.Parameter",
        "torch.nn.parameter.Buffer",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch.storage._load_from_bytes",  # legacy; still reviewed: it calls torch.load
        "torch.nested._internal.nested_tensor.NestedTensor",
        "torch.nested._internal.nested_tensor._rebuild_njt",
        "torch.per_channel_affine",
        "torch.per_channel_affine_float_qparams",
        "torch.per_channel_symmetric",
        "torch.per_tensor_affine",
        "torch.per_tensor_symmetric",
    }
)
_TORCH_STORAGE = re.compile(
    r"torch\.(?:cuda\.|sparse\.|cuda\.sparse\.)?(?:BFloat16|Bool|Byte|Char|ComplexDouble|"
    r"ComplexFloat|Double|Float|Half|Int|Long|Short|QInt32|QInt8|QUInt2x4|QUInt4x2|QUInt8)"
    r"(?:Storage|Tensor)"
)
_TORCH_DTYPE = re.compile(
    r"torch\.(?:bfloat16|bool|complex(?:32|64|128)|float(?:16|32|64)|half|double|cfloat|cdouble|"
    r"float8_\w+|float4_e2m1fn_x2|u?int[1-7]|u?int(?:8|16|32|64)|bits\w+|q(?:u)?int\w+|long|short)"
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one global (``module.name``) is judged. ``severity`` None means allowed."""

    rule: str
    severity: Severity | None
    symbol: str
    reason: str = ""


def _deny_match(qual: str) -> str | None:
    if qual in _DENY_NAMES:
        return qual
    parts = qual.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix in _DENY_MODULES:
            return prefix
    return None


def _allowed(module: str, name: str, qual: str, extra: frozenset[str]) -> bool:
    if qual in _ALLOW_EXACT or qual in _TORCH_ALLOW or qual in extra:
        return True
    if "." in name:
        return False
    if module == "numpy" and _NUMPY_SCALARS.fullmatch(qual):
        return True
    if module == "numpy.dtypes" and name.endswith("DType") and name[:1].isupper():
        return True
    if module == "torch" and (_TORCH_STORAGE.fullmatch(qual) or _TORCH_DTYPE.fullmatch(qual)):
        return True
    if module.startswith(_CLASS_PACKAGES) and _CLASS_NAME.fullmatch(name):
        return not any(p in _CLASS_EXCLUDED_PARTS for p in module.split("."))
    return False


@lru_cache(maxsize=8192)
def _judge(module: str, name: str, extra: frozenset[str]) -> Verdict:
    raw = f"{module}.{name}"
    nmod = normalise_module(module)
    qual = f"{nmod}.{name}"
    parts = name.split(".")
    if qual in _ALLOW_EXACT or qual in _TORCH_ALLOW or raw in extra or qual in extra:
        return Verdict("PICKLE-GLOBAL-ALLOWED", None, raw)
    for p in parts:
        if is_dunder(p) or p in REFLECTIVE_ATTRS:
            return Verdict(
                "PICKLE-DUNDER-ACCESS",
                Severity.CRITICAL,
                raw,
                f"'{raw}' reaches interpreter internals ({p}) through attribute access",
            )
    hit = _deny_match(qual)
    if hit is None and len(parts) > 1:
        # Attribute traversal (numpy 'prod.os.system'): every suffix is a possible real target.
        for i in range(len(parts) - 1):
            suffix = ".".join(parts[i:])
            hit = _deny_match(normalise_module(suffix.rsplit(".", 1)[0]) + "." + parts[-1])
            hit = hit or _deny_match(normalise_module(suffix))
            if hit:
                break
    if hit is not None:
        return Verdict(
            "PICKLE-DANGEROUS-GLOBAL",
            Severity.CRITICAL,
            raw,
            f"'{raw}' can execute code or reach the OS, files, network or imports ({hit})",
        )
    if _allowed(nmod, name, qual, extra):
        return Verdict("PICKLE-GLOBAL-ALLOWED", None, raw)
    if len(parts) > 1:
        return Verdict(
            "PICKLE-ATTRIBUTE-TRAVERSAL",
            Severity.HIGH,
            raw,
            f"'{raw}' walks attributes of module {module} to reach an object",
        )
    return Verdict(
        "PICKLE-UNKNOWN-GLOBAL",
        Severity.MEDIUM,
        raw,
        f"loading requires trusting {raw} (module {module} is outside the allowlist)",
    )


def judge_global(module: str, name: str, extra: frozenset[str] = frozenset()) -> Verdict:
    """Judge one imported global. ``extra`` holds user-allowed ``module.name`` strings.

    >>> judge_global("posix", "system").severity
    <Severity.CRITICAL: 'critical'>
    """
    return _judge(module, name, extra)


# Attribute names that are dangerous callables on whatever module they are reached from.
_DANGEROUS_ATTRS = frozenset(
    {
        "system",
        "popen",
        "Popen",
        "spawn",
        "spawnv",
        "spawnve",
        "spawnl",
        "execv",
        "execve",
        "execl",
        "execvp",
        "fork",
        "run",
        "call",
        "check_call",
        "check_output",
        "getoutput",
        "getstatusoutput",
        "eval",
        "exec",
        "compile",
        "open",
        "load",
        "loads",
        "import_module",
        "resolve_name",
        "remove",
        "unlink",
        "rmtree",
        "rename",
        "write",
        "write_text",
        "write_bytes",
        "urlopen",
        "get_data",
        "runcode",
        "runsource",
        "runctx",
        "setattr",
        "getattr",
    }
)


def judge_attribute(attr: str) -> Severity | None:
    """Severity of reaching attribute ``attr`` on any object (getattr/attrgetter arguments)."""
    first = attr.split(".")
    if any(is_dunder(p) or p in REFLECTIVE_ATTRS for p in first):
        return Severity.CRITICAL
    if any(p in _DANGEROUS_ATTRS or f"builtins.{p}" in _DENY_NAMES for p in first):
        return Severity.CRITICAL
    if any(_deny_match(p) is not None for p in first):
        return Severity.CRITICAL
    return None
