import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import noise, tone, unset_offline_variables
from zsa_eval.engine import score_clips, text_embeddings
from zsa_eval.errors import UserError
from zsa_eval.models import ensure_random_model, load_model, resolve_device, resolve_dtype
from zsa_eval.random_models import train_tokenizer


def test_trained_tokenizer_gives_distinct_ids_with_roberta_framing():
    tokenizer = train_tokenizer()
    first, second = tokenizer(["a dog barking", "heavy rain on a roof"])["input_ids"]
    assert first != second
    assert first[0] == second[0] == tokenizer.bos_token_id
    assert first[-1] == second[-1] == tokenizer.eos_token_id
    assert len(set(first[1:-1])) > 1


def test_tiny_model_text_embeddings_differ_across_labels(tiny_model):
    embeddings = text_embeddings(tiny_model, ["dog", "rain", "chirping birds"], ["This is a sound of {}."])
    assert embeddings.shape == (3, 16)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(3))
    similarity = embeddings @ embeddings.T
    assert (similarity - torch.eye(3)).abs().max() < 0.9999  # no two labels share an embedding


def test_ensemble_is_the_renormalized_mean_of_prompt_embeddings(tiny_model):
    labels = ["dog", "rain"]
    prompts = ["This is a sound of {}.", "{}"]
    single = [text_embeddings(tiny_model, labels, [prompt]) for prompt in prompts]
    expected = torch.nn.functional.normalize(single[0] + single[1], dim=-1)
    torch.testing.assert_close(text_embeddings(tiny_model, labels, prompts), expected)


def test_device_and_precision_mistakes():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")
        with pytest.raises(UserError, match="precision=fp16 needs a CUDA device"):
            resolve_dtype("fp16", torch.device("cpu"))
    with pytest.raises(UserError, match="not a device"):
        resolve_device("gpu-please")
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_unreadable_model_directory(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read model directory"):
        load_model("broken", str(tmp_path), torch.device("cpu"), "fp32")


def test_a_random_model_is_built_only_where_no_other_files_are(tmp_path):
    """model.name_or_path of a random-weight preset pointing at a user's folder: refused, the folder untouched."""
    users = tmp_path / "my_folder"
    (users / "notes").mkdir(parents=True)
    (users / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match=r"my_folder holds files but no model \(config.json\): zsa-eval writes a "
                                        r"random-weight model only into a new or empty folder"):
        ensure_random_model(str(users), "tiny", 0)
    assert sorted(path.name for path in users.iterdir()) == ["keep.txt", "notes"]
    assert [path.name for path in tmp_path.iterdir()] == ["my_folder"]  # no staging folder left behind
    ensure_random_model(str(tmp_path / "new"), "tiny", 0)
    assert (tmp_path / "new" / "config.json").is_file()


@pytest.mark.parametrize("kept, named", [
    ("HF_HUB_OFFLINE", "HF_HUB_OFFLINE=1"), ("TRANSFORMERS_OFFLINE", "TRANSFORMERS_OFFLINE=1"),
    (None, "huggingface_hub.constants.HF_HUB_OFFLINE=True"),
])
def test_offline_mode_not_the_network_is_named_when_a_model_is_not_cached(hub_unreachable, monkeypatch, kept, named):
    unset_offline_variables(monkeypatch, kept)
    with pytest.raises(UserError) as error:
        load_model("x", "someone/not-cached", torch.device("cpu"), "fp32")
    assert str(error.value) == (
        f"cannot load model 'someone/not-cached': offline mode is set ({named}) and it is not in the local cache: "
        "unset offline mode to download it, or set model.name_or_path=/path/to/saved/model")


# bf16 keeps 8 significant bits (relative rounding 2**-9 per operation): through the tiny model that moves
# normalized embeddings and probabilities by under 0.01 (measured: 0.0064 and 0.0074) and the logits, which
# are cosines times the logit scale 14.3, by under 0.1 (measured 0.076). The bounds allow twice that.
BF16_TOLERANCE = {"probabilities": 0.02, "logits": 0.2, "audio_embeddings": 0.02}
DECISIVE_MARGIN = 0.01  # fp32's top-two probability gap above which bf16 must pick the same class


def test_bf16_scores_match_fp32_within_tolerance(tiny_model_dir, tmp_path):
    paths = []
    for index, wave in enumerate([tone(300.0 + 200 * i) for i in range(4)] + [noise(i) for i in range(2)]):
        paths.append(str(tmp_path / f"{index}.wav"))
        sf.write(paths[-1], wave, 44100)
    labels = ["dog", "chirping birds", "vacuum cleaner", "rain"]

    def outputs(loaded) -> dict[str, np.ndarray]:
        batches = list(score_clips(loaded, paths, paths, labels, ["This is a sound of {}."], "embed", 8, 0, 0, False))
        return {name: np.concatenate([getattr(batch, name) for batch in batches]) for name in BF16_TOLERANCE}

    # short clips through the fusion branch, where this tiny model's scores are decisive enough to compare argmaxes
    bf16_model = load_model("tiny_random", str(tiny_model_dir), torch.device("cpu"), "bf16",
                            short_clip_fusion="transformers")
    fp32_model = load_model("tiny_random", str(tiny_model_dir), torch.device("cpu"), "fp32",
                            short_clip_fusion="transformers")
    assert next(bf16_model.model.parameters()).dtype == torch.bfloat16
    fp32, bf16 = outputs(fp32_model), outputs(bf16_model)
    for name, tolerance in BF16_TOLERANCE.items():
        assert bf16[name].dtype == np.float32 and np.isfinite(bf16[name]).all()
        difference = np.abs(bf16[name] - fp32[name]).max()
        assert 0 < difference <= tolerance, (name, difference)  # bf16 did run, and stays close
    ranked = np.sort(fp32["probabilities"], axis=1)
    decisive = ranked[:, -1] - ranked[:, -2] >= DECISIVE_MARGIN
    assert decisive.sum() >= 3
    np.testing.assert_array_equal(bf16["probabilities"].argmax(axis=1)[decisive],
                                  fp32["probabilities"].argmax(axis=1)[decisive])
