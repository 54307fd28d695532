"""Parsers of hostile input raise BundleError (one line) or succeed — never anything else."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec.errors import BundleError, VerificationError
from mlsec.signing.bundle import Bundle
from mlsec.signing.manifest import Manifest
from tests.conftest import REPO
from tests.unit.signing.pki import example_dir, root_digest_of

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_bundle_from_random_bytes(data):
    with contextlib.suppress(BundleError):
        Bundle.from_json(data)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_bundle_from_random_json(value):
    with contextlib.suppress(BundleError):
        Bundle.from_json(json.dumps(value))


_EXAMPLE = example_dir()
_GOLDEN = json.loads((_EXAMPLE / "model.sig").read_text())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["mediaType", "verificationMaterial", "dsseEnvelope"]), json_values)
def test_bundle_with_one_field_replaced(field, value):
    doc = dict(_GOLDEN)
    doc[field] = value
    with contextlib.suppress(BundleError):
        Bundle.from_json(json.dumps(doc))


_STATEMENT = json.loads((_EXAMPLE / "model.sig.payload.json").read_text())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["_type", "subject", "predicateType", "predicate"]), json_values)
def test_statement_with_one_field_replaced(field, value):
    doc = dict(_STATEMENT)
    doc[field] = value
    # Malformed: BundleError (exit 2); another predicate type: VerificationError (exit 1).
    with contextlib.suppress(BundleError, VerificationError):
        Manifest.from_statement(json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_statement_with_random_predicate_parts(value):
    doc = json.loads(json.dumps(_STATEMENT))
    doc["predicate"]["serialization"] = value
    with contextlib.suppress(BundleError):
        Manifest.from_statement(json.dumps(doc).encode())
    doc = json.loads(json.dumps(_STATEMENT))
    doc["predicate"]["resources"] = [value]
    with contextlib.suppress(BundleError):
        Manifest.from_statement(json.dumps(doc).encode())


def test_model_signing_payload_round_trip():
    b = Bundle.from_json((_EXAMPLE / "model.sig").read_bytes())
    assert b.payload == (_EXAMPLE / "model.sig.payload.json").read_bytes()
    assert base64.b64decode(_GOLDEN["dsseEnvelope"]["payload"]) == b.payload
    m = Manifest.from_statement(b.payload)
    assert "sha256:" + m.root_digest == root_digest_of(_EXAMPLE)


def test_cli_app_does_not_import_cryptography_or_sigstore():
    code = (
        "import sys, mlsec.cli.app; "
        "print(any(m.split('.')[0] in ('cryptography', 'sigstore') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "False"


def test_key_method_does_not_import_sigstore_or_x509(tmp_path):
    code = (
        "import sys; from mlsec.cli.app import run; "
        f"run(['keygen', '-o', {str(tmp_path / 'k')!r}, '--no-passphrase']); "
        "print(sorted({m for m in sys.modules if m.startswith(('sigstore', 'cryptography.x509'))}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
