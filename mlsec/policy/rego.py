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

regopy is an optional dependency (``pip install 'mlsec[rego]'``).

A policy that cannot be evaluated as written denies nothing and allows nothing: it is a
:class:`~mlsec.errors.PolicyError` (exit 2, "could not decide"). regopy returns *undefined* —
so a ``deny`` rule silently drops out and the model is allowed — for a built-in it does not
implement (``http.send``, ``net.cidr_contains``, ``print``…) and for a built-in that fails
(``1 / 0``, ``to_number("x")``). Hence: every function a module calls must be one regopy
implements or one the modules define (checked before evaluating, naming the built-in and line),
and evaluation runs with ``strict_built_in_errors``, so a failing built-in is an error.

Evaluation is bounded in time and memory: it runs in a child process (regopy is native code,
which a thread cannot interrupt) with a resident-memory watchdog, a CPU limit and a wall-clock
timeout (:data:`TIMEOUT_SECONDS`, :data:`MEMORY_BYTES`); a limit hit is exit 2. The child also keeps
regopy's own printing (compile errors on standard output) away from ``--format json``, and keeps
regopy's native library out of the mlsec process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlsec.errors import PolicyError
from mlsec.jsonsafe import loads

__all__ = ["MEMORY_BYTES", "QUERY", "TIMEOUT_SECONDS", "deny_messages", "load_modules"]

QUERY = "data.mlsec.deny"
TIMEOUT_SECONDS = 30.0
"""Wall-clock limit of one evaluation (also its CPU limit, rounded up)."""
MEMORY_BYTES = 1024**3
"""Resident-memory limit of the evaluating process (enforced where /proc exists)."""
_MAX_OUTPUT = 16 * 1024 * 1024
_MAX_MODULE = 1024 * 1024

# Runs in the child: request on stdin, answer as one JSON line on the original stdout; anything
# regopy prints goes to stderr, which becomes the error text.
_CHILD = r"""
import json, os, sys
req = json.loads(sys.stdin.buffer.read())
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
try:
    from regopy import Interpreter
except ImportError:
    out.write(json.dumps({"state": "no-regopy"})); sys.exit(0)
names = req.get("names") or []
try:
    rego = Interpreter()
    rego.strict_built_in_errors = True
    missing = [n for n in names if not rego.is_builtin(n)]
    if missing:
        out.write(json.dumps({"state": "unsupported", "names": missing})); sys.exit(0)
    for name, source in req["modules"]:
        rego.add_module(name, source)
    rego.set_input_term(req["input"])
    res = rego.query(req["query"])
    out.write(json.dumps({"state": "ok" if res.ok() else "error", "raw": str(res)}))
except Exception as exc:
    sys.stdout.flush()
    out.write(json.dumps({"state": "exception", "text": str(exc)}))
"""

# Comments, strings (with escapes) and raw strings, removed before looking for calls.
_NOISE = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"|`[^`]*`')
_CALL = re.compile(r"(?<![\w.\]])([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*\(")
# A function is defined at the top level: its head starts a line.
_DEFINED = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*\(", re.M)
_IMPORT = re.compile(r"^\s*import\s+data((?:\.[A-Za-z_]\w*)+)(?:\s+as\s+([A-Za-z_]\w*))?", re.M)
_KEYWORDS = frozenset({"if", "not", "some", "every", "in", "with", "contains", "else", "as"})


def called_functions(modules: Sequence[tuple[str, str]]) -> dict[str, tuple[str, int]]:
    """Every function name the modules call that they do not define, with where it is first
    called (file, line). Calls through ``data.`` reach rules, not built-ins, and are left out."""
    defined: set[str] = set()
    calls: dict[str, tuple[str, int]] = {}
    for mod_name, source in modules:
        clean = _NOISE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), source)
        defined.update(m.group(1) for m in _DEFINED.finditer(clean))
        # `import data.lib` (or `... as x`) makes `lib.f(...)` a call into another module.
        aliases = {m.group(2) or m.group(1).rsplit(".", 1)[-1] for m in _IMPORT.finditer(clean)}
        for m in _CALL.finditer(clean):
            name = m.group(1)
            if name in _KEYWORDS or name.startswith(("data.", "input.")):
                continue
            if name.split(".", 1)[0] in aliases:
                continue
            calls.setdefault(name, (mod_name, clean.count("\n", 0, m.start()) + 1))
    return {n: where for n, where in calls.items() if n not in defined}


