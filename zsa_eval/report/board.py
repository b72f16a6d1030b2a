"""The leaderboard's rows: the latest complete run of each run identity found under the results directory, labelled so
that any two rows tell apart, grouped by dataset and ranked. It knows no task: each run's metrics.json declares its
task, its main score (what ranks it), the chance level of that score and the metrics a leaderboard shows (with their
intervals and which way is better); runs written before those declarations are read as declaring what their task
declared then (DECLARED_BEFORE); a probe run declares its protocol too (metrics.json `protocol_label`), and rows are
ranked within their dataset and protocol. Runs whose checkpoint has published figures (metrics.json `references`)
get the nearest one of their main score beside it. zsa_eval.report.leaderboard writes the board's files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from zsa_eval.provenance import identity_hash, prompts_hash, short_hash
from zsa_eval.report.html import family_label, interval_kind, tested_count
from zsa_eval.report.references import nearest_reference

LEADING_COLUMNS = ["dataset", "task", "protocol", "source", "model", "family", "weights", "template", "prompts",
                   "engine", "precision", "selection", "n_classes", "main_score", "interval"]
TRAILING_COLUMNS = ["n", "encoded_clips_per_s", "date", "run_dir", "identity", "status"]
PUBLISHED_COLUMNS = ["published_reference", "published", "published_difference"]  # only when a run has one
INTERNAL_COLUMNS = ["finished_at", "identity_fields", "main_value", "higher_is_better", "declared", "chance",
                    "chance_metric"]
RUN_KEYS = {"dataset", "model", "n_evaluated", "started_at"}
CLASSIFICATION = "classification"  # the task of a run written before metrics.json named its task
ZEROSHOT = "zeroshot"  # the protocol of a run whose metrics.json names none (zero-shot runs, and runs before probes)


def legacy_specs(*specs: tuple) -> list[dict]:
    """Metric declarations as (name, label[, higher_is_better, interval, shown, whole])."""
    keys = ("name", "label", "higher_is_better", "interval", "shown", "whole")
    defaults = (None, None, True, True, True, False)
    return [dict(zip(keys, spec + defaults[len(spec):])) for spec in specs]


RETRIEVAL_LABELS = {"recall_at_1": "R@1", "recall_at_5": "R@5", "recall_at_10": "R@10", "map_at_10": "mAP@10",
                    "median_rank": "median rank", "mean_rank": "mean rank"}
# What runs declared before metrics.json carried declarations (zsa-eval before its tasks/ seam): a frozen record of
# those runs' contract, by task, not a view of today's tasks.
DECLARED_BEFORE = {
    "classification": {"main_score": "accuracy", "chance_metric": "chance_accuracy", "leaderboard_metrics": legacy_specs(
        ("accuracy", "accuracy"), ("top_k", "k", True, False, True, True), ("top_k_accuracy", "top-k"),
        ("balanced_accuracy", "balanced acc."), ("macro_f1", "macro F1"))},
    "multilabel": {"main_score": "map", "chance_metric": "chance_map",
                   "leaderboard_metrics": legacy_specs(("map", "mAP"))},
    "retrieval": {"main_score": "t2a_recall_at_1", "chance_metric": None, "leaderboard_metrics": legacy_specs(
        *((f"{direction}_{name}", f"{direction.upper()} {label}", "rank" not in name, True, "rank" not in name)
          for direction in ("t2a", "a2t") for name, label in RETRIEVAL_LABELS.items()))},
}
COMPLETE = "complete"
SOURCE_FIELDS = ("dataset_source", "dataset_revision")
WEIGHT_FIELDS = ("family", "model_name_or_path", "model_revision", "weight_fingerprint")
LISTED_CLASSES = 4  # a class selection up to this long is spelled out, a longer one is counted and hashed


def declaration(metrics: dict) -> dict:
    """What a run declares of its task: main_score, chance_metric, leaderboard_metrics. A run written before
    declarations gets DECLARED_BEFORE of its task, less top-k where k is every class (top-k accuracy is then
    always 1, and single-label runs now leave it out likewise)."""
    if "leaderboard_metrics" in metrics:
        return {key: metrics.get(key) for key in ("main_score", "chance_metric", "leaderboard_metrics")}
    declared = DECLARED_BEFORE.get(metrics.get("task", CLASSIFICATION), {})
    k, n_classes = metrics.get("top_k"), metrics.get("n_classes")
    if k is not None and n_classes is not None and k >= n_classes:
        declared = declared | {"leaderboard_metrics": [spec for spec in declared["leaderboard_metrics"]
                                                       if spec["name"] not in ("top_k", "top_k_accuracy")]}
    return declared


def derived_identity(metrics: dict) -> dict:
    """The identity of a run written before metrics.json carried one: rebuilt from its resolved config, or from
    dataset | model | template when it has none."""
    config = metrics.get("config")
    if not isinstance(config, dict):
        return {"dataset": metrics["dataset"], "model": metrics["model"], "template": metrics["template"]}
    dataset, model, template = config.get("dataset", {}), config.get("model", {}), config.get("template", {})
    limit = config.get("limit")
    return {
        "family": model.get("family", "clap"),
        "model_name_or_path": model.get("name_or_path"),
        "model_revision": model.get("revision"),
        "weight_fingerprint": None,
        "dataset": dataset.get("name"),
        "dataset_source": dataset.get("hub_id") or dataset.get("path"),
        "dataset_revision": dataset.get("revision"),
        "selection": {"label_column": dataset.get("label_column"), "classes": dataset.get("classes"),
                      "folds": dataset.get("folds"), "subset": dataset.get("subset"), "limit": limit,
                      "limit_mode": config.get("limit_mode", "first" if limit is not None else None),
                      "seed": config.get("seed")},
        "template": template.get("name"),
        "prompts": template.get("prompts"),
        "engine": config.get("engine"),
        "precision": config.get("precision"),
    }


def run_status(metrics: dict) -> str:
    """metrics.json "status"; an older run that has none failed when its skips exceeded its max_skip_fraction."""
    if "status" in metrics:
        return metrics["status"]
    limit = (metrics.get("config") or {}).get("max_skip_fraction")
    n_items, n_skipped = metrics.get("n_items"), metrics.get("n_skipped", 0)
    if limit is not None and n_items and n_skipped / n_items > limit:
        return "too_many_skips"
    return COMPLETE


def chance_level(metrics: dict, declared: dict, n_classes: int | None) -> float | None:
    """The chance level of a run's main score (declared by its chance_metric; a run written before chance levels
    had 1 / classes for accuracy)."""
    name = declared.get("chance_metric")
    if name is None:
        return None
    if name == "chance_accuracy" and name not in metrics:
        return 1 / n_classes if n_classes else None
    return metrics.get(name)


def engine_label(identity: dict, metrics: dict) -> str:
    """The engine, with how long clips were heard when not natively (identity `long_audio`), so that runs apart
    only by that are told apart: `embed, long_audio=windows window_s=10 hop_s=5`."""
    engine = identity.get("engine", metrics.get("engine"))
    long_audio = identity.get("long_audio")
    if not long_audio:
        return engine
    settings = " ".join(f"{key}={value:g}" for key in ("window_s", "hop_s", "max_windows")
                        if (value := long_audio.get(key)) is not None)
    return f"{engine}, long_audio={long_audio['policy']} {settings}"


def run_row(metrics: dict, run_dir: str) -> dict:
    """One leaderboard row of a run: its identity's labels, its declared metrics with their intervals; kept for
    the board's own use: `identity_fields` (the identity dict), `declared` (the metric declarations),
    `main_value` and `higher_is_better` (its main score)."""
    identity = metrics.get("identity") or derived_identity(metrics)
    prompts = identity.get("prompts") or metrics.get("prompts")
    n_classes = metrics.get("n_classes") or len(metrics.get("labels") or []) or None
    declared = declaration(metrics)
    specs = declared.get("leaderboard_metrics") or []
    main = next((spec for spec in specs if spec["name"] == declared.get("main_score")), None)
    row = {
        "dataset": metrics["dataset"], "task": metrics.get("task", CLASSIFICATION),
        "protocol": metrics.get("protocol_label") or metrics.get("protocol") or ZEROSHOT, "source": "",
        "model": metrics["model"], "family": family_label(identity), "weights": "",
        "template": metrics.get("template"),
        "prompts": metrics.get("prompts_hash") or (prompts_hash(prompts) if prompts else ""),
        "engine": engine_label(identity, metrics),
        "precision": identity.get("precision", metrics.get("precision")),
        "selection": "",
        "n_classes": n_classes,
        "main_score": declared.get("main_score"),
        "chance": chance_level(metrics, declared, n_classes),
        "chance_metric": declared.get("chance_metric"),
        "interval": interval_kind(metrics),
        "n": tested_count(metrics),
        "encoded_clips_per_s": metrics.get("encoded_clips_per_s", metrics.get("clips_per_s")),
        "date": metrics["started_at"],
        "finished_at": metrics.get("finished_at") or metrics["started_at"],
        "run_dir": run_dir,
        "identity": metrics.get("identity_hash") or identity_hash(identity),
        "status": run_status(metrics),
        "identity_fields": identity,
        "declared": specs,
        "main_value": metrics.get(main["name"]) if main else None,
        "higher_is_better": main["higher_is_better"] if main else True,
    }
    if declared.get("chance_metric"):
        row[declared["chance_metric"]] = row["chance"]
    published = nearest_reference(metrics.get("references"), declared.get("main_score"), metrics.get("protocol"))
    row |= dict(zip(PUBLISHED_COLUMNS, (published["id"], published["value"], published["difference"])
                    if published else (None, None, None)))
    for spec in specs:
        row[spec["name"]] = metrics.get(spec["name"])
        if spec["interval"]:
            low, high = metrics.get(f"{spec['name']}_ci95") or (None, None)
            row.update({f"{spec['name']}_ci95_low": low, f"{spec['name']}_ci95_high": high})
    return row


def collect_runs(results_dir: Path) -> pd.DataFrame:
    """Every run directory (holding a zsa-eval metrics.json) below `results_dir`, whatever its status."""
    rows = []
    for metrics_file in sorted(results_dir.rglob("metrics.json")):
        try:
            metrics = json.loads(metrics_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(metrics, dict) and "top5_accuracy" in metrics:  # a run from before top-k got its name
            metrics = {"top_k": 5, "top_k_accuracy": metrics["top5_accuracy"], **metrics}
        if isinstance(metrics, dict) and RUN_KEYS <= metrics.keys() and declaration(metrics).get("main_score") \
                in metrics:
            rows.append(run_row(metrics, metrics_file.parent.relative_to(results_dir).as_posix()))
    return pd.DataFrame(rows)


def metric_specs(board: pd.DataFrame) -> list[dict]:
    """The metrics the board's runs declare, each once: grouped by task (in name order), in declared order."""
    specs: dict[str, dict] = {}
    for _, rows in board.groupby("task", sort=True):
        for declared in rows["declared"]:
            for spec in declared:
                specs.setdefault(spec["name"], spec)
    return list(specs.values())


