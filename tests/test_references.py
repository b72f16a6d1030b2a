"""Published figures beside every measurement: the catalog's `references:`, their schema check, what a run shows and
writes (metrics.json `references`, the summary's lines, the leaderboard's columns), the reference gate, the
reproducibility page and suite=reproduce's skip list. The tiny model cannot reproduce real figures offline, so the
runs use local dataset configs whose references name the tiny model's checkpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from conftest import run_cli
from zsa_eval.config import checked_references
from zsa_eval.errors import UserError
from zsa_eval.laion_checkpoint import LAION_FILES, LAION_HUB_REPO
from zsa_eval.report.__main__ import main as report_main
from zsa_eval.report.gate import reference_failures
from zsa_eval.report.board import collect_runs, leaderboard
from zsa_eval.report.leaderboard import leaderboard_markdown
from zsa_eval.report.references import (figure_digits, installed_mteb_version, nearest_reference,
                                        protocol_differences, published_text, reference_line, reference_lines,
                                        run_checkpoint, run_protocol, run_references)
from zsa_eval.report.reproducibility import catalog_references, reproducibility_page
from zsa_eval.tasks.registry import TASKS

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
PROMPT = "This is a sound of {}."  # what template=auto gives the synthetic dataset (it has no prompts of its own)


def reference(**fields) -> dict:
    """A well-formed reference, with `fields` in place of the defaults."""
    return {"id": "r", "checkpoint": "ckpt", "metric": "accuracy", "value": 0.5, "protocol": "all clips",
            "prompts": [PROMPT], "source": "a test", "weights": "original"} | fields


def write_dataset(conf: Path, references: list[dict], name: str = "tiny_refs") -> Path:
    """A dataset config of a user's own config directory: the synthetic sounds, with these references."""
    (conf / "dataset").mkdir(parents=True, exist_ok=True)
    (conf / "dataset" / f"{name}.yaml").write_text(yaml.safe_dump(
        {"defaults": ["synthetic", "_self_"], "name": name, "references": references}, sort_keys=False))
    return conf


def write_job(conf: Path, reference_id: str, dataset: str = "tiny_refs", folds: list[int] | None = None) -> None:
    """A reference/<id>.yaml as suite=reproduce sweeps: the dataset, the tiny model and the protocol."""
    (conf / "reference").mkdir(parents=True, exist_ok=True)
    (conf / "reference" / f"{reference_id}.yaml").write_text(
        "# @package _global_\n" + yaml.safe_dump({
            "defaults": [{"override /dataset": dataset}, {"override /model": "tiny_random"}],
            "reference": reference_id, "dataset": {"folds": folds},
            "template": {"name": reference_id, "prompts": [PROMPT]}}, sort_keys=False))


# --- the catalog -----------------------------------------------------------------------------------------------------

def catalog_models() -> dict[str, str]:
    """conf/model/: checkpoint (name_or_path, with the weights file it reads) -> option name, for the catalog's
    checkpoints: hub ids, LAION's laion_clap .pt files (lukewys/laion_clap/FILE.pt) and MS-CLAP's
    (microsoft/msclap/CLAP_weights_2023.pth)."""
    models = {}
    for path in (CONF / "model").glob("*.yaml"):
        model = yaml.safe_load(path.read_text())
        if model.get("name_or_path") and "$" not in str(model["name_or_path"]):
            models[run_checkpoint(model)] = path.stem
    return models


def test_every_catalog_reference_is_well_formed_for_a_catalog_checkpoint_and_a_metric_its_task_reports():
    catalog = catalog_references([CONF])
    assert {entry.dataset for entry in catalog} == {"esc50", "us8k", "gtzan", "ravdess", "speech_commands", "clotho",
                                                   "audiocaps", "vocalsound", "nsynth", "crema_d", "fsd50k"}
    ids = [entry.reference["id"] for entry in catalog]
    assert len(ids) == len(set(ids)), "ids are unique across datasets (conf/reference/<id>.yaml names them)"
    models = catalog_models()
    for entry in catalog:
        checkpoint, metric = entry.reference["checkpoint"], entry.reference["metric"]
        assert checkpoint in models, f"{entry.reference['id']}: {checkpoint} is no conf/model/ checkpoint"
        task = OmegaConf.load(CONF / "dataset" / f"{entry.dataset}.yaml").get("task", "classification")
        if not entry.reference.get("mteb_task"):  # an mteb figure's metric is an mteb score (test_mteb_references)
            assert metric in {spec.name for spec in TASKS[task].metrics}, entry.reference["id"]
        assert entry.reference["source"] and entry.reference["protocol"]


