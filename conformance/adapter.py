#!/usr/bin/env python3
"""Conformance adapter: the OpenSSF model-signing conformance suite's CLI protocol, over mlsec.

Protocol (sampras343/model-signing-conformance, docs/conformance_adapter_cli_protocol.md):

  sign-model   --method key|certificate|sigstore --model-path P --output-bundle F
               [--private-key K] [--signing-cert C] [--cert-chain X]... [--ignore-paths P]...
               [--identity-token T] [--use-staging]
  verify-model --method key|certificate|sigstore --model-path P --bundle F
               [--public-key K] [--cert-chain X]... [--ignore-paths P]...
               [--ignore-unsigned-files] [--identity I] [--identity-provider U] [--use-staging]

Each call becomes one ``mlsec sign`` / ``mlsec verify`` command line, run in-process through
``mlsec.cli.app.run`` so that exactly what a user runs is what is tested. Exit 0 = success.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's mlsec

from mlsec.cli.app import run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adapter.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("sign-model", "verify-model"):
        s = sub.add_parser(name)
        s.add_argument("--method", required=True, choices=["key", "certificate", "sigstore"])
        s.add_argument("--model-path", required=True)
        s.add_argument("--ignore-paths", action="append", default=[])
        s.add_argument("--cert-chain", action="append", default=[])
        s.add_argument("--use-staging", action="store_true")
        if name == "sign-model":
            s.add_argument("--output-bundle", required=True)
            s.add_argument("--private-key")
            s.add_argument("--signing-cert")
            s.add_argument("--identity-token")
        else:
            s.add_argument("--bundle", required=True)
            s.add_argument("--public-key")
            s.add_argument("--ignore-unsigned-files", action="store_true")
            s.add_argument("--identity")
            s.add_argument("--identity-provider")
    return p


def sign_argv(a: argparse.Namespace) -> list[str]:
    argv = ["sign", a.model_path, "--method", a.method, "--output", a.output_bundle]
    if a.method in ("key", "certificate"):
        argv += ["--key", a.private_key or ""]
    if a.method == "certificate":
        argv += ["--signing-certificate", a.signing_cert or ""]
        for c in a.cert_chain:
            argv += ["--certificate-chain", c]
    if a.method == "sigstore" and a.identity_token:
        argv += ["--identity-token", a.identity_token]
    for p in a.ignore_paths:
        argv += ["--ignore", p]
    return argv


def verify_argv(a: argparse.Namespace) -> list[str]:
    argv = ["verify", a.model_path, "--signature", a.bundle]
    if a.method == "key":
        argv += ["--key", a.public_key or ""]
    elif a.method == "certificate":
        for c in a.cert_chain:
            argv += ["--certificate-chain", c]
    else:
        argv += ["--identity", a.identity or "", "--issuer", a.identity_provider or ""]
        if a.use_staging:
            argv += ["--staging"]
    for p in a.ignore_paths:
        argv += ["--ignore", p]
    if a.ignore_unsigned_files:
        argv.append("--ignore-unsigned-files")
    return argv


def main(argv: list[str]) -> int:
    if argv[:1] == ["capabilities"]:
        sys.stdout.write('{"flags": [], "hash_algorithms": ["sha256"], "benchmark_model": false}\n')
        return 0
    a = _parser().parse_args(argv)
    return run(sign_argv(a) if a.cmd == "sign-model" else verify_argv(a))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