def board_columns(board: pd.DataFrame) -> list[str]:
    """The leaderboard's columns: who and what; for each task on the board (in name order) the chance level of its
    main score, then each metric it declares with its interval; then size, speed, when and where."""
    columns: dict[str, None] = {}
    for _, rows in board.groupby("task", sort=True):
        for chance, declared in zip(rows["chance_metric"], rows["declared"]):
            columns |= {chance: None} if isinstance(chance, str) else {}
            for spec in declared:
                columns |= dict.fromkeys([spec["name"], f"{spec['name']}_ci95_low", f"{spec['name']}_ci95_high"]
                                         if spec["interval"] else [spec["name"]])
    published = PUBLISHED_COLUMNS if "published" in board and board["published"].notna().any() else []
    return [*LEADING_COLUMNS, *columns, *published, *TRAILING_COLUMNS]


MISSING = object()


def field(identity: dict, key: str) -> object:
    """A (dotted) identity field, MISSING when the identity lacks it (a run older than identities)."""
    value = identity
    for part in key.split("."):
        value = value.get(part, MISSING) if isinstance(value, dict) else MISSING
    return value


def differing(identities: pd.Series, keys: tuple[str, ...]) -> set[str]:
    """The identity fields that take more than one value among the `identities` that have them."""
    return {key for key in keys
            if len({json.dumps(value, sort_keys=True, default=str) for identity in identities
                    if (value := field(identity, key)) is not MISSING}) > 1}


