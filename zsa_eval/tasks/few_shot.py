"""Few-shot (protocol=few_shot): for each test fold (each official fold in turn, or the test side of a seeded
split), `protocol.shots` clips of every class are drawn from the training side and classifiers are fitted on their
clip embeddings; every test clip is classified. The whole draw is repeated `protocol.repeats` times (each draw
seeded by `protocol.seed`, the repeat and the fold), and each metric is reported as its mean over the repeats, with
its spread (sample std) and a 95% t-interval of that mean (mean ± t(0.975, repeats - 1) · std / √repeats: the
uncertainty that comes from which clips were drawn, for these test clips).

Classifiers, all reported (`protocol.classifier` picks the headline, what the leaderboard ranks):
- `logistic_regression`: on the shots' standardized embeddings, C fixed at `protocol.c` (too few shots to
  cross-validate it);
- `prototype`: each class's prototype is the mean of its shots' embeddings; a clip goes to the class whose
  prototype is nearest by cosine;
- `text_prototype` (`protocol.text_init`): each class starts from its zero-shot text embedding t (the prompts
  filled with its label, combined as the family combines them) and moves toward the direction of its shots' mean
  m, taken at the text's length: p = t + k / (k + w) · (|t| · m / |m| - t), w = `protocol.text_init_weight` (how
  many shots the text counts as). The family's own logits and scores of the clips against p classify them, so at
  k = 0 (p = t exactly) they are the zero-shot run's, and the first shots show how much the clips beat the prompt.

predictions.csv, scores.parquet (as a zero-shot run's), per_class.csv and the confusion matrix hold the first draw
(repeat 0) of the headline classifier; per_repeat.csv the metrics of every draw of every classifier; draws.csv which
clips each draw took of each class for each test fold (so any draw can be rebuilt without the seeding code). Draws
that are all identical (text_init with 0 shots) are said so in a warning and `identical_draws`, and their mean,
spread and interval are exactly their one value, 0 and that value."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from scipy.special import expit
from scipy.stats import t as student_t

from zsa_eval.config import PROBE_CLASSIFIERS
from zsa_eval.data import AudioDataset, candidate_labels
from zsa_eval.engine import family_logits, text_embeddings
from zsa_eval.errors import UserError
from zsa_eval.families import Family
from zsa_eval.families.contract import calling
from zsa_eval.models import LoadedModel
from zsa_eval.tasks import Evaluated, RunContext, check_text_tower, classification, clip_features
from zsa_eval.results import TaskResults
from zsa_eval.text import counted
from zsa_eval.tasks.accuracy import INTERVAL_METRICS, point_metrics, top_k_hits
from zsa_eval.tasks.classification import class_indices, classification_results
from zsa_eval.tasks.labels import check_prompts, interval, scores_table, top_k
from zsa_eval.tasks.probing import ProbeTask, Training, class_columns, standardized_logistic_regression
from zsa_eval.tasks.splits import Sides, probe_sides, test_fold_name
from zsa_eval.provenance import prompts_hash

LOGISTIC_REGRESSION, PROTOTYPE, TEXT_PROTOTYPE = PROBE_CLASSIFIERS
T_LEVEL = 0.975  # two-sided 95%


def headline_classifier(protocol: DictConfig) -> str:
    """`protocol.classifier`; auto: text_prototype with text_init, else logistic_regression."""
    if protocol.classifier != "auto":
        return protocol.classifier
    return TEXT_PROTOTYPE if protocol.text_init else LOGISTIC_REGRESSION


def trained_classifiers(protocol: DictConfig) -> list[str]:
    """The classifiers a run reports: those that learn from shots when there are shots, text_prototype with
    text_init."""
    return [*((LOGISTIC_REGRESSION, PROTOTYPE) if protocol.shots else ()),
            *((TEXT_PROTOTYPE,) if protocol.text_init else ())]


def draw_shots(targets: np.ndarray, train: np.ndarray, n_classes: int, shots: int,
               rng: np.random.Generator) -> np.ndarray:
    """`shots` positions of each class among the training positions, drawn without replacement, in class order."""
    drawn = [rng.choice(np.flatnonzero(train & (targets == label)), shots, replace=False) for label in range(n_classes)]
    return np.concatenate(drawn) if drawn else np.zeros(0, dtype=np.int64)


def class_means(features: np.ndarray, targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's mean embedding (its prototype)."""
    return np.stack([features[targets == label].mean(axis=0) for label in range(n_classes)])


