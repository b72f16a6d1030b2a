"""Which torch build scripts/install.sh installs: the pip arguments that go before `torch==<version>`.

    python scripts/choose_torch.py        # prints them (nothing: the default index's build), and why, on stderr

CPU wheels from PyTorch's own CPU index (a few hundred MB, where the default index's Linux wheel is the CUDA build with
its NVIDIA libraries, several GB) when the machine has no GPU and either runs as a GitHub-hosted runner or its user
asks for them (ZSA_EVAL_TORCH=cpu); the default build otherwise (ZSA_EVAL_TORCH=default forces it). Detected, never
assumed: the GPU (nvidia-smi or the NVIDIA driver), the runner (GitHub Actions' RUNNER_ENVIRONMENT) and whether the
CPU index answers at all. A machine that reaches only the usual registries (where the default torch may already be
a CPU build) keeps the default, and is told so."""

from __future__ import annotations

import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CHOICES = ("cpu", "default")


@dataclass(frozen=True)
class TorchChoice:
    """The pip arguments for the torch install and the reason, in one line."""

    pip_arguments: tuple[str, ...]
    reason: str


def has_gpu() -> bool:
    """An NVIDIA GPU's driver or tools are on this machine."""
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


def cpu_index_reachable(timeout_s: float = 5.0) -> bool:
    """PyTorch's CPU index answers (machines that reach only the usual registries get no answer)."""
    try:
        with urllib.request.urlopen(f"{CPU_INDEX}/torch/", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def choose_torch(environment: Mapping[str, str], gpu: bool, reachable) -> TorchChoice:
    """The torch build for a machine: its environment variables, whether it has a GPU, and `reachable()`, asked only
    when CPU wheels are wanted, whether their index answers."""
    asked = environment.get("ZSA_EVAL_TORCH", "").strip().lower()
    if asked and asked not in CHOICES:
        raise ValueError(f"ZSA_EVAL_TORCH={asked} is not one of {', '.join(CHOICES)}")
    if asked == "default":
        return TorchChoice((), "the default index's build (ZSA_EVAL_TORCH=default)")
    github_cpu_runner = environment.get("RUNNER_ENVIRONMENT") == "github-hosted" and not gpu
    if asked != "cpu" and not github_cpu_runner:
        return TorchChoice((), "the default index's build (a GPU machine)" if gpu else
                           "the default index's build (set ZSA_EVAL_TORCH=cpu for CPU-only wheels)")
    why = "ZSA_EVAL_TORCH=cpu" if asked == "cpu" else "a GitHub-hosted runner without a GPU"
    if not reachable():
        return TorchChoice((), f"the default index's build: CPU wheels were wanted ({why}) but {CPU_INDEX} does not "
                           "answer from here")
    return TorchChoice(("--index-url", CPU_INDEX), f"CPU wheels from {CPU_INDEX} ({why})")


def main() -> int:
    try:
        choice = choose_torch(os.environ, has_gpu(), cpu_index_reachable)
    except ValueError as error:
        print(f"install: error: {error}", file=sys.stderr)
        return 2
    print(f"install: torch: {choice.reason}", file=sys.stderr)
    print(" ".join(choice.pip_arguments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