def source_label(identity: dict, shown: set[str]) -> str:
    if not shown:
        return ""
    revision = f"@{identity.get('dataset_revision') or '(none)'}" if "dataset_revision" in shown else ""
    return f"{identity.get('dataset_source')}{revision}"


def weights_label(identity: dict, shown: set[str]) -> str:
    parts = []
    if "family" in shown:
        parts.append(f"[{identity.get('family')}]")
    if shown & {"model_name_or_path", "model_revision"}:
        revision = f"@{identity.get('model_revision') or '(none)'}" if "model_revision" in shown else ""
        parts.append(f"{identity.get('model_name_or_path')}{revision}")
    if "weight_fingerprint" in shown:
        parts.append(f"#{(identity.get('weight_fingerprint') or '?')[:8]}")
    return " ".join(parts)


def selection_label(selection: dict, shown: set[str]) -> str:
    """Folds, subset, classes and limit when set; the label column and seed when they tell rows apart."""
    parts = []
    if "selection.label_column" in shown:
        parts.append(f"label={selection.get('label_column')}")
    if selection.get("folds") is not None:
        parts.append("folds=" + ",".join(map(str, selection["folds"])))
    if selection.get("subset") is not None:
        parts.append(f"subset={selection['subset']}")
    classes = selection.get("classes")
    if classes is not None:
        parts.append("classes=" + ",".join(classes) if len(classes) <= LISTED_CLASSES
                     else f"{len(classes)} classes #{short_hash(list(classes), 6)}")
    if selection.get("limit") is not None:
        parts.append(" ".join(filter(None, [f"limit={selection['limit']}", selection.get("limit_mode")])))
    if "selection.seed" in shown or (selection.get("limit") is not None
                                     and selection.get("limit_mode") == "stratified"):
        parts.append(f"seed={selection.get('seed')}")
    return ", ".join(parts) or "all"