def deny_messages(modules: Sequence[tuple[str, str]], evidence: dict[str, Any]) -> list[str]:
    """Evaluate ``data.mlsec.deny`` over ``evidence`` with the Rego ``modules``
    (``(file name, source)`` pairs) and return its messages, sorted."""
    name = modules[0][0] if modules else "policy"
    calls = called_functions(modules)
    answer = _evaluate(
        {
            "modules": [list(m) for m in modules],
            "input": json.dumps(evidence),
            "query": QUERY,
            "names": sorted(calls),
        },
        name,
    )
    state = answer.get("state")
    if state == "no-regopy":
        raise PolicyError("Rego policies need regopy", hint="pip install 'mlsec[rego]'")
    if state == "unsupported":
        first = answer["names"][0]
        file, line = calls.get(first, (name, 0))
        raise PolicyError(
            f"{file}:{line}: built-in {first}() is not supported by the Rego engine (regopy);"
            " the policy cannot be evaluated as written",
            hint="rewrite the rule without it",
        )
    if state == "exception":
        raise PolicyError(f"{name}: Rego policy does not compile: {answer['error_line']}")
    raw = str(answer.get("raw", ""))
    if state == "error":
        raise PolicyError(
            f"{name}: Rego evaluation error (a built-in failed, e.g. a division by zero or a"
            " conversion of a malformed value); the policy cannot decide"
        )
    if raw == "undefined":
        raise PolicyError(f"{name}: the policy does not define {QUERY} (package mlsec; deny)")
    try:
        value = loads(raw, name, PolicyError, what="Rego result", allow_nan=True)["expressions"][0]
    except (PolicyError, KeyError, IndexError, TypeError):
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


def _limits() -> None:  # pragma: no cover - runs in the child before exec
    import resource

    cpu = int(TIMEOUT_SECONDS) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def _rss(pid: int) -> int | None:
    """Resident bytes of ``pid`` (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _evaluate(request: dict[str, Any], name: str) -> dict[str, Any]:
    """Run the evaluation in a bounded child process; its answer as a dict, or PolicyError.

    regopy's allocator (snmalloc) reserves far more address space than it uses, so
    ``RLIMIT_AS``/``RLIMIT_DATA`` stop it from starting at all: memory is bounded by a watchdog
    that kills the child when its resident size passes :data:`MEMORY_BYTES`.
    """
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_limits if os.name == "posix" else None,
        )
    except OSError as exc:
        raise PolicyError(f"{name}: cannot run the Rego evaluator: {exc}") from None
    over_memory = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            rss = _rss(proc.pid)
            if rss is not None and rss > MEMORY_BYTES:
                over_memory.set()
                proc.kill()
                return

    watchdog = threading.Thread(target=watch, daemon=True)
    watchdog.start()
    try:
        out, err_bytes = proc.communicate(json.dumps(request).encode(), timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise PolicyError(
            f"{name}: Rego evaluation exceeded its time limit ({TIMEOUT_SECONDS:g} s);"
            " the policy cannot decide"
        ) from None
    finally:
        done.set()
        watchdog.join()
    if over_memory.is_set():
        raise PolicyError(
            f"{name}: Rego evaluation exceeded its memory limit"
            f" ({MEMORY_BYTES // 1024**2} MiB); the policy cannot decide"
        )
    err = err_bytes[:_MAX_OUTPUT].decode("utf-8", "replace")
    try:
        answer = json.loads(out[:_MAX_OUTPUT] or b"null")
    except ValueError:
        answer = None
    if proc.returncode != 0 or not isinstance(answer, dict):
        why = _exit_reason(proc.returncode, err)
        raise PolicyError(f"{name}: Rego evaluation failed ({why}); the policy cannot decide")
    if answer.get("state") == "exception":
        answer["error_line"] = _first_error(err, str(answer.get("text", "")))
    return answer


def _exit_reason(code: int, err: str) -> str:
    import signal

    if code == -signal.SIGXCPU:
        return "CPU time limit exceeded"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else f"exit status {code}"


def load_modules(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """Read Rego module files (one-line errors)."""
    from mlsec.ioutil import read_capped

    out = []
    for p in paths:
        data = read_capped(p, _MAX_MODULE, what="Rego module", error=PolicyError)
        try:
            out.append((p.name, data.decode("utf-8")))
        except UnicodeDecodeError:
            raise PolicyError(f"{p}: cannot read Rego module: not UTF-8 text") from None
    return out


def _first_error(text: str, fallback: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith("-- ") and i > 0:
            return f"{ln[3:]}: {lines[i - 1]}"
    return fallback.splitlines()[0] if fallback else "unknown error"
