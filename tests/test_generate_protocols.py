"""Named generate protocols (template.answer_matching, conf/template/mill.yaml): Mill's instruction and answer
matching on hand-made answers, what a run of that protocol records, and the published figure that only such runs
follow (conf/dataset/esc50.yaml esc50-mill-qwen2-audio), on the tiny Qwen2-Audio twin."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from conftest import compose_config, run_cli
from zsa_eval.answers import Match, filled_instruction, match_answer, match_mill
from zsa_eval.data.items import candidate_labels
from zsa_eval.families.alm import AudioLanguageFamily
from zsa_eval.report.references import protocol_differences, run_protocol
from zsa_eval.tasks.classification import answer_counts
from zsa_eval.tasks.labels import template_protocol_warnings

CONF = Path(__file__).resolve().parent.parent / "conf"
MILL_LABELS = ["dog", "rain", "train", "hen", "chirping birds", "cat", "sea waves"]  # in class order


@pytest.mark.parametrize(("answer", "mill", "zsa"), [
    ("Dog", Match(0, "exact"), Match(0, "exact")),
    ("  chirping   Birds ", Match(4, "exact"), Match(4, "exact")),      # whitespace collapsed
    ("sea_waves", Match(6, "exact"), Match(6, "exact")),                 # underscores as spaces
    ("dog.", Match(0, "substring"), Match(0, "exact")),          # Mill keeps punctuation: "dog" inside
    ("It is a train.", Match(2, "substring"), Match(2, "fuzzy")),        # "rain" inside too: the longest wins
    ("When it rains", Match(1, "substring"), Match(None, "none")),       # substrings, not words: hen, rain
    ("cat and dog", Match(0, "substring"), Match(None, "none")),         # a tie of lengths: the first in class order
    ("dogs", Match(0, "substring"), Match(0, "fuzzy")),
    ("birds", Match(None, "none"), Match(None, "none")),
    ("", Match(None, "none"), Match(None, "none")),
])
def test_mills_matching_on_hand_made_answers_beside_zsas(answer, mill, zsa):
    assert match_mill(answer, MILL_LABELS) == mill
    assert match_answer(answer, MILL_LABELS) == zsa


def mill_reference() -> dict:
    reference, = [entry for entry in OmegaConf.to_container(OmegaConf.load(CONF / "dataset" / "esc50.yaml"))[
        "references"] if entry["id"] == "esc50-mill-qwen2-audio"]
    return reference


def test_mills_instruction_lists_esc50s_classes_in_its_order_as_its_source_writes_it():
    """haideraltahan/Mill mill/tasks/esc50/task.py: the text, then the class names with spaces, comma-separated in
    the dataset's target order, then a period; template=mill, the figure and its reference job ask the same."""
    settings = mill_reference()["settings"]
    classes = settings["dataset.classes"]
    instruction = compose_config("template=mill").template.instruction
    assert filled_instruction(instruction, candidate_labels(classes)) == (
        "Listen to the audio and identify the sound. Choose exactly one category from the list and answer with the "
        "category name only.\nCategories: dog, rooster, pig, cow, frog, cat, hen, insects, sheep, crow, rain, sea "
        "waves, crackling fire, crickets, chirping birds, water drops, wind, pouring water, toilet flush, "
        "thunderstorm, crying baby, sneezing, clapping, breathing, coughing, footsteps, laughing, brushing teeth, "
        "snoring, drinking sipping, door wood knock, mouse click, keyboard typing, door wood creaks, can opening, "
        "washing machine, vacuum cleaner, clock alarm, clock tick, glass breaking, helicopter, chainsaw, siren, car "
        "horn, engine, train, church bells, airplane, fireworks, hand saw.")
    job = yaml.safe_load((CONF / "reference" / "esc50-mill-qwen2-audio.yaml").read_text())
    assert job["template"]["instruction"] == settings["template.instruction"] == instruction
    assert job["template"]["answer_matching"] == settings["template.answer_matching"] == "mill"
    assert job["dataset"]["classes"] == classes and len(classes) == 50
    assert job["model"] == {"scoring": "generate", "max_new_tokens": settings["model.max_new_tokens"]}


def test_a_figure_of_a_generate_protocol_is_followed_only_by_runs_with_its_settings():
    reference = {"checkpoint": "ckpt", "prompts": ["{}"], "settings": {
        "model.scoring": "generate", "template.answer_matching": "mill", "dataset.classes": ["b", "a"]}}
    own = {"model.scoring": "generate", "template.answer_matching": "mill", "dataset.classes": ["b", "a"]}
    assert protocol_differences(reference, run_protocol({"classes": ["b", "a"]}, None, ["{}"]) | {
        "settings": own}) == []
    plain = {"model.scoring": "generate", "template.answer_matching": None, "dataset.classes": None}
    assert protocol_differences(reference, run_protocol({}, None, ["{}"]) | {"settings": plain}) == [
        "template.answer_matching=mill there, null here", "dataset.classes=[b,a] there, null here"]
    assert protocol_differences({"prompts": ["{}"]}, run_protocol({"classes": ["b", "a"]}, None, ["{}"])) == [
        "classes=[b,a] here"]  # a figure that names no class list: the run's own is a selection


