"""Entry point: `python -m zsa_eval dataset=esc50 model=clap` (add `-m` to sweep). Composes the config, runs,
maps outcomes to exit codes: 0 done, 2 user error, 3 gate failed, 130 interrupted."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from zsa_eval.errors import GateFailed, RunInterrupted, UserError
from zsa_eval.run import format_summary, run

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
USER_ERROR_EXIT = 2
GATE_EXIT = 3
INTERRUPTED_EXIT = 130
FAILED_JOBS_FILE = "failed_jobs.jsonl"


def fail(message: str, code: int = USER_ERROR_EXIT) -> NoReturn:
    print(f"zsa-eval: {'error: ' if code == USER_ERROR_EXIT else ''}{message}", file=sys.stderr)
    sys.exit(code)


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_job_suffix() -> str:
    """`-<job number>` inside a sweep (its jobs share one timestamp), else nothing: `${sweep_job:}` in conf/."""
    return f"-{HydraConfig.get().job.num}" if in_sweep() else ""


OmegaConf.register_new_resolver("sweep_job", sweep_job_suffix, replace=True)


def record_failed_job(code: int, message: str) -> None:
    """In a sweep, a failing job is reported and listed, and the sweep goes on to the next job."""
    hydra_config = HydraConfig.get()
    overrides = " ".join(hydra_config.overrides.task)
    print(f"zsa-eval: job {hydra_config.job.num} ({overrides}): {message}", file=sys.stderr)
    with open(Path(hydra_config.sweep.dir) / FAILED_JOBS_FILE, "a", encoding="utf-8") as file:
        file.write(json.dumps({"job": hydra_config.job.num, "overrides": overrides, "code": code,
                               "message": message}) + "\n")


@hydra.main(version_base=None, config_path=CONFIG_DIR, config_name="config")
def evaluate(cfg: DictConfig) -> None:
    try:
        metrics = run(cfg)
        if metrics is not None:  # None: a data-parallel worker rank; rank 0 reports
            print(format_summary(metrics))
        return
    except UserError as error:
        if cfg.debug:
            raise
        code, message = USER_ERROR_EXIT, str(error)
    except GateFailed as failure:
        code, message = GATE_EXIT, str(failure)
    except RunInterrupted as interruption:
        fail(str(interruption), INTERRUPTED_EXIT)
    if in_sweep():
        record_failed_job(code, message)
    else:
        fail(message, code)


class SweepOutcome(Callback):
    """At the end of a sweep: exit with the worst failed job's code (user error 2 before gate 3), if any."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        failed_jobs = Path(config.hydra.sweep.dir) / FAILED_JOBS_FILE
        if not failed_jobs.is_file():
            return
        codes = [json.loads(line)["code"] for line in failed_jobs.read_text().splitlines()]
        print(f"zsa-eval: {len(codes)} job(s) of the sweep failed; they are listed in {failed_jobs}",
              file=sys.stderr)
        sys.exit(USER_ERROR_EXIT if USER_ERROR_EXIT in codes else GATE_EXIT)


def one_line(error: Exception) -> str:
    """A config error as one line that names the fix."""
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, choice = error.missing_cfg_file.rpartition("/")
        return f"unknown {group} '{choice}': choose one of {', '.join(sorted(error.options))} (conf/{group}/)"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause).splitlines():
        lines.append(str(cause).splitlines()[0])
    return " ".join(lines[:3])


def main() -> None:
    """Run with config errors (raised before the run has a config to read `debug` from) made one line."""
    debug = any(argument.lstrip("+") in ("debug=true", "debug=True") for argument in sys.argv[1:])
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        evaluate()
    except (HydraException, OmegaConfBaseException) as error:
        if debug:
            raise
        fail(one_line(error))


if __name__ == "__main__":
    main()
