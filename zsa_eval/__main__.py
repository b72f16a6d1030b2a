"""Entry point: `python -m zsa_eval dataset=esc50 model=clap` (add `-m` to sweep). Composes the config, runs,
maps outcomes to exit codes: 0 done, 2 user error, 3 gate failed, 130 interrupted. Imports only Hydra and the
schema, so `--help` and `--version` answer before torch, transformers or scikit-learn are loaded."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import zsa_eval
from zsa_eval.config import CONFIG_DIR
from zsa_eval.config.overrides import in_sweep, one_line, override_key
from zsa_eval.entry_points import families_line
from zsa_eval.errors import FinishedButFailed, GateFailed, RunInterrupted, TaskUnavailable, UserError
from zsa_eval.interrupts import ctrl_c_recorded

__all__ = ["CONFIG_DIR", "main"]
USER_ERROR_EXIT = 2
GATE_EXIT = 3
INTERRUPTED_EXIT = 130
FAILED_JOBS_FILE = "failed_jobs.jsonl"
NOTHING_WRITTEN = "interrupted before the run started: nothing was written"


def fail(message: str, code: int = USER_ERROR_EXIT) -> NoReturn:
    print(f"zsa-eval: {'error: ' if code == USER_ERROR_EXIT else ''}{message}", file=sys.stderr)
    sys.exit(code)


def multirun_command(*settings: str) -> str:
    """This command line as a sweep (`-m`), shell-quoted, with `settings` (`key=value`) in place of the user's values
    of those keys."""
    replaced = {override_key(setting) for setting in settings}
    kept = [argument for argument in sys.argv[1:]
            if argument not in ("-m", "--multirun") and override_key(argument) not in replaced]
    return shlex.join(["python", "-m", "zsa_eval", "-m", *kept, *settings])


def check_suite_in_sweep() -> None:
    """A suite (conf/suite/) only sets a sweep's values: without -m, Hydra would run one job and drop the rest."""
    hydra_config = HydraConfig.get()
    suite = hydra_config.runtime.choices.get("suite")
    if suite and not in_sweep():
        swept = " and ".join(f"{key}s" for key in hydra_config.sweeper.params or {})
        fail(f"suite={suite} is a sweep over {swept or 'several runs'}: run it with -m ({multirun_command()})")


def start_unstarted_sweep_job(cfg: DictConfig) -> DictConfig:
    """A sweep resumed (resume=true) whose job never started has nothing to resume: that job starts now, and says
    so (a single run with nothing to resume is refused: its output_dir is likely mistyped)."""
    if not (cfg.resume and in_sweep()) or (Path(cfg.output_dir) / "run.json").is_file():
        return cfg
    print(f"zsa-eval: job {HydraConfig.get().job.num}: nothing to resume in {cfg.output_dir}; starting it",
          file=sys.stderr)
    cfg = cfg.copy()
    cfg.resume = False
    return cfg


def check_reference_template(cfg: DictConfig) -> None:
    """reference=<id> prompts as its published figure did: a template chosen beside it would be replaced unseen."""
    template = HydraConfig.get().runtime.choices.get("template")
    if cfg.reference is not None and template != "auto":
        figure = next((entry for entry in cfg.dataset.get("references") or [] if entry.get("id") == cfg.reference), {})
        prompts = list(figure.get("prompts") or []) or "its own prompts"
        raise UserError(f"reference={cfg.reference} prompts as its published figure did ({prompts}), so "
                        f"template={template} would not be used: drop template={template}, or drop reference= to run "
                        "your own prompts")


def quiet_libraries(progress: bool, verbose: bool) -> None:
    """Libraries' progress bars ("Generating train split", downloads) follow `progress`, their warnings and info
    messages `verbose`: through the environment for libraries not loaded yet (the usual case: this runs before
    the run's imports), through their own switches for those already loaded."""
    bars, level = "0" if progress else "1", "warning" if verbose else "error"
    if not verbose:
        warnings.filterwarnings("ignore", module=r"(torch|torchaudio|torchcodec|transformers|datasets|huggingface_hub"
                                r"|sklearn)(\.|$)")
    if "datasets" in sys.modules:
        import datasets

        datasets.enable_progress_bars() if progress else datasets.disable_progress_bars()
        datasets.logging.set_verbosity(datasets.logging.WARNING if verbose else datasets.logging.ERROR)
    else:
        os.environ.update(HF_DATASETS_DISABLE_PROGRESS_BARS=bars, DATASETS_VERBOSITY=level)
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_warning() if verbose else transformers_logging.set_verbosity_error()
    else:
        os.environ.update(TRANSFORMERS_VERBOSITY=level, TRANSFORMERS_NO_ADVISORY_WARNINGS=str(int(not verbose)))
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        enable_progress_bars() if progress else disable_progress_bars()
    else:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = bars