def test_a_reproducible_figure_measured_on_a_laion_pt_file_names_that_file():
    """A figure LAION measured on one of its laion_clap .pt files (its note names the file) is entered for that file,
    which a conf/model preset loads (lukewys/laion_clap/FILE.pt), so reference=<id> runs the weights it was measured
    on, not a Hub conversion believed to be theirs."""
    models = catalog_models()
    pt_presets = {checkpoint: option for checkpoint, option in models.items() if checkpoint.endswith(".pt")}
    assert set(pt_presets) == {f"{LAION_HUB_REPO}/{file}" for file in LAION_FILES}
    measured_on_pt = 0
    for entry in catalog_references([CONF]):
        reference = entry.reference
        named = [file for file in LAION_FILES if file in reference.get("note", "")]
        if reference.get("unsupported") or reference["weights"] != "original" or not named:
            continue
        assert reference["checkpoint"] == f"{LAION_HUB_REPO}/{named[0]}", reference["id"]
        measured_on_pt += 1
    assert measured_on_pt == 2  # LAION's README: ESC-50 fold 1, fused and unfused


READ_AT = {  # each source repository at the commit its figures were read at: on its main branch, the figures current
    "embeddings-benchmark/results": "5b3fda73f26c7d6cb393215292ccedf072b19c74",  # "add all MAEB results (#413)"
    "LAION-AI/CLAP": "319cc38752db57fc59acb0b44b9591a20d9c5dff",  # the GTZAN figures on the usual test set
    "facebookresearch/perception_models": "3e352cca660658d4b5c90f42a7808b11469e4c66",
}


def test_every_figure_cites_its_repository_at_the_commit_it_was_read_at():
    """One commit per source repository, on its main branch: not a pull request's merge ref, not a commit the
    repository does not hold, not a README whose figure its authors later withdrew (GTZAN 0.73 before 319cc38)."""
    cited = {repository: 0 for repository in READ_AT}
    for entry in catalog_references([CONF]):
        source = entry.reference["source"]
        for repository, commit in READ_AT.items():
            if source.startswith(repository):
                assert re.findall(r"@ ([0-9a-f]{40})\b", source) == [commit], entry.reference["id"]
                cited[repository] += 1
    assert all(cited.values()), cited


def test_each_reproducible_figure_has_a_job_that_sets_its_dataset_checkpoint_and_protocol():
    """suite=reproduce sweeps conf/reference/: one file per figure zsa-eval can reproduce, none for the others, and
    each file chooses the figure's dataset, the model of its checkpoint, its folds and its prompts."""
    catalog = catalog_references([CONF])
    reproducible = {entry.reference["id"]: entry for entry in catalog if not entry.reference.get("unsupported")
                    and entry.reference.get("mteb_version") in (None, installed_mteb_version())}
    assert {path.stem for path in (CONF / "reference").glob("*.yaml")} == set(reproducible)
    assert all(entry.skip_reason is None for entry in reproducible.values())
    models = catalog_models()
    for reference_id, entry in reproducible.items():
        job = yaml.safe_load((CONF / "reference" / f"{reference_id}.yaml").read_text())
        assert job["defaults"] == [{"override /dataset": entry.dataset},
                                   {"override /model": models[entry.reference["checkpoint"]]}]
        assert job["reference"] == reference_id
        assert job["dataset"]["folds"] == entry.reference.get("folds")
        assert job["template"]["prompts"] == entry.reference["prompts"]
    suite = yaml.safe_load((CONF / "suite" / "reproduce.yaml").read_text())
    assert suite["hydra"]["sweeper"]["params"] == {"reference": "glob(*)"}


def test_the_committed_reproducibility_page_is_the_one_the_catalog_generates(tmp_path):
    """docs/reproducibility.md is generated from an empty results directory: every figure "not run"."""
    page = reproducibility_page(tmp_path, [CONF], "results")
    assert page == (REPO / "docs" / "reproducibility.md").read_text()
    assert page.count("| not run |") == len(catalog_references([CONF])) > 0


