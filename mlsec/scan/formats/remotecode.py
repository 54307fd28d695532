"""Hugging Face remote code: ``auto_map`` / ``custom_pipelines`` in ``config.json``,
``tokenizer_config.json`` and the other preprocessor configs, and the Python files they name.

With ``trust_remote_code=True``, transformers downloads the module an ``auto_map`` entry names
(``"modeling_x.XModel"``, or ``"org/repo--modeling_x.XModel"`` from *another* repository), with the
modules it imports relatively, and imports it. So:

* a reference to another repository (``--``) pulls code that is not part of what was scanned:
  **high** (``HF-REMOTE-CODE-EXTERNAL``);
* a reference to code shipped alongside, and every ``modeling_*.py``, ``configuration_*.py``,
  ``tokenization_*.py``, ``processing_*.py`` … file, needs trust in that code: **medium**
  (``HF-REMOTE-CODE``);
* the Python is parsed with :mod:`ast` (never imported) and what runs *at import time* — module
  statements, class bodies, decorators, default values, and the module's own functions they
  call — is checked for process, network, file-destroying, ``exec``/``eval`` or native-code calls:
  **critical** in a dynamic-module file (``HF-REMOTE-CODE-IMPORT-TIME``), high in any other
  ``.py`` file (another module may import it). A dynamic-module file that does not parse is high.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity

__all__ = ["analyze_python", "config_findings", "is_dynamic_module"]

_MAX_SOURCE = 4 * 1024 * 1024
_MAX_REFS = 256
_MAX_FUNCTIONS = 10_000
_DYNAMIC = re.compile(
    r"(?:modeling|configuration|tokenization|processing|image_processing|feature_extraction"
    r"|video_processing|pipeline)(?:_\w+)?\.py"
)

# module → functions that run commands, reach the network, destroy files or load code; "*" for
# every function of the module.
_DANGEROUS_CALLS: dict[str, frozenset[str]] = {
    "os": frozenset(
        {
            "system", "popen", "execl", "execle", "execlp", "execlpe", "execv", "execve",
            "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
            "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "fork", "forkpty", "kill",
            "killpg", "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace",
            "chmod", "chown", "symlink", "link", "truncate", "startfile", "setuid", "setgid",
        }
    ),
    "posix": frozenset({"system", "popen", "fork", "execv", "execve", "remove", "unlink"}),
    "subprocess": frozenset({"*"}),
    "pty": frozenset({"*"}),
    "socket": frozenset(
        {
            "socket", "create_connection", "create_server", "socketpair", "fromfd",
            "getaddrinfo", "gethostbyname", "gethostbyname_ex",
        }
    ),
    "http": frozenset({"client", "server"}),
    "urllib": frozenset({"request", "urlopen", "urlretrieve"}),
    "urllib2": frozenset({"*"}),
    "urllib3": frozenset(
        {"PoolManager", "ProxyManager", "request", "connection_from_url", "HTTPConnectionPool"}
    ),
    "requests": frozenset(
        {"get", "post", "put", "patch", "delete", "head", "options", "request", "Session"}
    ),
    "httpx": frozenset(
        {"get", "post", "put", "patch", "delete", "head", "options", "request", "stream",
         "Client", "AsyncClient"}
    ),
    "aiohttp": frozenset({"ClientSession", "request"}),
    "ftplib": frozenset({"*"}),
    "smtplib": frozenset({"*"}),
    "telnetlib": frozenset({"*"}),
    "webbrowser": frozenset({"*"}),
    # loading a native library or touching raw memory (type constructors are harmless)
    "ctypes": frozenset(
        {
            "CDLL", "PyDLL", "WinDLL", "OleDLL", "LibraryLoader", "LoadLibrary", "cdll", "pydll",
            "windll", "oledll", "pythonapi", "memmove", "memset", "string_at", "wstring_at",
            "cast",
        }
    ),
    "cffi": frozenset({"dlopen", "verify", "compile", "set_source"}),
    "runpy": frozenset({"*"}),
    "code": frozenset({"*"}),
    "importlib": frozenset(
        {"__import__", "reload", "spec_from_file_location", "spec_from_loader", "exec_module"}
    ),
    "shutil": frozenset({"rmtree", "move", "chown", "copy", "copy2", "copyfile", "copytree"}),
    "pickle": frozenset({"load", "loads", "Unpickler"}),
    "marshal": frozenset({"load", "loads"}),
    "builtins": frozenset({"exec", "eval", "compile", "__import__", "breakpoint"}),
    "multiprocessing": frozenset({"Process", "Pool"}),
    # unpickling, native extensions, downloads (torch.hub.load runs the hub repo's hubconf.py)
    "torch": frozenset(
        {"load", "load_library", "load_inline", "load_state_dict_from_url", "download_url_to_file"}
    ),
    "asyncio": frozenset({"create_subprocess_exec", "create_subprocess_shell", "open_connection"}),
}  # fmt: skip
_BUILTIN_CALLS = frozenset({"exec", "eval", "compile", "__import__", "breakpoint"})


def is_dynamic_module(name: str) -> bool:
    """Whether ``name`` is a file transformers imports as remote code by its naming convention."""
    return bool(_DYNAMIC.fullmatch(name.rsplit("/", 1)[-1]))


# ----------------------------------------------------------------------------- configs


def config_findings(doc: dict[str, Any], ctx: ScanContext) -> Iterator[Finding]:
    """``auto_map`` and ``custom_pipelines`` references in a parsed HF config."""
    refs: list[tuple[str, object]] = []
    auto_map = doc.get("auto_map")
    if isinstance(auto_map, dict):
        for key, value in auto_map.items():
            for ref in value if isinstance(value, list) else [value]:
                refs.append((f"auto_map.{key}", ref))
    elif auto_map is not None:
        refs.append(("auto_map", auto_map))
    pipelines = doc.get("custom_pipelines")
    if isinstance(pipelines, dict):
        for task, spec in pipelines.items():
            impl = spec.get("impl") if isinstance(spec, dict) else spec
            refs.append((f"custom_pipelines.{task}.impl", impl))
    local: list[str] = []
    for where, ref in refs[:_MAX_REFS]:
        if ref is None:
            continue  # transformers' [slow, fast] pairs use null for a missing one
        if not isinstance(ref, str):
            yield ctx.finding(
                "HF-REMOTE-CODE-MALFORMED",
                Severity.HIGH,
                f"{where} is not a class reference ({str(ref)[:80]!r})",
                why="A reference the scanner cannot read is code it cannot judge (fail closed).",
                symbol=where,
            )
        elif "--" in ref:
            repo, _, cls = ref.partition("--")
            yield ctx.finding(
                "HF-REMOTE-CODE-EXTERNAL",
                Severity.HIGH,
                f"{where} pulls {cls} from another repository, {repo}",
                why="With trust_remote_code=True, transformers downloads and imports that "
                "repository's code when the model is loaded; it was not scanned and can change "
                "at any time.",
                symbol=ref,
            )
        else:
            local.append(ref)
    if len(refs) > _MAX_REFS:
        yield ctx.finding(
            "HF-REMOTE-CODE-MALFORMED",
            Severity.HIGH,
            f"{len(refs)} remote-code references: only {_MAX_REFS} inspected",
            why="What the scanner did not read may pull code from elsewhere.",
        )
    if local:
        names = sorted(set(local))
        yield ctx.finding(
            "HF-REMOTE-CODE",
            Severity.MEDIUM,
            f"auto_map names code shipped with the model: {', '.join(names[:8])}"
            + (" …" if len(names) > 8 else ""),
            why="Loading it needs trust_remote_code=True: transformers imports those modules "
            "from the repository, which needs trust in that code.",
            symbol=names[0],
        )


# ----------------------------------------------------------------------------- Python


def analyze_python(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """A ``.py`` file of a model repository: remote code transformers may import."""
    name = ctx.member or ctx.file
    if not name.lower().endswith(".py"):
        return
    dynamic = is_dynamic_module(name)
    if blob.size > _MAX_SOURCE:
        if dynamic:
            yield _unparseable(ctx, f"{blob.size} bytes of source were not inspected")
        return
    try:
        tree = ast.parse(blob.read(), filename=name)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        if dynamic:
            yield _unparseable(ctx, f"not parseable as Python ({exc.__class__.__name__})")
        return
    if dynamic:
        yield ctx.finding(
            "HF-REMOTE-CODE",
            Severity.MEDIUM,
            f"{name.rsplit('/', 1)[-1]}: model code that transformers imports with "
            "trust_remote_code=True",
            why="Remote code runs with the loading process's rights; it needs trust in its author.",
        )
    for call, line in import_time_calls(tree):
        yield ctx.finding(
            "HF-REMOTE-CODE-IMPORT-TIME",
            Severity.CRITICAL if dynamic else Severity.HIGH,
            f"line {line}: calls {call} when the module is imported",
            why="Importing the module (trust_remote_code, or any import of it) runs this "
            "process, network, file or code-loading call before any model is built.",
            symbol=call,
            offset=line,
        )


def _unparseable(ctx: ScanContext, why: str) -> Finding:
    return ctx.finding(
        "HF-REMOTE-CODE-UNPARSEABLE",
        Severity.HIGH,
        f"remote-code module {why}",
        why="Code the scanner cannot read may do anything when imported.",
    )


def import_time_calls(tree: ast.Module) -> list[tuple[str, int]]:
    """Dangerous calls reached when ``tree`` is imported: (dotted name, line)."""
    aliases = _aliases(tree)
    functions = {
        n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    hits: dict[tuple[str, int], None] = {}
    queue: list[ast.AST] = list(_import_time(tree.body))
    visited: set[str] = set()
    steps = 0
    while queue:
        node = queue.pop()
        steps += 1
        if steps > 2_000_000:
            hits[("<too much code to follow>", 0)] = None
            break
        for call in _calls(node):
            resolved = _resolve(call.func, aliases)
            if resolved is None:
                continue
            name, imported = resolved
            bare = "." not in name and name not in aliases and name not in functions
            if (
                (imported and _dangerous(name))
                or (bare and name in _BUILTIN_CALLS - {"__import__"})
                or _dynamic_lookup(call, name, aliases)
            ):
                hits[(name, call.lineno)] = None
            local = functions.get(name)
            if local is not None and name not in visited and len(visited) < _MAX_FUNCTIONS:
                visited.add(name)  # a module function called at import time runs then too
                queue.extend(local.body)
    return list(hits)


def _import_time(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """The parts of a statement list that run when it is executed as a module or class body."""
    stack = list(reversed(body))
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _applied(stmt.decorator_list)
            yield stmt.args
            if stmt.returns is not None:
                yield stmt.returns
        elif isinstance(stmt, ast.ClassDef):
            yield from _applied(stmt.decorator_list)
            yield from stmt.bases
            yield from stmt.keywords
            stack.extend(reversed(stmt.body))
        elif isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
            stack.extend(reversed(stmt.orelse))
        elif isinstance(stmt, ast.If | ast.For | ast.AsyncFor | ast.While):
            yield stmt.test if isinstance(stmt, ast.If | ast.While) else stmt.iter
            stack.extend(reversed([*stmt.body, *stmt.orelse]))
        elif isinstance(stmt, ast.Try | ast.TryStar):
            stack.extend(reversed([*stmt.body, *stmt.orelse, *stmt.finalbody]))
            for handler in stmt.handlers:
                stack.extend(reversed(handler.body))
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            yield from stmt.items
            stack.extend(reversed(stmt.body))
        elif isinstance(stmt, ast.Match):
            yield stmt.subject
            for case in stmt.cases:
                stack.extend(reversed(case.body))
        else:
            yield stmt


def _applied(decorators: list[ast.expr]) -> Iterator[ast.expr]:
    """Decorators as the calls they are: ``@deco`` calls ``deco`` when the definition runs."""
    for d in decorators:
        yield d
        if not isinstance(d, ast.Call):
            yield ast.Call(func=d, args=[], keywords=[], lineno=d.lineno, col_offset=d.col_offset)


def _calls(node: ast.AST) -> Iterator[ast.Call]:
    """Calls evaluated when ``node`` is: nested function and lambda bodies are not entered
    (their decorators and defaults are)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Call):
            yield n
        if isinstance(n, ast.Lambda):
            stack.extend(n.args.defaults)
            stack.extend(d for d in n.args.kw_defaults if d is not None)
            continue
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stack.extend(_import_time([n]))
            continue
        stack.extend(ast.iter_child_nodes(n))


