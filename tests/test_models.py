import numpy as np
import pytest
import torch

from zsa_eval.engine import text_embeddings
from zsa_eval.errors import UserError
from zsa_eval.models import load_model, resolve_device, resolve_dtype
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


def test_bf16_model_scores_close_to_fp32(tiny_model_dir):
    model = load_model("tiny_random", str(tiny_model_dir), torch.device("cpu"), "bf16")
    assert next(model.model.parameters()).dtype == torch.bfloat16
    embeddings = text_embeddings(model, ["dog", "rain"], ["{}"])
    assert embeddings.dtype == torch.float32 and np.isfinite(embeddings.numpy()).all()