def cosine_scores(features: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """(clips, classes) cosine similarity of each clip to each prototype."""
    def unit(rows: np.ndarray) -> np.ndarray:
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return unit(features) @ unit(prototypes).T


@torch.inference_mode()
def text_prototypes(text: torch.Tensor, shot_means: np.ndarray | None, shots: int, weight: float) -> torch.Tensor:
    """p = t + k / (k + w) · (|t| · m / |m| - t) per class (t its text embedding, m its shots' mean): with no shot,
    the text embeddings themselves."""
    if not shots:
        return text
    means = torch.from_numpy(shot_means).to(text.device, text.dtype)
    toward = torch.nn.functional.normalize(means, dim=-1) * text.norm(dim=-1, keepdim=True)
    return text + shots / (shots + weight) * (toward - text)


@torch.inference_mode()
def family_ranking(family: Family, audio: list[torch.Tensor], prototypes: torch.Tensor) -> np.ndarray:
    """What ranks the classes of each clip's audio embedding against class embeddings, as the family's zero-shot
    scoring ranks them: its softmax scores, or for sigmoid scores their logits (float32 sigmoids of large logits
    round to 1.0 and would tie)."""
    logits = family_logits(family, audio, prototypes)
    if family.score_kind == "sigmoid":
        return logits.float().cpu().numpy()
    with calling(family, "scores"):
        return family.scores(logits).float().cpu().numpy()


def draws_mean(values: np.ndarray) -> float:
    """The mean over draws; draws that are all equal have their value as mean, exactly (a float sum of ten equal
    accuracies need not divide back to it, and would print apart from the run that has no draws)."""
    return float(values[0]) if (values == values[0]).all() else float(values.mean())


def draws_std(values: np.ndarray) -> float:
    """The sample std (ddof=1) over draws: undefined (NaN) for one draw, 0 exactly for draws that are all equal."""
    if len(values) < 2:
        return float("nan")
    return 0.0 if (values == values[0]).all() else float(values.std(ddof=1))


def t_interval(values: np.ndarray) -> list[float] | None:
    """The 95% t-interval of the mean of `values` (None for a single value), within [0, 1], the range of every
    metric it bounds (a share of clips or classes: t's symmetric interval of a mean near 1 would pass it)."""
    if len(values) < 2:
        return None
    mean, half = draws_mean(values), student_t.ppf(T_LEVEL, len(values) - 1) * draws_std(values) / np.sqrt(len(values))
    return [float(max(mean - half, 0.0)), float(min(mean + half, 1.0))]


def over_repeats(per_repeat: pd.DataFrame) -> dict[str, dict]:
    """Per classifier, each metric's mean over the repeats, `<metric>_std` (ddof=1; None for one repeat) and
    `<metric>_ci95` (t-interval)."""
    summary = {}
    for name, rows in per_repeat.groupby("classifier", sort=False):
        summary[name] = {}
        for metric in INTERVAL_METRICS:
            values = rows[metric].to_numpy(dtype=float)
            summary[name] |= {metric: draws_mean(values),
                              f"{metric}_std": draws_std(values) if len(values) > 1 else None,
                              f"{metric}_ci95": t_interval(values)}
    return summary


def identical_draws_warning(scores: dict[str, np.ndarray], repeats: int) -> str | None:
    """A warning when every draw of every classifier scored the test clips alike (text_init with 0 shots, say):
    the repeats measured one classifier `repeats` times, and the spread over them says nothing."""
    if repeats < 2 or not all((draws == draws[:1]).all() for draws in scores.values()):
        return None
    return (f"the {repeats} draws are all identical (their spread is 0): nothing was drawn that differs between "
            "them (protocol.shots=0?), so the interval over the draws says nothing of the test clips; "
            "protocol.repeats=1 gives the same figures")


def per_repeat_table(y_true: np.ndarray, scores: dict[str, np.ndarray], n_classes: int) -> pd.DataFrame:
    """repeat, classifier and the metrics of each draw's predictions of the test clips (`scores[classifier]`:
    repeats x clips x classes)."""
    k = top_k(n_classes)
    rows = [{"repeat": repeat, "classifier": name,
             **point_metrics(y_true, draw.argmax(axis=1), top_k_hits(y_true, draw, k))}
            for name, draws in scores.items() for repeat, draw in enumerate(draws)]
    return pd.DataFrame(rows, columns=["repeat", "classifier", *INTERVAL_METRICS])


def with_spread(per_repeat: pd.DataFrame) -> pd.DataFrame:
    """per_repeat.csv: every draw, then per classifier rows `mean` and `std` (ddof=1) of its draws."""
    spread = [{"repeat": label, "classifier": name,
               **{metric: statistic(rows[metric].to_numpy(dtype=float)) for metric in INTERVAL_METRICS}}
              for name, rows in per_repeat.groupby("classifier", sort=False)
              for label, statistic in (("mean", draws_mean), ("std", draws_std))]
    return pd.concat([per_repeat, pd.DataFrame(spread)], ignore_index=True)


class FewShotTask(ProbeTask):
    """Single-label datasets: shots drawn per class and test fold, repeated; three classifiers (see the module)."""

    measured_as = classification.TASK

    def prompts(self, cfg: DictConfig) -> list[str] | None:
        """text_init fills the prompts with the class labels, as zero-shot does."""
        return check_prompts(list(cfg.template.prompts), cfg.template.name) if cfg.protocol.text_init else None

    def identity(self, base: dict, cfg: DictConfig) -> dict:
        """With text_init, also the template and prompts."""
        identity = super().identity(base, cfg)
        if cfg.protocol.text_init:
            identity |= {"template": cfg.template.name, "prompts": self.prompts(cfg)}
        return identity

    def check_dataset(self, dataset: AudioDataset) -> list[str]:
        """Every class has `shots` clips on the training side of every test fold (and, with text_init, readable
        labels that do not collide)."""
        if self.settings.text_init:
            candidate_labels(dataset.class_names)
        sides = self.sides(dataset)
        if self.settings.shots:
            self.check_shots(dataset, sides)
        return super().check_dataset(dataset)

    def check_model(self, cfg: DictConfig, loaded: LoadedModel) -> None:
        """text_init starts from the labels' text embeddings, which an audio encoder does not have."""
        super().check_model(cfg, loaded)
        if self.settings.text_init:
            check_text_tower(loaded, "protocol.text_init=true")

    @property
    def trains_on_clips(self) -> bool:
        """0 shots (text_init alone) fits nothing on the clips."""
        return bool(self.settings.shots)

    def check_shots(self, dataset: AudioDataset, sides: Sides) -> None:
        """Refuse, naming the class and fold, a training side with fewer clips of a class than protocol.shots."""
        shots = self.settings.shots
        labels = dataset.items["label"]
        counts = pd.DataFrame({fold: labels[sides.training_side(fold, sides.test_fold)].value_counts()
                               .reindex(dataset.class_names, fill_value=0) for fold in sides.folds})
        lowest = int(counts.to_numpy().min())
        if lowest >= shots:
            return
        name, fold = counts.stack().idxmin()
        if lowest == 0:
            raise UserError(f"class {name!r} has no clip on the training side of {test_fold_name(fold)}: few-shot draws "
                            f"protocol.shots={shots} of every class; select classes with clips (dataset.classes)")
        raise UserError(f"protocol.shots={shots} is more than class {name!r} has on the training side of test fold "
                        f"{fold} ({lowest} clips): lower protocol.shots to {lowest} or less")

    def results(self, context: RunContext, evaluated: Evaluated) -> TaskResults:
        """Every draw of every test fold classified by each classifier; the mean over draws with spread and
        t-interval; predictions, per-class and confusion tables of the headline classifier's first draw."""
        protocol, family = context.cfg.protocol, context.loaded.family
        class_names = context.dataset.class_names
        n_classes = len(class_names)
        sides = probe_sides(context.dataset, protocol, self.stratified)
        test_fold = sides.test_fold[evaluated.positions]
        item_ids = evaluated.items["item_id"].to_numpy(dtype=object)
        features = clip_features(family, evaluated.audio)
        targets = class_indices(evaluated.items, class_names)
        audio = [torch.from_numpy(embedding).to(family.device) for embedding in evaluated.audio]
        text = (text_embeddings(context.loaded, candidate_labels(class_names), context.prompts)
                if protocol.text_init else None)
        scores = {name: np.zeros((protocol.repeats, len(item_ids), n_classes))
                  for name in trained_classifiers(protocol)}
        training, drawn_tables = Training(), []
        for repeat in range(protocol.repeats):
            for index, fold in enumerate(sides.folds):
                train, test = sides.masks(fold, test_fold, item_ids)
                drawn = shots_of_fold(targets, train, n_classes, protocol.shots, fold,
                                      np.random.default_rng([protocol.seed, repeat, index]))
                drawn_tables.append(drawn_table(repeat, fold, drawn, evaluated.items, targets, class_names))
                fold_scores = self.classify(family, features, targets, n_classes, drawn, test, audio, text, protocol,
                                            training)
                for name, values in fold_scores.items():
                    scores[name][repeat, test] = values
        training.warn(protocol.max_iter)
        tested = pd.notna(test_fold)
        measured = self.measure(context, evaluated, sides, tested, {name: draws[:, tested] for name, draws in
                                                                    scores.items()}, features)
        return replace(measured, tables=measured.tables | {"draws": pd.concat(drawn_tables, ignore_index=True)})

    def classify(self, family: Family, features: np.ndarray, targets: np.ndarray, n_classes: int, drawn: np.ndarray,
                 test: np.ndarray, audio: list[torch.Tensor], text: torch.Tensor | None, protocol: DictConfig,
                 training: Training) -> dict[str, np.ndarray]:
        """Each classifier's scores of the test clips, from one draw of shots (the text prototypes of a sigmoid
        family: their logits, which rank as the scores do)."""
        scores, means = {}, None
        if protocol.shots:
            model = training(standardized_logistic_regression(protocol.c, protocol.max_iter, protocol.seed).fit,
                             features[drawn], targets[drawn])
            scores[LOGISTIC_REGRESSION] = class_columns(model.classes_, model.predict_proba(features[test]), n_classes)
            means = class_means(features[drawn], targets[drawn], n_classes)
            scores[PROTOTYPE] = cosine_scores(features[test], means)
        if text is not None:
            prototypes = text_prototypes(text, means, protocol.shots, protocol.text_init_weight)
            scores[TEXT_PROTOTYPE] = family_ranking(family, [audio[row] for row in np.flatnonzero(test)], prototypes)
        return scores

    def measure(self, context: RunContext, evaluated: Evaluated, sides, tested: np.ndarray,
                scores: dict[str, np.ndarray], features: np.ndarray) -> TaskResults:
        """metrics.json: each classifier's metrics over the draws, the headline's at the top level (as a zero-shot
        run's keys, intervals being t-intervals over the draws); the tables of the headline's first draw."""
        protocol, class_names = context.cfg.protocol, context.dataset.class_names
        headline = headline_classifier(protocol)
        kinds = {LOGISTIC_REGRESSION: "softmax", PROTOTYPE: "cosine", TEXT_PROTOTYPE: context.loaded.family.score_kind}
        items = evaluated.items[tested].reset_index(drop=True)
        per_repeat = per_repeat_table(class_indices(items, class_names), scores, len(class_names))
        classifiers = over_repeats(per_repeat)
        identical = identical_draws_warning(scores, protocol.repeats)
        if identical:
            print(f"zsa-eval: warning: {identical}", file=sys.stderr)
        draw = scores[headline][0]  # what ranks; for sigmoid scores their logits (family_ranking)
        first = classification_results(items, class_names, expit(draw) if kinds[headline] == "sigmoid" else draw,
                                       kinds[headline], None, context.cfg.seed,
                                       ranking=draw if kinds[headline] == "sigmoid" else None)
        kept = self.kept_files(context, evaluated, features)
        first_scores = scores_table(items, class_names, kinds[headline], expit(draw) if kinds[headline] == "sigmoid"
                                    else draw, draw if kinds[headline] == "sigmoid" else None)
        metrics = ({key: value for key, value in first.metrics.items() if key != "bootstrap"} | classifiers[headline]
                   | self.run_fields(context, sides, tested)
                   | {"shots": protocol.shots, "repeats": protocol.repeats, "classifier": headline,
                      "classifiers": classifiers, "score_kind": kinds[headline],
                      "score_kind_description": SCORE_DESCRIPTIONS[headline],
                      "interval": "95% t-interval of the mean over the repeats (each metric's <name>_ci95)",
                      "predictions_from": f"repeat 0 of {headline}",
                      "identical_draws": identical is not None})
        if protocol.text_init:
            metrics |= {"template": context.cfg.template.name, "prompts": context.prompts,
                        "prompts_hash": prompts_hash(context.prompts)}
        return TaskResults(metrics, first.tables | {"per_repeat": with_spread(per_repeat)} | kept.tables,
                           first.figures, kept.arrays, parquet={"scores.parquet": first_scores})

    def protocol_label(self, metrics: dict) -> str:
        """few_shot, its shots, repeats and headline classifier (with text_prototype, its weight)."""
        settings = metrics["protocol_settings"]
        weight = f" w={settings['text_init_weight']:g}" if metrics["classifier"] == TEXT_PROTOTYPE else ""
        return f"few_shot {metrics['shots']}-shot x{metrics['repeats']} {metrics['classifier']}{weight}"

    def headline(self, metrics: dict) -> str:
        """The headline classifier's accuracy, spread and interval over the draws; the others' accuracy."""
        def spread(values: dict) -> str:
            return f" ± {values['accuracy_std']:.4f}" if values["accuracy_std"] is not None else ""

        main = metrics["classifiers"][metrics["classifier"]]
        others = "; ".join(f"{name} {values['accuracy']:.4f}{spread(values)}"
                           for name, values in metrics["classifiers"].items() if name != metrics["classifier"])
        return (f"{metrics['classifier']} accuracy {main['accuracy']:.4f}{spread(main)} "
                f"{interval(main['accuracy_ci95'])} over {counted(metrics['repeats'], 'draw')}"
                + (f" ({others})" if others else ""))


SCORE_DESCRIPTIONS = {
    LOGISTIC_REGRESSION: "the few-shot logistic regression's class probabilities",
    PROTOTYPE: "cosine similarity of the clip's embedding to each class's shot prototype",
    TEXT_PROTOTYPE: "the family's scores (softmax or sigmoid of its logits) against the text-initialized prototypes",
}


def drawn_table(repeat: int, fold, drawn: np.ndarray, items: pd.DataFrame, targets: np.ndarray,
                class_names: list[str]) -> pd.DataFrame:
    """draws.csv's rows for one draw: the repeat, the test fold it trained for, and each clip drawn (its class and
    id, in draw order within the class)."""
    return pd.DataFrame({"repeat": repeat, "test_fold": fold,
                         "class": np.asarray(class_names, dtype=object)[targets[drawn]],
                         "item_id": items["item_id"].to_numpy(dtype=object)[drawn]},
                        columns=["repeat", "test_fold", "class", "item_id"])


def shots_of_fold(targets: np.ndarray, train: np.ndarray, n_classes: int, shots: int, fold,
                  rng: np.random.Generator) -> np.ndarray:
    """One draw of shots for a test fold; a class left with too few evaluated clips there (after skips) is
    refused."""
    counts = np.bincount(targets[train], minlength=n_classes)
    if shots and counts.min() < shots:
        raise UserError(f"after skipped clips, a class has {int(counts.min())} clips on the training side of test fold "
                        f"{fold}, fewer than protocol.shots={shots}; lower protocol.shots or fix the clips in "
                        "errors.csv")
    return draw_shots(targets, train, n_classes, shots, rng)
