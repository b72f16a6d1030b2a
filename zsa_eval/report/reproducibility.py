"""The reproducibility page (`python -m zsa_eval.report reproducibility results/`): every published figure in the
dataset configs (`references:`), its source and protocol, beside zsa-eval's measurement under that protocol (the
latest complete run in the results directory whose metrics.json lists the figure as of its own protocol), or "not
run". `suite=reproduce` sweeps conf/reference/: one job per figure whose protocol zsa-eval can reproduce; the page
and the start of that sweep list the others, each with the reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from zsa_eval.config import checked_references
from zsa_eval.report.references import (ZEROSHOT, evaluation_of, evaluation_text, figure_digits,
                                        installed_mteb_version, measured_text, of_protocol, published_text)

REFERENCE_GROUP = "reference"
COMPLETE = "complete"


@dataclass(frozen=True)
class CatalogReference:
    """A published figure of a dataset config, and the reference/<id>.yaml that runs it, if any."""

    dataset: str
    reference: dict
    job: Path | None

    @property
    def skip_reason(self) -> str | None:
        """Why suite=reproduce does not run it (None: it does)."""
        if self.reference.get("unsupported"):
            return f"zsa-eval cannot reproduce its protocol: {self.reference['unsupported']}"
        version = self.reference.get("mteb_version")
        if version is not None and version != installed_mteb_version():
            return (f"measured with mteb {version}: protocol=mteb runs the installed mteb's task definitions, not "
                    "that version's")
        if self.job is None:
            return f"no {REFERENCE_GROUP}/{self.reference['id']}.yaml in the config directories to run it"
        return None


def catalog_references(config_dirs: list[Path]) -> list[CatalogReference]:
    """Every dataset config's published figures, checked, in dataset then listed order; a dataset config of a later
    directory replaces one of the same file name in an earlier one."""
    files: dict[str, Path] = {}
    for config_dir in config_dirs:
        files |= {path.name: path for path in sorted((config_dir / "dataset").glob("*.yaml"))}
    catalog = []
    for path in files.values():
        values = OmegaConf.to_container(OmegaConf.load(path))
        if not isinstance(values, dict) or values.get("references") is None:
            continue
        name = values.get("name", path.stem)
        for reference in checked_references({**values, "name": name}):
            jobs = [config_dir / REFERENCE_GROUP / f"{reference['id']}.yaml" for config_dir in config_dirs]
            catalog.append(CatalogReference(name, reference, next((job for job in jobs if job.is_file()), None)))
    return sorted(catalog, key=lambda entry: entry.dataset)


def measured_runs(results_dir: Path) -> dict[tuple[str, str], dict]:
    """(dataset, reference id) -> the latest complete run that followed the figure's protocol: its reference row
    from metrics.json, with `run_dir` (relative to `results_dir`)."""
    found: dict[tuple[str, str], dict] = {}
    for metrics_file in sorted(results_dir.rglob("metrics.json")):
        try:
            metrics = json.loads(metrics_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(metrics, dict) or metrics.get("status") != COMPLETE:
            continue
        finished = metrics.get("finished_at") or ""
        for row in metrics.get("references") or []:
            key = (metrics.get("dataset"), row.get("id"))
            if (row.get("same_protocol") and of_protocol(row, metrics.get("protocol"))
                    and finished >= found.get(key, {}).get("finished_at", "")):
                found[key] = {**row, "finished_at": finished,
                              "run_dir": metrics_file.parent.relative_to(results_dir).as_posix()}
    return found


HEADER = ["reference", "checkpoint", "metric", "published", "measured [95% CI]", "difference", "published in the CI",
          "run", "suite=reproduce"]
INSIDE_CELLS = {True: "yes", False: "no", None: "no CI"}


def table_row(entry: CatalogReference, run: dict | None) -> str:
    reference = entry.reference
    digits = figure_digits(run or reference)  # a measured row: enough to read its verdict off the numbers
    cells = [reference["id"], reference["checkpoint"], reference["metric"], published_text(reference, digits)]
    if run is None:
        cells += ["not run", "", "", ""]
    else:
        cells += [measured_text(run["measured"], run["measured_ci95"], digits), f"{run['difference']:+.{digits}f}",
                  INSIDE_CELLS[run["inside_interval"]], f"`{run['run_dir']}`"]
    cells.append(f"`reference={reference['id']}`" if entry.skip_reason is None else "skipped")
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def sentence(label: str, text: str) -> str:
    return f"{label}: {text.rstrip('.')}."


def detail_lines(entries: list[CatalogReference]) -> list[str]:
    """Each figure's source, protocol, weights, notes and why the suite skips it; a text an earlier figure of the
    same dataset has already given is referred to by that figure's id."""
    first_with: dict[tuple[str, str], str] = {}
    lines = []
    for entry in entries:
        reference = entry.reference
        parts = [sentence("Source", reference["source"])]
        for label, text in (("Protocol", reference["protocol"]), ("Note", reference.get("note")),
                            ("Skipped by suite=reproduce", entry.skip_reason)):
            if text:
                earlier = first_with.setdefault((label, text), reference["id"])
                parts.append(sentence(label, text if earlier == reference["id"] else f"as {earlier}"))
        parts.insert(2, sentence("Weights", reference["weights"]))
        if reference.get("data"):
            parts.insert(2, sentence("Data", reference["data"]))
        if evaluation_of(reference)["name"] != ZEROSHOT:
            parts.insert(2, sentence("Run protocol", evaluation_text(evaluation_of(reference))))
        lines.append(f"- **{reference['id']}**. " + " ".join(parts))
    return lines


