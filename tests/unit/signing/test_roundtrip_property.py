"""Property: for any model tree, sign → verify passes, and any single mutation fails naming it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlsec.errors import VerificationError
from mlsec.signing import KeySigner, KeyVerifier, sign_model, verify_model

KEY = ec.generate_private_key(ec.SECP256R1())

segment = st.text(alphabet="ab.-_ é模", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..") and not s.startswith(".git") and s.strip() == s
)
trees = st.dictionaries(
    st.lists(segment, min_size=1, max_size=3).map("/".join),
    st.binary(max_size=64),
    min_size=1,
    max_size=8,
)


def _build(root: Path, tree: dict[str, bytes]) -> dict[str, bytes]:
    written: dict[str, bytes] = {}
    for rel, data in sorted(tree.items()):
        p = root / rel
        # Skip entries that collide with a file/dir already written (a/b vs a).
        if any(rel.startswith(w + "/") or w.startswith(rel + "/") for w in written):
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        written[rel] = data
    return written


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees, st.sampled_from(["flip", "add", "remove", "rename"]), st.data())
def test_sign_verify_and_one_mutation(tree, mutation, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "model"
        root.mkdir()
        files = _build(root, tree)
        signed = sign_model(root, KeySigner(KEY))
        verifier = KeyVerifier(KEY.public_key())
        assert verify_model(root, signed.bundle, verifier).files == len(files)
        target = data.draw(st.sampled_from(sorted(files)))
        if mutation == "flip":
            (root / target).write_bytes(files[target] + b"\x00")
            expect = target
        elif mutation == "add":
            expect = target + ".new"
            if expect in files or any(f.startswith(expect + "/") for f in files):
                return
            (root / expect).write_bytes(b"x")
        elif mutation == "remove":
            (root / target).unlink()
            expect = target
        else:
            new = target + "~"
            if new in files or any(f.startswith(new + "/") for f in files):
                return
            (root / target).rename(root / new)
            expect = target
        with pytest.raises(VerificationError) as exc:
            verify_model(root, signed.bundle, verifier)
        assert f"{expect}: " in exc.value.message
        shutil.rmtree(root)
