#!/usr/bin/env bash
# Install everything zsa-eval needs on a fresh Debian/Ubuntu machine, into the active Python environment:
#   ffmpeg      - decodes what soundfile cannot (m4a, webm, wma, mka, ...) through torchcodec, and writes every
#                 format in the tests; Debian's freedesktop and ALSA sounds are real recordings the tests read
#   chromium-headless-shell - a real browser for the tests that open report.html and leaderboard.html (they are
#                 skipped without it; zsa-eval itself never needs it)
#   torch       - pinned first, so pip does not pick an unrelated build; torchcodec 0.13 pairs with torch 2.13;
#                 CPU wheels from PyTorch's CPU index where there is no GPU to use (scripts/choose_torch.py)
#   zsa-eval    - this package, editable (for development: edits take effect without reinstalling), with its
#                 test extras and mteb (the optional extra the MTEB tests need), and torchaudio's Python parts
#                 (mteb's audio models import it); `pip install .` or the wheel (see README) installs it as a plain package
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null 2>&1 || [ ! -d /usr/share/sounds/freedesktop ] || [ ! -d /usr/share/sounds/alsa ] \
    || ! command -v chromium-headless-shell >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  # DPkg::Lock::Timeout: wait up to 10 min for another apt or dpkg (unattended upgrades, say) to release its lock
  $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends ffmpeg sound-theme-freedesktop alsa-utils chromium-headless-shell >/dev/null
fi

# torch: CPU wheels on a GitHub-hosted CPU runner or with ZSA_EVAL_TORCH=cpu, the default index's build otherwise
# (scripts/choose_torch.py detects which, and says why)
torch_index="$(python scripts/choose_torch.py)"
python -m pip install -q $torch_index "torch==2.13.0"
python -m pip install -q -e ".[test,mteb]"
# torchaudio, which mteb's audio models need (model=mteb): PyPI's newest wheel is built for another torch (a CUDA
# one), whose compiled extensions do not load beside torch 2.13; without them torchaudio takes its documented
# pure-Python path (Resample, kaldi.fbank: plain torch), all that mteb's wrappers use
python -m pip install -q --no-deps "torchaudio==2.11.1"
python - <<'PY'
import pathlib, sysconfig
for library in (pathlib.Path(sysconfig.get_paths()["purelib"]) / "torchaudio" / "lib").glob("*.so"):
    library.unlink()
PY
python -c "import torchcodec.decoders, zsa_eval; print('zsa-eval installed:', zsa_eval.__version__)"