def label_rows(board: pd.DataFrame) -> pd.DataFrame:
    """Fill source, weights and selection with what tells rows of the same dataset / model name apart."""
    board = board.copy()
    for _, rows in board.groupby("dataset", sort=False):
        shown = differing(rows["identity_fields"], SOURCE_FIELDS)
        board.loc[rows.index, "source"] = [source_label(identity, shown) for identity in rows["identity_fields"]]
    for _, rows in board.groupby(["dataset", "source"], sort=False):
        shown = differing(rows["identity_fields"], ("selection.label_column", "selection.seed"))
        board.loc[rows.index, "selection"] = [selection_label(identity.get("selection") or {}, shown)
                                              for identity in rows["identity_fields"]]
    for _, rows in board.groupby(["dataset", "source", "selection"], sort=False):
        if differing(rows["identity_fields"], ("items_fingerprint",)):  # the same keys chose other items
            board.loc[rows.index, "selection"] = [
                f"{label}, items #{str(identity.get('items_fingerprint') or '?')[:6]}"
                for label, identity in zip(rows["selection"], rows["identity_fields"])]
    for _, rows in board.groupby("model", sort=False):
        shown = differing(rows["identity_fields"], WEIGHT_FIELDS)
        board.loc[rows.index, "weights"] = [weights_label(identity, shown) for identity in rows["identity_fields"]]
    return board


def leaderboard(runs: pd.DataFrame, every_run: bool = False) -> pd.DataFrame:
    """The latest complete run of each identity (every run, whatever its status, with `every_run`), labelled,
    grouped by dataset and protocol, best main score first within them (the direction each run declares for it)."""
    if runs.empty:
        return pd.DataFrame(columns=[*LEADING_COLUMNS, *TRAILING_COLUMNS, *INTERNAL_COLUMNS])
    if not every_run:
        runs = runs[runs["status"] == COMPLETE]
        runs = runs.sort_values(["finished_at", "run_dir"], kind="stable").drop_duplicates("identity", keep="last")
    board = label_rows(runs)
    ranking = board["main_value"].astype(float).where(board["higher_is_better"].astype(bool),
                                                      -board["main_value"].astype(float))
    board = (board.assign(ranking=ranking, probe=board["protocol"] != ZEROSHOT)
             .sort_values(["dataset", "source", "probe", "protocol", "ranking", "date", "run_dir"],
                          ascending=[True, True, True, True, False, False, True], kind="stable")
             .drop(columns=["ranking", "probe"]).reset_index(drop=True))
    board = board[[*board_columns(board), *INTERNAL_COLUMNS]]
    counts = ["n_classes", *(spec["name"] for spec in metric_specs(board) if spec["whole"])]
    board = board.astype({name: "Int64" for name in counts})  # whole numbers beside other tasks' empty cells
    return board if every_run else board.drop(columns="status")
