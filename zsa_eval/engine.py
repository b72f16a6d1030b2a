"""Scoring: text embeddings once per class, audio streamed through a DataLoader, probabilities per clip.

Two engines give the same scores: `embed` (batched audio encoder, text computed once) and `pipeline`
(transformers' zero-shot-audio-classification pipeline, one clip at a time, the reference).

Batch invariance, made explicit: every clip is featurized alone, exactly as the pipeline does.
`ClapFeatureExtractor` called on a batch of short clips marks one random clip `is_longer=True` (which
switches the fused model's fusion path for it), while a clip featurized alone is always marked; and the
fusion crops of long clips are random. Featurizing each clip alone with a seed derived from (seed, item id)
makes its features, and so its scores, independent of batch size, order and of which clips share its batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from zsa_eval.audio import AudioSource, load_clip
from zsa_eval.errors import BadAudio, UserError
from zsa_eval.models import LoadedModel

ENGINES = ("embed", "pipeline")


@dataclass
class BatchScores:
    """Class probabilities for the clips of one batch (positions in the dataset), and the clips skipped."""

    indices: list[int]
    probabilities: np.ndarray
    skipped: list[tuple[int, str]]


def clip_seed(seed: int, item_id: str) -> int:
    """A seed for one clip's random crops that depends only on the run seed and the item's id."""
    digest = hashlib.blake2b(f"{seed}\0{item_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def featurize_clip(feature_extractor, waveform: np.ndarray, seed: int) -> tuple[np.ndarray, bool]:
    """Featurize one clip alone (see the module docstring): its features and its `is_longer` flag."""
    np.random.seed(seed)
    features = feature_extractor([waveform], sampling_rate=feature_extractor.sampling_rate, return_tensors="np")
    return features["input_features"][0].astype(np.float32), bool(features["is_longer"][0][0])


class ClipDataset(Dataset):
    """Decodes and resamples one item (and featurizes it for the embed engine); bad items become skip records."""

    def __init__(self, clips: Sequence[AudioSource], item_ids: Sequence[str], sampling_rate: int, seed: int,
                 feature_extractor=None):
        self.clips = clips
        self.seeds = [clip_seed(seed, item_id) for item_id in item_ids]
        self.sampling_rate = sampling_rate
        self.feature_extractor = feature_extractor

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        try:
            waveform = load_clip(self.clips[index], self.sampling_rate)
        except BadAudio as error:
            return {"index": index, "error": str(error)}
        if self.feature_extractor is None:
            return {"index": index, "waveform": waveform, "seed": self.seeds[index]}
        features, is_longer = featurize_clip(self.feature_extractor, waveform, self.seeds[index])
        return {"index": index, "input_features": features, "is_longer": is_longer}


def collate_clips(samples: list[dict]) -> dict:
    """Stack the good samples of a batch; keep the bad ones apart as (index, reason)."""
    good = [sample for sample in samples if "error" not in sample]
    batch = {
        "indices": [sample["index"] for sample in good],
        "skipped": [(sample["index"], sample["error"]) for sample in samples if "error" in sample],
    }
    if good and "input_features" in good[0]:
        batch["input_features"] = torch.from_numpy(np.stack([sample["input_features"] for sample in good]))
        batch["is_longer"] = torch.tensor([[sample["is_longer"]] for sample in good])
    else:
        batch["waveforms"] = [sample["waveform"] for sample in good]
        batch["seeds"] = [sample["seed"] for sample in good]
    return batch


def clip_loader(dataset: ClipDataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate_clips)


def pooled(output) -> torch.Tensor:
    """The embedding from get_*_features, whether it returns a tensor (transformers 4) or an output (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@torch.inference_mode()
def text_embeddings(loaded: LoadedModel, candidate_labels: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
    """One normalized embedding per class: prompt embeddings normalized, averaged across prompts, renormalized."""
    per_prompt = []
    for prompt in prompts:
        texts = [prompt.format(label) for label in candidate_labels]
        tokens = loaded.tokenizer(texts, padding=True, return_tensors="pt").to(loaded.device)
        embeddings = pooled(loaded.model.get_text_features(**tokens)).float()
        per_prompt.append(torch.nn.functional.normalize(embeddings, dim=-1))
    return torch.nn.functional.normalize(torch.stack(per_prompt).mean(dim=0), dim=-1)


@torch.inference_mode()
def embed_batches(loaded: LoadedModel, loader: DataLoader, classifier: torch.Tensor) -> Iterator[BatchScores]:
    """Audio embeddings in batches; probabilities = softmax(cosine x the model's audio logit scale)."""
    logit_scale = loaded.model.logit_scale_a.exp().float()
    for batch in loader:
        probabilities = np.zeros((0, classifier.shape[0]), dtype=np.float32)
        if batch["indices"]:
            audio = pooled(loaded.model.get_audio_features(
                input_features=batch["input_features"].to(loaded.device, loaded.dtype),
                is_longer=batch["is_longer"].to(loaded.device),
            )).float()
            logits = torch.nn.functional.normalize(audio, dim=-1) @ classifier.T * logit_scale
            probabilities = logits.softmax(dim=-1).cpu().numpy()
        yield BatchScores(batch["indices"], probabilities, batch["skipped"])


def pipeline_batches(
    loaded: LoadedModel, loader: DataLoader, candidate_labels: Sequence[str], prompt: str
) -> Iterator[BatchScores]:
    """The reference: transformers' zero-shot-audio-classification pipeline, called once per clip."""
    from transformers import pipeline

    classifier = pipeline("zero-shot-audio-classification", model=loaded.model, tokenizer=loaded.tokenizer,
                          feature_extractor=loaded.feature_extractor, device=loaded.device)
    position = {label: column for column, label in enumerate(candidate_labels)}
    for batch in loader:
        probabilities = np.zeros((len(batch["indices"]), len(candidate_labels)), dtype=np.float32)
        for row, (waveform, seed) in enumerate(zip(batch["waveforms"], batch["seeds"])):
            np.random.seed(seed)  # the same crops featurize_clip takes for this clip
            for result in classifier(waveform, candidate_labels=list(candidate_labels), hypothesis_template=prompt):
                probabilities[row, position[result["label"]]] = result["score"]
        yield BatchScores(batch["indices"], probabilities, batch["skipped"])


def score_clips(
    loaded: LoadedModel,
    clips: Sequence[AudioSource],
    item_ids: Sequence[str],
    candidate_labels: Sequence[str],
    prompts: Sequence[str],
    engine: str,
    batch_size: int,
    num_workers: int,
    seed: int,
    progress: bool = True,
) -> Iterator[BatchScores]:
    """Stream every clip through the chosen engine, batch by batch, with a progress bar."""
    if engine not in ENGINES:
        raise UserError(f"engine={engine} is unknown: use engine=embed or engine=pipeline")
    if engine == "pipeline" and len(prompts) != 1:
        raise UserError("engine=pipeline takes a single prompt: use engine=embed for template=ensemble")
    featurizer = loaded.feature_extractor if engine == "embed" else None
    loader = clip_loader(ClipDataset(clips, item_ids, loaded.sampling_rate, seed, featurizer), batch_size,
                         num_workers)
    if engine == "embed":
        batches = embed_batches(loaded, loader, text_embeddings(loaded, candidate_labels, prompts))
    else:
        batches = pipeline_batches(loaded, loader, candidate_labels, prompts[0])
    with tqdm(total=len(clips), desc=f"{engine} {loaded.name}", unit="clip", disable=not progress) as bar:
        for batch in batches:
            bar.update(len(batch.indices) + len(batch.skipped))
            yield batch
