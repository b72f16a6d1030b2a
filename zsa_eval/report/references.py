"""Published figures beside a run's measurement. A dataset config's `references:` (conf/dataset/*.yaml, checked by
zsa_eval.config.checks.checked_references) give each figure with its checkpoint, metric, source and protocol. A run shows
those of its own checkpoint whose metric it reports (metrics.json `references`): the difference, and whether the
published value lies inside the run's 95% interval. A reference's protocol is the run's own when zsa-eval can
reproduce it (no `unsupported`) and the run scores the same clips (the data its config's `references_data` names;
the same folds; no subset, class list or limit) with the same prompts, and has the values of any other settings
the figure names (`settings`, by config path: a generate protocol's scoring mode, instruction, answer matching
and answer length; a `dataset.classes` there is the class list, in its order, that the run must set). An MTEB
result file's figure (`mteb_task`) is of protocol=mteb: the run's own only for a protocol=mteb run of that mteb
task, with the mteb version and on the data (hub_id@revision) its file names. Task-agnostic: a metric is a
metrics.json key, its interval `<metric>_ci95`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cache
from importlib import metadata
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from zsa_eval.config import CONFIG_DIR, checked_references, shown
from zsa_eval.config.checks import MTEB_PROTOCOL
from zsa_eval.errors import UserError

ALL_CLIPS = "all clips"
ZEROSHOT = "zeroshot"  # the run protocol of a figure that declares none
MTEB_KEYS = ("mteb_task", "mteb_version")  # what an mteb figure's protocol and a protocol=mteb run's metrics name


def data_source(dataset: Mapping) -> str:
    """Where a run's clips come from, as `references_data` names it: hub_id@revision (hub_id alone without a
    pinned revision), or a local folder's path; dataset=mteb without a local copy: the Hub path and revision its mteb
    task pins."""
    if dataset.get("hub_id"):
        local_copy = Path(str(dataset["hub_id"])).expanduser().is_dir()  # a folder has no revision (the loader's rule)
        return (f"{dataset['hub_id']}@{dataset['revision']}" if dataset.get("revision") and not local_copy
                else str(dataset["hub_id"]))
    if dataset.get("task_name") and not dataset.get("path"):
        from zsa_eval.data.mteb_tasks import named_task

        pinned = named_task(str(dataset["task_name"])).metadata.dataset
        return f"{pinned['path']}@{pinned['revision']}"
    return str(dataset.get("path"))


def run_protocol(dataset: Mapping, limit: int | None, prompts: Sequence[str] | None,
                 evaluation: Mapping | None = None) -> dict:
    """What a run's protocol is made of, in the terms references state theirs: how it evaluates (`evaluation`: the
    run protocol's name and settings; None: zero-shot), the data (and the data the dataset's figures were measured
    on, when its config names it), folds (null: all), the other clip selections, and the prompts (None for a task
    that embeds no label)."""
    return {"evaluation": with_mteb_version(evaluation or {"name": ZEROSHOT}), "data": data_source(dataset),
            "references_data": dataset.get("references_data"), "folds": dataset.get("folds"),
            "subset": dataset.get("subset"), "classes": dataset.get("classes"), "limit": limit,
            "prompts": list(prompts) if prompts is not None else None}


def installed_mteb_version() -> str | None:
    """The installed mteb's version (None without the zsa-eval[mteb] extra), read without importing mteb."""
    try:
        return metadata.version("mteb")
    except metadata.PackageNotFoundError:
        return None


def with_mteb_version(evaluation: Mapping) -> dict:
    """A run's evaluation; a protocol=mteb one with the installed mteb's version, whose evaluators it runs."""
    if evaluation["name"] != MTEB_PROTOCOL:
        return dict(evaluation)
    return {"mteb_version": installed_mteb_version(), **evaluation}


