"""MTEB's published figures under protocol=mteb: an MTEB result file's figure (`mteb_task`, `mteb_version`, `data`)
counts as the run's own protocol only for a protocol=mteb run of that mteb task, with that mteb version, on that
data; a zero-shot or probe run never counts as its measurement. The catalog's MTEB figures parse and cite their
result files. Metrics are built as metrics.json holds them (no model, no mteb run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from zsa_eval.config import checked_references
from zsa_eval.errors import UserError
from zsa_eval.report.references import (check_references, data_source, nearest_reference, protocol_differences,
                                        reference_line, references_of, run_checkpoint, run_protocol, run_references)
from zsa_eval.report.reproducibility import catalog_references

CONF = Path(__file__).resolve().parent.parent / "conf"
ESC50_MTEB = {"hub_id": "mteb/esc50", "revision": "31ea5347"}  # the copy mteb 2.26.24's ESC50 tasks read
ESC50_CATALOG = {"hub_id": "ashraq/esc50", "revision": "e3e2a63", "references_data": "ashraq/esc50@e3e2a63"}


def figure(**fields) -> dict:
    """A checked MTEB figure: ESC50's probe accuracy, measured with mteb 2.26.24 on mteb/esc50@31ea5347."""
    entry = {"id": "probe", "checkpoint": "ckpt", "metric": "mteb_accuracy", "value": 0.5, "protocol": "mteb's ESC50",
             "source": "a test", "weights": "original", "mteb_task": "ESC50", "mteb_version": "2.26.24",
             "data": "mteb/esc50@31ea5347"} | fields
    [checked] = checked_references({"name": "d", "references": [entry]})
    return checked


def mteb_metrics(task: str = "ESC50", version: str = "2.26.24", accuracy: float = 0.625) -> dict:
    """A protocol=mteb run's task metrics: mteb's scores under their mteb names (mteb_<name>), the task and the
    version that ran."""
    return {"mteb_accuracy": accuracy, "mteb_f1": 0.5, "mteb_main_score": "accuracy", "mteb_task": task,
            "mteb_version": version}


MTEB_RUN = {"name": "mteb"}  # protocol=mteb as a run's protocol config gives it (the task resolved at run time)


def test_an_mteb_figure_is_the_runs_own_only_for_protocol_mteb_of_its_task_version_and_data():
    figures = [figure(), figure(id="zero-shot", mteb_task="ESC50_Zeroshot"), figure(id="old", mteb_version="1.38.33"),
               figure(id="elsewhere", data="mteb/esc50@0877d370")]
    rows = run_references(figures, "ckpt", mteb_metrics(), run_protocol(ESC50_MTEB, None, None, MTEB_RUN))
    assert [(row["id"], row["same_protocol"]) for row in rows] == [("probe", True), ("old", False),
                                                                    ("elsewhere", False)]  # ESC50_Zeroshot: left out
    assert rows[0]["difference"] == pytest.approx(0.125)
    assert rows[1]["protocol_differences"] == ["mteb 1.38.33 there, 2.26.24 here (a version may define its tasks "
                                               "otherwise)"]
    assert rows[2]["protocol_differences"] == ["the data of mteb/esc50@0877d370 there, of mteb/esc50@31ea5347 here "
                                               "(zsa-eval cannot tell that another copy holds the same clips)"]
    assert nearest_reference(rows, "mteb_accuracy", "mteb")["id"] == "probe"
    zero_shot_task = run_references(figures, "ckpt", mteb_metrics("ESC50_Zeroshot"),
                                    run_protocol(ESC50_MTEB, None, None, MTEB_RUN))
    assert [(row["id"], row["same_protocol"]) for row in zero_shot_task] == [("zero-shot", True)]


