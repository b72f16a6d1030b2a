#!/usr/bin/env bash
# The lowest transformers that pyproject.toml admits, tested: the everyday lane (-m "not slow") in a virtualenv that
# inherits this environment but for transformers at that floor (its other packages, zsa-eval's editable install
# included, come from here). .ci/run runs it after the suite; 5.23 and below fail (found by bisecting 5.0-5.25:
# Qwen2-Audio's output has no `cache` before 5.24, PE-Audio needed timm before about 5.21).
#
#   bash scripts/check_floor.sh
set -euo pipefail
cd "$(dirname "$0")/.."
floor="$(python -c 'import re, tomllib
dependencies = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(re.search(r">=([\d.]+)", d)[1] for d in dependencies if re.match(r"transformers\b", d)))')"
venv="$(mktemp -d)/venv"
python -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q --no-deps "transformers==$floor"
echo "check_floor: the everyday lane with transformers $("$venv/bin/python" -c 'import transformers; print(transformers.__version__)')"
"$venv/bin/python" -m pytest -q -m "not slow" -p no:cacheprovider
rm -rf "$(dirname "$venv")"
