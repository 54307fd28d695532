"""A Rego policy that cannot be evaluated as written denies nothing and allows nothing: exit 2.

regopy returns *undefined* for a built-in it does not implement and for a built-in that fails,
so without these checks a ``deny`` rule built on one silently drops out and the model is allowed.
"""

from __future__ import annotations

import importlib.util

import pytest

from mlsec.errors import PolicyError
from mlsec.policy import rego
from mlsec.policy.rego import called_functions, deny_messages

# Not imported here: regopy corrupts memory when imported beside another re2-based module, which
# is one reason mlsec evaluates in a child process.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("regopy") is None, reason="regopy (the mlsec[rego] extra) is absent"
)

HEAD = "package mlsec\nimport rego.v1\n\n"
ALWAYS = 'deny contains "always" if { true }\n'


@pytest.mark.parametrize(
    ("rule", "builtin", "line"),
    [
        ('deny contains "x" if { http.send({"method": "get", "url": "http://h"}) }\n', "http", 5),
        (
            'deny contains "x" if {\n    net.cidr_contains("10.0.0.0/8", "10.1.1.1")\n}\n',
            "net.cidr_contains",
            6,
        ),
        ('deny contains "x" if { print("hello") }\n', "print", 5),
    ],
)
def test_an_unsupported_builtin_is_exit_2_naming_it(rule: str, builtin: str, line: int) -> None:
    source = HEAD + ALWAYS + rule
    with pytest.raises(PolicyError, match=rf"^p\.rego:{line}: built-in {builtin}.*not supported"):
        deny_messages([("p.rego", source)], {})


@pytest.mark.parametrize(
    "body",
    [
        "x := 1 / 0\n    x > 0",  # division by zero
        'to_number("not a number") > 1',
        'regex.match("[", "a")',  # an invalid pattern
    ],
)
def test_a_failing_builtin_is_an_evaluation_error_not_an_allow(body: str) -> None:
    source = HEAD + f'deny contains "x" if {{\n    {body}\n}}\n'
    with pytest.raises(PolicyError, match="evaluation error"):
        deny_messages([("p.rego", source)], {})


def test_supported_builtins_and_own_functions_still_evaluate() -> None:
    source = HEAD + (
        "bump(x) := x + 1\n"
        "# http.send( in a comment and in a string is not a call\n"
        'deny contains msg if {\n    bump(1) == 2\n    msg := sprintf("%s http.send(", ["a"])\n}\n'
    )
    assert deny_messages([("p.rego", source)], {}) == ["a http.send("]
    assert set(called_functions([("p.rego", source)])) == {"sprintf"}


def test_memory_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(rego, "MEMORY_BYTES", 300 * 1024**2)
    source = HEAD + 'deny contains "x" if { count(numbers.range(1, 100000000)) > 0 }\n'
    with pytest.raises(PolicyError, match="memory limit"):
        deny_messages([("p.rego", source)], {})


def test_time_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(rego, "MEMORY_BYTES", 1024**4)
    monkeypatch.setattr(rego, "TIMEOUT_SECONDS", 0.5)
    source = HEAD + 'deny contains "x" if { count(numbers.range(1, 100000000)) > 0 }\n'
    with pytest.raises(PolicyError, match="time limit"):
        deny_messages([("p.rego", source)], {})


def test_admit_with_an_unsupported_builtin_is_exit_2(cli, example_model, tmp_path) -> None:
    p = tmp_path / "gate.rego"
    p.write_text(
        HEAD
        + 'deny contains "unapproved network" if {\n'
        + '    net.cidr_contains("10.0.0.0/8", "10.0.0.1")\n}\n'
    )
    r = cli("admit", example_model, "--policy", p, "-f", "json")
    assert r.exit_code == 2, r.stdout
    assert r.stdout == ""
    assert "net.cidr_contains" in r.stderr and len(r.stderr.strip().splitlines()) <= 2


def test_functions_of_imported_modules_are_not_builtins() -> None:
    lib = "package mlsec.lib\nimport rego.v1\n\nbig(n) if { n > 10 }\n"
    main = HEAD.replace("import rego.v1\n", "import rego.v1\nimport data.mlsec.lib\n") + (
        'deny contains "big" if { lib.big(input.n) }\n'
    )
    assert deny_messages([("p.rego", main), ("lib.rego", lib)], {"n": 11}) == ["big"]
    assert deny_messages([("p.rego", main), ("lib.rego", lib)], {"n": 1}) == []