def test_an_mteb_run_on_another_revision_is_told_so_in_one_line():
    """The catalog's ESC50_Zeroshot figures: mteb 1.38.33 on ashraq/esc50@e3e2a63; mteb 2.26.24 reads mteb/esc50."""
    published = figure(id="esc50-zero-shot", mteb_task="ESC50_Zeroshot", mteb_version="1.38.33",
                       data="ashraq/esc50@e3e2a63")
    [row] = run_references([published], "ckpt", mteb_metrics("ESC50_Zeroshot"),
                           run_protocol(ESC50_MTEB, None, None, MTEB_RUN))
    line = reference_line(row)
    assert "\n" not in line and line.endswith(
        "another protocol: mteb 1.38.33 there, 2.26.24 here (a version may define its tasks otherwise); the data of "
        "ashraq/esc50@e3e2a63 there, of mteb/esc50@31ea5347 here (zsa-eval cannot tell that another copy holds the "
        "same clips)")
    on_catalog_data = run_references([published], "ckpt", mteb_metrics("ESC50_Zeroshot", "1.38.33"),
                                     run_protocol(ESC50_CATALOG, None, None, MTEB_RUN))
    assert [row["same_protocol"] for row in on_catalog_data] == [True]


def test_a_zero_shot_or_probe_run_never_counts_as_an_mteb_figures_measurement():
    published = figure(mteb_task="ESC50_Zeroshot", data="ashraq/esc50@e3e2a63")
    zero_shot = run_protocol(ESC50_CATALOG, None, ["This is a sound of {}."])
    metrics = {"accuracy": 0.5, "accuracy_ci95": [0.25, 0.75], "mteb_accuracy": 0.5}  # even a key of its name
    assert run_references([published], "ckpt", metrics, zero_shot) == []
    assert run_references([published], "ckpt", metrics, run_protocol(ESC50_CATALOG, None, None,
                                                                      {"name": "linear_probe", "seed": 0})) == []
    assert protocol_differences(published, zero_shot) == [
        "a protocol=mteb (mteb_task=ESC50_Zeroshot, mteb_version=2.26.24) figure there, a protocol=zeroshot run here"]
    row = run_references([published], "ckpt", mteb_metrics("ESC50_Zeroshot"),
                         run_protocol(ESC50_CATALOG, None, None, MTEB_RUN))
    assert nearest_reference(row, "mteb_accuracy", None) is None  # a zero-shot run's leaderboard row never takes it


def test_an_mteb_run_whose_metrics_name_no_task_is_told_which_the_figure_needs():
    [row] = run_references([figure()], "ckpt", {"mteb_accuracy": 0.5}, run_protocol(ESC50_MTEB, None, None,
                                                                                MTEB_RUN | {"mteb_version": "2.26.24"}))
    assert row["protocol_differences"] == ["mteb task ESC50 there, none named (protocol.mteb_task) here"]


MALFORMED = [
    ({"mteb_version": None}, "dataset=d reference probe has mteb_task but no mteb_version: add `mteb_version: ...`"),
    ({"data": None}, "dataset=d reference probe has mteb_task but no data: add `data: ...` (the Hub copy and "
                     "revision its result file names, as hub_id@revision)"),
    ({"mteb_task": None}, "dataset=d reference probe has mteb_version but no mteb_task"),
    ({"evaluation": {"name": "zeroshot"}}, "dataset=d reference probe: an mteb figure's protocol is its mteb_task and "
                                           "mteb_version: drop its evaluation"),
]


@pytest.mark.parametrize("change, message", MALFORMED)
def test_an_mteb_figure_names_its_task_version_and_data_or_is_one_line(change, message):
    with pytest.raises(UserError, match=f"^{re.escape(message)}"):
        figure(**change)


