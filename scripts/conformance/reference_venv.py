"""The virtualenv a conformance script runs the authors' code in, at its own pinned versions, built once and built
again when the pins change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def ensure_venv(venv: Path, installs: list[list[str]]) -> Path:
    """The virtualenv's python, the virtualenv built first (each of `installs`, pip install arguments, in turn) if
    it is missing or was built from other pins. torchaudio's compiled extensions are removed: its wheel is a CUDA
    build that does not load here, and the reference code needs only its Python parts."""
    python, marker = venv / "bin" / "python", venv / "zsa-eval-pins.txt"
    pins = "\n".join(argument for install in installs for argument in install)
    if python.exists() and marker.exists() and marker.read_text() == pins:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    for install in installs:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *install],
                       check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for library in (site / "torchaudio" / "lib").glob("*.so"):
        library.unlink()
    marker.write_text(pins)
    return python