# --- the schema check ------------------------------------------------------------------------------------------------

MALFORMED = [
    ({"value": "abc"}, "dataset=tiny_refs reference r: value=abc is not valid: value takes a number"),
    ({"weights": "orig"}, "dataset=tiny_refs reference r: weights=orig is not valid: weights takes one of original, "
                          "conversion"),
    ({"valeu": 0.5}, "dataset=tiny_refs reference r: unknown key valeu: did you mean value? a reference takes id, "),
    ({"stderr": -0.1}, "dataset=tiny_refs reference r: stderr=-0.1 is not valid: stderr takes a number of at least 0"),
    ({"interval": [0.6, 0.4]}, "dataset=tiny_refs reference r: interval=[0.6,0.4] is not valid: interval takes "
                               "[low, high]"),
    ({"prompts": None}, "dataset=tiny_refs reference r: name the prompts it was measured with"),
]


@pytest.mark.parametrize("change, message", MALFORMED)
def test_a_malformed_reference_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, change, message):
    conf = write_dataset(tmp_path / "conf", [reference(**change)])
    code, stdout, stderr = run_cli(monkeypatch, capsys, "--config-dir", str(conf), "dataset=tiny_refs",
                                   "model=tiny_random", f"output_dir={tmp_path / 'run'}")
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith(f"zsa-eval: error: {message}"), stderr
    assert not (tmp_path / "run").exists()
    assert report_main(["reproducibility", str(tmp_path), "--config-dir", str(conf)]) == 2  # the page refuses it too
    assert capsys.readouterr().err.startswith(f"zsa-eval: error: {message}")


def test_missing_keys_and_twice_used_ids_are_named():
    without_value = {key: value for key, value in reference().items() if key != "value"}
    with pytest.raises(UserError, match=r"^dataset=d reference r has no value: add `value: \.\.\.`"):
        checked_references({"name": "d", "references": [without_value]})
    with pytest.raises(UserError, match="the id is used twice in dataset=d"):
        checked_references({"name": "d", "references": [reference(), reference()]})
    with pytest.raises(UserError, match="reference 1 is 5, not a mapping"):
        checked_references({"name": "d", "references": [5]})
    assert checked_references({"name": "d", "task": "retrieval", "references": [
        reference(prompts=None, metric="t2a_recall_at_1")]})[0]["prompts"] is None  # retrieval embeds no prompt


# --- protocols, differences, the gate, the leaderboard (no model) ----------------------------------------------------

def test_a_protocol_differs_by_folds_selections_limit_and_prompts():
    own = run_protocol({"folds": [2, 1]}, None, [PROMPT])
    assert protocol_differences(reference(folds=[1, 2]), own) == []
    assert protocol_differences(reference(), own) == ["all clips there, folds [1,2] here"]
    assert protocol_differences(reference(folds=[1, 2], prompts=["{}"]), run_protocol({"folds": [1, 2],
                                "subset": "esc10"}, 7, [PROMPT])) == [
        "subset=esc10 here", "limit=7 here", "prompts ['{}'] there, ['This is a sound of {}.'] here"]
    assert protocol_differences(reference(unsupported="another copy"), own) == [
        "zsa-eval cannot reproduce it: another copy"]


def test_a_protocol_differs_by_data_other_than_the_figures_own(tmp_path):
    """A dataset whose config names the data its figures counted (references_data): a run on another copy, or on
    another revision, is another protocol; hub_id@revision, or the hub id alone where no revision is pinned (a local
    folder has none: the loader reads it as it is)."""
    catalog = {"hub_id": "ashraq/esc50", "revision": "e3e2a63", "references_data": "ashraq/esc50@e3e2a63"}
    assert protocol_differences(reference(), run_protocol(catalog, None, [PROMPT])) == []
    for changed, here in (({"hub_id": "someone/esc50_copy"}, "someone/esc50_copy@e3e2a63"),
                          ({"hub_id": str(tmp_path)}, str(tmp_path)), ({"revision": None}, "ashraq/esc50")):
        assert protocol_differences(reference(), run_protocol(catalog | changed, None, [PROMPT])) == [
            f"the data of ashraq/esc50@e3e2a63 there, of {here} here (zsa-eval cannot tell that another copy holds "
            "the same clips)"]
    assert protocol_differences(reference(), run_protocol({"path": "/data/mine"}, None, [PROMPT])) == []  # not named