def test_its_metric_is_mteb_s_score_name_not_the_datasets_tasks():
    """A multi-label dataset's MTEB figure of mteb's subset accuracy beside a zero-shot figure of mAP: a zero-shot run
    checks the zero-shot figure's metric against its task's, a protocol=mteb run (whose mteb scores are named only
    when mteb runs) checks neither."""
    zero_shot = {"id": "zs", "checkpoint": "ckpt", "metric": "map", "value": 0.5, "protocol": "all clips",
                 "prompts": ["{}"], "source": "a test", "weights": "original"}
    cfg = OmegaConf.create({
        "dataset": {"name": "d", "task": "multilabel", "hub_id": "mteb/fsd50k_mini", "revision": "a574eeb1",
                    "references": [figure(mteb_task="FSD50K", data="mteb/fsd50k_mini@a574eeb1"),
                                   *checked_references({"name": "d", "references": [zero_shot]})]},
        "model": {"name_or_path": "ckpt"}, "protocol": {"name": "zeroshot", "folder": "auto"}, "reference": None,
        "gate": {"reference": False}})
    assert check_references(cfg, ["{}"], ["map", "lrap"], None)["evaluation"] == {"name": "zeroshot"}
    with pytest.raises(UserError, match="reference zs: metric 'map' is not one this dataset's task reports"):
        check_references(cfg, ["{}"], ["lrap"], None)
    cfg.protocol = {"name": "mteb", "folder": "mteb", "mteb_task": None}
    assert check_references(cfg, None, [], None)["evaluation"]["name"] == "mteb"


def test_ms_clap_figures_are_found_by_the_weights_file_a_run_reads():
    """microsoft/msclap holds 2022's and 2023's weights: a figure of one is no figure of the other."""
    runs = {year: run_checkpoint({"name_or_path": "microsoft/msclap", "weights_file": f"CLAP_weights_{year}.pth"})
            for year in (2022, 2023)}
    assert runs[2023] == "microsoft/msclap/CLAP_weights_2023.pth"
    assert run_checkpoint({"name_or_path": "laion/clap-htsat-unfused"}) == "laion/clap-htsat-unfused"
    published = figure(checkpoint=runs[2023])
    protocol = run_protocol(ESC50_MTEB, None, None, MTEB_RUN)
    assert [row["id"] for row in run_references([published], runs[2023], mteb_metrics(), protocol)] == ["probe"]
    assert run_references([published], runs[2022], mteb_metrics(), protocol) == []


# --- the catalog's MTEB figures --------------------------------------------------------------------------------------

RESULTS = "embeddings-benchmark/results"
RESULT_FILE = re.compile(r"results/(?P<model>[^/ ]+)/(?P<revision>[0-9a-f]{40}|no_revision)/(?P<task>[^/ ]+)\.json")


def mteb_figures() -> list[dict]:
    return [entry.reference for entry in catalog_references([CONF]) if entry.reference.get("mteb_task")]


def test_every_catalog_mteb_figure_cites_the_result_file_of_its_task_checkpoint_and_version():
    figures = mteb_figures()
    assert {reference["mteb_task"] for reference in figures} >= {
        "ESC50", "UrbanSound8k", "GTZANGenre", "VocalSound", "NSynth", "SpeechCommands", "CREMA_D", "FSD50K",
        "ESC50_Zeroshot"}
    for reference in figures:
        if not reference["source"].startswith(RESULTS):
            continue  # a pull request's description (esc50-mteb-pr3580-larger-music-speech)
        found = RESULT_FILE.search(reference["source"])
        assert found and found["task"] == reference["mteb_task"], reference["id"]
        assert found["model"].replace("__", "/", 1) in reference["checkpoint"].replace("/CLAP_weights_", "-")
        assert re.search(rf"mteb {re.escape(reference['mteb_version'])}\b", reference["source"]), reference["id"]
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", reference["data"]), reference["id"]
        assert 0 <= reference["value"] <= 1 and reference["evaluation"]["name"] == "mteb"
        assert reference["metric"].startswith("mteb_"), reference["id"]  # as a protocol=mteb run's metrics name it
    cited = [entry.reference for entry in catalog_references([CONF]) if entry.reference["source"].startswith(RESULTS)]
    assert cited and all(reference.get("mteb_task") for reference in cited)  # every MTEB result file's figure
    assert not [reference["id"] for reference in figures if reference["checkpoint"] == "laion/larger_clap_music"]


