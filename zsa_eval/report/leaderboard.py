"""The leaderboard: the latest complete run of each run identity found under the results directory, grouped by
dataset, rebuilt from the runs themselves; the heat map draws exactly its classification rows (accuracy, or mAP for
multi-label datasets). The by-dataset table puts each model's datasets side by side (a suite: `-m suite=zeroshot`).
Retrieval rows stand beside them with their own columns (R@k, mAP@10 both ways), ordered by text-to-audio R@1."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from filelock import FileLock

from zsa_eval.data import CLASSIFICATION, MULTILABEL, RETRIEVAL
from zsa_eval.metrics import INTERVAL_METRICS
from zsa_eval.report import atomic_write, short_hash, write_csv, write_json
from zsa_eval.report.plots import accuracy_heatmap_png, dataset_heatmap_png
from zsa_eval.retrieval import INTERVAL_METRICS as RETRIEVAL_METRICS
from zsa_eval.retrieval import MAIN_SCORE as RETRIEVAL_MAIN_SCORE

COLUMNS = ["dataset", "task", "source", "model", "family", "weights", "template", "prompts", "engine", "precision",
           "selection", "n_classes", "chance_accuracy", "accuracy", "accuracy_ci95_low", "accuracy_ci95_high", "top_k",
           "top_k_accuracy", "top_k_accuracy_ci95_low", "top_k_accuracy_ci95_high", "balanced_accuracy",
           "balanced_accuracy_ci95_low", "balanced_accuracy_ci95_high", "macro_f1", "macro_f1_ci95_low",
           "macro_f1_ci95_high", "chance_map", "map", "map_ci95_low", "map_ci95_high", "n", "encoded_clips_per_s",
           "date", "run_dir", "identity", "status"]
RUN_KEYS = {"dataset", "model", "n_evaluated", "started_at"}
TASK_KEYS = {CLASSIFICATION: {"template", *INTERVAL_METRICS}, MULTILABEL: {"template", "map"},
             RETRIEVAL: set(RETRIEVAL_METRICS)}  # a run's keys by its task
MAIN_METRIC = {CLASSIFICATION: ("accuracy", "accuracy"), MULTILABEL: ("map", "mAP"),
               RETRIEVAL: (RETRIEVAL_MAIN_SCORE, "T2A R@1")}  # column, name shown
RETRIEVAL_COLUMNS = [column for name in RETRIEVAL_METRICS
                     for column in (name, f"{name}_ci95_low", f"{name}_ci95_high")]
COMPLETE = "complete"
SOURCE_FIELDS = ("dataset_source", "dataset_revision")
WEIGHT_FIELDS = ("family", "model_name_or_path", "model_revision", "weight_fingerprint")
LISTED_CLASSES = 4  # a class selection up to this long is spelled out, a longer one is counted and hashed


def identity_hash(identity: dict) -> str:
    """metrics.json "identity_hash": 12 hex digits naming everything that determines a run's results."""
    return short_hash(identity, 12)


def prompts_hash(prompts: list[str]) -> str:
    """metrics.json "prompts_hash": 8 hex digits of the prompt list, shown beside the template name."""
    return short_hash(list(prompts), 8)


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


def run_row(metrics: dict, run_dir: str) -> dict:
    """One leaderboard row of a run; `identity_fields` (the identity dict) is kept for labels and the JSON."""
    identity = metrics.get("identity") or derived_identity(metrics)
    prompts = identity.get("prompts") or metrics.get("prompts")
    n_classes = metrics.get("n_classes") or len(metrics.get("labels") or []) or None
    task = metrics.get("task", CLASSIFICATION)
    row = {
        "dataset": metrics["dataset"], "task": task, "source": "", "model": metrics["model"],
        "family": identity.get("family", "clap"), "weights": "",
        "template": metrics.get("template"),
        "prompts": metrics.get("prompts_hash") or (prompts_hash(prompts) if prompts else ""),
        "engine": identity.get("engine", metrics.get("engine")),
        "precision": identity.get("precision", metrics.get("precision")),
        "selection": "",
        "n_classes": n_classes,
        "chance_accuracy": (metrics.get("chance_accuracy", 1 / n_classes if n_classes else None)
                            if task == CLASSIFICATION else None),
        "chance_map": metrics.get("chance_map"),
        "top_k": metrics.get("top_k"),
        "n": metrics["n_evaluated"],
        "encoded_clips_per_s": metrics.get("encoded_clips_per_s", metrics.get("clips_per_s")),
        "date": metrics["started_at"],
        "finished_at": metrics.get("finished_at") or metrics["started_at"],
        "run_dir": run_dir,
        "identity": metrics.get("identity_hash") or identity_hash(identity),
        "status": run_status(metrics),
        "identity_fields": identity,
    }
    for name in (*INTERVAL_METRICS, "map", *RETRIEVAL_METRICS):
        low, high = metrics.get(f"{name}_ci95") or (None, None)
        row.update({name: metrics.get(name), f"{name}_ci95_low": low, f"{name}_ci95_high": high})
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
        if isinstance(metrics, dict) and RUN_KEYS | TASK_KEYS.get(metrics.get("task", CLASSIFICATION),
                                                                  {"?"}) <= metrics.keys():
            rows.append(run_row(metrics, metrics_file.parent.relative_to(results_dir).as_posix()))
    runs = pd.DataFrame(rows, columns=[*COLUMNS, *RETRIEVAL_COLUMNS, "finished_at", "identity_fields"])
    return runs[[*board_columns(runs), "finished_at", "identity_fields"]]