def versions_line() -> str:
    """`--version`: zsa-eval's version and the libraries that decide its numbers, then the registered model families
    (all read without importing them)."""
    installed = []
    for package in ("torch", "transformers", "hydra-core"):
        try:
            installed.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            installed.append(f"{package} not installed")
    return (f"zsa-eval {zsa_eval.__version__} ({', '.join(installed)}, Python {sys.version.split()[0]})\n"
            f"{families_line()}")


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
    # wall time from process start (a sweep's later jobs: from their own start)
    started = time.perf_counter() if in_sweep() and HydraConfig.get().job.num > 0 else zsa_eval.STARTED
    check_suite_in_sweep()
    quiet_libraries(cfg.progress, cfg.verbose)
    from zsa_eval.report.leaderboard import leaderboard_note
    from zsa_eval.report.references import reference_lines
    from zsa_eval.run import format_summary, run

    def summary(metrics: dict) -> str:
        """The run's summary line, then a line per published figure of its checkpoint."""
        return "\n".join([format_summary(metrics, time.perf_counter() - started), *reference_lines(metrics)])

    try:
        check_reference_template(cfg)
        cfg = start_unstarted_sweep_job(cfg)
        with ctrl_c_recorded():
            try:
                metrics = run(cfg)
            except KeyboardInterrupt:  # before the run had its directory (the model's load, say)
                raise RunInterrupted(NOTHING_WRITTEN, None) from None
        if metrics is not None:  # None: a data-parallel worker rank; rank 0 reports
            print(summary(metrics))
            note = leaderboard_note(metrics)
            if note:
                print(note)
        return
    except (UserError, GateFailed) as error:
        if cfg.debug and not isinstance(error, FinishedButFailed):
            raise
        if isinstance(error, FinishedButFailed):  # its results are written: summarize them, then say why it failed
            print(summary(error.metrics))
        code, message = (GATE_EXIT if isinstance(error, GateFailed) else USER_ERROR_EXIT), str(error)
        unavailable = isinstance(error, TaskUnavailable)
    except RunInterrupted as interruption:  # the exit passes through Hydra's launcher: a sweep stops here too
        fail(interruption_line(interruption), INTERRUPTED_EXIT)
    if in_sweep() and unavailable:  # suite=maeb: a task whose data are not here, or of a kind not evaluated
        print(f"zsa-eval: job {HydraConfig.get().job.num} skipped: {message}", file=sys.stderr)
    elif in_sweep():
        record_failed_job(code, message)
    else:
        fail(message, code)


def interruption_line(interruption: RunInterrupted) -> str:
    """What an interrupted run kept and how to go on; in a sweep, the command that resumes the whole sweep (run in
    the same sweep directory, each job finds its own output_dir again: see run_stamp)."""
    if not in_sweep():
        return str(interruption)
    resume = multirun_command(f"hydra.sweep.dir={HydraConfig.get().sweep.dir}", "resume=true")
    return f"{interruption.kept}; resume the whole sweep with: {resume}"


class SweepOutcome(Callback):
    """At the end of a sweep: exit with the worst failed job's code (user error 2 before gate 3), if any."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep run again in its directory (resuming it) runs every job again: it lists its own failures. A sweep
        over references (suite=reproduce) first lists the published figures it does not run, and why."""
        (Path(config.hydra.sweep.dir) / FAILED_JOBS_FILE).unlink(missing_ok=True)
        if "reference" in (OmegaConf.select(config, "hydra.sweeper.params") or {}):
            from zsa_eval.report.reproducibility import skip_lines

            config_dirs = [Path(source.path) for source in config.hydra.runtime.config_sources
                           if source.schema == "file"]
            for line in skip_lines(config_dirs[::-1]):
                print(line, file=sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        failed_jobs = Path(config.hydra.sweep.dir) / FAILED_JOBS_FILE
        if not failed_jobs.is_file():
            return
        codes = [json.loads(line)["code"] for line in failed_jobs.read_text().splitlines()]
        print(f"zsa-eval: {len(codes)} job(s) of the sweep failed; they are listed in {failed_jobs}",
              file=sys.stderr)
        sys.exit(USER_ERROR_EXIT if USER_ERROR_EXIT in codes else GATE_EXIT)


def main() -> None:
    """Run with config errors (raised before the run has a config to read `debug` from) made one line."""
    if "--version" in sys.argv[1:]:
        print(versions_line())
        return
    debug = any(argument.lstrip("+") in ("debug=true", "debug=True") for argument in sys.argv[1:])
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        evaluate()
    except (HydraException, OmegaConfBaseException) as error:
        if debug:
            raise
        fail(one_line(error, sys.argv[1:]))
    except KeyboardInterrupt:  # before a run started (imports, config, model load): nothing to resume
        if debug:
            raise
        fail(NOTHING_WRITTEN, INTERRUPTED_EXIT)
    except BrokenPipeError:  # `zsa-eval --help | head`: the reader left; stop quietly, as other CLI tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


if __name__ == "__main__":
    main()