@pytest.mark.slow
def test_every_catalog_mteb_figure_names_a_task_mteb_knows():
    from zsa_eval.integrations import import_mteb

    mteb = import_mteb("the MTEB figures' test")
    for reference in mteb_figures():
        assert mteb.get_task(reference["mteb_task"]).metadata.name == reference["mteb_task"]


def test_a_dataset_mteb_run_takes_the_catalogs_figures_of_its_mteb_task():
    """dataset=mteb dataset.task_name=ESC50_Zeroshot has no references of its own: the catalog's ESC50_Zeroshot
    figures are its, whichever dataset config holds them."""
    figures = references_of(OmegaConf.create({"dataset": {"task_name": "ESC50_Zeroshot", "path": None}}))
    assert {reference["id"] for reference in figures} == {
        "esc50-mteb-unfused", "esc50-mteb-fused", "esc50-mteb-larger-general", "esc50-mteb-larger-music-speech",
        "esc50-mteb-pr3580-larger-music-speech"}
    assert references_of(OmegaConf.create({"dataset": {"task_name": "NoSuchTask", "path": None}})) == []
    assert data_source({"task_name": "ESC50_Zeroshot", "path": "/copies/esc50"}) == "/copies/esc50"  # a local copy


@pytest.mark.slow
def test_a_dataset_mteb_runs_data_is_the_copy_its_mteb_task_pins():
    assert data_source({"task_name": "ESC50_Zeroshot", "path": None}) == \
        "mteb/esc50@31ea534771aaf92c116698355e5cdc2ffda4bb6d"


@pytest.mark.slow
def test_a_protocol_mteb_run_measures_its_tasks_figure_and_a_zero_shot_run_does_not(esc50_folder, tiny_model_dir,
                                                                                  tmp_path, monkeypatch, capsys):
    """End to end on the tiny model: the same dataset config holds an mteb figure (ESC50_Zeroshot, the installed
    mteb, this folder's clips) and a zero-shot one; each run lists, and measures, only its own protocol's."""
    import yaml

    from conftest import run_cli
    from zsa_eval.report.references import installed_mteb_version

    own = {"checkpoint": str(tiny_model_dir), "value": 0.5, "protocol": "all clips", "source": "a test",
           "weights": "original"}
    (tmp_path / "conf" / "dataset").mkdir(parents=True)
    (tmp_path / "conf" / "dataset" / "mine.yaml").write_text(yaml.safe_dump({
        "defaults": ["esc50_folder", "_self_"], "name": "mine", "path": str(esc50_folder), "references": [
            own | {"id": "mteb-figure", "metric": "mteb_accuracy", "mteb_task": "ESC50_Zeroshot",
                   "mteb_version": installed_mteb_version(), "data": str(esc50_folder)},
            own | {"id": "zero-shot-figure", "metric": "accuracy", "prompts": ["This is a sound of {}."]}]}))
    runs = {"mteb": ("protocol=mteb", "protocol.mteb_task=ESC50_Zeroshot"), "zeroshot": ("template=auto",)}
    for name, overrides in runs.items():
        code, stdout, stderr = run_cli(monkeypatch, capsys, "--config-dir", str(tmp_path / "conf"), "dataset=mine",
                                       "model=tiny_random", f"output_dir={tmp_path / name}", *overrides)
        assert code == 0, stderr
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        [row] = metrics["references"]
        assert (row["id"], row["same_protocol"]) == ({"mteb": "mteb-figure", "zeroshot": "zero-shot-figure"}[name],
                                                     True)
        assert row["measured"] == metrics[row["metric"]] and stdout.splitlines()[1].startswith(f"reference {row['id']}")