def measured_protocol(protocol: Mapping, metrics: Mapping) -> dict:
    """The run's protocol as its measurement records it: a protocol=mteb run's metrics name the mteb task whose
    evaluator ran and mteb's version (`mteb_task`, `mteb_version`), which stand in for what the config said."""
    recorded = {key: str(metrics[key]) for key in MTEB_KEYS if metrics.get(key) is not None}
    return {**protocol, "evaluation": evaluation_of(protocol) | recorded}


def evaluation_of(row: Mapping) -> dict:
    """A reference's run protocol (a reference or metrics.json row written before figures declared one: zero-shot)."""
    return dict(row.get("evaluation") or {"name": ZEROSHOT})


def of_protocol(row: Mapping, protocol_name: str | None) -> bool:
    """Whether a reference (or a metrics.json reference row) was measured under the run protocol `protocol_name`
    (None: zero-shot, as runs written before protocols)."""
    return evaluation_of(row)["name"] == (protocol_name or ZEROSHOT)


def evaluation_text(evaluation: Mapping) -> str:
    """`a zero-shot figure`, `protocol=few_shot (shots=8, repeats=10)`."""
    settings = ", ".join(f"{key}={shown(value)}" for key, value in evaluation.items() if key != "name")
    return f"protocol={evaluation['name']}" + (f" ({settings})" if settings else "")


@cache
def protocol_defaults(name: str) -> dict:
    """A protocol's settings as conf/protocol/<name>.yaml sets them (but its output folder)."""
    values = OmegaConf.to_container(OmegaConf.load(Path(CONFIG_DIR) / "protocol" / f"{name}.yaml"))
    return {key: value for key, value in values.items() if key != "folder"}


def evaluation_differences(reference: Mapping, protocol: Mapping) -> list[str]:
    """How the run's protocol differs from the one the figure was measured under: another protocol, or other values
    of its settings, those the figure leaves out being the protocol's defaults (a figure of few-shot logistic
    regression is no figure of a text_init run)."""
    named, ours = evaluation_of(reference), evaluation_of(protocol)
    if named["name"] != ours["name"]:
        return [f"a {evaluation_text(named)} figure there, a protocol={ours['name']} run here"]
    if named["name"] == MTEB_PROTOCOL:
        return mteb_differences(named, ours)
    theirs = protocol_defaults(named["name"]) | named
    return [f"protocol.{key}={shown(value)} there{'' if key in named else ' (the default)'}, {shown(ours.get(key))} "
            f"here" for key, value in theirs.items() if key != "name" and key in ours and ours[key] != value]


def mteb_differences(named: Mapping, ours: Mapping) -> list[str]:
    """An mteb figure's evaluator beside a protocol=mteb run's: another mteb task measures something else, and
    another mteb version may define the same task otherwise (its data, draws per label, experiments, main score)."""
    task, version = ours.get("mteb_task"), ours.get("mteb_version")
    differences = [] if task == named["mteb_task"] else \
        [f"mteb task {named['mteb_task']} there, {task or 'none named (protocol.mteb_task)'} here"]
    if version != named["mteb_version"]:
        differences.append(f"mteb {named['mteb_version']} there, {version or 'no mteb'} here (a version may define "
                           "its tasks otherwise)")
    return differences


def figure_data(reference: Mapping, protocol: Mapping) -> str | None:
    """The clips a figure counts: its own `data`, else its dataset's references_data (None: not stated)."""
    return reference.get("data") or protocol.get("references_data")


def folds_text(folds: Sequence[int] | None) -> str:
    return f"folds {shown(sorted(folds))}" if folds else ALL_CLIPS


