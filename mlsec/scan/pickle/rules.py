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

import _compat_pickle
from dataclasses import dataclass
from functools import lru_cache

from mlsec.scan.model import Severity
from mlsec.scan.pickle.lists import (
    ALIASES,
    ALLOW_EXACT,
    CALLS_ARGUMENTS,
    CLASS_EXCLUDED_PARTS,
    CLASS_NAME,
    CLASS_PACKAGES,
    DANGEROUS_ATTRS,
    DENY_MODULES,
    DENY_NAMES,
    LOADS_LIKE,
    NUMPY_SCALARS,
    REFLECTIVE_ATTRS,
    RESOLVERS,
    TORCH_ALLOW,
    TORCH_DTYPE,
    TORCH_STORAGE,
    TORCHSCRIPT_CLASS,
)

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


@lru_cache(maxsize=4096)
def normalise_module(module: str) -> str:
    """The canonical name of ``module`` (aliases and C twins folded, Python 2 names mapped)."""
    from _compat_pickle import IMPORT_MAPPING

    module = IMPORT_MAPPING.get(module, module)
    if module in ALIASES:
        return ALIASES[module]
    for alias, target in ALIASES.items():
        if module.startswith(alias + "."):
            return target + module[len(alias) :]
    return module


def is_dunder(name: str) -> bool:
    """``__x__``: a special attribute (reaching one is how sandbox escapes start)."""
    return name.startswith("__") and name.endswith("__") and len(name) > 4


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one global (``module.name``) is judged. ``severity`` None means allowed."""

    rule: str
    severity: Severity | None
    symbol: str
    reason: str = ""


def _deny_match(qual: str) -> str | None:
    if qual in DENY_NAMES:
        return qual
    parts = qual.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix in DENY_MODULES:
            return prefix
    return None


def _allowed(module: str, name: str, qual: str, extra: frozenset[str]) -> bool:
    if qual in ALLOW_EXACT or qual in TORCH_ALLOW or qual in extra:
        return True
    if "." in name:
        return False
    if module.startswith("__torch__") and TORCHSCRIPT_CLASS.fullmatch(qual):
        return True
    if module == "numpy" and NUMPY_SCALARS.fullmatch(qual):
        return True
    if module == "numpy.dtypes" and name.endswith("DType") and name[:1].isupper():
        return True
    if module == "torch" and (TORCH_STORAGE.fullmatch(qual) or TORCH_DTYPE.fullmatch(qual)):
        return True
    if module.startswith(CLASS_PACKAGES) and CLASS_NAME.fullmatch(name):
        return not any(p in CLASS_EXCLUDED_PARTS for p in module.split("."))
    return False


@lru_cache(maxsize=8192)
def _judge(module: str, name: str, extra: frozenset[str]) -> Verdict:
    raw = f"{module}.{name}"
    # Python 2 names pickle maps by (module, name) (__builtin__.xrange -> builtins.range,
    # __builtin__.reduce -> functools.reduce, UserDict.IterableUserDict -> collections.UserDict).
    # CPython maps them for protocol < 3. Judging the mapped pair at every protocol is exact:
    # unmapped, each original pair either fails to import on Python 3 or is the same object.
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    nmod = normalise_module(module)
    qual = f"{nmod}.{name}"
    parts = name.split(".")
    if qual in ALLOW_EXACT or qual in TORCH_ALLOW or raw in extra or qual in extra:
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


def judge_attribute(attr: str) -> Severity | None:
    """Severity of reaching attribute ``attr`` on any object (getattr/attrgetter arguments)."""
    first = attr.split(".")
    if any(is_dunder(p) or p in REFLECTIVE_ATTRS for p in first):
        return Severity.CRITICAL
    if any(p in DANGEROUS_ATTRS or f"builtins.{p}" in DENY_NAMES for p in first):
        return Severity.CRITICAL
    if any(_deny_match(p) is not None for p in first):
        return Severity.CRITICAL
    return None
