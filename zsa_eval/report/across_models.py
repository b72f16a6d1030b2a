"""The leaderboard's views across models: the heat map of each dataset's main score by model x template #prompts,
and the by-dataset table, each model's datasets side by side (a suite: `-m suite=zeroshot`), one row per model and
template #prompts, one column per dataset and selection, each cell one identity's main score, with the mean over
the datasets of each main score kind (accuracy with accuracy, mAP with mAP: never mixed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from zsa_eval.plots import dataset_heatmap_png
from zsa_eval.store import atomic_write, write_csv


def main_label(row) -> str:
    """The column title of a row's main score ("accuracy", "mAP", "T2A R@1")."""
    return next((spec["label"] for spec in row.declared if spec["name"] == row.main_score), str(row.main_score))


def model_label(row) -> str:
    """A board row's model as the views across models name it: its config name, its weights where they tell rows
    apart, and an audio language model's scoring mode: `qwen2_audio (generate)`."""
    scoring = (row.identity_fields.get("family_settings") or {}).get("scoring")
    return " ".join([row.model, *(f"({part})" for part in (row.weights, scoring) if part)])


def row_labels(rows: pd.DataFrame, varying_names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Each row's model label (model_label, and the given columns where they vary among `rows`) and template label
    (template #prompts hash), as the heat map and the by-dataset table show them."""
    varying = [name for name in varying_names if rows[name].nunique() > 1]
    models = [" | ".join([model_label(row), *(str(getattr(row, name)) for name in varying)])
              for row in rows.itertuples()]
    templates = [f"{row.template} #{row.prompts}" if row.prompts else str(row.template) for row in rows.itertuples()]
    return models, templates


def heatmap_grids(board: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per dataset (and source) and main score, that score by model (rows) x template #prompts (columns), one cell
    per board row; keyed by the panel's title ("accuracy on esc50"). A dataset scored two ways (a folder read once
    single-label, once multi-label) gets a panel per score: one colour scale never mixes accuracy and mAP.

    A row label carries the weights, and the engine, precision or selection where they vary in the panel, so two
    rows never share a cell; when their readable labels still coincide, the identity hash is added."""
    grids = {}
    for (dataset, source, _), rows in board.groupby(["dataset", "source", "main_score"], sort=False):
        models, templates = row_labels(rows, ("engine", "precision", "selection"))
        cells = pd.DataFrame({"model": models, "template": templates,
                              "score": rows["main_value"].astype(float).to_list(),
                              "identity": rows["identity"].to_list()})
        clash = cells.duplicated(["model", "template"], keep=False)
        cells.loc[clash, "model"] = cells.loc[clash, "model"] + " id " + cells.loc[clash, "identity"].str[:6]
        metrics = sorted({main_label(row) for row in rows.itertuples()})
        title = f"{' / '.join(metrics)} on {dataset}" + (f" ({source})" if source else "")
        grids[title] = cells.pivot(index="model", columns="template", values="score")
    return grids


def by_dataset_cells(board: pd.DataFrame) -> pd.DataFrame:
    """One cell per board row (one identity): its row (model with its weights, and engine and precision where they
    vary; template #prompts), column (dataset, its selection unless it is every item, its source when one is
    shown), dataset key (dataset and source: what a mean counts once), metric (the main score's title) and the
    task declaring it, score and size. Two identities that would share a cell get their identity hash in the row
    label."""
    models, templates = row_labels(board, ("engine", "precision"))
    cells = pd.DataFrame({
        "model": models,
        "template": templates,
        "column": [row.dataset + (f" ({row.selection})" if row.selection != "all" else "")
                   + (f" [{row.source}]" if row.source else "") for row in board.itertuples()],
        "dataset_key": [f"{row.dataset} [{row.source}]" for row in board.itertuples()],
        "whole": (board["selection"] == "all").to_list(),
        "metric": [main_label(row) for row in board.itertuples()],
        "task": board["task"].to_list(),
        "score": board["main_value"].astype(float).to_list(),
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
    #prompts, one column per dataset and selection (and source when one is shown), holding the main score, then
    the mean over those datasets, for each kind of main score in turn (by the name of the task declaring it:
    accuracy for single-label datasets, then mAP for multi-label ones). Each cell is one identity's run. A mean
    counts each dataset once (see dataset_means); `<metric> datasets` says how many. Rows: by the first kind, those
    whose mean covers the most datasets first (a mean over fewer datasets is not ranked against it), best mean first
    among equal counts, rows without one after; then by the next kind alike. Returns the table and each
    column's metric."""
    cells = by_dataset_cells(board)
    table = pd.DataFrame(index=pd.MultiIndex.from_frame(cells[["model", "template"]].drop_duplicates()))
    metrics = []
    kinds = cells.sort_values("task", kind="stable")["metric"].drop_duplicates().tolist()
    for metric in kinds:
        of_metric = cells[cells["metric"] == metric]
        scores = of_metric.pivot(index=["model", "template"], columns="column", values="score").reindex(table.index)
        means = dataset_means(of_metric).reindex(table.index)
        table = table.join(scores.rename(columns=lambda column: f"{column} {metric}"))
        table[f"mean {metric}"] = means["mean"]
        table[f"{metric} datasets"] = means["count"].fillna(0).astype(int)
        metrics += [metric] * (scores.shape[1] + 1)
    ranking = [column for metric in kinds for column in (f"{metric} datasets", f"mean {metric}")]
    table = table.sort_values(ranking, ascending=False, na_position="last", kind="stable") if ranking else table
    return table.reset_index(), metrics


def by_dataset_markdown(table: pd.DataFrame) -> str:
    """The by-dataset table for reading: scores to 4 decimals, an empty cell where a model has no run."""
    shown = table.astype(object).where(table.notna(), "")
    return shown.to_markdown(index=False, floatfmt=".4f") + "\n"


def write_by_dataset(board: pd.DataFrame, results_dir: Path) -> pd.DataFrame:
    """leaderboard_by_dataset.csv, .md and its heat map .png (the score columns and means); returns the table."""
    table, metrics = by_dataset(board)
    write_csv(table, results_dir / "leaderboard_by_dataset.csv")
    atomic_write(results_dir / "leaderboard_by_dataset.md", by_dataset_markdown(table))
    scores = [column for column in table.columns[2:] if not column.endswith(" datasets")]
    heat = table.set_index(pd.Index([" | ".join(pair) for pair in zip(table["model"], table["template"])]))[scores]
    atomic_write(results_dir / "leaderboard_by_dataset.png",
                 dataset_heatmap_png(heat.rename(columns=lambda column: column.rsplit(" ", 1)[0]), metrics))
    return table