def protocol_differences(reference: Mapping, protocol: Mapping) -> list[str]:
    """How a run's protocol differs from a reference's, each difference in words (none: the run's own protocol)."""
    if reference.get("unsupported"):
        return [f"zsa-eval cannot reproduce it: {reference['unsupported']}"]
    differences = evaluation_differences(reference, protocol)
    if evaluation_of(reference)["name"] != evaluation_of(protocol)["name"]:
        return differences  # another protocol altogether: its prompts or folds are beside the point
    data = figure_data(reference, protocol)
    if data and protocol["data"] != data:
        differences.append(f"the data of {data} there, of {protocol['data']} here (zsa-eval cannot tell that another "
                           "copy holds the same clips)")
    if folds_text(reference.get("folds")) != folds_text(protocol["folds"]):
        differences.append(f"{folds_text(reference.get('folds'))} there, {folds_text(protocol['folds'])} here")
    settings = reference.get("settings") or {}
    differences += [f"{key}={shown(protocol[key])} here" for key in ("subset", "classes", "limit")
                    if protocol[key] is not None and f"dataset.{key}" not in settings]
    ours = protocol.get("settings") or {}
    differences += [f"{path}={shown(value)} there, {shown(ours.get(path))} here" for path, value in settings.items()
                    if ours.get(path) != value]
    if reference.get("prompts") and list(reference["prompts"]) != (protocol["prompts"] or []):
        differences.append(f"prompts {reference['prompts']} there, {protocol['prompts']} here")
    return differences


def run_references(references: Sequence[Mapping] | None, checkpoint: str, metrics: Mapping,
                   protocol: Mapping) -> list[dict]:
    """metrics.json `references`: the published figures for this run's checkpoint whose metric it reports, each
    with the measured value and its interval, the difference (measured - published), whether the published value
    lies inside the interval, and whether the run followed the figure's protocol (else how it differs). A figure
    of another run protocol (a zero-shot figure beside a probe run), or of another mteb task than the one a
    protocol=mteb run's metrics name, measures something else: it is left out."""
    rows, protocol = [], measured_protocol(protocol, metrics)
    for reference in references or []:
        metric = reference["metric"]
        if (reference["checkpoint"] != checkpoint or metrics.get(metric) is None
                or not of_protocol(reference, evaluation_of(protocol)["name"])
                or of_another_mteb_task(reference, metrics)):
            continue
        measured, interval = float(metrics[metric]), metrics.get(f"{metric}_ci95")
        differences = protocol_differences(reference, protocol)
        rows.append({**reference, "measured": measured, "measured_ci95": interval,
                     "difference": measured - reference["value"],
                     "inside_interval": None if not interval else interval[0] <= reference["value"] <= interval[1],
                     "same_protocol": not differences, "protocol_differences": differences})
    return rows


def of_another_mteb_task(reference: Mapping, metrics: Mapping) -> bool:
    """Whether an mteb figure is of another mteb task than the one whose evaluator the run's metrics name."""
    return bool(reference.get("mteb_task") and metrics.get("mteb_task")
                and reference["mteb_task"] != str(metrics["mteb_task"]))


FIGURE_DIGITS = 4  # the fewest decimals a published figure and its measurement print with


def written_decimals(value: float) -> int:
    """The decimals a value was written with, as its shortest repr shows them: 0.01799 -> 5, 0.9 -> 1, 1e-05 -> 5."""
    return max(0, -int(Decimal(repr(float(value))).as_tuple().exponent))


def figure_digits(row: Mapping) -> int:
    """Decimals to print a figure with (its published value, standard error and interval, and the run's value,
    interval and difference beside it): at least FIGURE_DIGITS, every decimal the published value was entered with,
    and more until the published value prints unlike each bound of the run's interval and of its own published
    interval that differs from it, so that "inside" or "outside" can be read off the printed numbers."""
    value = float(row["value"])
    digits = max(FIGURE_DIGITS, written_decimals(value))
    bounds = [float(bound) for key in ("interval", "measured_ci95") for bound in row.get(key) or []]
    for bound in bounds:
        while bound != value and f"{bound:.{digits}f}" == f"{value:.{digits}f}":
            digits += 1
    return digits


