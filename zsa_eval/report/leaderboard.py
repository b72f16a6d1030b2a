"""The leaderboard's files in a results directory, rebuilt from the runs themselves (zsa_eval.report.board makes the
rows): leaderboard.csv, .md, .json and .html; the heat map of the zero-shot rows that have a template (each dataset's
main score by model x template) and the by-dataset table, each model's datasets side by side (a suite:
`-m suite=zeroshot`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from filelock import FileLock

from zsa_eval.errors import UserError
from zsa_eval.plots import accuracy_heatmap_png
from zsa_eval.report.across_models import heatmap_grids, write_by_dataset
from zsa_eval.report.board import INTERNAL_COLUMNS, ZEROSHOT, collect_runs, leaderboard, metric_specs
from zsa_eval.report.html import BOOTSTRAP_KIND, T_KIND, figure_title, png_data_uri, render, table
from zsa_eval.report.run_report import REPORT_FILE
from zsa_eval.store import atomic_write, write_csv, write_json


def interval_cell(value: float | None, low: float | None, high: float | None, marker: str = "") -> str:
    """`value [low, high]` (`marker` before the bracket: which interval it is, where a column mixes kinds); empty for
    a metric the row's task does not have."""
    if value is None or pd.isna(value):
        return ""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"{value:.4f}"
    return f"{value:.4f} {marker}[{low:.4f}, {high:.4f}]"


def interval_marker(kind: str) -> str:
    """A metric cell's mark of its interval kind (the `interval` column): `t` for a t-interval over draws of shots,
    nothing for a bootstrap interval."""
    return T_KIND if kind.startswith(f"{T_KIND} ") else ""


NOTHING_ENCODED = "-"  # clips/s of a run that encoded nothing (every clip from the cache or an interrupted run)


def whole_or_empty(value) -> str:
    """A count for reading: `5`, or empty for a row without one (a float column holds it as 5.0 beside NaN)."""
    return "" if value is None or pd.isna(value) else str(int(value))


def metric_cells(board: pd.DataFrame, spec: dict) -> list[str]:
    """A declared metric's column for reading: `value [low, high]`, a whole number, or empty where a row does not
    declare the metric."""
    name = spec["name"]
    declares = [any(declared["name"] == name for declared in row_specs) for row_specs in board["declared"]]
    if spec["whole"]:
        cells = board[name].map(whole_or_empty)
    elif spec["interval"]:
        cells = pd.Series([interval_cell(*values, interval_marker(kind)) for *values, kind in
                           zip(board[name], board[f"{name}_ci95_low"], board[f"{name}_ci95_high"], board["interval"])],
                          index=board.index)
    else:
        cells = board[name].map(lambda value: "" if pd.isna(value) else f"{value:.4f}")
    return [cell if declared else "" for cell, declared in zip(cells, declares)]


def shown_board(board: pd.DataFrame) -> pd.DataFrame:
    """The board for reading: each shown metric with its 95% interval (the other declared metrics are in the CSV),
    a t-interval over draws of shots marked `t[...]`, and the `interval` column saying which each row carries when
    some row's is not a bootstrap interval; the task and protocol columns when tasks or protocols are mixed; source
    and weights only when some row has one; template, prompts, class count and chance only when some row has a
    template (runs that fill prompts with class labels)."""
    shown = pd.DataFrame({name: board[name] for name in
                          ("dataset", "task", "protocol", "source", "model", "family", "weights", "template", "prompts",
                           "engine", "precision", "selection")})
    shown["template"] = board["template"].fillna("")
    shown["n_classes"] = board["n_classes"].map(whole_or_empty)
    shown["chance"] = board["chance"].map(lambda value: "" if value is None or pd.isna(value) else f"{value:.4f}")
    shown["interval"] = board["interval"]
    for spec in metric_specs(board):
        if spec["shown"]:
            shown[f"{spec['label']} [95% CI]" if spec["interval"] else spec["label"]] = metric_cells(board, spec)
    if "published" in board:
        shown["published (difference; reference)"] = [
            f"{value:.4f} ({difference:+.4f}; {name})" if pd.notna(value) else "" for value, difference, name
            in zip(board["published"], board["published_difference"], board["published_reference"])]
    shown["n"] = board["n"]
    shown["clips/s"] = board["encoded_clips_per_s"].map(lambda value: NOTHING_ENCODED if pd.isna(value)
                                                        else f"{value:.4f}")
    for name in ("date", "run_dir", "identity", *(["status"] if "status" in board else [])):
        shown[name] = board[name]
    hidden = [name for name in ("source", "weights") if not shown[name].astype(bool).any()]
    hidden += [] if shown["template"].astype(bool).any() else ["template", "prompts", "n_classes", "chance"]
    hidden += [name for name in ("task", "protocol") if board[name].nunique() < 2]
    hidden += [] if (~board["interval"].str.startswith(BOOTSTRAP_KIND)).any() else ["interval"]
    return shown.drop(columns=hidden)


def leaderboard_markdown(board: pd.DataFrame) -> str:
    """The board for reading (shown_board) as a Markdown table."""
    return shown_board(board).to_markdown(index=False, floatfmt=".4f") + "\n"


DETAIL_COLUMNS = ("weights", "prompts", "engine", "precision", "selection", "n_classes", "chance", "clips/s", "date",
                  "identity", "status")  # the page shows them after the scores (the source before: rows group by it)


