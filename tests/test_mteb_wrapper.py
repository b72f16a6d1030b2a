"""zsa_eval.integrations.mteb: a zsa-eval model inside mteb gives mteb the embeddings zsa-eval gives (its engine and
cache), on an mteb task whose dataset is injected from local files (no Hub)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import count_encoded_clips
from zsa_eval.api import evaluate
from zsa_eval.errors import UserError
from zsa_eval.families import ModelSpec

mteb = pytest.importorskip("mteb")

from zsa_eval.integrations.mteb import ZsaEvalModel  # noqa: E402  (needs mteb)


def esc50_task(folder: Path, name: str):
    """mteb's task `name` with its dataset filled from an ESC-50-layout folder, as AbsTask.load_data would fill it."""
    from datasets import Audio, Dataset, DatasetDict

    table = pd.read_csv(folder / "meta" / "esc50.csv")
    task = mteb.get_task(name)
    rows = {"audio": [str(folder / "audio" / filename) for filename in table["filename"]],
            "target": table["target"].tolist()}
    task.dataset = DatasetDict({split: Dataset.from_dict(rows).cast_column("audio", Audio())
                                for split in task.metadata.eval_splits})
    task.data_loaded = True
    return task


def mteb_audio_loader(task):
    """The DataLoader mteb's evaluators give a model for the task's audio column."""
    from mteb._create_dataloaders import create_dataloader

    return create_dataloader(task.dataset["train"], task_metadata=task.metadata, input_column="audio", batch_size=4)


def captured_encodings(model: ZsaEvalModel, monkeypatch) -> list[np.ndarray]:
    """What the wrapper returns to mteb, call by call."""
    returned, encode = [], model.encode

    def recording(*args, **kwargs):
        returned.append(encode(*args, **kwargs))
        return returned[-1]
    monkeypatch.setattr(model, "encode", recording)
    return returned


def zsa_eval_embeddings(run) -> dict[str, np.ndarray]:
    """A run's saved audio embeddings by file name."""
    items = pd.read_csv(run.run_dir / "embeddings" / "audio_items.csv", dtype=str)
    paths = run.predictions.set_index("item_id")["path"]
    return dict(zip(items["item_id"].map(lambda item: Path(paths[item]).name),
                    np.load(run.run_dir / "embeddings" / "audio.npy")))


@pytest.fixture(scope="module")
def zsa_eval_run(esc50_folder, tiny_model_dir, tmp_path_factory):
    """zsa-eval's own zero-shot run of the tiny CLAP on the folder, its embeddings saved."""
    output = tmp_path_factory.mktemp("zsa_eval_run")
    return evaluate(dataset="esc50_folder", model="tiny_random",
                    overrides=[f"dataset.path={esc50_folder}", "save_embeddings=true", f"output_dir={output}",
                               "progress=false", "cache=false"])


@pytest.mark.slow
def test_a_zsa_eval_model_gives_mteb_the_embeddings_zsa_eval_gives(zsa_eval_run, esc50_folder, tmp_path, monkeypatch):
    model = ZsaEvalModel.from_config("tiny_random", [f"cache_dir={tmp_path}"])
    returned = captured_encodings(model, monkeypatch)
    task = esc50_task(esc50_folder, "ESC50_Zeroshot")
    result = mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False)
    texts, audio = returned
    ours = zsa_eval_embeddings(zsa_eval_run)
    filenames = pd.read_csv(esc50_folder / "meta" / "esc50.csv")["filename"]  # the task's rows, in order
    expected = np.stack([ours[filename] for filename in filenames])
    assert audio.shape == expected.shape and np.abs(audio - expected).max() <= 1e-6
    labels = task.get_candidate_labels()
    assert np.abs(texts - model.loaded.family.embed_texts(labels).numpy()).max() <= 1e-6
    predicted = (audio @ texts.T).argmax(axis=1)  # tiny_random is CLAP: cosine of normalised embeddings
    assert result.task_results[0].scores["train"][0]["accuracy"] == pytest.approx(
        float(np.mean(predicted == task.dataset["train"]["target"])))


@pytest.mark.slow
def test_mteb_runs_reuse_zsa_evals_embedding_cache(esc50_folder, tmp_path, monkeypatch):
    encoded = []
    for run in ("first", "again"):
        model = ZsaEvalModel.from_config("tiny_random", [f"cache_dir={tmp_path}"])
        encoded.append(count_encoded_clips(monkeypatch, model.loaded.model))
        mteb.evaluate(model, tasks=[esc50_task(esc50_folder, "ESC50_Zeroshot")], cache=None,
                      show_progress_bar=False)
    assert sum(encoded[0]) == 12 and encoded[1] == []


def test_an_audio_encoder_plugin_is_an_audio_model_in_mteb(esc50_folder, monkeypatch):
    import plugin_families  # noqa: F401  (puts the example plugin, toy_family, on sys.path)
    from toy_family import ToyEncoderFamily

    family = ToyEncoderFamily.load(ModelSpec("toy_encoder", None, torch.device("cpu"), torch.float32))
    model = ZsaEvalModel.from_config(family, ["cache=false"])
    assert model.mteb_model_meta.modalities == ["audio"] and model.mteb_model_meta.name == "zsa-eval/toy_encoder"
    assert model.mteb_model_meta.revision == family.weight_fingerprint
    task = esc50_task(esc50_folder, "ESC50_Zeroshot")
    with pytest.raises(ValueError, match=r"supports \['audio'\], but none overlap"):  # mteb reads the modalities
        mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False)
    from mteb._create_dataloaders import _create_dataloader_from_texts

    with pytest.raises(UserError, match="is an audio encoder .* with no text tower"):
        model.encode(_create_dataloader_from_texts(["a dog"]), task_metadata=task.metadata, hf_split="train",
                     hf_subset="default")
    audio = model.encode(mteb_audio_loader(task), task_metadata=task.metadata, hf_split="train",
                         hf_subset="default")
    assert audio.shape == (12, 32) and np.allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-5)