def tiny_mill_dataset(conf: Path, checkpoint: str, esc50_folder: Path) -> None:
    """The ESC-50-layout folder as a dataset of a user's config directory, with Mill's figure for the tiny twin."""
    (conf / "dataset").mkdir(parents=True)
    figure = mill_reference() | {"checkpoint": checkpoint, "value": 0.5}
    figure["settings"] = figure["settings"] | {"dataset.classes": ["vacuum_cleaner", "dog", "chirping_birds"]}
    (conf / "dataset" / "mill_folder.yaml").write_text(yaml.safe_dump(
        {"defaults": ["esc50_folder", "_self_"], "name": "mill_folder", "path": str(esc50_folder),
         "references_data": str(esc50_folder), "references": [figure]}, sort_keys=False))


@pytest.mark.slow
def test_a_mill_run_records_its_protocol_and_alone_follows_mills_figure(tiny_alm_dirs, esc50_folder, tmp_path,
                                                                        monkeypatch, capsys):
    """The tiny twin answers as planned; template=mill matches the answers by Mill's rules and lists the classes in
    the order dataset.classes gives; its identity differs from plain generate's, and only it follows the figure."""
    monkeypatch.setattr(AudioLanguageFamily, "generate_answer", lambda self, inputs: "a dog or a vacuum cleaner")
    conf = tmp_path / "conf"
    tiny_mill_dataset(conf, str(tiny_alm_dirs["qwen2_audio"]), esc50_folder)
    common = ("--config-dir", str(conf), "dataset=mill_folder", "model=qwen2_audio_tiny_random",
              "model.scoring=generate")
    mill = ("template=mill", "model.max_new_tokens=32", "dataset.classes=[vacuum_cleaner,dog,chirping_birds]")
    for folder, arguments in (("mill", mill), ("plain", ())):
        code, _, stderr = run_cli(monkeypatch, capsys, *common, *arguments, f"output_dir={tmp_path / folder}")
        assert code == 0, stderr
    metrics = {folder: json.loads((tmp_path / folder / "metrics.json").read_text()) for folder in ("mill", "plain")}
    assert metrics["mill"]["answer_matching"] == metrics["mill"]["identity"]["answer_matching"] == "mill"
    assert metrics["plain"]["answer_matching"] == "zsa"
    assert metrics["mill"]["instruction"].endswith("\nCategories: {labels}.")
    assert metrics["mill"]["identity"] != metrics["plain"]["identity"]
    predictions = pd.read_csv(tmp_path / "mill" / "predictions.csv", keep_default_na=False)
    assert set(predictions["predicted_label"]) == {"vacuum_cleaner"}  # the longest name inside the answer
    assert set(pd.read_csv(tmp_path / "plain" / "predictions.csv", keep_default_na=False)["match"]) == {"none"}
    [mill_row], [plain_row] = metrics["mill"]["references"], metrics["plain"]["references"]
    assert mill_row["same_protocol"] and mill_row["protocol_differences"] == []
    assert not plain_row["same_protocol"] and plain_row["protocol_differences"] == [
        "model.max_new_tokens=32 there, 8 here", f"template.instruction={mill_row['settings']['template.instruction']}"
        f" there, {metrics['plain']['instruction']} here", "template.answer_matching=mill there, null here",
        "dataset.classes=[vacuum_cleaner,dog,chirping_birds] there, null here"]


@pytest.mark.parametrize(("overrides", "warned"), [
    ((), "template=mill is a generative protocol: model.scoring=likelihood asks its instruction but scores each "
         "label's likelihood, and its answer matching does not apply (model.scoring=generate runs the protocol)"),
    (("model.scoring=generate",), "template=mill generates answers of up to 32 new tokens, this run 8: its figures "
                                  "are not comparable (model.max_new_tokens=32)"),
    (("model.scoring=generate", "model.max_new_tokens=32"), None),
])
def test_a_run_of_mills_template_outside_mills_protocol_is_warned(overrides, warned):
    cfg = compose_config("dataset=synthetic", "model=qwen2_audio_tiny_random", "template=mill", *overrides)
    assert template_protocol_warnings(cfg) == ([warned] if warned else [])


def test_a_template_without_a_protocol_and_a_model_without_scoring_are_not_warned():
    assert template_protocol_warnings(compose_config("dataset=synthetic", "model=qwen2_audio_tiny_random")) == []
    assert template_protocol_warnings(compose_config("dataset=synthetic", "model=tiny_random", "template=mill")) == []


def test_mills_answers_are_counted_as_exact_substring_or_none():
    """metrics.json counts the ways the run's rules match: Mill's never fuzzily, zsa's never as a substring."""
    matches = pd.Series(["exact", "substring", "substring", "none"])
    assert answer_counts(matches, "mill")["answer_matches"] == {"exact": 1, "substring": 2, "none": 1}
    assert answer_counts(pd.Series(["fuzzy", "none"]), "zsa") == {
        "n_unmatched": 1, "unmatched_fraction": 0.5, "answer_matches": {"exact": 0, "fuzzy": 1, "none": 1}}
