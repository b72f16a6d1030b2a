"""What the tasks that score class labels share (single-label classification and multi-label tagging): prompts filled
with every class's readable label, embedded once (or, for an audio language model, scored as its answer to the
template's instruction); each batch of clips scored against them by the engine (the family's logits and scores, or
transformers' pipeline); the full score matrix, saved embeddings, the best-k columns of predictions.csv and the
summary line's frame."""

from __future__ import annotations

import string
from abc import abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from zsa_eval.answers import check_instruction
from zsa_eval.data import AudioDataset, Selection, candidate_labels
from zsa_eval.engine import check_engine_settings, score_clips, text_embeddings
from zsa_eval.errors import UserError
from zsa_eval.models import LoadedModel
from zsa_eval.provenance import prompts_hash
from zsa_eval.store.embeddings import EMBEDDINGS_DIR
from zsa_eval.tasks import Evaluated, LoggedBatch, RunContext, Task, check_text_tower, skipped_note, timing_note
from zsa_eval.results import TaskResults
from zsa_eval.text import counted

TOP_K = 5
SCORE_COLUMNS = {"softmax": "prob", "sigmoid": "sigmoid", "answer": "answer",  # scores.parquet prefix per score kind
                 "cosine": "cosine"}
SHOWN_TOP = 3  # report.html shows each mistake's best three classes


def check_prompts(prompts: Sequence[str], template_name: str) -> list[str]:
    """Each prompt must hold exactly one `{}` where the label goes (literal braces written `{{` and `}}`)."""
    if not prompts:
        raise UserError(f"template {template_name} has no prompts: add template.prompts=['This is a sound of {{}}.']")
    for prompt in prompts:
        try:
            places = [name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None]
        except ValueError as error:
            raise UserError(f"prompt {prompt!r} is not a valid template ({error}): write the label's place as {{}} "
                            "and a literal brace as {{ or }}") from error
        if places != [""]:
            found = ("no place for the label" if not places else f"{len(places)} places for the label"
                     if len(places) > 1 else f"its label's place marked {{{places[0]}}}")
            raise UserError(f"prompt {prompt!r} has {found}: it needs exactly one {{}} where the label goes, e.g. "
                            "'This is a sound of {}.'")
    return list(prompts)


def top_k(n_classes: int) -> int:
    """How many best classes count for top-k accuracy and the top-k columns: 5, or every class when there are
    fewer."""
    return min(TOP_K, n_classes)