def board_columns(runs: pd.DataFrame) -> list[str]:
    """The leaderboard's columns: with retrieval runs, also the retrieval metrics (each task's rows leave the
    other tasks' metric columns empty)."""
    if not (runs["task"] == RETRIEVAL).any():
        return COLUMNS
    at = COLUMNS.index("map_ci95_high") + 1
    return [*COLUMNS[:at], *RETRIEVAL_COLUMNS, *COLUMNS[at:]]


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


def main_score(board: pd.DataFrame) -> pd.Series:
    """Each row's main metric: accuracy, or mAP for a multi-label run (which has no accuracy)."""
    return pd.Series([getattr(row, MAIN_METRIC[row.task][0]) for row in board.itertuples()], index=board.index,
                     dtype=float)


def leaderboard(runs: pd.DataFrame, every_run: bool = False) -> pd.DataFrame:
    """The latest complete run of each identity (every run, whatever its status, with `every_run`), labelled,
    grouped by dataset and best main score (accuracy; mAP for multi-label) first within a dataset."""
    if not every_run:
        runs = runs[runs["status"] == COMPLETE]
        runs = runs.sort_values(["finished_at", "run_dir"], kind="stable").drop_duplicates("identity", keep="last")
    board = label_rows(runs)
    board = (board.assign(main_score=main_score(board))
             .sort_values(["dataset", "source", "main_score", "date", "run_dir"],
                          ascending=[True, True, False, False, True], kind="stable")
             .drop(columns="main_score").reset_index(drop=True))
    return board if every_run else board.drop(columns="status")