def test_run_references_keep_the_runs_checkpoint_and_metrics_with_difference_and_interval_flag():
    metrics = {"accuracy": 0.5, "accuracy_ci95": [0.375, 0.625], "macro_f1": 0.25}
    references = [reference(id="inside", value=0.625), reference(id="outside", value=0.75, folds=[1]),
                  reference(id="other checkpoint", checkpoint="other"), reference(id="unreported", metric="map"),
                  reference(id="no interval", metric="macro_f1", value=0.125)]
    rows = run_references(references, "ckpt", metrics, run_protocol({}, None, [PROMPT]))
    assert [row["id"] for row in rows] == ["inside", "outside", "no interval"]
    assert [row["difference"] for row in rows] == [-0.125, -0.25, 0.125]
    assert [row["inside_interval"] for row in rows] == [True, False, None]
    assert [row["same_protocol"] for row in rows] == [True, False, True]
    assert rows[1]["protocol_differences"] == ["folds [1] there, all clips here"]
    assert reference_lines({"references": rows})[0] == (
        "reference inside (all clips; original weights): accuracy published 0.6250, measured 0.5000 [0.3750, "
        "0.6250], difference -0.1250, published value inside the run's 95% interval; the same protocol")
    assert "outside the run's 95% interval; another protocol: folds [1] there, all clips here" in \
        reference_lines({"references": rows})[1]
    assert nearest_reference(rows, "accuracy")["id"] == "inside"  # the run's own protocol before a nearer value
    assert nearest_reference(rows[1:], "accuracy")["id"] == "outside" and nearest_reference(rows, "map") is None


def test_a_printed_figure_has_the_digits_to_read_its_verdict_off_the_line():
    """A published 0.01799 beside an interval from 0.018003 printed "published 0.0180 ... [0.0180, 0.0315] ...
    outside": the published value, and each bound it differs from, print apart; a value entered with more decimals
    than four prints all of them, and every number of the line takes the same decimals."""
    rows = run_references([reference(value=0.01799)], "ckpt", {"accuracy": 0.0245, "accuracy_ci95": [0.018003, 0.0315]},
                          run_protocol({}, None, [PROMPT]))
    assert "accuracy published 0.01799, measured 0.02450 [0.01800, 0.03150], difference +0.00651, published value " \
           "outside the run's 95% interval" in reference_lines({"references": rows})[0]
    for value, bound in ((0.5, 0.5000001), (0.25, 0.2499999999), (0.1, 0.1 + 2 ** -55), (0.375, 0.375)):
        row = {"value": value, "measured_ci95": [min(value, bound), max(value, bound)]}
        digits = figure_digits(row)
        assert (f"{value:.{digits}f}" == f"{bound:.{digits}f}") == (value == bound), (value, bound, digits)
    assert figure_digits({"value": 0.375, "measured_ci95": [0.375, 0.625]}) == 4  # an equal bound prints equal
    assert published_text(reference(value=0.744141)) == "0.744141"  # as entered, on the page too
    assert published_text(reference(value=0.9155, stderr=0.0062)) == "0.9155 ± 0.0062 (s.e.)"
    assert published_text(reference(value=0.5, interval=[0.49999, 0.6])) == "0.50000 [0.49999, 0.60000]"
    [six] = run_references([reference(value=0.744141)], "ckpt", {"accuracy": 0.75, "accuracy_ci95": [0.5, 0.875]},
                           run_protocol({}, None, [PROMPT]))
    assert "published 0.744141, measured 0.750000 [0.500000, 0.875000], difference +0.005859," in reference_line(six)


def test_the_reference_gate_bounds_only_figures_of_the_runs_protocol_at_max_drop():
    rows = run_references([reference(id="own", value=0.75), reference(id="other", value=1.0, folds=[1])], "ckpt",
                          {"accuracy": 0.5}, run_protocol({}, None, [PROMPT]))
    assert reference_failures(rows, max_drop=0.25) == []  # a drop equal to max_drop passes; "other" never counts
    assert reference_failures(rows, max_drop=0.125) == [
        "accuracy 0.5000 is 0.2500 below the published 0.7500 of reference own, more than gate.max_drop=0.125"]


