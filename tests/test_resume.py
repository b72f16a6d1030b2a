"""Resume at the unit level, in-process: finished items are kept and never re-scored; a changed dataset or a
setting that changes results is refused; settings that cannot change results are allowed."""

import json
from contextlib import ExitStack

import numpy as np
import pytest
from omegaconf import OmegaConf
from transformers import ClapModel

from conftest import compose_config, count_encoded_clips
from zsa_eval.distributed import Ranks
from zsa_eval.errors import UserError
from zsa_eval.store import ProgressLog, changed_keys, open_run_dir
from zsa_eval.processing import check_and_compact, open_run
from zsa_eval.run import run, run_identity

RUN_SPECIFIC = {"started_at", "finished_at", "scoring_s", "elapsed_s", "encoded_clips_per_s", "resumed_items",
                "cache_hits"}


def record(index: int, item_id: str) -> dict:
    return {"index": index, "item_id": item_id, "probabilities": [0.25, 0.75]}


@pytest.mark.slow
def test_resume_scores_only_the_items_not_finished(tiny_model_dir, esc50_folder, tmp_path, monkeypatch):
    out = tmp_path / "run"
    overrides = ["dataset=esc50_folder", f"dataset.path={esc50_folder}", "model=tiny_random", "cache=false",
                 "batch_size=2", f"output_dir={out}"]
    complete = run(compose_config(*overrides))
    predictions = (out / "predictions.csv").read_bytes()
    log = out / "progress.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    assert len(lines) == complete["n_items"] == 12
    # three whole batches and a line torn by a kill (the log grows a batch at a time: resumed batches then hold
    # the same clips as before, so the scores are equal to the last bit)
    log.write_text("".join(lines[:6]) + lines[6][:40])
    for name in ("metrics.json", "predictions.csv"):
        (out / name).unlink()
    encoded = count_encoded_clips(monkeypatch, ClapModel)
    resumed = run(compose_config(*overrides, "resume=true"))
    assert sum(encoded) == 12 - 6
    assert resumed["resumed_items"] == 6
    assert (out / "predictions.csv").read_bytes() == predictions
    assert {k: v for k, v in resumed.items() if k not in RUN_SPECIFIC} == {
        k: v for k, v in complete.items() if k not in RUN_SPECIFIC} | {"config": resumed["config"]}
    assert resumed["config"] == complete["config"] | {"resume": True}
    encoded.clear()
    run(compose_config(*overrides, "resume=true"))  # a finished run re-finishes without scoring anything
    assert encoded == []


def test_open_run_returns_the_finished_positions(tmp_path):
    identity = {"seed": 0}
    open_run_dir(tmp_path, identity, resume=False, overwrite=False)
    ProgressLog(tmp_path).append([record(0, "a.wav"), record(2, "c.wav")])
    assert sorted(path.name for path in tmp_path.iterdir()) == [".zsa-eval-files", "progress.jsonl", "run.json"]
    cfg = OmegaConf.create({"resume": True, "overwrite": False})
    assert open_run(tmp_path, identity, cfg, ["a.wav", "b.wav", "c.wav"], Ranks(), ExitStack()) == {0, 2}


def test_a_run_keeping_embeddings_redoes_items_whose_embedding_is_gone(tmp_path):
    from zsa_eval.store.embeddings import store_embedding_part

    identity = {"seed": 0}
    open_run_dir(tmp_path, identity, resume=False, overwrite=False)
    ProgressLog(tmp_path).append([record(0, "a.wav"), record(2, "c.wav"),
                                  {"index": 1, "item_id": "b.wav", "reason": "undecodable audio", "detail": "x"}])
    store_embedding_part(tmp_path, [2], [np.ones(4)])  # a.wav's part was removed (a finished run removes them all)
    cfg = OmegaConf.create({"resume": True, "overwrite": False})
    items = ["a.wav", "b.wav", "c.wav"]
    assert open_run(tmp_path, identity, cfg, items, Ranks(), ExitStack(), keeps_embeddings=True) == {1, 2}  # a skip stays done
    assert open_run(tmp_path, identity, cfg, items, Ranks(), ExitStack()) == {0, 1, 2}


