#!/usr/bin/env bash
# Run the OpenSSF model-signing conformance suite against adapter.py.
# Usage: conformance/run.sh /path/to/model-signing-conformance [pytest args...]
# The suite needs: pytest, jsonschema, referencing, oms-schemas (from sampras343/model-signing-spec).
set -euo pipefail
suite=${1:?path to a checkout of sampras343/model-signing-conformance}
shift
adapter="$(cd "$(dirname "$0")" && pwd)/adapter.py"
cd "$suite"
exec "${PYTHON:-python3}" -m pytest test/ --entrypoint="$adapter" -p no:cacheprovider -q "$@"