FEW_SHOT = {"name": "few_shot", "shots": 1, "repeats": 2, "text_init": True}  # a probe run's protocol, as a figure


def test_figures_count_only_for_runs_of_the_protocol_they_were_measured_under():
    """A zero-shot figure is no figure of a probe run (not listed, not gated, not its leaderboard reference), and a
    probe figure counts only for probe runs with its settings."""
    zero_shot, probe = reference(id="zero-shot"), reference(id="probe", evaluation=FEW_SHOT, prompts=None)
    metrics = {"accuracy": 0.5, "accuracy_ci95": [0.25, 0.75]}
    few_shot_run = run_protocol({}, None, None, FEW_SHOT | {"seed": 0})
    rows = run_references([zero_shot, probe], "ckpt", metrics, few_shot_run)
    assert [(row["id"], row["same_protocol"]) for row in rows] == [("probe", True)]
    assert reference_failures(rows, 0.0) == []  # measured equals published
    assert reference_failures(run_references([probe | {"value": 0.75}], "ckpt", metrics, few_shot_run), 0.0) == [
        "accuracy 0.5000 is 0.2500 below the published 0.7500 of reference probe, more than gate.max_drop=0.0"]
    other_shots = run_protocol({}, None, None, FEW_SHOT | {"shots": 4})
    assert protocol_differences(probe, other_shots) == ["protocol.shots=1 there, 4 here"]
    headline = run_protocol({}, None, None, FEW_SHOT | {"classifier": "prototype"})  # a setting the figure leaves out
    assert protocol_differences(probe, headline) == ["protocol.classifier=auto there (the default), prototype here"]
    assert protocol_differences(zero_shot, few_shot_run) == [
        "a protocol=zeroshot figure there, a protocol=few_shot run here"]
    zero_shot_rows = run_references([zero_shot, probe], "ckpt", metrics, run_protocol({}, None, [PROMPT]))
    assert [row["id"] for row in zero_shot_rows] == ["zero-shot"]
    # rows written before figures declared their protocol read as zero-shot: never a probe run's reference
    old_row = {key: value for key, value in zero_shot_rows[0].items() if key != "evaluation"}
    assert nearest_reference([old_row], "accuracy", "few_shot") is None
    assert nearest_reference([old_row], "accuracy", None)["id"] == "zero-shot"


def test_a_figures_protocol_is_checked_like_the_runs():
    [checked] = checked_references({"name": "d", "references": [reference()]})
    assert checked["evaluation"] == {"name": "zeroshot"}
    with pytest.raises(UserError, match=r"^dataset=d reference r: evaluation.name=probe is not valid: evaluation.name "
                                        r"takes one of zeroshot, linear_probe, few_shot"):
        checked_references({"name": "d", "references": [reference(evaluation={"name": "probe"})]})
    with pytest.raises(UserError, match=r"^dataset=d reference r: evaluation.shots is not a setting of "
                                        r"protocol=linear_probe \(it takes split_fraction, seed, max_iter, c_grid, "):
        checked_references({"name": "d", "references": [reference(evaluation={"name": "linear_probe", "shots": 8})]})
    [probe] = checked_references({"name": "d", "references": [reference(prompts=None, evaluation=FEW_SHOT)]})
    assert probe["evaluation"] == FEW_SHOT  # a probe figure needs no prompts


def write_metrics(path: Path, references: list[dict], accuracy: float = 0.5) -> None:
    path.mkdir(parents=True)
    path.joinpath("metrics.json").write_text(json.dumps({
        "dataset": "d", "model": "m", "template": "t", "task": "classification", "n_evaluated": 4,
        "started_at": "2026-01-01T00:00:00", "finished_at": "2026-01-01T00:01:00", "status": "complete",
        "accuracy": accuracy, "accuracy_ci95": [0.25, 0.75], "identity": {"dataset": "d", "model": path.name},
        "references": run_references(references, "ckpt", {"accuracy": accuracy, "accuracy_ci95": [0.25, 0.75]},
                                     run_protocol({}, None, [PROMPT]))}))