def _is_main_guard(test: ast.expr) -> bool:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return any(_is_main_guard(v) for v in test.values)
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name → what it was imported as, from every import in the module."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    root = a.name.split(".", 1)[0]
                    out[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _resolve(func: ast.expr, aliases: dict[str, str], depth: int = 0) -> tuple[str, bool] | None:
    """The dotted name a call target refers to, and whether its root is an imported module (a
    local variable called ``socket`` is not the module)."""
    parts: list[str] = []
    node = func
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Call) and depth < 8:
        inner = _resolve(node.func, aliases, depth + 1)
        args = node.args
        const = [a.value if isinstance(a, ast.Constant) else None for a in args[:2]]
        if inner is not None and inner[0] in _IMPORTERS and const and isinstance(const[0], str):
            return ".".join([const[0], *reversed(parts)]), True  # __import__("os").system
        if inner is not None and inner[0] in _GETATTRS and len(const) == 2:
            target = _resolve(args[0], aliases, depth + 1)
            if target is not None and isinstance(const[1], str):  # getattr(os, "system")(…)
                return ".".join([target[0], const[1], *reversed(parts)]), target[1]
        return None
    if not isinstance(node, ast.Name):
        return None
    if node.id in aliases:
        return ".".join([aliases[node.id], *reversed(parts)]), True
    return ".".join([node.id, *reversed(parts)]), False


