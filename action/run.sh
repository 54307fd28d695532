#!/usr/bin/env bash
# Step 2 of the GitHub Action: run mlsec, write the result and SARIF files, record the outputs.
# It never fails the step itself (so the SARIF upload still runs); the last step exits with
# mlsec's code.
set -uo pipefail
mlsec="${RUNNER_TEMP:?RUNNER_TEMP is not set}/mlsec-venv/bin/mlsec"
out="${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
cd "${GITHUB_WORKSPACE:?GITHUB_WORKSPACE is not set}" || exit 2
cmd="${MLSEC_INPUT_COMMAND:-scan}"
fmt="${MLSEC_INPUT_FORMAT:-sarif}"
ext="$fmt"; [ "$fmt" = table ] && ext=txt
result="$RUNNER_TEMP/mlsec-result.$ext"
sarif=""
case "$cmd" in
  scan)
    "$mlsec" -q scan "$MLSEC_INPUT_PATH" --format "$fmt" --fail-on "${MLSEC_INPUT_FAIL_ON:-medium}" -o "$result"
    code=$?
    if [ "$fmt" = sarif ]; then
      sarif="$result"
    elif [ "${MLSEC_INPUT_UPLOAD_SARIF:-true}" = true ]; then
      sarif="$RUNNER_TEMP/mlsec-result.sarif"
      "$mlsec" -q scan "$MLSEC_INPUT_PATH" --format sarif --fail-on "${MLSEC_INPUT_FAIL_ON:-medium}" -o "$sarif"
    fi
    ;;
  admit)
    [ "$fmt" = sarif ] && fmt=json && result="$RUNNER_TEMP/mlsec-result.json"
    "$mlsec" -q admit "$MLSEC_INPUT_PATH" --policy "${MLSEC_INPUT_POLICY:-default}" --format "$fmt" -o "$result"
    code=$?
    if [ "${MLSEC_INPUT_UPLOAD_SARIF:-true}" = true ]; then
      # code scanning shows the scan findings behind the decision
      sarif="$RUNNER_TEMP/mlsec-result.sarif"
      "$mlsec" -q scan "$MLSEC_INPUT_PATH" --format sarif -o "$sarif" || true
    fi
    ;;
  *)
    echo "mlsec action: command must be scan or admit, not '$cmd'" >&2
    code=2
    ;;
esac
[ -n "$sarif" ] && [ ! -s "$sarif" ] && sarif=""
{
  echo "exit-code=$code"
  echo "result-file=$result"
  echo "sarif-file=$sarif"
} >> "$out"
[ -f "$result" ] && [ "$fmt" != sarif ] && cat "$result"
exit 0