def test_the_leaderboard_shows_the_nearest_published_figure_only_when_a_run_has_one(tmp_path):
    write_metrics(tmp_path / "with", [reference(id="far", value=0.875, folds=[1]), reference(id="near", value=0.625,
                                                                                            folds=[1])])
    write_metrics(tmp_path / "without", [])
    board = leaderboard(collect_runs(tmp_path))
    rows = board.set_index("run_dir")
    assert rows.loc["with", ["published_reference", "published", "published_difference"]].tolist() == [
        "near", 0.625, -0.125]
    assert pd.isna(rows.loc["without", "published"])
    assert re.search(r"\|\s*published \(difference; reference\)\s*\|", leaderboard_markdown(board))
    assert "0.6250 (-0.1250; near)" in leaderboard_markdown(board)
    plain = leaderboard(collect_runs(tmp_path / "without"))
    assert "published" not in plain and "published" not in leaderboard_markdown(plain)


def test_the_page_puts_each_figure_beside_the_latest_run_of_its_protocol(tmp_path):
    conf = write_dataset(tmp_path / "conf", [reference(id="measured", checkpoint="ckpt", value=0.625),
                                             reference(id="never", checkpoint="ckpt", folds=[3]),
                                             reference(id="elsewhere", unsupported="another copy")], name="d")
    write_job(conf, "measured", dataset="d")
    write_metrics(tmp_path / "results" / "run", [reference(id="measured", value=0.625)])
    assert report_main(["reproducibility", str(tmp_path / "results"), "--config-dir", str(conf), "--out",
                        str(tmp_path / "page.md")]) == 0
    page = (tmp_path / "page.md").read_text()
    assert "| measured | ckpt | accuracy | 0.6250 | 0.5000 [0.2500, 0.7500] | -0.1250 | yes | `run` | " \
           "`reference=measured` |" in page
    assert "| never | ckpt | accuracy | 0.5000 | not run |  |  |  | skipped |" in page
    assert "Skipped by suite=reproduce: no reference/never.yaml in the config directories to run it." in page
    assert "Skipped by suite=reproduce: zsa-eval cannot reproduce its protocol: another copy." in page
    assert "| esc50-mill-unfused | laion/clap-htsat-unfused | accuracy | 0.9155 ± 0.0062 (s.e.) | not run |" in page
    assert re.search(r"Built from `.*results`: 1 of \d+ published figures measured\.", page)


# --- runs on the tiny model (slow) -----------------------------------------------------------------------------------

def run_tiny(monkeypatch, capsys, conf: Path, out: Path, *arguments: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, "--config-dir", str(conf), "dataset=tiny_refs", "model=tiny_random",
                   f"results_dir={out.parent}", f"output_dir={out}", *arguments)


@pytest.mark.slow
def test_a_run_shows_its_figures_with_the_difference_and_the_interval_flag(monkeypatch, capsys, tmp_path,
                                                                          tiny_model_dir):
    checkpoint = str(tiny_model_dir)
    conf = write_dataset(tmp_path / "conf", [reference(id="above", checkpoint=checkpoint, value=1.0),
                                             reference(id="fold-one", checkpoint=checkpoint, value=1.0, folds=[1]),
                                             reference(id="other", checkpoint="laion/clap-htsat-unfused")])
    code, stdout, stderr = run_tiny(monkeypatch, capsys, conf, tmp_path / "results" / "first")
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "results" / "first" / "metrics.json").read_text())
    measured, (low, high) = metrics["accuracy"], metrics["accuracy_ci95"]
    assert [(row["id"], row["same_protocol"], row["inside_interval"]) for row in metrics["references"]] == [
        ("above", True, False), ("fold-one", False, False)]
    assert [row["difference"] for row in metrics["references"]] == [measured - 1.0] * 2
    summary, *lines = stdout.splitlines()
    assert summary.startswith(f"tiny_refs | tiny_random | auto: accuracy {measured:.4f} ")
    assert lines == reference_lines(metrics) and len(lines) == 2
    assert f"measured {measured:.4f} [{low:.4f}, {high:.4f}], difference {measured - 1.0:+.4f}, published value " \
           f"outside the run's 95% interval; the same protocol" in lines[0]
    assert lines[1].endswith("another protocol: folds [1] there, all clips here")

    middle = round((low + high) / 2, 4)  # a published value inside this run's interval, and a gate that it passes
    write_dataset(conf, [reference(id="middle", checkpoint=checkpoint, value=middle)])
    code, stdout, stderr = run_tiny(monkeypatch, capsys, conf, tmp_path / "results" / "second", "gate.reference=true",
                                    f"gate.max_drop={max(middle - measured, 0) + 0.01}")
    assert code == 0, stderr
    [line] = stdout.splitlines()[1:]
    assert f"difference {measured - middle:+.4f}, published value inside the run's 95% interval" in line
    board = pd.read_csv(tmp_path / "results" / "leaderboard.csv").set_index("run_dir")
    assert board.loc["second", "published_reference"] == "middle"
    assert board.loc["second", "published_difference"] == pytest.approx(measured - middle)


