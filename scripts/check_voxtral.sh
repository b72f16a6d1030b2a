#!/usr/bin/env bash
# Voxtral's tests, which skip in the main environment: its tokenizer is mistral-common's, which pins numpy < 2.4 on
# Python <= 3.12 while zsa-eval's environment has numpy 2.4. Here they run in a virtualenv that inherits this
# environment but for mistral-common[audio] and the numpy it admits. .ci/run runs it after the floor check.
#
#   bash scripts/check_voxtral.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
python -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q "mistral-common[audio]>=1.8" "numpy<2.4"
"$venv/bin/python" -c 'import mistral_common, numpy
print(f"check_voxtral: mistral-common {mistral_common.__version__}, numpy {numpy.__version__}")'
"$venv/bin/python" -m pytest -q -n 0 -p no:cacheprovider -k voxtral tests/test_alm.py tests/test_alm_omni.py
rm -rf "$(dirname "$venv")"