def published_text(reference: Mapping, digits: int | None = None) -> str:
    """A published value with its standard error or interval, as published, with `digits` decimals (None: as
    figure_digits chooses for the reference alone)."""
    digits = figure_digits(reference) if digits is None else digits
    text = f"{reference['value']:.{digits}f}"
    if reference.get("stderr") is not None:
        text += f" ± {reference['stderr']:.{digits}f} (s.e.)"
    if reference.get("interval"):
        text += f" [{reference['interval'][0]:.{digits}f}, {reference['interval'][1]:.{digits}f}]"
    return text


def measured_text(value: float | None, interval: Sequence[float] | None, digits: int = FIGURE_DIGITS) -> str:
    """A measured value and its 95% interval with `digits` decimals (figure_digits of the row they stand beside)."""
    if value is None:
        return "not run"
    return f"{value:.{digits}f}" + (f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]" if interval else "")


def inside_text(inside: bool | None) -> str:
    return {True: "inside", False: "outside", None: "no interval for"}[inside]


def reference_line(row: Mapping) -> str:
    """One published figure beside the run's measurement, for the lines after its summary line; every number with
    the row's figure_digits, so the published value and the interval's bounds print apart wherever they differ."""
    digits = figure_digits(row)
    protocol = "the same protocol" if row["same_protocol"] else \
        f"another protocol: {'; '.join(row['protocol_differences'])}"
    return (f"reference {row['id']} ({row['protocol']}; {row['weights']} weights): {row['metric']} published "
            f"{published_text(row, digits)}, measured {measured_text(row['measured'], row['measured_ci95'], digits)}, "
            f"difference {row['difference']:+.{digits}f}, published value {inside_text(row['inside_interval'])} the "
            f"run's 95% interval; {protocol}")


def reference_lines(metrics: Mapping) -> list[str]:
    """The run's published figures, one line each (none for a run whose checkpoint has none)."""
    return [reference_line(row) for row in metrics.get("references") or []]


def nearest_reference(references: Sequence[Mapping] | None, metric: str | None,
                      protocol_name: str | None = None) -> Mapping | None:
    """The published figure a leaderboard shows beside a run's `metric`: one of the run's own protocol, else the one
    nearest the measured value; only figures of the run's run protocol (`protocol_name`, metrics.json `protocol`)."""
    candidates = [row for row in references or [] if row["metric"] == metric and of_protocol(row, protocol_name)]
    return min(candidates, key=lambda row: (not row["same_protocol"], abs(row["difference"]))) if candidates else None


def references_of(cfg: DictConfig) -> list[dict]:
    """The chosen dataset's references, as plain mappings (the config was checked); dataset=mteb's: the catalog's
    figures of its mteb task."""
    references = cfg.dataset.get("references")
    if references is not None:
        return OmegaConf.to_container(references)
    return mteb_task_figures(str(cfg.dataset.task_name)) if cfg.dataset.get("task_name") else []


def mteb_task_figures(task_name: str) -> list[dict]:
    """The catalog's figures (conf/dataset/*.yaml) measured by this mteb task's evaluator, checked."""
    figures = []
    for path in sorted((Path(CONFIG_DIR) / "dataset").glob("*.yaml")):
        values = OmegaConf.to_container(OmegaConf.load(path))
        if not isinstance(values, dict):
            continue
        entries = [entry for entry in values.get("references") or []
                   if isinstance(entry, dict) and entry.get("mteb_task") == task_name]
        figures += checked_references({"name": values.get("name", path.stem), "references": entries}) if entries else []
    return figures


def figures_of_metrics(references: Sequence[Mapping], protocol: Mapping) -> list[Mapping]:
    """The figures whose metric a run's task declares: those of the run's protocol, but an mteb figure (its metric is
    a score an mteb evaluator names when it runs; protocol=mteb declares none before)."""
    return [reference for reference in references
            if of_protocol(reference, evaluation_of(protocol)["name"]) and not reference.get("mteb_task")]