@pytest.mark.slow
def test_the_reference_gate_fails_a_run_below_its_protocols_figure(monkeypatch, capsys, tmp_path, tiny_model_dir):
    conf = write_dataset(tmp_path / "conf", [reference(id="own", checkpoint=str(tiny_model_dir), value=1.0),
                                             reference(id="fold-one", checkpoint=str(tiny_model_dir), value=0.0,
                                                       folds=[1])])
    code, stdout, stderr = run_tiny(monkeypatch, capsys, conf, tmp_path / "results" / "gated", "gate.reference=true")
    metrics = json.loads((tmp_path / "results" / "gated" / "metrics.json").read_text())
    drop = 1.0 - metrics["accuracy"]
    assert code == 3 and stdout.splitlines()[1:] == reference_lines(metrics)  # summary and figures first
    assert stderr == (f"zsa-eval: gate failed: accuracy {metrics['accuracy']:.4f} is {drop:.4f} below the published "
                      f"1.0000 of reference own, more than gate.max_drop=0.0 (results in "
                      f"{tmp_path / 'results' / 'gated'})\n")
    assert metrics["gate"]["passed"] is False
    code, _, stderr = run_tiny(monkeypatch, capsys, conf, tmp_path / "results" / "loose", "gate.reference=true",
                               f"gate.max_drop={drop}")
    assert code == 0, stderr  # a drop equal to max_drop passes


@pytest.mark.slow
def test_reference_choices_the_run_cannot_honour_are_one_line_before_any_work(monkeypatch, capsys, tmp_path,
                                                                             tiny_model_dir):
    conf = write_dataset(tmp_path / "conf", [reference(id="own", checkpoint=str(tiny_model_dir)),
                                             reference(id="wrong-metric", metric="t2a_recall_at_1")])
    code, _, stderr = run_tiny(monkeypatch, capsys, conf, tmp_path / "run")
    assert code == 2 and stderr == (
        "zsa-eval: error: dataset=tiny_refs reference wrong-metric: metric 't2a_recall_at_1' is not one this "
        "dataset's task reports (accuracy, top_k, top_k_accuracy, balanced_accuracy, macro_f1)\n")
    write_dataset(conf, [reference(id="own", checkpoint=str(tiny_model_dir)),
                         reference(id="theirs", checkpoint="laion/clap-htsat-unfused")])
    write_job(conf, "own")
    write_job(conf, "theirs")
    refusals = {
        ("reference=own", "dataset.folds=[1]"): "reference=own: this run does not follow its protocol (all clips "
                                                "there, folds [1] here); drop the overrides that change it",
        ("reference=own", "template=plain"): "reference=own prompts as its published figure did (['This is a sound "
                                             "of {}.']), so template=plain would not be used: drop template=plain",
        ("reference=theirs",): "reference=theirs was measured on laion/clap-htsat-unfused, but this run's model is "
                               f"{tiny_model_dir}; drop the model override",
        ("gate.reference=true", "limit=4"): f"gate.reference=true, but dataset=tiny_refs has no published figure for "
                                            f"{tiny_model_dir} under this run's protocol",
    }
    for arguments, message in refusals.items():
        code, _, stderr = run_tiny(monkeypatch, capsys, conf, tmp_path / "run", *arguments)
        assert code == 2 and message in stderr and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_probe_run_never_counts_as_a_zero_shot_figures_measurement(monkeypatch, capsys, tmp_path, tiny_model_dir):
    """reference= and gate.reference refuse a probe run of a zero-shot figure, naming the figure's protocol; a probe
    run lists only figures of its own protocol, and the reproducibility page and leaderboard take nothing else."""
    checkpoint = str(tiny_model_dir)
    conf = write_dataset(tmp_path / "conf", [reference(id="own", checkpoint=checkpoint, value=0.0),
                                             reference(id="probe", checkpoint=checkpoint, value=0.0, prompts=None,
                                                       evaluation={"name": "few_shot", "shots": 1, "repeats": 2,
                                                                   "text_init": True})])
    write_job(conf, "own")
    probe = ("protocol=few_shot", "protocol.shots=1", "protocol.repeats=2", "protocol.text_init=true")
    code, _, stderr = run_tiny(monkeypatch, capsys, conf, tmp_path / "results" / "refused", "reference=own", *probe)
    assert code == 2 and stderr == ("zsa-eval: error: reference=own: this run does not follow its protocol (a "
                                    "protocol=zeroshot figure there, a protocol=few_shot run here); drop the overrides "
                                    "that change it\n")
    code, _, stderr = run_tiny(monkeypatch, capsys, conf, tmp_path / "results" / "gated", "gate.reference=true",
                               *probe[:-1], "protocol.shots=2")
    assert code == 2 and "has no published figure for" in stderr and "(protocol=few_shot (" in stderr
    assert "probe (protocol.shots=1 there, 2 here; protocol.text_init=true there, false here)" in stderr
    code, stdout, stderr = run_tiny(monkeypatch, capsys, conf, tmp_path / "results" / "few", "gate.reference=true",
                                    "gate.max_drop=1", *probe)
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "results" / "few" / "metrics.json").read_text())
    assert [(row["id"], row["same_protocol"]) for row in metrics["references"]] == [("probe", True)]
    assert [line.split(" (")[0] for line in stdout.splitlines()[1:]] == ["reference probe"]
    board = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert board["published_reference"].tolist() == ["probe"]
    assert report_main(["reproducibility", str(tmp_path / "results"), "--config-dir", str(conf)]) == 0
    page = (tmp_path / "results" / "reproducibility.md").read_text()
    assert re.search(r"\| own \| .* \| not run \|", page) and "`few`" in page


