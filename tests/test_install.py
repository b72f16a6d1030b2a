"""scripts/install.sh, read as text (running it needs root and apt), its choice of torch build, and the CI benchmark
job's workflow: schema-valid, its offline steps run as the runner runs them."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

INSTALL_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install.sh"
SCRIPTS = INSTALL_SCRIPT.parent


def test_every_apt_get_call_waits_for_the_dpkg_lock():
    """Another apt or dpkg holding the lock (unattended upgrades on a fresh machine) must not fail the install."""
    commands = [line for line in INSTALL_SCRIPT.read_text().splitlines()
                if re.search(r"\bapt-get\b", line) and not line.lstrip().startswith("#")]
    assert len(commands) == 2  # update and install
    assert all(re.search(r"apt-get -o DPkg::Lock::Timeout=\d+ ", command) for command in commands), commands


# --- the torch build (scripts/choose_torch.py) ---------------------------------------------------------------------

def load_chooser():
    import importlib.util

    spec = importlib.util.spec_from_file_location("choose_torch", SCRIPTS / "choose_torch.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


GITHUB_RUNNER = {"GITHUB_ACTIONS": "true", "RUNNER_ENVIRONMENT": "github-hosted"}


@pytest.mark.parametrize("environment, gpu, reachable, expected, reason", [
    (GITHUB_RUNNER, False, True, ("--index-url", "https://download.pytorch.org/whl/cpu"),
     "a GitHub-hosted runner without a GPU"),
    ({"ZSA_EVAL_TORCH": "cpu"}, False, True, ("--index-url", "https://download.pytorch.org/whl/cpu"),
     "ZSA_EVAL_TORCH=cpu"),
    (GITHUB_RUNNER, True, True, (), "a GPU machine"),
    ({}, False, True, (), "set ZSA_EVAL_TORCH=cpu"),  # a machine whose default index serves it: as today
    (GITHUB_RUNNER, False, False, (), "does not answer from here"),  # wanted, but only the usual registries reach
    (GITHUB_RUNNER | {"ZSA_EVAL_TORCH": "default"}, False, True, (), "ZSA_EVAL_TORCH=default"),
])
def test_the_torch_build_fits_the_machine(environment, gpu, reachable, expected, reason):
    chooser = load_chooser()
    asked = []
    choice = chooser.choose_torch(environment, gpu, lambda: asked.append(1) or reachable)
    assert choice.pip_arguments == expected and reason in choice.reason
    assert bool(asked) == (expected != () or "does not answer" in reason)  # the index is asked only when wanted


def test_an_unknown_torch_request_is_refused_and_this_machine_keeps_its_default():
    chooser = load_chooser()
    with pytest.raises(ValueError, match="ZSA_EVAL_TORCH=gpu is not one of cpu, default"):
        chooser.choose_torch({"ZSA_EVAL_TORCH": "gpu"}, False, lambda: True)
    here = subprocess.run([sys.executable, str(SCRIPTS / "choose_torch.py")], capture_output=True, text=True,
                          env={key: value for key, value in os.environ.items()
                               if key not in ("ZSA_EVAL_TORCH", "RUNNER_ENVIRONMENT")}, timeout=60)
    assert here.returncode == 0 and here.stdout.strip() == "" and "default index" in here.stderr
    assert re.search(r'torch_index="\$\(python scripts/choose_torch\.py\)"\n'
                     r'python -m pip install -q \$torch_index "torch==2\.13\.0"', INSTALL_SCRIPT.read_text())


# --- the CI benchmark job (.github/workflows/benchmark.yml) --------------------------------------------------------

WORKFLOW = INSTALL_SCRIPT.parent.parent / ".github" / "workflows" / "benchmark.yml"


def workflow_steps() -> list[dict]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["benchmark"]["steps"]


def test_the_workflow_is_valid_caches_installs_and_gates_on_the_published_figure():
    checked = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                              str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    steps = workflow_steps()
    python = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["cache"] == "pip" and python["with"]["cache-dependency-path"] == "pyproject.toml"
    assert any(step.get("uses", "").startswith("actions/cache") and "huggingface" in step["with"]["path"]
               for step in steps)
    runs = [step["run"] for step in steps if "run" in step]
    assert runs == ["bash scripts/ci_step.sh install", "python -m pytest -q", "bash scripts/ci_benchmark.sh",
                    "bash scripts/ci_step.sh summary"]
    readme = (INSTALL_SCRIPT.parent.parent / "README.md").read_text()
    assert "bash scripts/install.sh     # 1." in readme and "python -m pytest -q         # 2." in readme
    assert "bash scripts/install.sh" in (SCRIPTS / "ci_step.sh").read_text()
    benchmark = (SCRIPTS / "ci_benchmark.sh").read_text()
    assert "reference=esc50-laion-readme-fused" in benchmark and "gate.reference=true" in benchmark
    assert 'gate.min_accuracy="${ZSA_EVAL_MIN_ACCURACY:-0.80}"' in benchmark


@pytest.mark.slow
def test_the_workflows_offline_steps_run_and_the_summary_links_the_pages(tmp_path, offline_cache):
    """The evaluation and summary steps as the runner runs them (the offline smoke config): the gate passes, and the
    summary holds the leaderboard, the artifact's link and the pages inside it."""
    summary = tmp_path / "summary.md"
    environment = os.environ | {"ZSA_EVAL_RESULTS": str(tmp_path / "results"), "ZSA_EVAL_REAL_MODEL": "0",
                                "GITHUB_STEP_SUMMARY": str(summary), "ZSA_EVAL_CACHE": str(offline_cache),
                                "ARTIFACT_URL": "https://github.com/o/r/actions/runs/1/artifacts/2"}
    for run in [step["run"] for step in workflow_steps() if "run" in step][2:]:
        done = subprocess.run(run, shell=True, cwd=INSTALL_SCRIPT.parent.parent, env=environment,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (run, done.stdout, done.stderr)
    text = summary.read_text()
    assert "## zsa-eval leaderboard" in text and "| synthetic " in text
    assert "[results artifact](https://github.com/o/r/actions/runs/1/artifacts/2)" in text
    assert "- `leaderboard.html`" in text
    assert re.search(r"- `synthetic/tiny_random/auto/[^`]+/report\.html`", text)
