"""zsa-eval's public API, for a model of your own and for notebooks and scripts (README, "Your own model").

- The family classes a model implements (`EmbeddingFamily`, `ContrastiveFamily` (an embedding family of the CLIP
  kind, which gives only its logit scale), `AudioEncoderFamily`, `ScoringFamily`; their methods are documented in
  zsa_eval.families), what `load` receives (`ModelSpec`), `weighted_mean` for pooling windows, and
  `BadAudio`, which a preparer raises to skip a clip with a reason of its own.
- `check_batch_invariance(family)`: whether a family's audio embedding of a clip is the same in any batch (for its
  own tests; zsa-eval prepares every clip alone, the family's collate and encoder must do the rest).
- `evaluate(dataset=..., model=..., overrides=[...])`: the run `python -m zsa_eval` makes, composed from the same
  Hydra config, returning an `Evaluation`; a mistake raises `UserError` (one line naming the fix).

`VERSION` is "MAJOR.MINOR": MINOR grows when the API gains something, MAJOR when a family written for an earlier
version would need changing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from zsa_eval.config import CONFIG_DIR, one_line
from zsa_eval.errors import BadAudio, FinishedButFailed, UserError
from zsa_eval.families import (AudioEncoderFamily, ContrastiveFamily, EmbeddingFamily, Inputs, ModelFamily, ModelSpec,
                               ScoringFamily, weighted_mean)
from zsa_eval.families.invariance import check_batch_invariance
from zsa_eval.interrupts import ctrl_c_recorded
from zsa_eval.models import DTYPES

VERSION = "1.0"
PER_ITEM_TABLES = ("predictions.csv", "ranks.csv")  # a classification or tagging run's, a retrieval run's
TEXT_COLUMNS = ("item_id", "path", "label", "labels", "fold", "caption_id", "caption")  # read as written

__all__ = ["VERSION", "AudioEncoderFamily", "BadAudio", "ContrastiveFamily", "EmbeddingFamily", "Evaluation", "Inputs",
           "ModelFamily", "ModelSpec", "ScoringFamily", "UserError", "check_batch_invariance", "evaluate",
           "weighted_mean"]


@dataclass(frozen=True)
class Evaluation:
    """A finished run: metrics.json's content and the run directory it was written to (the same files as the CLI
    writes), its summary line, and, when a check failed after the results were written (a gate, the skip limit),
    why (`failure`)."""

    metrics: dict
    run_dir: Path
    summary: str
    failure: str | None = None

    @property
    def identity(self) -> dict:
        """What determines the run's results (the model, its weights' fingerprint, the dataset, the prompts, ...)."""
        return self.metrics["identity"]

    @property
    def predictions(self) -> pd.DataFrame:
        """One row per evaluated item (predictions.csv; a retrieval run's ranks.csv), ids and labels as written."""
        path = next((self.run_dir / name for name in PER_ITEM_TABLES if (self.run_dir / name).is_file()), None)
        if path is None:
            raise UserError(f"{self.run_dir} holds no per-item table ({', '.join(PER_ITEM_TABLES)})")
        return read_table(path)

    def table(self, name: str) -> pd.DataFrame:
        """Any table of the run directory by name (`per_class`, `confusion_matrix`, ...)."""
        path = self.run_dir / f"{name}.csv"
        if not path.is_file():
            tables = sorted(file.stem for file in self.run_dir.glob("*.csv"))
            raise UserError(f"{self.run_dir} has no {name}.csv; its tables: {', '.join(tables)}")
        return read_table(path)


def read_table(path: Path) -> pd.DataFrame:
    """A run's CSV table with its ids, paths and labels as the text they are (`01` and `NA` stay so)."""
    columns = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, keep_default_na=False, na_values=[""],
                       dtype={column: str for column in TEXT_COLUMNS if column in columns})


def model_overrides(model: str | ModelFamily | None) -> list[str]:
    """The overrides that choose `model`: a model config by name, or, for a loaded family, the plugin config
    naming its class, its name and its precision (the overrides given after these still win)."""
    if model is None:
        return []
    if isinstance(model, str):
        return [f"model={model}"]
    if not isinstance(model, ModelFamily):
        raise UserError(f"model={model!r} is neither a model config's name (model='clap') nor a loaded model family "
                        "(an instance of a zsa_eval.api family class)")
    precision = {dtype: name for name, dtype in DTYPES.items()}.get(model.dtype)
    if precision is None:
        raise UserError(f"{model.name} runs in {model.dtype}; zsa-eval runs fp32, fp16 or bf16 models")
    cls = type(model)
    return ["model=plugin", f"model.family={cls.__module__}:{cls.__qualname__}", f"model.name={model.name}",
            f"precision={precision}"]


def composed(arguments: list[str]):
    """The run config exactly as `python -m zsa_eval ARGUMENTS` composes it; a mistake in one line."""
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
            return compose(config_name="config", overrides=arguments)
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(one_line(error, arguments)) from None


def evaluate(dataset: str | None = None, model: str | ModelFamily | None = None, overrides: Sequence[str] = (),
             ) -> Evaluation:
    """Evaluate `model` on `dataset` as `python -m zsa_eval dataset=DATASET model=MODEL OVERRIDES...` does, and
    write the same run directory. `model`: a model config's name, or a family already loaded (an instance of a
    zsa_eval.api family class: it runs where it is, in its dtype). Raises UserError (one line) for a mistake, and
    zsa_eval.errors.RunInterrupted on Ctrl-C (what finished is kept; the message says how to resume)."""
    from zsa_eval.run import format_summary, run

    started = time.perf_counter()
    arguments = [*([f"dataset={dataset}"] if dataset else []), *model_overrides(model), *overrides]
    cfg = composed(arguments)
    family = model if isinstance(model, ModelFamily) else None
    failure = None
    with ctrl_c_recorded():
        try:
            metrics = run(cfg, family)
        except FinishedButFailed as error:
            metrics, failure = error.metrics, str(error)
    return Evaluation(metrics, Path(metrics["output_dir"]), format_summary(metrics, time.perf_counter() - started),
                      failure)