@pytest.mark.parametrize("item_ids", [["a.wav", "b.wav", "x.wav"], ["c.wav", "b.wav", "a.wav"], ["a.wav", "b.wav"]])
def test_a_changed_dataset_is_refused(tmp_path, item_ids):
    """A finished item renamed, the order changed, an item gone: the log's positions name other clips."""
    identity = {"seed": 0}
    open_run_dir(tmp_path, identity, resume=False, overwrite=False)
    ProgressLog(tmp_path).append([record(0, "a.wav"), record(2, "c.wav")])
    cfg = OmegaConf.create({"resume": True, "overwrite": False})
    with pytest.raises(UserError, match="the dataset changed since the interrupted run .*use overwrite=true"):
        open_run(tmp_path, identity, cfg, item_ids, Ranks(), ExitStack())


def test_compacting_merges_parts_and_drops_a_torn_tail(tmp_path):
    ProgressLog(tmp_path, ".rank0").append([record(0, "a.wav")])
    ProgressLog(tmp_path, ".rank1").append([record(1, "b.wav")])
    with open(tmp_path / "progress.rank1.jsonl", "a") as file:
        file.write('{"index": 2, "item_')
    check_and_compact(ProgressLog(tmp_path), ["a.wav", "b.wav", "c.wav"])
    assert sorted(path.name for path in tmp_path.iterdir()) == [".zsa-eval-files", "progress.jsonl"]
    assert [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()] == [
        record(0, "a.wav"), record(1, "b.wav")]


BASE = ["dataset=synthetic", "model=tiny_random", "output_dir=/runs/one"]


def identity_of(*overrides: str) -> dict:
    return run_identity(OmegaConf.to_container(compose_config(*BASE, *overrides), resolve=True))


@pytest.mark.parametrize("override, changed", [
    ("seed=1", "seed"),
    ("template=plain", "template.name, template.prompts"),
    ("template.prompts=['A recording of {}.']", "template.prompts"),
    ("model=clap", "model."),
    ("model.name_or_path=/other/model", "model.name_or_path"),
    ("limit=10", "limit"),
    ("limit_mode=first", "limit_mode"),
    ("precision=bf16", "precision"),
    ("engine=pipeline", "engine"),
    ("dataset.classes=[clicks,low_hum]", "dataset.classes"),
    ("long_audio=windows", "long_audio."),
])
def test_a_setting_that_changes_results_is_refused(tmp_path, override, changed):
    open_run_dir(tmp_path, identity_of(), resume=False, overwrite=False)
    with pytest.raises(UserError, match=rf"holds a run of another config \(differs in: {changed}"):
        open_run_dir(tmp_path, identity_of(override), resume=True, overwrite=False)


@pytest.mark.parametrize("override", ["batch_size=3", "num_workers=2", "cache=false", "progress=true", "save_embeddings=true",
                                      "max_skip_fraction=0.5", "on_error=raise", "gate.min_accuracy=0.5",
                                      "output_dir=/runs/moved"])
def test_a_setting_that_cannot_change_results_is_allowed(tmp_path, override):
    open_run_dir(tmp_path, identity_of(), resume=False, overwrite=False)
    assert identity_of(override) == identity_of()
    open_run_dir(tmp_path, identity_of(override), resume=True, overwrite=False)
    assert json.loads((tmp_path / "run.json").read_text()) == identity_of()


def test_run_dir_is_created_with_its_parents_and_an_unwritable_one_names_the_fix(tmp_path):
    open_run_dir(tmp_path / "a" / "b" / "run", {"seed": 0}, resume=False, overwrite=False)
    assert json.loads((tmp_path / "a" / "b" / "run" / "run.json").read_text()) == {"seed": 0}
    (tmp_path / "blocker").write_text("")
    with pytest.raises(UserError) as error:
        open_run_dir(tmp_path / "blocker" / "run", {}, resume=False, overwrite=False)
    assert str(error.value) == (f"cannot write to output_dir {str(tmp_path / 'blocker' / 'run')!r} (Not a directory); "
                                "choose a writable output_dir=...")


def test_changed_keys_names_added_removed_and_retyped_settings():
    assert changed_keys({"a": 1, "n": {"x": 1, "y": 2}}, {"a": 1, "n": {"x": 1, "y": 3}}) == ["n.y"]
    assert changed_keys({"a": 1}, {"a": 1, "b": 2}) == ["b"]
    assert changed_keys({"a": 1, "b": 2}, {"a": 1}) == ["b"]
    assert changed_keys({"n": {"x": 1}}, {"n": 3}) == ["n"]
    assert changed_keys({"n": 3}, {"n": {"x": 1}}) == ["n"]