@pytest.mark.slow
def test_suite_reproduce_lists_what_it_skips_then_runs_each_reference_job(monkeypatch, capsys, tmp_path,
                                                                         tiny_model_dir):
    conf = write_dataset(tmp_path / "conf", [reference(id="tiny-all", checkpoint=str(tiny_model_dir)),
                                             reference(id="tiny-fold-one", checkpoint=str(tiny_model_dir), folds=[1]),
                                             reference(id="tiny-elsewhere", unsupported="another copy")])
    write_job(conf, "tiny-all")
    results = tmp_path / "results"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "-m", "suite=reproduce", "reference=tiny-all",
                                   f"hydra.searchpath=[file://{conf}]", f"results_dir={results}")
    assert code == 0, stderr
    skipped = [entry for entry in catalog_references([CONF]) if entry.skip_reason]
    lines = stderr.splitlines()
    assert lines[0] == f"zsa-eval: suite: {len(skipped) + 2} published figures are not run:"
    assert any(line.startswith("  esc50-mteb-unfused (laion/clap-htsat-unfused, mteb_accuracy 0.8170): zsa-eval "
                               "cannot reproduce its protocol: MTEB's CLAP wrapper (mteb 1.38.33) zero-padded")
               for line in lines)
    assert f"  tiny-fold-one ({tiny_model_dir}, accuracy 0.5000): no reference/tiny-fold-one.yaml in the config " \
           "directories to run it" in lines
    assert "  tiny-elsewhere (ckpt, accuracy 0.5000): zsa-eval cannot reproduce its protocol: another copy" in lines
    assert "tiny_refs | tiny_random | tiny-all: accuracy " in stdout
    [metrics_file] = results.rglob("metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["config"]["reference"] == "tiny-all" and metrics["prompts"] == [PROMPT]
    assert [(row["id"], row["same_protocol"]) for row in metrics["references"]] == [
        ("tiny-all", True), ("tiny-fold-one", False)]
    assert report_main(["reproducibility", str(results), "--config-dir", str(conf)]) == 0
    page = (results / "reproducibility.md").read_text()
    assert f"| tiny-all | {tiny_model_dir} | accuracy | 0.5000 | {metrics['accuracy']:.4f} [" in page
