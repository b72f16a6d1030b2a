"""A run's report.html: its summary (model, dataset, prompts, identity, each metric it declares with its interval,
status, skips, references), its task's figures and tables, and the mistakes its task names, each with a player of
the clip read again from the dataset. Written after every other result of the run, so a report that fails loses
none of them: it is a warning and metrics.json's `report`."""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from zsa_eval.audio import AudioSource
from zsa_eval.long_audio import long_clips_text
from zsa_eval.store import METRICS_FILE, remove_recorded, write_run_file
from zsa_eval.text import counted
from zsa_eval.report.html import (ASSETS_DIR, ClipFiles, Table, cell, family_label, figure_title, interval_description,
                                  png_data_uri, render, shown, table)

if TYPE_CHECKING:
    from zsa_eval.results import Mistakes, TaskResults

REPORT_FILE = "report.html"
SHOWN_TABLES = {"per_class": "Per class", "per_fold": "Per fold",  # a task's tables the page shows, when it has them
                "per_repeat": "Per draw of shots (every classifier)"}
SHOWN_SKIPS = 100  # errors.csv rows the page lists (all are in the file)


def whole_number(value: float) -> str:
    """A whole-number metric (a count, a rank) as one: `10`; a bound between two whole numbers keeps its fraction."""
    return f"{value:g}"


def counts_in_labels(specs: list[dict], metrics: dict) -> dict[str, str]:
    """The counts a run declares beside its metrics (whole, without an interval: top-k's k), by label -> value: what
    other labels name ("top-k" with k = 5 reads "top-5"), not a measurement with a card of its own."""
    return {spec["label"]: whole_number(metrics[spec["name"]]) for spec in specs
            if spec["whole"] and not spec["interval"] and metrics.get(spec["name"]) is not None}


def with_counts(label: str, counts: dict[str, str]) -> str:
    """A metric's label with the counts it names filled in: "top-k" -> "top-5"."""
    if not counts:
        return label
    return re.sub(r"\b(" + "|".join(map(re.escape, counts)) + r")\b", lambda found: counts[found.group()], label)


def metric_rows(metrics: dict) -> list[dict]:
    """Each metric the run declares (metrics.json leaderboard_metrics) with its interval and which way is better,
    whole numbers (a rank) as whole numbers, the counts it declares (top-k's k) in the labels that name them; then
    the chance level of its main score."""
    specs = metrics.get("leaderboard_metrics") or []
    counts = counts_in_labels(specs, metrics)
    rows = []
    for spec in specs:
        if spec["label"] in counts:
            continue
        value = metrics.get(spec["name"])
        number = whole_number if spec["whole"] else "{:.4f}".format
        bounds = metrics.get(f"{spec['name']}_ci95") if spec["interval"] else None
        rows.append({"name": spec["name"], "label": with_counts(spec["label"], counts),
                     "value": number(value) if value is not None else shown(value),
                     "interval": f"[{number(bounds[0])}, {number(bounds[1])}]" if bounds else "",
                     "better": "higher" if spec["higher_is_better"] else "lower",
                     "main": spec["name"] == metrics.get("main_score")})
    chance = metrics.get("chance_metric")
    if chance and metrics.get(chance) is not None:
        rows.append({"name": chance, "label": f"chance ({metrics.get('main_score')})", "value": shown(metrics[chance]),
                     "interval": "", "better": "", "main": False})
    return rows


def items_fact(metrics: dict) -> str:
    """How many items the run selected, evaluated (a probe: embedded, and of those tested), skipped and excluded."""
    skipped = ", ".join(f"{count} {reason}" for reason, count in (metrics.get("skipped_by_reason") or {}).items())
    excluded = (f", {metrics['n_excluded']} excluded (no label among the classes)"
                if metrics.get("n_excluded") else "")
    tested = (f" (embedded), {metrics['n_tested']} of them tested: the metrics cover those"
              if "n_tested" in metrics else "")
    return (f"{metrics.get('n_evaluated')} of {metrics.get('n_items')} evaluated{tested}, "
            f"{metrics.get('n_skipped', 0)} skipped{f' ({skipped})' if skipped else ''}{excluded}")


