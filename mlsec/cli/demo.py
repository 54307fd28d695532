"""``mlsec demo``: the main job, end to end, on an example model built in a temporary directory.

Each capability contributes one step to ``STEPS``; a step prints what it did and returns True when
the result is what the demo expects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from mlsec.cli.common import format_size, plural, stdout_console


@dataclass
class DemoContext:
    workdir: Path
    model: Path
    sbom: Path | None = None
    public_key: Path | None = None
    signature: Path | None = None


Step = Callable[[DemoContext], bool]


def _step_inspect(ctx: DemoContext) -> bool:
    from rich.table import Table

    from mlsec.artifact import open_artifact

    art = open_artifact(ctx.model, digests=True)
    table = Table(
        title=f"1. inspect: {plural(len(art.files), 'file')}, {format_size(art.total_size)}"
    )
    for col in ("path", "format", "size", "sha256"):
        table.add_column(col, no_wrap=col == "sha256")
    for f in art.files:
        table.add_row(f.path, f.format.value, format_size(f.size), (f.sha256 or "")[:16] + "…")
    stdout_console().print(table)
    return len(art.files) > 0


def _step_scan(ctx: DemoContext) -> bool:
    from rich.table import Table

    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    clean = scan(open_artifact(ctx.model))
    # A malicious pickle assembled from opcodes (never loaded): os.system via memoised strings,
    # the kind of indirection that naive scanners miss.
    evil = ctx.workdir / "malicious" / "training_state.pkl"
    evil.parent.mkdir(parents=True, exist_ok=True)
    evil.write_bytes(
        b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x13echo pwned > /tmp/x\x85R."
    )
    bad = scan(open_artifact(evil))
    table = Table(title="2. scan: the example model, then a malicious pickle")
    for col in ("file", "severity", "rule", "symbol"):
        table.add_column(col)
    table.add_row(f"{ctx.model.name}/ ({len(clean.files)} files)", "clean", "", "")
    for f in bad.findings:
        table.add_row(f"malicious/{f.file}", f.severity.value, f.rule, f.symbol or "")
    stdout_console().print(table)
    sev = bad.max_severity
    return not clean.findings and sev is not None and sev.value == "critical"


def _step_sbom(ctx: DemoContext) -> bool:
    from mlsec.ioutil import atomic_write_bytes
    from mlsec.sbom.api import make_sbom, validate_sbom

    sbom = make_sbom(ctx.model)
    text = sbom.to_json()
    validate_sbom(text)
    ctx.sbom = ctx.workdir / f"{ctx.model.name}.cdx.json"
    atomic_write_bytes(ctx.sbom, text.encode())
    card = sbom.card
    stdout_console().print(
        f"3. sbom: CycloneDX 1.6 ML-BOM, valid against the official schema -> {ctx.sbom.name}\n"
        f"   model {card.name} ({card.architecture}, task {card.task}, licence "
        f"{', '.join(card.licenses) or '?'}), {sbom.file_count} files with SHA-256, datasets: "
        f"{', '.join(card.datasets) or 'none'}"
    )
    return sbom.file_count > 0 and bool(card.datasets)


def _step_sign_verify(ctx: DemoContext) -> bool:
    from mlsec.errors import VerificationError
    from mlsec.signing import (
        KeySigner,
        KeyVerifier,
        generate_keypair,
        load_private_key,
        load_public_key,
        sign_model,
        verify_model,
    )

    console = stdout_console()
    key, pub = generate_keypair(ctx.workdir / "demo-signer", passphrase=None, overwrite=True)
    sig = ctx.workdir / f"{ctx.model.name}.sig"
    signed = sign_model(ctx.model, KeySigner(load_private_key(key)), signature_path=sig)
    sig.write_bytes(signed.bundle.to_json())
    ctx.public_key, ctx.signature = pub, sig
    console.print(
        f"4. sign: keygen (no passphrase, demo only) -> {key.name}, {pub.name}; signed "
        f"{plural(len(signed.manifest.resources), 'file')}, "
        f"root sha256:{signed.manifest.root_digest[:16]}… "
        f"-> {sig.name} (OpenSSF model-signing v1.0)"
    )
    verifier = KeyVerifier(load_public_key(pub))
    result = verify_model(ctx.model, signed.bundle, verifier, signature_path=sig)
    console.print(f"   verify: {result.summary()}")
    weights = ctx.model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    try:
        verify_model(ctx.model, signed.bundle, verifier, signature_path=sig)
    except VerificationError as exc:
        console.print(f"   after flipping one byte of {weights.name}: verify fails -> {exc}")
        caught = "model.safetensors" in exc.message
    else:
        caught = False
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))  # restore for later steps
    sbom_ok = True
    if ctx.sbom is not None:
        from mlsec.signing import sign_sbom, verify_sbom

        sbom_sig = ctx.sbom.with_name(ctx.sbom.name + ".sig")
        bundle = sign_sbom(ctx.sbom, ctx.model, KeySigner(load_private_key(key)))
        sbom_sig.write_bytes(bundle.to_json())
        checked = verify_sbom(ctx.sbom, ctx.model, bundle, verifier, signature_path=sbom_sig)
        console.print(
            f"   SBOM signed as an in-toto attestation about the model -> "
            f"{sbom_sig.name}; verify: {checked.summary()}"
        )
        sbom_ok = checked.ok
    return result.ok and caught and sbom_ok


def _step_encrypt(ctx: DemoContext) -> bool:
    from mlsec.artifact import open_artifact
    from mlsec.crypt import decrypt_extract, encrypt_dir, generate_identity, parse_identities
    from mlsec.errors import CryptError

    console = stdout_console()
    identity, recipient = generate_identity()
    sealed = ctx.workdir / f"{ctx.model.name}.tar.age"
    encrypt_dir(ctx.model, sealed, [recipient])
    console.print(
        f"5. encrypt: {ctx.model.name}/ -> {sealed.name} (age v1, X25519 recipient "
        f"{recipient[:16]}…, {format_size(sealed.stat().st_size)}; `age -d` can open it too)"
    )
    copy = ctx.workdir / "decrypted"
    decrypt_extract(sealed, copy, parse_identities(identity))
    before = {f.path: f.sha256 for f in open_artifact(ctx.model, digests=True).files}
    after = {f.path: f.sha256 for f in open_artifact(copy, digests=True).files}
    console.print(
        f"   decrypt --extract: {plural(len(after), 'file')}, identical: {before == after}"
    )
    wrong, _ = generate_identity()
    try:
        decrypt_extract(sealed, ctx.workdir / "nope", parse_identities(wrong))
    except CryptError as exc:
        console.print(
            f"   with another key: {exc} (nothing written: {not (ctx.workdir / 'nope').exists()})"
        )
        refused = not (ctx.workdir / "nope").exists()
    else:
        refused = False
    return before == after and refused


def _step_admit(ctx: DemoContext) -> bool:
    from mlsec.policy.api import admit
    from mlsec.signing import KeyVerifier, load_public_key

    if ctx.public_key is None or ctx.signature is None:
        return False
    console = stdout_console()
    verifier = KeyVerifier(load_public_key(ctx.public_key))
    good = admit(ctx.model, "default", signature=ctx.signature, verifier=verifier, sbom=ctx.sbom)
    console.print(
        f"6. admit (policy 'default'): {ctx.model.name} -> {'ALLOW' if good.allowed else 'DENY'}"
    )
    for c in good.checks:
        console.print(f"   {c.rule}: {'pass' if c.passed else 'DENY'} - {c.message}")
    bad = admit(ctx.workdir / "malicious", "default")
    console.print(f"   the malicious pickle -> {'ALLOW' if bad.allowed else 'DENY'}")
    for c in bad.denials:
        console.print(f"   {c.rule}: DENY - {c.message}")
    return good.allowed and not bad.allowed


STEPS: list[tuple[str, Step]] = [
    ("inspect", _step_inspect),
    ("scan", _step_scan),
    ("sbom", _step_sbom),
    ("sign", _step_sign_verify),
    ("encrypt", _step_encrypt),
    ("admit", _step_admit),
]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)


def demo_cmd(
    keep: Annotated[
        Path | None,
        typer.Option(help="Build the example here and keep it, instead of a temp directory."),
    ] = None,
) -> int:
    """Run every check on a small example model built in a temporary directory."""
    from mlsec.demo import build_example_model

    console = stdout_console()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlsec-demo-") as tmp:
        workdir = keep if keep is not None else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model = build_example_model(workdir / "tiny-sentiment")
        console.print(f"Example model built in {model}")
        ctx = DemoContext(workdir=workdir, model=model)
        failed = [name for name, step in STEPS if not step(ctx)]
    if failed:
        console.print(f"demo: steps that did not give the expected result: {', '.join(failed)}")
        return 1
    console.print("demo: every step gave the expected result")
    return 0
