"""Admission policies: a small YAML (or JSON) document, parsed strictly.

A policy is parsed into a frozen :class:`Policy` or rejected with one line naming the file and the
problem. Unknown sections and keys are errors, not ignored: a misspelt ``fial_on`` silently
admitting everything is the failure a gate must not have.

Schema ``mlsec/policy/v1`` (every section optional; the defaults are those of no constraint)::

    apiVersion: mlsec/policy/v1
    name: default
    description: free text
    scan:
      fail_on: medium        # deny on a finding at or above: critical|high|medium|low|info|never
      allow_globals: []      # extra trusted pickle globals ("module.name")
    signature:
      required: true         # deny unless a signature is given and verifies
      key: signer.pub        # trust material, relative to the policy file (CLI flags win):
      certificate_chain: []  #   one of key, certificate_chain, or identity + issuer
      identity: null
      issuer: null
    sbom:
      required: false        # deny unless an SBOM is given and describes exactly these files
    vulnerabilities:
      required: false        # deny when there is no vulnerability data (no SBOM audit)
      fail_on: critical      # deny on a known vulnerability at or above this severity
      unknown_severity: deny # what a vulnerability without a severity counts as: deny|allow
      unauditable: deny      # a pinned dependency no service could audit (+cpu build, private)
      ignore: []             # accepted vulnerability ids or aliases
    formats:
      allow: []              # if non-empty, only these formats may appear
      deny: []               # these formats may not appear
    licenses:
      required: false        # deny when the model declares no licence
      allow: []              # if non-empty, every declared licence must be one of these
      deny: []
    size:
      max_bytes: null        # deny a model larger than this
    rego:
      modules: []            # Rego modules (package mlsec, set `deny`) evaluated as well

A ``.rego`` file given as the policy is a policy of Rego rules only (see ``mlsec.policy.rego``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsec.errors import PolicyError
from mlsec.formats import Format

__all__ = [
    "API_VERSION",
    "PRESETS",
    "Policy",
    "load_policy",
    "preset_text",
]

API_VERSION = "mlsec/policy/v1"
PRESETS = ("default", "strict", "permissive")
_SEVERITIES = ("critical", "high", "medium", "low", "info", "never")
_VULN_SEVERITIES = ("critical", "high", "medium", "low", "never")
_MAX_POLICY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed, validated admission policy (see the module docstring for the schema)."""

    name: str
    source: str
    description: str = ""
    scan_fail_on: str = "never"
    allow_globals: tuple[str, ...] = ()
    signature_required: bool = False
    signature_key: Path | None = None
    signature_certificate_chain: tuple[Path, ...] = ()
    signature_identity: str | None = None
    signature_issuer: str | None = None
    sbom_required: bool = False
    vulnerabilities_required: bool = False
    vulnerabilities_fail_on: str = "never"
    unknown_severity: str = "allow"
    unauditable: str = "allow"
    ignore_vulnerabilities: frozenset[str] = field(default_factory=frozenset)
    formats_allow: frozenset[Format] = field(default_factory=frozenset)
    formats_deny: frozenset[Format] = field(default_factory=frozenset)
    licenses_required: bool = False
    licenses_allow: tuple[str, ...] = ()
    licenses_deny: tuple[str, ...] = ()
    max_bytes: int | None = None
    rego_modules: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "description": self.description}


def preset_text(name: str) -> bytes:
    """The shipped preset ``name`` (``mlsec/policy/presets/NAME.yaml``), found one way: as a
    package resource (:mod:`importlib.resources`), so it works from a wheel, a zip or a checkout."""
    from importlib.resources import files

    if name not in PRESETS:
        raise PolicyError(f"{name}: not a preset (presets: {', '.join(PRESETS)})")
    try:
        return (files("mlsec.policy") / "presets" / f"{name}.yaml").read_bytes()
    except OSError:
        raise PolicyError(f"preset {name!r} is missing from this installation") from None


def load_policy(spec: str | os.PathLike[str]) -> Policy:
    """Load a policy from a file (YAML or JSON), or a shipped preset by name (``default``,
    ``strict``, ``permissive``)."""
    text_spec = os.fspath(spec)
    path = Path(text_spec)
    if text_spec in PRESETS and not path.exists():
        data = preset_text(text_spec)
        path = Path(f"preset:{text_spec}.yaml")
    else:
        try:
            with open(path, "rb") as f:
                data = f.read(_MAX_POLICY_BYTES + 1)
        except OSError as exc:
            hint = f"presets: {', '.join(PRESETS)}" if os.sep not in text_spec else None
            raise PolicyError(
                f"{spec}: cannot read policy: {exc.strerror or exc}", hint=hint
            ) from None
    if len(data) > _MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: a policy larger than 1 MiB is not accepted")
    text = data.decode("utf-8", errors="replace")
    if path.suffix == ".rego":
        return Policy(name=path.stem, source=str(path), rego_modules=((path.name, text),))
    if path.suffix == ".json":
        from mlsec.jsonsafe import loads

        doc = loads(data, str(path), PolicyError, what="policy")
        if not isinstance(doc, dict):
            raise PolicyError(f"{path}: the policy is not a mapping")
    else:
        from mlsec.yamlsafe import load_mapping

        doc = load_mapping(text, str(path), PolicyError, what="policy")
    return _parse(doc, path)