def run_checkpoint(model: Mapping) -> str:
    """The checkpoint a run's published figures are found by: model.name_or_path, with the weights file it reads when
    it holds several (microsoft/msclap/CLAP_weights_2023.pth: MS-CLAP's Hub repository holds 2022's and 2023's)."""
    weights = model.get("weights_file")
    return f"{model['name_or_path']}/{weights}" if weights else str(model["name_or_path"])


def evaluation_of_run(protocol: DictConfig) -> dict:
    """A run's protocol as references state theirs: its name and its result-determining settings."""
    return {key: value for key, value in OmegaConf.to_container(protocol).items() if key != "folder"}


def settings_of_run(cfg: DictConfig, references: Sequence[Mapping]) -> dict:
    """The run's values of the settings (config paths) its dataset's figures name as part of their protocol."""
    paths = {path for reference in references for path in reference.get("settings") or {}}
    return {path: plain(OmegaConf.select(cfg, path)) for path in sorted(paths)}


def plain(value):
    """A config value as plain data (a list node as a list), to compare with a figure's."""
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def check_references(cfg: DictConfig, prompts: Sequence[str] | None, metric_names: Sequence[str],
                     limit: int | None) -> dict:
    """Before a run: each reference of its protocol names a metric its task reports; reference=<id> names one of the
    dataset's
    figures, for this run's checkpoint, whose protocol the run follows; gate.reference=true has a figure of the run's
    protocol to bound. `limit`: the run's (None before the items are counted: a limit that selects them all is
    none). Returns the run's protocol."""
    references, name = references_of(cfg), cfg.dataset.name
    protocol = run_protocol(cfg.dataset, limit, prompts, evaluation_of_run(cfg.protocol)) | {
        "settings": settings_of_run(cfg, references)}
    for reference in figures_of_metrics(references, protocol):
        if reference["metric"] not in metric_names:
            raise UserError(f"dataset={name} reference {reference['id']}: metric {reference['metric']!r} is not one "
                            f"this dataset's task reports ({', '.join(metric_names)})")
    checkpoint = run_checkpoint(cfg.model)
    if cfg.reference is not None:
        check_chosen_reference(references, cfg.reference, checkpoint, protocol, name)
    if cfg.gate.reference and not any(reference["checkpoint"] == checkpoint
                                      and not protocol_differences(reference, protocol) for reference in references):
        own = [f"{reference['id']} ({'; '.join(protocol_differences(reference, protocol))})"
               for reference in references if reference["checkpoint"] == checkpoint]
        raise UserError(f"gate.reference=true, but dataset={name} has no published figure for {checkpoint} under "
                        f"this run's protocol ({evaluation_text(protocol['evaluation'])}, "
                        f"{folds_text(protocol['folds'])}, prompts {protocol['prompts']}); "
                        + (f"its figures for this checkpoint: {', '.join(own)}" if own else
                           "it has none for this checkpoint") + "; drop gate.reference or run a reference's protocol")
    return protocol


def check_chosen_reference(references: Sequence[Mapping], chosen: str, checkpoint: str, protocol: Mapping,
                           dataset_name: str) -> None:
    """reference=<id> reproduces one of the dataset's figures: the run's checkpoint and protocol must be its."""
    found = next((reference for reference in references if reference["id"] == chosen), None)
    if found is None:
        ids = ", ".join(reference["id"] for reference in references) or "none"
        raise UserError(f"reference={chosen} is not a published figure of dataset={dataset_name} (its references: "
                        f"{ids}); choose the dataset that holds it")
    if found["checkpoint"] != checkpoint:
        raise UserError(f"reference={chosen} was measured on {found['checkpoint']}, but this run's model is "
                        f"{checkpoint}; drop the model override (the reference chooses its model)")
    if found.get("unsupported"):
        raise UserError(f"reference={chosen} cannot be reproduced by zsa-eval: {found['unsupported']}")
    differences = protocol_differences(found, protocol)
    if differences:
        raise UserError(f"reference={chosen}: this run does not follow its protocol ({'; '.join(differences)}); drop "
                        "the overrides that change it")