def split_fact(split: dict, n_tested: int) -> str:
    """A probe's test and training sides, in words."""
    if split.get("kind") == "seeded split":
        after_skips = f" ({n_tested} of them evaluated)" if n_tested != split["n_test"] else ""
        return (f"{split['description']}: {split['n_test']} clips tested{after_skips}, {split['n_train']} for training "
                "only")
    return f"{split.get('description')}: each fold tested by a classifier trained on the other folds"


def probe_facts(metrics: dict) -> list[tuple[str, object]]:
    """What a probe run is (none for a zero-shot run): its protocol, split, and for few-shot its draws and
    classifiers."""
    if "protocol" not in metrics:
        return []
    if metrics.get("protocol_description"):  # a protocol that says what it is (protocol=mteb)
        return [("protocol", f"{metrics.get('protocol_label')}: {metrics['protocol_description']}")]
    facts = [("protocol", f"{metrics.get('protocol_label') or metrics['protocol']}: a classifier trained on the clips' "
                          "audio embeddings (not zero-shot)"),
             ("test and training sides", split_fact(metrics.get("split") or {}, metrics.get("n_tested")))]
    if metrics.get("repeats"):
        others = [name for name in metrics.get("classifiers") or {} if name != metrics.get("classifier")]
        facts += [("draws", f"{counted(metrics['repeats'], 'draw')} of {counted(metrics.get('shots') or 0, 'shot')} "
                            f"per class from each training side; the metrics are means over the draws; predictions, "
                            f"tables and mistakes are {metrics.get('predictions_from')}"),
                  ("classifiers", f"{metrics.get('classifier')} (the headline)"
                                  + (f"; also {', '.join(others)} (per_repeat.csv)" if others else ""))]
    return facts


def summary_facts(metrics: dict) -> list[tuple[str, str]]:
    """Who, what and how the run went, as (name, text), leaving out what the run does not have."""
    identity = metrics.get("identity") or {}
    revision = identity.get("model_revision")
    source = identity.get("dataset_source")
    facts = [
        ("task", metrics.get("task")),
        *probe_facts(metrics),
        ("dataset", metrics.get("dataset")),
        ("dataset source", f"{source}@{identity.get('dataset_revision')}" if source and identity.get("dataset_revision")
         else source),
        ("model", metrics.get("model")),
        ("weights", f"{metrics.get('model_name_or_path')}" + (f"@{revision}" if revision else "")),
        ("family", family_label(identity) if identity.get("family") else metrics.get("family")),
        ("scores", metrics.get("score_kind_description") or metrics.get("similarity")),
        ("template", metrics.get("template")),
        ("instruction", metrics.get("instruction")),  # what an audio language model was asked of each clip
        ("engine, precision, device", ", ".join(str(metrics[key]) for key in ("engine", "precision", "device")
                                                if metrics.get(key))),
        ("items", items_fact(metrics)),
        ("long clips", long_clips_text(metrics.get("long_audio"))),
        ("status", metrics.get("status")),
        ("warnings", " | ".join(metrics.get("warnings") or [])),
        ("identity hash", metrics.get("identity_hash")),
        ("started, finished", ", ".join(str(metrics[key]) for key in ("started_at", "finished_at")
                                        if metrics.get(key))),
        ("elapsed", f"{metrics['elapsed_s']} s from the run's start (the summary line's time also counts the "
                    "process start-up: imports, config)" if metrics.get("elapsed_s") is not None else None),
        ("run directory", metrics.get("output_dir")),
    ]
    return [(name, str(value)) for name, value in facts if value not in (None, "")]


def player_heading(label: str, fields: dict) -> str:
    """A player column's heading: what it plays, marked as a player where a field of the same name shows that clip's
    id ("its clip")."""
    return f"{label} (listen)" if label in fields else label


def page_title(metrics: dict) -> str:
    """dataset | model | template | a probe's protocol, those the run has."""
    parts = (metrics.get("dataset"), metrics.get("model"), metrics.get("template"), metrics.get("protocol_label"))
    return " | ".join(str(part) for part in parts if part)