def heatmap_grids(board: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per dataset (and source), its main score (accuracy; mAP for multi-label) by model (rows) x template #prompts
    (columns), one cell per board row; keyed by the panel's title ("accuracy on esc50").

    A row label carries the weights, and the engine, precision or selection where they vary in the panel, so two
    rows never share a cell; when their readable labels still coincide, the identity hash is added."""
    grids = {}
    for (dataset, source), rows in board.groupby(["dataset", "source"], sort=False):
        varying = [name for name in ("engine", "precision", "selection") if rows[name].nunique() > 1]
        model_labels = [" | ".join([f"{row.model} ({row.weights})" if row.weights else row.model,
                                    *(str(getattr(row, name)) for name in varying)])
                        for row in rows.itertuples()]
        template_labels = [f"{row.template} #{row.prompts}" if row.prompts else row.template
                           for row in rows.itertuples()]
        cells = pd.DataFrame({"model": model_labels, "template": template_labels,
                              "score": main_score(rows).to_list(), "identity": rows["identity"].to_list()})
        clash = cells.duplicated(["model", "template"], keep=False)
        cells.loc[clash, "model"] = cells.loc[clash, "model"] + " id " + cells.loc[clash, "identity"].str[:6]
        metrics = sorted({MAIN_METRIC[task][1] for task in rows["task"]})
        title = f"{' / '.join(metrics)} on {dataset}" + (f" ({source})" if source else "")
        grids[title] = cells.pivot(index="model", columns="template", values="score")
    return grids


def interval_cell(value: float | None, low: float | None, high: float | None) -> str:
    """`value [low, high]`; empty for a metric the row's task does not have."""
    if value is None or pd.isna(value):
        return ""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"{value:.4f}"
    return f"{value:.4f} [{low:.4f}, {high:.4f}]"


def interval_cells(board: pd.DataFrame, name: str) -> list[str]:
    """A metric's column of `value [low, high]` cells."""
    return [interval_cell(*values)
            for values in zip(board[name], board[f"{name}_ci95_low"], board[f"{name}_ci95_high"])]


CLASSIFICATION_TITLES = {"accuracy": "accuracy [95% CI]", "top_k_accuracy": "top-k [95% CI]",
                         "balanced_accuracy": "balanced acc. [95% CI]", "macro_f1": "macro F1 [95% CI]"}
RETRIEVAL_TITLES = {f"{direction}_{name}": f"{direction.upper()} {title} [95% CI]" for direction in ("t2a", "a2t")
                    for name, title in (("recall_at_1", "R@1"), ("recall_at_5", "R@5"), ("recall_at_10", "R@10"),
                                        ("map_at_10", "mAP@10"))}


NOTHING_ENCODED = "-"  # clips/s of a run that encoded nothing (every clip from the cache or an interrupted run)


def whole_or_empty(value) -> str:
    """A count for reading: `5`, or empty for a row without one (a float column holds it as 5.0 beside NaN)."""
    return "" if value is None or pd.isna(value) else str(int(value))


def leaderboard_markdown(board: pd.DataFrame) -> str:
    """The board for reading: metrics with their 95% intervals (multi-label rows: mAP; retrieval rows: R@1, R@5,
    R@10 and mAP@10 of both directions, ranks in leaderboard.csv); the task column when tasks are mixed; source
    and weights only when some row has one."""
    shown = pd.DataFrame({name: board[name] for name in
                          ("dataset", "task", "source", "model", "family", "weights", "template", "prompts", "engine",
                           "precision", "selection")})
    shown["template"] = board["template"].fillna("")
    shown["n_classes"] = board["n_classes"].map(whole_or_empty)
    multilabel, retrieval = board["task"] == MULTILABEL, board["task"] == RETRIEVAL
    shown["chance"] = board["chance_map"].where(multilabel, board["chance_accuracy"]).map(
        lambda value: "" if pd.isna(value) else f"{value:.4f}")
    for name, title in CLASSIFICATION_TITLES.items():
        shown[title] = interval_cells(board, name)
    every_class = board["top_k"] >= board["n_classes"]  # top-k of every class is always 1: not shown
    shown.loc[every_class, CLASSIFICATION_TITLES["top_k_accuracy"]] = ""
    if multilabel.any():
        shown["mAP [95% CI]"] = interval_cells(board, "map")
    shown["k"] = board["top_k"].where(~every_class).map(whole_or_empty)
    if retrieval.any():
        for name, title in RETRIEVAL_TITLES.items():
            shown[title] = interval_cells(board, name)
    if retrieval.all():
        shown = shown.drop(columns=["template", "prompts", "n_classes", "chance", *CLASSIFICATION_TITLES.values(), "k"])
    shown["n"] = board["n"]
    shown["clips/s"] = board["encoded_clips_per_s"].map(lambda value: NOTHING_ENCODED if pd.isna(value)
                                                        else f"{value:.4f}")
    for name in ("date", "run_dir", "identity", *(["status"] if "status" in board else [])):
        shown[name] = board[name]
    hidden = [name for name in ("source", "weights") if not board[name].astype(bool).any()]
    hidden += ["task"] if board["task"].nunique() < 2 else []
    shown = shown.drop(columns=hidden)
    return shown.to_markdown(index=False, floatfmt=".4f") + "\n"


def leaderboard_json(board: pd.DataFrame, every_run: bool) -> dict:
    """Every column of the board, with each row's full identity."""
    records = board.drop(columns=["finished_at"]).rename(columns={"identity": "identity_hash",
                                                                  "identity_fields": "identity"})
    records = records.astype(object).where(records.notna(), None)
    return {"every_run": every_run, "runs": records.to_dict("records")}


def by_dataset_cells(board: pd.DataFrame) -> pd.DataFrame:
    """One cell per board row (one identity): its row (model with its weights, and engine and precision where they
    vary; template #prompts), column (dataset, its selection unless it is every item, its source when one is
    shown), dataset key (dataset and source: what a mean counts once), metric, score and size. Two identities that
    would share a cell get their identity hash in the row label."""
    varying = [name for name in ("engine", "precision") if board[name].nunique() > 1]
    cells = pd.DataFrame({
        "model": [" | ".join([f"{row.model} ({row.weights})" if row.weights else row.model,
                              *(str(getattr(row, name)) for name in varying)]) for row in board.itertuples()],
        "template": [f"{row.template} #{row.prompts}" if row.prompts else str(row.template)
                     for row in board.itertuples()],
        "column": [row.dataset + (f" ({row.selection})" if row.selection != "all" else "")
                   + (f" [{row.source}]" if row.source else "") for row in board.itertuples()],
        "dataset_key": [f"{row.dataset} [{row.source}]" for row in board.itertuples()],
        "whole": (board["selection"] == "all").to_list(),
        "metric": [MAIN_METRIC[task][1] for task in board["task"]],
        "score": main_score(board).to_list(),
        "n": board["n"].to_list(),
        "finished_at": board["finished_at"].to_list(),
        "identity": board["identity"].to_list(),
    })
    clash = cells.duplicated(["model", "template", "column", "metric"], keep=False)
    cells.loc[clash, "model"] = cells.loc[clash, "model"] + " id " + cells.loc[clash, "identity"].str[:6]
    return cells


def dataset_means(cells: pd.DataFrame) -> pd.DataFrame:
    """Per table row, the mean score over its datasets, each dataset (and source) counted once: by its run over
    every item when the row has one, else by its selection with the most evaluated items (then the latest run).
    Returns model, template, mean and the number of datasets it covers."""
    chosen = (cells.sort_values(["whole", "n", "finished_at"], ascending=False, kind="stable")
              .drop_duplicates(["model", "template", "dataset_key"]))
    return chosen.groupby(["model", "template"], sort=False)["score"].agg(["mean", "count"])


def by_dataset(board: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Model x dataset: one row per model (with its weights, and engine and precision where they vary) and template
    #prompts, one column per dataset and selection (and source when one is shown), holding the main score:
    accuracy for single-label datasets, then their mean; mAP for multi-label ones, then theirs. Each cell is one
    identity's run. A mean counts each dataset once (see dataset_means); `<metric> datasets` says how many. Rows:
    best mean accuracy first (rows without one after), then best mean mAP. Returns the table and each column's
    metric."""
    cells = by_dataset_cells(board)
    table = pd.DataFrame(index=pd.MultiIndex.from_frame(cells[["model", "template"]].drop_duplicates()))
    metrics = []
    for metric in ("accuracy", "mAP"):
        of_metric = cells[cells["metric"] == metric]
        if of_metric.empty:
            continue
        scores = of_metric.pivot(index=["model", "template"], columns="column", values="score").reindex(table.index)
        means = dataset_means(of_metric).reindex(table.index)
        table = table.join(scores.rename(columns=lambda column: f"{column} {metric}"))
        table[f"mean {metric}"] = means["mean"]
        table[f"{metric} datasets"] = means["count"].fillna(0).astype(int)
        metrics += [metric] * (scores.shape[1] + 1)
    means = [column for column in ("mean accuracy", "mean mAP") if column in table]
    table = table.sort_values(means, ascending=False, na_position="last", kind="stable") if means else table
    return table.reset_index(), metrics


def by_dataset_markdown(table: pd.DataFrame) -> str:
    """The by-dataset table for reading: scores to 4 decimals, an empty cell where a model has no run."""
    shown = table.astype(object).where(table.notna(), "")
    return shown.to_markdown(index=False, floatfmt=".4f") + "\n"


def write_by_dataset(board: pd.DataFrame, results_dir: Path) -> None:
    """leaderboard_by_dataset.csv, .md and its heat map .png (the score columns and means)."""
    table, metrics = by_dataset(board)
    write_csv(table, results_dir / "leaderboard_by_dataset.csv")
    atomic_write(results_dir / "leaderboard_by_dataset.md", by_dataset_markdown(table))
    scores = [column for column in table.columns[2:] if not column.endswith(" datasets")]
    heat = table.set_index(pd.Index([" | ".join(pair) for pair in zip(table["model"], table["template"])]))[scores]
    atomic_write(results_dir / "leaderboard_by_dataset.png",
                 dataset_heatmap_png(heat.rename(columns=lambda column: column.rsplit(" ", 1)[0]), metrics))


def write_leaderboard(results_dir: Path, every_run: bool = False) -> pd.DataFrame:
    """Rebuild leaderboard.csv, .md, .json, leaderboard_heatmap.png and the by-dataset table
    (leaderboard_by_dataset.csv, .md, .png) in `results_dir` (with `every_run`: leaderboard_all.csv, .md, .json,
    no figure and no by-dataset table).

    Under a file lock, so concurrent runs finishing together leave a leaderboard that holds all of them."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = "leaderboard_all" if every_run else "leaderboard"
    with FileLock(results_dir / ".leaderboard.lock"):
        board = leaderboard(collect_runs(results_dir), every_run)
        write_csv(board.drop(columns=["finished_at", "identity_fields"]), results_dir / f"{stem}.csv")
        atomic_write(results_dir / f"{stem}.md", leaderboard_markdown(board))
        write_json(leaderboard_json(board, every_run), results_dir / f"{stem}.json")
        classified = board[board["task"] != RETRIEVAL]
        if not every_run and not classified.empty:
            atomic_write(results_dir / "leaderboard_heatmap.png", accuracy_heatmap_png(heatmap_grids(classified)))
            write_by_dataset(classified, results_dir)
    return board