def _dangerous(name: str) -> bool:
    if name in _BUILTIN_CALLS:
        return True
    parts = name.split(".")
    allowed = _DANGEROUS_CALLS.get(parts[0])
    if allowed is None or len(parts) < 2:
        return False
    return "*" in allowed or parts[1] in allowed or parts[-1] in allowed


_IMPORTERS = ("__import__", "builtins.__import__", "importlib.import_module")
_GETATTRS = ("getattr", "builtins.getattr")


def _dynamic_lookup(call: ast.Call, name: str, aliases: dict[str, str]) -> bool:
    """``__import__(name)`` with a computed name, or ``getattr(os, "system")`` /
    ``getattr(subprocess, computed)``: the module's dangerous functions reached by lookup."""
    args = call.args
    if name in _IMPORTERS or (name == "import_module" and "import_module" in aliases):
        return not (args and isinstance(args[0], ast.Constant))
    if name not in _GETATTRS or len(args) < 2 or not isinstance(args[0], ast.Name):
        return False
    module = aliases.get(args[0].id)
    if module is None or module.split(".", 1)[0] not in _DANGEROUS_CALLS:
        return False
    attr = args[1]
    if not isinstance(attr, ast.Constant) or not isinstance(attr.value, str):
        return True
    return _dangerous(f"{module}.{attr.value}")
