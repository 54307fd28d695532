"""Rego policies, evaluated offline with regopy over the evidence document.

A Rego policy is a module in ``package mlsec`` that defines the set ``deny`` of messages (Rego v1
syntax, as conftest and OPA use)::

    package mlsec
    import rego.v1

    deny contains msg if {
        some f in input.scan.findings
        f.severity == "critical"
        msg := sprintf("%s: %s", [f.file, f.message])
    }

``input`` is the ``mlsec/evidence/v1`` document. Each message is a denial; none is an allow.
A policy that does not define ``data.mlsec.deny``, defines it as something other than a set of
strings, or does not compile, is a :class:`~mlsec.errors.PolicyError` (exit 2), never an allow.

regopy is an optional dependency (``pip install 'mlsec[rego]'``). It prints compile errors on
the process's standard output, which would corrupt ``--format json``: its calls run with file
descriptor 1 redirected, and the text becomes the error message.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mlsec.errors import PolicyError

__all__ = ["QUERY", "deny_messages", "load_modules"]

QUERY = "data.mlsec.deny"
T = TypeVar("T")


def deny_messages(modules: Sequence[tuple[str, str]], evidence: dict[str, Any]) -> list[str]:
    """Evaluate ``data.mlsec.deny`` over ``evidence`` with the Rego ``modules``
    (``(file name, source)`` pairs) and return its messages, sorted."""
    try:
        from regopy import Interpreter
    except ImportError:
        raise PolicyError("Rego policies need regopy", hint="pip install 'mlsec[rego]'") from None
    name = modules[0][0] if modules else "policy"

    def run() -> str:
        rego = Interpreter()
        for mod_name, source in modules:
            rego.add_module(mod_name, source)
        rego.set_input_term(json.dumps(evidence))
        return str(rego.query(QUERY))

    raw = _quiet(run, name)
    if raw == "undefined":
        raise PolicyError(f"{name}: the policy does not define {QUERY} (package mlsec; deny)")
    try:
        value = json.loads(raw)["expressions"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise PolicyError(
            f"{name}: unexpected result from the Rego evaluator: {raw[:200]}"
        ) from None
    if isinstance(value, dict):  # Rego v0 partial set syntax (deny[msg] {...}) gives an object
        value = [k for k, v in value.items() if v is True]
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise PolicyError(
            f"{name}: {QUERY} must be a set of strings, got {json.dumps(value)[:200]}"
        )
    return sorted(value)


def load_modules(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """Read Rego module files (one-line errors)."""
    from mlsec.ioutil import read_capped

    out = []
    for p in paths:
        data = read_capped(p, 1 << 20, what="Rego module", error=PolicyError)
        try:
            out.append((p.name, data.decode("utf-8")))
        except UnicodeDecodeError:
            raise PolicyError(f"{p}: cannot read Rego module: not UTF-8 text") from None
    return out


def _quiet(fn: Callable[[], T], name: str) -> T:
    """Run ``fn`` with stdout (fd 1) captured; a failure becomes a PolicyError with that text."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            result = fn()
            error = None
        except Exception as exc:  # regopy raises its own RegoError; anything else is as bad
            result, error = None, exc
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        if error is None:
            return result  # type: ignore[return-value]
        sink.seek(0)
        text = sink.read(16 * 1024).decode("utf-8", "replace")
    raise PolicyError(f"{name}: Rego policy does not compile: {_first_error(text, error)}")


def _first_error(text: str, exc: Exception) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith("-- ") and i > 0:
            return f"{ln[3:]}: {lines[i - 1]}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
