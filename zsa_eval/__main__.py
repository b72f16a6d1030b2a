"""Entry point: `python -m zsa_eval dataset=esc50 model=clap`. Composes the config, runs, maps errors to exit codes."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from zsa_eval.errors import RunInterrupted, UserError
from zsa_eval.run import format_summary, run

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130


def fail(message: str, code: int = USER_ERROR_EXIT) -> NoReturn:
    print(f"zsa-eval: {'error: ' if code == USER_ERROR_EXIT else ''}{message}", file=sys.stderr)
    sys.exit(code)


@hydra.main(version_base=None, config_path=CONFIG_DIR, config_name="config")
def evaluate(cfg: DictConfig) -> None:
    try:
        print(format_summary(run(cfg)))
    except UserError as error:
        if cfg.debug:
            raise
        fail(str(error))
    except RunInterrupted as interruption:
        fail(str(interruption), INTERRUPTED_EXIT)


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