REPORT_COLUMN = "report"  # the page's link to each run's report.html, beside its model
NO_REPORT = "(none)"  # the report column of a run without one (report=false, or a report that failed)


def leaderboard_page(board: pd.DataFrame, results_dir: Path, every_run: bool, by_dataset: pd.DataFrame | None) -> str:
    """leaderboard.html: the board as leaderboard.md shows it, sortable: each row's dataset, model, a link to its
    report.html where it has one, template and scores first, then its run directory and the details; the heat maps
    and the by-dataset table, when the board has them (`by_dataset`)."""
    shown = shown_board(board)
    details = [name for name in ("run_dir", *DETAIL_COLUMNS) if name in shown]
    shown = shown[[*shown.columns.drop(details), *details]]  # what a row is and scores first; the details after
    reports = [f"{run_dir}/{REPORT_FILE}" if (results_dir / run_dir / REPORT_FILE).is_file() else None
               for run_dir in shown["run_dir"]]
    shown.insert(shown.columns.get_loc("model") + 1, REPORT_COLUMN,
                 [REPORT_COLUMN if report else NO_REPORT for report in reports])
    figures = [(figure_title(name), png_data_uri((results_dir / name).read_bytes()))
               for name in ("leaderboard_heatmap.png", "leaderboard_by_dataset.png") if by_dataset is not None]
    return render("leaderboard.html.j2", title=f"zsa-eval leaderboard: {results_dir.name}",
                  every_run=every_run, board=table(shown, {REPORT_COLUMN: reports}), n_runs=len(board),
                  over_draws=any(map(interval_marker, board["interval"])),
                  n_reports=sum(map(bool, reports)), figures=figures,
                  by_dataset=table(by_dataset) if by_dataset is not None else None)


def leaderboard_json(board: pd.DataFrame, every_run: bool) -> dict:
    """Every column of the board, with each row's full identity."""
    records = board[[column for column in board.columns if column not in INTERNAL_COLUMNS]]
    records = records.assign(identity_fields=board["identity_fields"]).rename(
        columns={"identity": "identity_hash", "identity_fields": "identity"})
    records = records.astype(object).where(records.notna(), None)
    return {"every_run": every_run, "runs": records.to_dict("records")}


def write_leaderboard(results_dir: Path, every_run: bool = False) -> pd.DataFrame:
    """Rebuild leaderboard.csv, .md, .json, .html, leaderboard_heatmap.png and the by-dataset table
    (leaderboard_by_dataset.csv, .md, .png) in `results_dir` (with `every_run`: leaderboard_all.csv, .md, .json,
    .html, no figure and no by-dataset table). The heat map and the by-dataset table hold the zero-shot rows that have a
    template: runs that fill prompts with class labels.

    Under a file lock, so concurrent runs finishing together leave a leaderboard that holds all of them."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = "leaderboard_all" if every_run else "leaderboard"
    with FileLock(results_dir / ".leaderboard.lock"):
        board = leaderboard(collect_runs(results_dir), every_run)
        write_csv(board.drop(columns=INTERNAL_COLUMNS), results_dir / f"{stem}.csv")
        atomic_write(results_dir / f"{stem}.md", leaderboard_markdown(board))
        write_json(leaderboard_json(board, every_run), results_dir / f"{stem}.json")
        templated = board[board["template"].notna() & (board["protocol"] == ZEROSHOT)]
        by_dataset = None
        if not every_run and not templated.empty:
            atomic_write(results_dir / "leaderboard_heatmap.png", accuracy_heatmap_png(heatmap_grids(templated)))
            by_dataset = write_by_dataset(templated, results_dir)
        atomic_write(results_dir / f"{stem}.html", leaderboard_page(board, results_dir, every_run, by_dataset))
    return board


def rebuild_leaderboard(results_dir: Path, every_run: bool = False) -> pd.DataFrame:
    """`python -m zsa_eval.report leaderboard`: write_leaderboard, refused in one line, writing nothing, where no run
    below `results_dir` would be on the board (an empty or unrelated folder; without `every_run`, runs none of which
    completed)."""
    runs = collect_runs(results_dir)
    if leaderboard(runs, every_run).empty:
        found = (f"{len(runs)} zsa-eval run(s), none complete (--all lists every run)" if len(runs)
                 else "no zsa-eval run (a run directory holds the metrics.json of a finished run)")
        raise UserError(f"{results_dir} holds {found}: no leaderboard written; pass the results directory your runs "
                        "write into (results_dir)")
    return write_leaderboard(results_dir, every_run)


def leaderboard_of(output_dir: Path, results_dir: Path) -> str | None:
    """The results directory whose leaderboard lists this run: results_dir when output_dir lies inside it, else
    none (metrics.json "leaderboard")."""
    return str(results_dir) if results_dir.resolve() in output_dir.resolve().parents else None


def update_leaderboard(metrics: dict) -> None:
    """Rebuild the leaderboard that lists this run, if one does."""
    if metrics["leaderboard"] is not None:
        write_leaderboard(Path(metrics["leaderboard"]))


def leaderboard_note(metrics: dict) -> str | None:
    """For a run no leaderboard lists (its output_dir lies outside results_dir): say so, and how to build one."""
    if metrics["leaderboard"] is not None:
        return None
    parent = Path(metrics["output_dir"]).parent
    return (f"zsa-eval: note: output_dir lies outside results_dir ({metrics['config']['results_dir']}), so no "
            f"leaderboard lists this run; python -m zsa_eval.report leaderboard {parent} builds one beside it")