def top_k_indices(scores: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Class indices of the k highest scores per row, best first (ties: lower index first)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def top_k_columns(scores: np.ndarray, class_names: Sequence[str], k: int | None = None,
                  ranking: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each item's k best classes and their scores, best first (k = min(5, classes) unless given; ordered by
    `ranking` where given, an order-keeping transform of the scores without their rounding): top1_label,
    top1_score, ..., topK_label, topK_score."""
    names = np.asarray(class_names, dtype=object)
    top = top_k_indices(scores if ranking is None else ranking, top_k(len(class_names)) if k is None else k)
    top_scores = np.take_along_axis(scores, top, axis=1)
    columns = {}
    for rank in range(top.shape[1]):
        columns[f"top{rank + 1}_label"] = names[top[:, rank]]
        columns[f"top{rank + 1}_score"] = top_scores[:, rank]
    return columns


def top_labels_text(row: pd.Series, n: int = SHOWN_TOP, separator: str = " · ") -> str:
    """A predictions row's best `n` classes and their scores, for reading: "dog 0.4120 · cat 0.3010 · bird 0.1000"
    (one a line with `separator` "\\n")."""
    return separator.join(f"{row[f'top{rank}_label']} {row[f'top{rank}_score']:.4f}" for rank in range(1, n + 1)
                      if f"top{rank}_label" in row)


def case_twins_warning(labels: Sequence[str]) -> list[str]:
    """A warning naming candidate labels that differ only in case ("Noise" and "noise"): two classes to the model,
    most likely one in the data."""
    by_case: dict[str, list[str]] = {}
    for label in labels:
        by_case.setdefault(label.casefold(), []).append(label)
    twins = [names for names in by_case.values() if len(names) > 1]
    if not twins:
        return []
    shown = "; ".join(" and ".join(map(repr, names)) for names in twins[:3])
    return [f"{counted(len(twins), 'set')} of class names differ only in case ({shown}{'; ...' if len(twins) > 3 else ''}): "
            "they are separate classes; rename them to one in the data (or dataset.label_names) if they are one"]


def classes_without_items(dataset: AudioDataset) -> list[str]:
    """Candidate classes (dataset.classes) that no item of the selection carries."""
    present = dataset.present_labels()
    return [name for name in dataset.class_names if name not in present]


def answer_matching(cfg: DictConfig) -> str:
    """How a generated answer names a class (template.answer_matching; a template without the key: zsa's rules)."""
    return str(cfg.template.get("answer_matching") or "zsa")


def template_protocol_warnings(cfg: DictConfig) -> list[str]:
    """An audio language model run otherwise than its template's generative protocol (template=mill): in likelihood
    mode, or generating answers of another length."""
    template, scoring = cfg.template, cfg.model.get("scoring")
    if scoring is None or answer_matching(cfg) == "zsa":
        return []
    if scoring != "generate":
        return [f"template={template.name} is a generative protocol: model.scoring={scoring} asks its instruction "
                f"but scores each label's likelihood, and its answer matching does not apply (model.scoring=generate "
                "runs the protocol)"]
    wanted = template.get("max_new_tokens")
    if wanted is not None and wanted != cfg.model.max_new_tokens:
        return [f"template={template.name} generates answers of up to {wanted} new tokens, this run "
                f"{cfg.model.max_new_tokens}: its figures are not comparable (model.max_new_tokens={wanted})"]
    return []


class LabelTask(Task):
    """A task whose candidates are the dataset's classes, each embedded through the prompts."""

    finished_key = "probabilities"
    missing_score: str  # what a class without clips lacks, for the warning

    def check(self, cfg: DictConfig) -> None:
        """The engine's limits: the pipeline takes one prompt and exposes no embeddings. The instruction (audio
        language models) is checked whenever the config has one, and must exist for model.scoring=generate."""
        check_engine_settings(cfg.engine, list(cfg.template.prompts))
        if cfg.save_embeddings and cfg.engine == "pipeline":
            raise UserError("save_embeddings=true needs engine=embed (the pipeline engine exposes no embeddings)")
        if cfg.template.get("instruction") is not None or cfg.model.get("scoring") == "generate":
            check_instruction(cfg.template.get("instruction"), cfg.model.get("scoring"))

    def check_model(self, cfg: DictConfig, loaded: LoadedModel) -> None:
        """A scoring family (an audio language model) needs an instruction and has no embeddings to save (that it
        hears each clip whole is zsa_eval.long_audio.check_family_policy's); an audio encoder has no text to score
        labels by."""
        check_text_tower(loaded, f"protocol={cfg.protocol.name}")
        if loaded.family.kind != "scoring":
            return
        check_instruction(cfg.template.get("instruction"), loaded.family.scoring)
        if cfg.save_embeddings:
            raise UserError(f"save_embeddings=true: {loaded.family.name} models are scored by their answers and have "
                            "no audio or text embeddings; drop save_embeddings=true")

    def prompts(self, cfg: DictConfig) -> list[str]:
        return check_prompts(list(cfg.template.prompts), cfg.template.name)

    def identity(self, base: dict, cfg: DictConfig) -> dict:
        """The template and its prompts; for an audio language model (its family settings name a scoring mode),
        also the instruction it was asked."""
        prompts = self.prompts(cfg)
        identity = {**base, "template": cfg.template.name, "prompts": prompts}
        if "scoring" in base.get("family_settings", {}):
            identity["instruction"] = cfg.template.instruction
        if base.get("family_settings", {}).get("scoring") == "generate":
            identity["answer_matching"] = answer_matching(cfg)
        return identity

    def check_dataset(self, dataset: AudioDataset) -> list[str]:
        """Class names that collide once made readable are refused; classes without clips, and names that differ
        only in case (likely one class written two ways), are warnings."""
        warnings = case_twins_warning(candidate_labels(dataset.class_names))
        empty = classes_without_items(dataset)
        if empty:
            warnings.append(f"{len(empty)} of the {counted(len(dataset.class_names), 'candidate class')} "
                            f"{'has' if len(empty) == 1 else 'have'} no clips in this selection "
                            f"({', '.join(map(repr, empty[:5]))}{', ...' if len(empty) > 5 else ''}): they stay "
                            f"candidates but have no {self.missing_score} (metrics.json: classes_without_items)")
        return warnings

    def keeps_embeddings(self, cfg: DictConfig) -> bool:
        return bool(cfg.save_embeddings)

    def batches(self, context: RunContext, positions: list[int]) -> Iterator[LoggedBatch]:
        """The engine's scores (softmax, sigmoid, or 1 for an answer's class) and logits of each clip against every
        class, its windows, and an audio language model's answer and how it matched; the clips' audio embeddings
        kept with save_embeddings."""
        cfg, dataset = context.cfg, context.dataset
        for batch in score_clips(context.loaded, Selection(dataset.clips, positions), context.item_ids(positions),
                                 candidate_labels(dataset.class_names), context.prompts, cfg.engine, cfg.batch_size,
                                 context.num_workers, cfg.seed, context.progress, context.cache, cfg.featurizer,
                                 context.long_audio, cfg.template.get("instruction"), answer_matching(cfg)):
            records = [{"probabilities": scores.tolist()} for scores in batch.probabilities]
            for record, windows in zip(records, batch.clip_windows):
                record |= windows
            if batch.logits is not None:
                for record, logits in zip(records, batch.logits):
                    record["logits"] = logits.tolist()
            if batch.answers is not None:
                for record, answer, match in zip(records, batch.answers, batch.matches):
                    record |= {"answer": answer, "match": match}
            kept = list(batch.audio_embeddings) if self.keeps_embeddings(cfg) and batch.indices else None
            yield LoggedBatch(batch.indices, records, batch.skipped, batch.cached_rows, kept)

    def results(self, context: RunContext, evaluated: Evaluated) -> TaskResults:
        """The task's own metrics, tables and figures (`measure`), with what every label task records: its
        candidates and prompts, the full score matrix (scores.parquet) and, with save_embeddings, the embeddings."""
        probabilities = np.asarray([record["probabilities"] for record in evaluated.records], dtype=np.float32)
        has_logits = all("logits" in record for record in evaluated.records)
        logits = (np.asarray([record["logits"] for record in evaluated.records], dtype=np.float32) if has_logits
                  else None)
        measured = self.measure(context, evaluated, probabilities, logits)
        class_names = context.dataset.class_names
        parquet = {"scores.parquet": scores_table(evaluated.items, class_names, context.loaded.family.score_kind,
                                                  probabilities, logits)}
        arrays, tables = {}, measured.tables | {"excluded": context.dataset.excluded}
        if context.cfg.save_embeddings:
            labels = candidate_labels(class_names)
            text = text_embeddings(context.loaded, labels, context.prompts).cpu().numpy()
            arrays = {f"{EMBEDDINGS_DIR}/audio.npy": np.stack(evaluated.audio),
                      f"{EMBEDDINGS_DIR}/text.npy": np.asarray(text, dtype=np.float32)}
            tables |= {f"{EMBEDDINGS_DIR}/audio_items": evaluated.items[["item_id", "label"]].rename(
                           columns={"label": "true_label"}),
                       f"{EMBEDDINGS_DIR}/text_labels": pd.DataFrame({"class_name": class_names,
                                                                      "candidate_label": labels})}
        return TaskResults(measured.metrics | self.run_fields(context), tables, measured.figures, arrays, parquet)

    @abstractmethod
    def measure(self, context: RunContext, evaluated: Evaluated, probabilities: np.ndarray,
                logits: np.ndarray | None) -> TaskResults:
        """The task's metrics (with intervals), tables and figures from the evaluated items' scores and logits."""

    def run_fields(self, context: RunContext) -> dict:
        """metrics.json's account of the candidates, prompts and scores of a label task."""
        dataset, family, cfg = context.dataset, context.loaded.family, context.cfg
        return {
            "n_classes": len(dataset.class_names),
            "metrics_cover": "evaluated items only (skipped items are listed in errors.csv)",
            "score_kind": family.score_kind,
            "score_kind_description": family.score_description,
            "n_excluded": len(dataset.excluded),
            "classes_without_items": classes_without_items(dataset),
            "template": cfg.template.name,
            **({"instruction": cfg.template.instruction} if family.kind == "scoring" else {}),
            **({"answer_matching": answer_matching(cfg)} if getattr(family, "scoring", None) == "generate" else {}),
            "prompts": context.prompts,
            "prompts_hash": prompts_hash(context.prompts),
            "labels": dataset.class_names,
            "candidate_labels": candidate_labels(dataset.class_names),
        }

    @abstractmethod
    def headline(self, metrics: dict) -> str:
        """The run's main figures, for the summary line."""

    def summary_line(self, metrics: dict, wall_s: float) -> str:
        excluded = (f", {metrics['n_excluded']} excluded (no label among the classes)"
                    if metrics["n_excluded"] else "")
        unmatched = (f", {metrics['n_unmatched']} answers matched no class (unmatched.csv)"
                     if metrics.get("n_unmatched") else "")
        return (f"{metrics['dataset']} | {metrics['model']} | {metrics['template']}: {self.headline(metrics)} "
                f"on {metrics['n_evaluated']} of {counted(metrics['n_items'], 'clip')}{skipped_note(metrics)}{excluded}"
                f"{unmatched}{timing_note(metrics, wall_s)}")


def scores_table(items: pd.DataFrame, class_names: list[str], score_kind: str, probabilities: np.ndarray,
                 logits: np.ndarray | None) -> pd.DataFrame:
    """scores.parquet: item_id, true_label, then every class's score, `prob:<class>` (softmax probabilities) or
    `sigmoid:<class>` (sigmoid scores), and, from the embed engine, `logit:<class>` (the family's audio-text logit
    the scores are taken from)."""
    columns = {"item_id": items["item_id"].to_numpy(), "true_label": items["label"].to_numpy()}
    prefix = SCORE_COLUMNS[score_kind]
    columns |= {f"{prefix}:{name}": probabilities[:, column] for column, name in enumerate(class_names)}
    if logits is not None:
        columns |= {f"logit:{name}": logits[:, column] for column, name in enumerate(class_names)}
    return pd.DataFrame(columns)


def predicted_positions(evaluated: Evaluated, predictions: pd.DataFrame) -> list[int]:
    """The dataset position of each row of predictions.csv (a probe's rows are its tested clips only)."""
    position_of = dict(zip(evaluated.items["item_id"], evaluated.positions))
    return [position_of[item_id] for item_id in predictions["item_id"]]


def recorded_scores(results: TaskResults, item_ids: pd.Series, class_names: Sequence[str],
                    prefixes: Sequence[str]) -> np.ndarray | None:
    """The score matrix of the run's scores.parquet under the first of `prefixes` ("logit", "prob", ...) it holds for
    every class, rows in the order of `item_ids`; None where the run writes none, or none of those rows."""
    table = results.parquet.get("scores.parquet")
    if table is None or table["item_id"].tolist() != list(item_ids):
        return None
    for prefix in prefixes:
        columns = [f"{prefix}:{name}" for name in class_names]
        if all(column in table for column in columns):
            return table[columns].to_numpy(dtype=float)
    return None


def interval(bounds: list[float] | None) -> str:
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else "[undefined]"


def number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
