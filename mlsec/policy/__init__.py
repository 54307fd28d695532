"""The deployment gate: gather evidence about a model (scan, signature, SBOM and vulnerabilities,
formats, licences), evaluate a policy over it, and answer allow or deny with every reason.

Entry points: :func:`mlsec.policy.api.admit`, or :func:`mlsec.policy.evidence.gather` then
:func:`mlsec.policy.evaluate.evaluate` with a :func:`mlsec.policy.model.load_policy` policy.
"""
