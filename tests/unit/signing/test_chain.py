"""Certificate chain checks of the certificate method (mlsec's own path validation)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mlsec.errors import VerificationError
from mlsec.signing import CertificateSigner, CertificateVerifier
from tests.unit.signing.pki import make_cert

PAYLOAD = b'{"_type": "https://in-toto.io/Statement/v1"}'


def _keys(n: int) -> list[ec.EllipticCurvePrivateKey]:
    return [ec.generate_private_key(ec.SECP256R1()) for _ in range(n)]


def test_root_intermediate_leaf_ok():
    rk, ik, lk = _keys(3)
    root = make_cert("root", rk, ca=True)
    inter = make_cert("inter", ik, ("root", rk), ca=True)
    leaf = make_cert("leaf", lk, ("inter", ik))
    b = CertificateSigner(lk, leaf, [inter]).sign(PAYLOAD)
    payload, who = CertificateVerifier([root]).verify_signature(b)
    assert payload == PAYLOAD and "CN=leaf" in who


def test_intermediate_that_is_not_a_ca_is_refused():
    rk, ik, lk = _keys(3)
    root = make_cert("root", rk, ca=True)
    inter = make_cert("inter", ik, ("root", rk), ca=False)  # an end-entity cert acting as CA
    leaf = make_cert("leaf", lk, ("inter", ik))
    b = CertificateSigner(lk, leaf, [inter]).sign(PAYLOAD)
    with pytest.raises(VerificationError, match="does not chain"):
        CertificateVerifier([root]).verify_signature(b)


def test_path_length_constraint_is_enforced():
    rk, ik, lk = _keys(3)
    root = make_cert("root", rk, ca=True, path_length=0)  # may only issue end-entity certs
    inter = make_cert("inter", ik, ("root", rk), ca=True)
    leaf = make_cert("leaf", lk, ("inter", ik))
    b = CertificateSigner(lk, leaf, [inter]).sign(PAYLOAD)
    with pytest.raises(VerificationError, match="does not chain"):
        CertificateVerifier([root]).verify_signature(b)


def test_expired_intermediate_is_refused():
    rk, ik, lk = _keys(3)
    now = dt.datetime.now(dt.UTC)
    root = make_cert("root", rk, ca=True)
    inter = make_cert(
        "inter",
        ik,
        ("root", rk),
        ca=True,
        not_before=now - dt.timedelta(days=9),
        not_after=now - dt.timedelta(days=1),
    )
    leaf = make_cert("leaf", lk, ("inter", ik))
    b = CertificateSigner(lk, leaf, [inter]).sign(PAYLOAD)
    with pytest.raises(VerificationError, match="does not chain"):
        CertificateVerifier([root]).verify_signature(b)


def test_leaf_expired_since_signing_is_refused():
    rk, lk = _keys(2)
    root = make_cert("root", rk, ca=True)
    leaf = make_cert("leaf", lk, ("root", rk))
    b = CertificateSigner(lk, leaf).sign(PAYLOAD)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with pytest.raises(VerificationError, match="is not valid at"):
        CertificateVerifier([root], at=later).verify_signature(b)


def test_self_signed_leaf_trusted_directly():
    lk = _keys(1)[0]
    leaf = make_cert("self", lk)
    b = CertificateSigner(lk, leaf).sign(PAYLOAD)
    assert CertificateVerifier([leaf]).verify_signature(b)[0] == PAYLOAD


def test_forged_issuer_name_is_refused():
    rk, fk, lk = _keys(3)
    root = make_cert("root", rk, ca=True)
    # Same subject name as the root, different key: the signature check must catch it.
    leaf = make_cert("leaf", lk, ("root", fk))
    b = CertificateSigner(lk, leaf).sign(PAYLOAD)
    with pytest.raises(VerificationError, match="does not chain"):
        CertificateVerifier([root]).verify_signature(b)
