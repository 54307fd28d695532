#!/usr/bin/env bash
# Step 1 of the GitHub Action: mlsec in a virtual environment of its own under RUNNER_TEMP, so it
# never mixes with the project's packages. MLSEC_VERSION empty: the action's own checkout.
# MLSEC_VENV_FLAGS (optional, e.g. --system-site-packages on a runner that has the dependencies).
set -euo pipefail
venv="${RUNNER_TEMP:?RUNNER_TEMP is not set}/mlsec-venv"
# shellcheck disable=SC2086
"${MLSEC_PYTHON:-python3}" -m venv ${MLSEC_VENV_FLAGS:-} "$venv"
if [ -n "${MLSEC_VERSION:-}" ]; then
  spec="mlsec==${MLSEC_VERSION}"
else
  spec="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$spec"
echo "$venv/bin" >> "${GITHUB_PATH:-/dev/null}"
"$venv/bin/mlsec" --version