def mistakes_table(mistakes: Mistakes, clips: ClipFiles, sources: Sequence[AudioSource]) -> tuple[Table, list[str]]:
    """The mistakes, one row each: number, title, a player per clip, the task's fields; and each clip that could not
    be decoded again, named."""
    first = mistakes.items[0]
    columns = ["#", "item", *(player_heading(label, first.fields) for label, _ in first.clips), *first.fields]
    rows, undecodable = [], []
    for number, mistake in enumerate(mistakes.items, 1):
        players = [clips.clip(f"clip-{position:06d}", label, sources[position]) for label, position in mistake.clips]
        undecodable += [f"{mistake.title} ({player.label}): {player.problem}" for player in players if player.problem]
        rows.append([cell(number), cell(mistake.title), *map(cell, players), *map(cell, mistake.fields.values())])
    return Table(columns, rows), undecodable


def skipped_items(output_dir: Path) -> pd.DataFrame:
    """errors.csv as written (empty when the run has none)."""
    path = output_dir / "errors.csv"
    return pd.read_csv(path, keep_default_na=False, dtype=str) if path.is_file() and path.stat().st_size > 1 \
        else pd.DataFrame()


def write_report(output_dir: Path, metrics: dict, results: TaskResults, mistakes: Mistakes | None,
                 sources: Sequence[AudioSource]) -> dict:
    """report.html and its clips in report_assets/; returns metrics.json's `report`."""
    clips = ClipFiles(output_dir, lambda name, payload: write_run_file(output_dir, name, payload))
    mistake_table, undecodable = (mistakes_table(mistakes, clips, sources) if mistakes and mistakes.items
                                  else (None, []))
    skips = skipped_items(output_dir)
    page = render(
        "run.html.j2",
        title=page_title(metrics), metrics=metric_rows(metrics), interval=interval_description(metrics),
        facts=summary_facts(metrics), status=metrics.get("status", ""),
        prompts=metrics.get("prompts") or [], identity=json.dumps(metrics.get("identity"), indent=2, default=str),
        references=metrics.get("references"),
        figures=[(figure_title(name), png_data_uri(png)) for name, png in results.figures.items()],
        tables=[(title, table(results.tables[name])) for name, title in SHOWN_TABLES.items() if name in results.tables],
        mistakes=mistakes, mistake_table=mistake_table, undecodable=undecodable,
        skips=table(skips.head(SHOWN_SKIPS)) if len(skips) else None, n_skips=len(skips),
        files=sorted({METRICS_FILE} | {path.name for path in output_dir.iterdir()  # metrics.json: written after it
                                        if path.is_file() and not path.name.startswith(".") and path.name != REPORT_FILE}),
    )
    write_run_file(output_dir, REPORT_FILE, page)
    return {"written": True, "file": REPORT_FILE, "mistakes": len(mistakes.items) if mistakes else 0,
            "clips": len(clips.written) - len(clips.undecodable), "undecodable_clips": len(clips.undecodable)}


def remove_report(output_dir: Path) -> None:
    """Remove the run's report.html and its clips (those the run recorded writing: never a user's file)."""
    remove_recorded(output_dir, lambda name: name == REPORT_FILE or name.startswith(f"{ASSETS_DIR}/"))


def report_run(output_dir: Path, metrics: dict, results: TaskResults, mistakes: Callable[[], Mistakes | None],
               sources: Sequence[AudioSource], enabled: bool, debug: bool) -> dict:
    """Write the run's report (`enabled`: the `report` setting) in place of any earlier one; returns metrics.json's
    `report`. A report that fails is removed, a warning says so (with the traceback when `debug`), and the run's
    other results stand."""
    remove_report(output_dir)
    if not enabled:
        return {"written": False, "reason": "report=false"}
    try:
        return write_report(output_dir, metrics, results, mistakes(), sources)
    except Exception as error:  # whatever went wrong, a report must never cost the run its results
        remove_report(output_dir)
        if debug:
            traceback.print_exc()
        problem = f"{type(error).__name__}: {error}"
        print(f"zsa-eval: warning: report.html was not written ({problem}); every other result is in {output_dir} "
              "(metrics.json: report)", file=sys.stderr)
        return {"written": False, "error": problem}