def reproducibility_page(results_dir: Path, config_dirs: list[Path], shown_results_dir: str) -> str:
    """The page as markdown: one table per dataset, then each figure's source, protocol, weights and notes."""
    catalog, runs = catalog_references(config_dirs), measured_runs(results_dir)
    measured = sum((entry.dataset, entry.reference["id"]) in runs for entry in catalog)
    lines = ["# Reproducibility: published figures beside zsa-eval's measurements", "",
             "<!-- generated by `python -m zsa_eval.report reproducibility RESULTS_DIR --out docs/reproducibility.md`;"
             " edit the dataset configs' `references:`, not this page -->", "",
             "Each row is a published figure for a checkpoint of zsa-eval's catalog (`references:` in "
             "`conf/dataset/*.yaml`; zero-shot unless its details name another run protocol) and zsa-eval's "
             "measurement under the same protocol: the latest complete run of that run protocol whose checkpoint, "
             "clips and prompts are the figure's. `python -m zsa_eval -m suite=reproduce` runs "
             "every figure whose protocol zsa-eval can reproduce (the last column); the others are skipped, each "
             "with its reason below. The difference is measured - published.", "",
             f"Built from `{shown_results_dir}`: {measured} of {len(catalog)} published figures measured."]
    for dataset in dict.fromkeys(entry.dataset for entry in catalog):
        entries = [entry for entry in catalog if entry.dataset == dataset]
        lines += ["", f"## {dataset}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += [table_row(entry, runs.get((dataset, entry.reference["id"]))) for entry in entries]
        lines += ["", *detail_lines(entries)]
    return "\n".join(lines) + "\n"


def skip_lines(config_dirs: list[Path]) -> list[str]:
    """What a sweep over conf/reference/ leaves out, for the start of that sweep: one line per figure it skips."""
    skipped = [entry for entry in catalog_references(config_dirs) if entry.skip_reason]
    return [f"zsa-eval: suite: {len(skipped)} published figures are not run:"] + [
        f"  {entry.reference['id']} ({entry.reference['checkpoint']}, {entry.reference['metric']} "
        f"{published_text({'value': entry.reference['value']})}): {entry.skip_reason}" for entry in skipped] \
        if skipped else []
