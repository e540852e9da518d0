#!/usr/bin/env bash
# Static checks of infra/ with checkov (Bicep framework). checkov pins many dependencies that
# clash with the app's, so it lives in its own venv inside .venv/ (ignored, removed by make clean).
# Exits non-zero when any check fails; a skipped check is named in the Bicep with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv/checkov
version=3.3.30
if ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$version"
fi
# --skip-download: no calls to the vendor's platform (CI has no such network, and needs none).
"$venv/bin/checkov" --directory infra --framework bicep --compact --quiet --skip-download