class _Section:
    """Reads one section's keys, refusing unknown ones and wrong types."""

    def __init__(self, doc: dict[str, Any], name: str, where: Path) -> None:
        raw = doc.get(name, {})
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: {name}: expected a mapping")
        self.raw, self.name, self.where, self.seen = raw, name, where, set[str]()

    def _get(self, key: str) -> Any:
        self.seen.add(key)
        return self.raw.get(key)

    def _fail(self, key: str, expected: str, value: object) -> PolicyError:
        return PolicyError(f"{self.where}: {self.name}.{key}: expected {expected}, got {value!r}")

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self._get(key)
        if value is None:
            return default
        if value is False and "never" in choices:  # YAML reads a bare `no`/`off` as false
            return "never"
        if not isinstance(value, str) or value.lower() not in choices:
            raise self._fail(key, "one of " + "|".join(choices), value)
        return value.lower()

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._fail(key, "a list of strings", value)
        return tuple(value)

    def string(self, key: str) -> str | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self._fail(key, "a string", value)
        return value

    def integer(self, key: str) -> int | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._fail(key, "a non-negative integer", value)
        return value

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self.seen)
        if unknown:
            raise PolicyError(f"{self.where}: {self.name}: unknown key {unknown[0]!r}")


_SECTIONS = (
    "scan",
    "signature",
    "sbom",
    "vulnerabilities",
    "formats",
    "licenses",
    "size",
    "rego",
)
_TOP = {"apiVersion", "name", "description", *_SECTIONS}


def _parse(doc: dict[str, Any], where: Path) -> Policy:
    version = doc.get("apiVersion")
    if version != API_VERSION:
        raise PolicyError(f"{where}: apiVersion must be {API_VERSION!r}, got {version!r}")
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise PolicyError(f"{where}: unknown section {unknown[0]!r}")
    name = doc.get("name") or where.stem
    description = doc.get("description") or ""
    if not isinstance(name, str) or not isinstance(description, str):
        raise PolicyError(f"{where}: name and description must be strings")
    base = where.resolve().parent

    scan = _Section(doc, "scan", where)
    scan_fail_on = scan.choice("fail_on", _SEVERITIES, "never")
    allow_globals = scan.strings("allow_globals")
    from mlsec.scan.model import is_global_name

    for g in allow_globals:
        if not is_global_name(g):
            raise PolicyError(f"{where}: scan.allow_globals: {g!r} is not 'module.name'")
    scan.done()

    sig = _Section(doc, "signature", where)
    required = sig.boolean("required")
    key = sig.string("key")
    chain = sig.strings("certificate_chain")
    identity, issuer = sig.string("identity"), sig.string("issuer")
    sig.done()
    if sum([key is not None, bool(chain), bool(identity or issuer)]) > 1:
        raise PolicyError(
            f"{where}: signature: give one of key, certificate_chain, or identity + issuer"
        )
    if bool(identity) != bool(issuer):
        raise PolicyError(f"{where}: signature: identity and issuer go together")

    sbom = _Section(doc, "sbom", where)
    sbom_required = sbom.boolean("required")
    sbom.done()

    vul = _Section(doc, "vulnerabilities", where)
    vul_required = vul.boolean("required")
    vul_fail_on = vul.choice("fail_on", _VULN_SEVERITIES, "never")
    unknown_sev = vul.choice("unknown_severity", ("allow", "deny"), "allow")
    unauditable = vul.choice("unauditable", ("allow", "deny"), "allow")
    ignore = frozenset(vul.strings("ignore"))
    vul.done()

    fmt = _Section(doc, "formats", where)
    allow = _formats(fmt, "allow")
    deny = _formats(fmt, "deny")
    fmt.done()

    lic = _Section(doc, "licenses", where)
    lic_required = lic.boolean("required")
    lic_allow = lic.strings("allow")
    lic_deny = lic.strings("deny")
    lic.done()

    size = _Section(doc, "size", where)
    max_bytes = size.integer("max_bytes")
    size.done()

    rego = _Section(doc, "rego", where)
    module_paths = [base / m for m in rego.strings("modules")]
    rego.done()
    from mlsec.policy.rego import load_modules

    modules = tuple(load_modules(module_paths))

    return Policy(
        name=name,
        source=str(where),
        description=description.strip(),
        scan_fail_on=scan_fail_on,
        allow_globals=allow_globals,
        signature_required=required,
        signature_key=base / key if key else None,
        signature_certificate_chain=tuple(base / c for c in chain),
        signature_identity=identity,
        signature_issuer=issuer,
        sbom_required=sbom_required,
        vulnerabilities_required=vul_required,
        vulnerabilities_fail_on=vul_fail_on,
        unknown_severity=unknown_sev,
        unauditable=unauditable,
        ignore_vulnerabilities=ignore,
        formats_allow=allow,
        formats_deny=deny,
        licenses_required=lic_required,
        licenses_allow=lic_allow,
        licenses_deny=lic_deny,
        max_bytes=max_bytes,
        rego_modules=modules,
    )


def _formats(section: _Section, key: str) -> frozenset[Format]:
    out = set()
    for name in section.strings(key):
        try:
            out.add(Format(name))
        except ValueError:
            known = ", ".join(f.value for f in Format)
            raise PolicyError(
                f"{section.where}: formats.{key}: unknown format {name!r} (known: {known})"
            ) from None
    return frozenset(out)
